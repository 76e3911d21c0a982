"""The low pass of the sub-PSDs, the ten correlations and their statistics (spec B.3 #9-11)."""

from __future__ import annotations

from itertools import combinations
from typing import Final

import numpy as np
import scipy.fft

from daskmic.ops.fourier_masks import lowpass_mask

LOWPASS_CUTOFF: Final = 0.1
LOWPASS_WIDTH: Final = 0.02
"""The reference's ``--fourier low_pass 0.1`` with Xmipp's default raised-cosine width."""

N_CORNERS: Final = 4
PAIRS: Final = tuple(combinations(range(N_CORNERS), 2))
"""The six corner pairs, in ``itertools.combinations`` order (spec B.3 #10)."""

_STD_EPS = 1e-6  # correlationIndex returns 0 when either standard deviation is below this


def lowpass(images: np.ndarray) -> np.ndarray:
    """Low-pass images (last two axes) with the reference's raised cosine, 0.1 c/px, width 0.02.

    Applied as ``irfft2(rfft2(x) * H)`` with periodic boundaries; each axis's frequencies are
    normalised by its own size (Xmipp's ``FFT_IDX2DIGFREQ``).
    """
    shape = images.shape[-2:]
    mask = lowpass_mask(shape, LOWPASS_CUTOFF, LOWPASS_WIDTH)
    spectrum = scipy.fft.rfft2(images, axes=(-2, -1))
    spectrum *= mask
    return scipy.fft.irfft2(spectrum, s=shape, axes=(-2, -1))


def _standardized(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image ``(x - mean) / std`` (population) and whether the std is usable."""
    flat = images.reshape(len(images), -1)
    centred = flat - flat.mean(axis=1, keepdims=True)
    std = np.sqrt(np.mean(centred * centred, axis=1))
    usable = std >= _STD_EPS
    return centred / np.where(usable, std, 1.0)[:, None], usable


def correlations(filtered: np.ndarray, filtered_rotated: np.ndarray) -> np.ndarray:
    """The reference's ten correlations among four filtered sub-PSDs.

    Six pairwise Pearson correlations in :data:`PAIRS` order, then each sub-PSD against its own
    rotated sub-PSD, in corner order. Population moments; 0 when either standard deviation is
    below 1e-6 (Xmipp's ``correlationIndex``).

    Parameters
    ----------
    filtered, filtered_rotated : numpy.ndarray
        ``(4, sub, sub)`` low-passed sub-PSDs and rotated sub-PSDs, corner order.

    Returns
    -------
    numpy.ndarray
        Float64, shape ``(10,)``.
    """
    z, usable = _standardized(np.concatenate([filtered, filtered_rotated]))
    gram = (z @ z.T) / z.shape[1]  # all Pearson correlations at once
    gram[~usable, :] = 0.0
    gram[:, ~usable] = 0.0
    pairs = [gram[a, b] for a, b in PAIRS]
    own = [gram[a, a + N_CORNERS] for a in range(N_CORNERS)]
    return np.asarray(pairs + own, dtype=np.float64)


def correlation_stats(values: np.ndarray) -> dict[str, float]:
    """Mean, population standard deviation, minimum and maximum, in float64."""
    values = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
    }
