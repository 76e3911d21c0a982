"""Compat mode against an oracle built on xmippLib (pyxmipp3), following spec B step by step.

The oracle makes the reference's own xmippLib calls: ``Image.window2D`` with inclusive ends,
``computeStats`` normalisation, ``computePSD(0.4, x, y, 1)``, ``convertPSD``, the 90° rotation
through ``applyWarpAffine`` with the protocol's ``M = T⁻¹RT``, the sub-window from the column
count, the low pass through ``xmippLib.bandPassFilter`` (0, 0.1, raised width 0.02) on the
sub-PSD written as a float32 MRC file, the filtered image round-tripped through float32 MRC as
the protocol does, and ``Image.correlation``.
"""

from __future__ import annotations

import math
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import xmippLib

from daskmic.datasets import synthesize_micrograph
from daskmic.tilt.params import TiltParams
from daskmic.tilt.screen import screen_micrograph


def _protocol_matrix(shape: tuple[int, int]) -> np.ndarray:
    """The protocol's rotation matrix: translate by minus half the size, rotate 90°, back."""
    h, w = shape
    angle = math.radians(90)
    to_centre = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1.0]])
    turn = np.array(
        [[math.cos(angle), math.sin(angle), 0], [-math.sin(angle), math.cos(angle), 0], [0, 0, 1]]
    )
    return np.linalg.inv(to_centre) @ turn @ to_centre


def _image(data: np.ndarray) -> xmippLib.Image:
    image = xmippLib.Image()
    image.setData(np.ascontiguousarray(data, dtype=np.float64))
    return image


def _filtered(piece: xmippLib.Image, sub: int, stem: Path) -> xmippLib.Image:
    """Write, low-pass with bandPassFilter, write float32, read back (the protocol's files)."""
    raw = str(stem.with_suffix(".mrc"))
    piece.write(raw)
    out = xmippLib.Image()
    xmippLib.bandPassFilter(out, raw, 0.0, 0.1, 0.02, sub)
    done = str(stem.with_name(stem.name + "_filtered.mrc"))
    out.write(done)
    back = xmippLib.Image()
    back.read(done)
    return back


def xmipp_tilt_oracle(
    image: np.ndarray, pixel_size_A: float, window: int, resolution_A: float, tmp: Path
) -> tuple[np.ndarray, np.ndarray]:
    """The ten correlations and the PSD summary, computed with xmippLib as spec B describes."""
    mic = _image(image)
    ny, nx = image.shape
    xs = [0, window - 1, nx - 1 - window, nx - 1]
    ys = [0, window - 1, ny - 1 - window, ny - 1]
    sub = int(window * (pixel_size_A / resolution_A))
    summary = np.zeros((2 * sub - 1, 2 * sub - 1))
    origin = {0: 0, 2: sub - 1}
    filtered, own = [], []
    for i in (0, 2):
        for j in (0, 2):
            win = mic.window2D(xs[i], ys[j], xs[i + 1], ys[j + 1])
            x_dim, y_dim, _, _ = win.getDimensions()
            mean, dev, _, _ = win.computeStats()
            psd = _image((win.getData() - mean) / dev).computePSD(0.4, x_dim, y_dim, 1)
            psd.convertPSD()
            values = psd.getData()
            matrix = _protocol_matrix(values.shape)
            warped = _image(values).applyWarpAffine(list(matrix.flatten()), values.shape, True)
            rotated = _image(warped.getData())
            x0 = y0 = int(x_dim / 2 - sub / 2)
            pieces = [
                _filtered(source.window2D(x0, y0, x0 + sub - 1, y0 + sub - 1), sub, tmp / name)
                for source, name in ((psd, f"psd{i}{j}"), (rotated, f"rot{i}{j}"))
            ]
            own.append(pieces[0].correlation(pieces[1]))
            filtered.append(pieces[0])
            summary[origin[j] : origin[j] + sub, origin[i] : origin[i] + sub] = pieces[0].getData()
    pairs = [a.correlation(b) for a, b in combinations(filtered, 2)]
    return np.array(pairs + own), summary


CASES = [
    # shape, pixel size, window, resolution: square/non-square, auto/manual, even/odd w and sub
    ((1024, 1024), 1.0, "auto", 3.0),
    ((900, 1100), 1.3, 400, 4.0),
    ((700, 640), 1.0, "auto", 2.5),
    ((1024, 1024), 1.0, 300, 3.0),
    ((1100, 900), 1.0, 333, 2.0),
]


@pytest.mark.parametrize(("shape", "pixel_size_A", "window", "resolution_A"), CASES)
def test_compat_matches_xmipplib(shape, pixel_size_A, window, resolution_A, tmp_path):
    image, _ = synthesize_micrograph(
        shape, pixel_size_A=pixel_size_A, defocus_A=12000.0, astigmatism_A=600.0, seed=7
    )
    params = TiltParams(window_size=window, resolution_A=resolution_A, xmipp_compat=True)
    result = screen_micrograph(image, pixel_size_A, params)
    expected, summary = xmipp_tilt_oracle(
        image, pixel_size_A, result.window_size_px, resolution_A, tmp_path
    )
    assert result.sub_window_px == int(result.window_size_px * pixel_size_A / resolution_A)
    np.testing.assert_allclose(result.correlations, expected, rtol=0, atol=1e-6)
    assert result.mean == pytest.approx(np.mean(expected), abs=1e-6)
    assert result.std == pytest.approx(np.std(expected), abs=1e-6)
    assert result.psd_summary.shape == summary.shape
    tolerance = 1e-5 * np.std(summary)
    assert np.max(np.abs(result.psd_summary - summary)) <= tolerance


def test_oracle_window_is_the_reference_auto_size():
    params = TiltParams(xmipp_compat=True)
    assert params.window_size_px((700, 640)) == 256
    assert params.window_size_px((4096, 4096)) == 1024
