"""Synthetic micrographs with known truth: CTF, tilt, astigmatism, dose, defects.

A micrograph is a random weak-phase specimen (white noise plus particle-like Gaussian blobs)
imaged through the CTF of :mod:`daskmic.tilt.ctf`, damped by a B-factor envelope, lit with an
optional linear illumination gradient and recorded with Poisson shot noise; hot and dead pixels
are added last. Everything is drawn from one seed, so a seed gives the same micrograph.

Tilt conventions (those of the tilt-angle estimator): pixel ``(row, col)`` sits at
``x_A = (col - (nx-1)/2) * pixel_size_A``, ``y_A = (row - (ny-1)/2) * pixel_size_A`` (row 0 at
the bottom when displayed). ``tilt_axis_deg`` is the direction of the line of constant defocus,
counter-clockwise from +x. For ``tilt_angle_deg > 0`` the underfocus increases towards
``tilt_direction_deg = tilt_axis_deg + 90°`` (a negative angle flips it), by ``tan(θ)`` Å per Å:

.. math:: Δf(x, y) = Δf_0 + g_x x + g_y y,\\quad (g_x, g_y) = \\tan θ\\,(\\cos β, \\sin β),
          \\quad β = \\text{tilt\\_direction\\_deg}.

A tilted micrograph is imaged patch by patch: the specimen is cut by overlapping flat-top
windows (a partition of unity: 384 px long, one every 256 px, with 128 px sin²/cos² tapers),
each windowed piece is imaged through the CTF at the defocus of its window centre (with a
64 px margin so that delocalised signal is not wrapped), and the images are summed. The defocus
map is thus the plane sampled every 256 px and blended in between; a specimen region is imaged
at its own height, as in the microscope. An untilted micrograph is imaged in one periodic
full-frame transform.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.fft

from daskmic.io.atomic import atomic_path
from daskmic.io.mrc_write import write_mrc
from daskmic.tilt.ctf import Optics

_STEP_PX = 256
_MARGIN_PX = 64
_TAPER_PX = 128
_BLOB_SPACING_A = 250.0


def defocus_plane(
    defocus_A: float, tilt_angle_deg: float, tilt_axis_deg: float
) -> tuple[float, float, float, float]:
    """Coefficients of the defocus plane of a tilted specimen (module conventions).

    Returns
    -------
    tuple of float
        ``(c0_A, gx, gy, tilt_direction_deg)``: ``Δf = c0_A + gx·x_A + gy·y_A`` and the
        direction in [0, 360) towards which the underfocus increases.

    Examples
    --------
    >>> from daskmic.datasets import defocus_plane
    >>> c0_A, gx, gy, direction_deg = defocus_plane(15000.0, 45.0, 0.0)
    >>> round(gx, 6), round(gy, 6), direction_deg
    (0.0, 1.0, 90.0)
    """
    if not -90.0 < tilt_angle_deg < 90.0:
        raise ValueError(f"tilt_angle_deg must be in (-90, 90), got {tilt_angle_deg}")
    sign = 90.0 if tilt_angle_deg >= 0 else -90.0
    direction_deg = (tilt_axis_deg + sign) % 360.0
    slope = math.tan(math.radians(abs(tilt_angle_deg)))
    beta = math.radians(direction_deg)
    return float(defocus_A), slope * math.cos(beta), slope * math.sin(beta), direction_deg


def _render_specimen(
    rng: np.random.Generator, shape: tuple[int, int], pixel_size_A: float, phase_std: float
) -> np.ndarray:
    """Weak-phase specimen: white noise plus Gaussian blobs ~ every 250 Å, float32.

    The noise is white per unit area (its spectral density in 1/Å does not depend on the
    pixel size): a pixel of ``p`` Å has the phase std ``phase_std / p``.
    """
    phi = rng.standard_normal(shape, dtype=np.float32)
    phi *= np.float32(phase_std / pixel_size_A)  # white noise of std phase_std per Å²
    ny, nx = shape
    n_blobs = rng.poisson(ny * nx * pixel_size_A**2 / _BLOB_SPACING_A**2)
    for cy, cx, sigma_A, height in zip(
        rng.uniform(0, ny, n_blobs),
        rng.uniform(0, nx, n_blobs),
        rng.uniform(15.0, 40.0, n_blobs),
        rng.uniform(2.0, 4.0, n_blobs) * phase_std,
        strict=True,
    ):
        sigma = sigma_A / pixel_size_A
        r = int(3 * sigma) + 1
        y0, y1 = max(int(cy) - r, 0), min(int(cy) + r + 1, ny)
        x0, x1 = max(int(cx) - r, 0), min(int(cx) + r + 1, nx)
        gy = np.exp(-0.5 * ((np.arange(y0, y1) - cy) / sigma) ** 2)
        gx = np.exp(-0.5 * ((np.arange(x0, x1) - cx) / sigma) ** 2)
        phi[y0:y1, x0:x1] += (height * gy[:, None] * gx[None, :]).astype(np.float32)
    return phi


class _Transfer:
    """``-2 · CTF · envelope`` on one rfft2 grid, evaluated for any local defocus (float32)."""

    def __init__(
        self,
        shape: tuple[int, int],
        pixel_size_A: float,
        optics: Optics,
        astigmatism_A: float,
        astigmatism_angle_deg: float,
        b_factor_A2: float,
    ) -> None:
        ky = np.fft.fftfreq(shape[0], d=pixel_size_A)[:, None]
        kx = np.fft.rfftfreq(shape[1], d=pixel_size_A)[None, :]
        k2 = ky * ky + kx * kx
        alpha = np.arctan2(ky, kx)
        lam, cs_A = optics.wavelength_A, optics.spherical_aberration_mm * 1e7
        self.k2_scaled = (math.pi * lam * k2).astype(np.float32)
        astig = 0.5 * astigmatism_A * np.cos(2 * (alpha - math.radians(astigmatism_angle_deg)))
        self.base = (
            math.pi * lam * k2 * astig
            - 0.5 * math.pi * cs_A * lam**3 * k2 * k2
            + optics.constant_phase_rad
        ).astype(np.float32)
        self.envelope = (-2.0 * np.exp(-0.25 * b_factor_A2 * k2)).astype(np.float32)

    def __call__(self, defocus_A: float) -> np.ndarray:
        chi = self.k2_scaled * np.float32(defocus_A)
        chi += self.base
        np.sin(chi, out=chi)
        chi *= self.envelope
        return chi


def _image_uniform(phi: np.ndarray, transfer: _Transfer, defocus_A: float) -> np.ndarray:
    """Contrast of a specimen imaged at one defocus over the whole (periodic) frame."""
    spectrum = scipy.fft.rfft2(phi)
    spectrum *= transfer(defocus_A)
    return scipy.fft.irfft2(spectrum, s=phi.shape)


def _flat_top_window(step: int, taper: int) -> np.ndarray:
    """Length ``step + taper``: sin² rise, plateau, cos² fall; its shifts by ``step`` sum to 1."""
    rise = np.sin(0.5 * np.pi * (np.arange(taper) + 0.5) / taper) ** 2
    return np.concatenate([rise, np.ones(step - taper), 1.0 - rise]).astype(np.float32)


def _image_tilted(
    phi: np.ndarray, transfer: _Transfer, plane: tuple[float, float, float], pixel_size_A: float
) -> np.ndarray:
    """Contrast of a specimen on a defocus plane; ``phi`` carries a margin of ``_MARGIN_PX``."""
    s, t, p = _STEP_PX, _TAPER_PX, _MARGIN_PX
    size = s + t + 2 * p
    ny, nx = phi.shape
    frame_cy, frame_cx = (ny - 2 * p - 1) / 2, (nx - 2 * p - 1) / 2
    win = _flat_top_window(s, t)
    win2d = win[:, None] * win[None, :]
    buf = np.zeros((size, size), dtype=np.float32)
    out = np.zeros((ny + 2 * s + 2 * p, nx + 2 * s + 2 * p), dtype=np.float32)
    for y0 in range(-t, ny, s):
        ya, yb = max(y0, 0), min(y0 + s + t, ny)
        for x0 in range(-t, nx, s):
            xa, xb = max(x0, 0), min(x0 + s + t, nx)
            buf.fill(0.0)
            np.multiply(
                phi[ya:yb, xa:xb],
                win2d[ya - y0 : yb - y0, xa - x0 : xb - x0],
                out=buf[p + ya - y0 : p + yb - y0, p + xa - x0 : p + xb - x0],
            )
            y_A = (y0 + (s + t - 1) / 2 - p - frame_cy) * pixel_size_A
            x_A = (x0 + (s + t - 1) / 2 - p - frame_cx) * pixel_size_A
            defocus = plane[0] + plane[1] * x_A + plane[2] * y_A
            out[y0 + t : y0 + t + size, x0 + t : x0 + t + size] += _image_uniform(
                buf, transfer, defocus
            )
    return out[t + 2 * p : t + ny, t + 2 * p : t + nx]


def beam_intensity(
    shape: tuple[int, int],
    dose_px: float,
    gradient: float,
    gradient_angle_deg: float,
    vignetting: float = 0.0,
) -> np.ndarray:
    """Mean counts per pixel of the beam: a linear gradient times a radial fall-off (float32).

    ``dose_px · (1 + gradient · (x̂ cos γ + ŷ sin γ)) · (1 - vignetting · 2 (x̂² + ŷ²))`` with
    ``x̂, ŷ`` the pixel position over the frame size from the centre (±½ at the edges), so
    the gradient changes the intensity by ``±gradient/2`` at the edges and the fall-off
    reaches ``vignetting`` at the corners.
    """
    ny, nx = shape
    yn = ((np.arange(ny) - (ny - 1) / 2) / ny).astype(np.float32)[:, None]
    xn = ((np.arange(nx) - (nx - 1) / 2) / nx).astype(np.float32)[None, :]
    gamma = math.radians(gradient_angle_deg)
    intensity = np.float32(dose_px) * (
        1
        + np.float32(gradient)
        * (xn * np.float32(math.cos(gamma)) + yn * np.float32(math.sin(gamma)))
    )
    if vignetting:
        intensity *= 1 - np.float32(vignetting) * (xn * xn + yn * yn) / np.float32(0.5)
    return intensity


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


def _add_defects(
    rng: np.random.Generator, counts: np.ndarray, hot: int, dead: int, dose_px: float
) -> tuple[list[list[int]], list[list[int]]]:
    ny, nx = counts.shape
    if hot + dead > ny * nx:
        raise ValueError(f"hot_pixels + dead_pixels must be <= {ny * nx}, got {hot + dead}")
    flat = rng.choice(ny * nx, size=hot + dead, replace=False)
    hot_idx, dead_idx = np.sort(flat[:hot]), np.sort(flat[hot:])
    counts.flat[hot_idx] = np.round(rng.uniform(10.0, 30.0, hot) * max(dose_px, 1.0))
    counts.flat[dead_idx] = 0.0
    return _positions(hot_idx, nx), _positions(dead_idx, nx)


def _positions(flat_index: np.ndarray, nx: int) -> list[list[int]]:
    return [[int(i // nx), int(i % nx)] for i in flat_index]


def synthesize_micrograph(
    shape: tuple[int, int] = (1024, 1024),
    *,
    pixel_size_A: float = 1.0,
    defocus_A: float = 15000.0,
    astigmatism_A: float = 0.0,
    astigmatism_angle_deg: float = 0.0,
    tilt_angle_deg: float = 0.0,
    tilt_axis_deg: float = 0.0,
    dose_e_per_A2: float = 30.0,
    voltage_kV: float = 300.0,
    spherical_aberration_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    b_factor_A2: float = 80.0,
    phase_std: float = 0.05,
    hot_pixels: int = 0,
    dead_pixels: int = 0,
    gradient: float = 0.0,
    dtype: str = "float32",
    seed: int | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Synthesize one micrograph with known CTF, tilt and defects.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)``, each >= 16.
    pixel_size_A : float
        Pixel size in ångström, > 0.
    defocus_A : float
        Mean underfocus at the image centre (Å, > 0).
    astigmatism_A : float
        ``Δf_U - Δf_V`` (Å, >= 0); ``Δf_U,V = local defocus ± astigmatism_A / 2``.
    astigmatism_angle_deg : float
        Direction of ``Δf_U``, counter-clockwise from +x.
    tilt_angle_deg : float
        Specimen tilt in (-90, 90) degrees; the sign picks the side of the axis (module notes).
    tilt_axis_deg : float
        Direction of the line of constant defocus, counter-clockwise from +x.
    dose_e_per_A2 : float
        Electron dose, > 0; the mean count per pixel is ``dose · pixel_size_A²``.
    voltage_kV, spherical_aberration_mm, amplitude_contrast : float
        Microscope optics (see :class:`daskmic.tilt.ctf.Optics`).
    b_factor_A2 : float
        Envelope ``exp(-B k² / 4)`` on the CTF, >= 0.
    phase_std : float
        Standard deviation (radians) of the white part of the phase specimen averaged over
        1 Å² (a pixel of ``p`` Å has ``phase_std / p``), >= 0.
    hot_pixels, dead_pixels : int
        Numbers of hot pixels (10–30 × the mean count) and dead pixels (0).
    gradient : float
        Relative illumination change across the field (``1 ± gradient/2`` at the edges), along
        a random direction recorded as ``gradient_angle_deg``; in [0, 1].
    dtype : str
        Output dtype (``float32``, ``float16``, ``uint16``, ``int16``, ...); integers are rounded.
    seed : int or None
        Seed of the random generator; equal seeds give equal micrographs.

    Returns
    -------
    image : numpy.ndarray
        The micrograph in counts, shape ``shape``.
    truth : dict
        Every parameter, the local ``defocus_u_A``/``defocus_v_A`` at the centre, the plane
        ``defocus_plane_c0_A``, ``defocus_plane_gx``, ``defocus_plane_gy`` (Å per Å, coordinates
        in the module notes), ``tilt_direction_deg``, ``gradient_angle_deg`` and the defect
        positions ``hot_pixels_yx``/``dead_pixels_yx`` as ``[row, col]`` lists.

    Examples
    --------
    >>> from daskmic.datasets import synthesize_micrograph
    >>> image, truth = synthesize_micrograph((256, 256), pixel_size_A=1.5, hot_pixels=3, seed=0)
    >>> image.shape, image.dtype.name, len(truth["hot_pixels_yx"])
    ((256, 256), 'float32', 3)
    """
    ny, nx = (int(n) for n in shape)
    if ny < 16 or nx < 16:
        raise ValueError(f"shape must be at least (16, 16), got {shape}")
    for name, value in (("pixel_size_A", pixel_size_A), ("defocus_A", defocus_A)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    if not dose_e_per_A2 > 0:
        raise ValueError(f"dose_e_per_A2 must be > 0, got {dose_e_per_A2}")
    for name, value in (
        ("astigmatism_A", astigmatism_A),
        ("b_factor_A2", b_factor_A2),
        ("phase_std", phase_std),
    ):
        _check_range(name, value, 0.0, math.inf)
    _check_range("gradient", gradient, 0.0, 1.0)
    out_dtype = np.dtype(dtype)
    optics = Optics(voltage_kV, spherical_aberration_mm, amplitude_contrast)
    c0, gx, gy, direction = defocus_plane(defocus_A, tilt_angle_deg, tilt_axis_deg)
    rng = np.random.default_rng(seed)
    tilted = tilt_angle_deg != 0.0
    margin = _MARGIN_PX if tilted else 0
    phi = _render_specimen(rng, (ny + 2 * margin, nx + 2 * margin), pixel_size_A, phase_std)
    if tilted:
        size = _STEP_PX + _TAPER_PX + 2 * _MARGIN_PX
        args = (pixel_size_A, optics, astigmatism_A, astigmatism_angle_deg, b_factor_A2)
        contrast = _image_tilted(phi, _Transfer((size, size), *args), (c0, gx, gy), pixel_size_A)
    else:
        args = (pixel_size_A, optics, astigmatism_A, astigmatism_angle_deg, b_factor_A2)
        contrast = _image_uniform(phi, _Transfer((ny, nx), *args), defocus_A)
    del phi
    gradient_angle_deg = float(rng.uniform(0.0, 360.0))
    dose_px = dose_e_per_A2 * pixel_size_A**2
    illumination = beam_intensity((ny, nx), dose_px, gradient, gradient_angle_deg)
    contrast += np.float32(1.0)
    contrast *= illumination
    expected = np.clip(contrast, 0.0, None, out=contrast)
    counts = rng.poisson(expected).astype(np.float32)
    hot_yx, dead_yx = _add_defects(rng, counts, int(hot_pixels), int(dead_pixels), dose_px)
    if np.issubdtype(out_dtype, np.integer):
        info = np.iinfo(out_dtype)
        counts = np.clip(np.rint(counts), info.min, info.max)
    truth: dict[str, Any] = {
        "shape": [ny, nx],
        "pixel_size_A": float(pixel_size_A),
        "defocus_A": float(defocus_A),
        "defocus_u_A": float(defocus_A + astigmatism_A / 2),
        "defocus_v_A": float(defocus_A - astigmatism_A / 2),
        "astigmatism_A": float(astigmatism_A),
        "astigmatism_angle_deg": float(astigmatism_angle_deg % 180.0),
        "tilt_angle_deg": float(abs(tilt_angle_deg)),
        "tilt_axis_deg": float(tilt_axis_deg % 180.0),
        "tilt_direction_deg": direction,
        "defocus_plane_c0_A": c0,
        "defocus_plane_gx": gx,
        "defocus_plane_gy": gy,
        "dose_e_per_A2": float(dose_e_per_A2),
        "voltage_kV": float(voltage_kV),
        "spherical_aberration_mm": float(spherical_aberration_mm),
        "amplitude_contrast": float(amplitude_contrast),
        "b_factor_A2": float(b_factor_A2),
        "phase_std": float(phase_std),
        "gradient": float(gradient),
        "gradient_angle_deg": gradient_angle_deg,
        "hot_pixels_yx": hot_yx,
        "dead_pixels_yx": dead_yx,
        "dtype": out_dtype.name,
        "seed": seed,
    }
    return counts.astype(out_dtype), truth


def _tilts(rng: np.random.Generator, n: int, tilt_angles_deg: Sequence[float] | None) -> list:
    if tilt_angles_deg is None:
        return [0.0 if i % 2 == 0 else float(rng.uniform(10.0, 50.0)) for i in range(n)]
    tilts = [float(t) for t in tilt_angles_deg]
    if len(tilts) != n:
        raise ValueError(f"tilt_angles_deg must have n={n} values, got {len(tilts)}")
    return tilts


def _star_name(path: Path) -> str:
    """``rlnMicrographName``: relative to the working directory when below it (RELION)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def _write_star(folder: Path, table: pd.DataFrame, optics: dict[str, float]) -> None:
    from daskmic.io.tables import write_star

    optics_block = pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnMicrographOriginalPixelSize": [optics["pixel_size_A"]],
            "rlnMicrographPixelSize": [optics["pixel_size_A"]],
            "rlnVoltage": [optics["voltage_kV"]],
            "rlnSphericalAberration": [optics["spherical_aberration_mm"]],
            "rlnAmplitudeContrast": [optics["amplitude_contrast"]],
        }
    )
    mics = pd.DataFrame(
        {
            "rlnMicrographName": [_star_name(folder / p) for p in table["path"]],
            "rlnOpticsGroup": 1,
            "rlnDefocusU": table["defocus_u_A"],
            "rlnDefocusV": table["defocus_v_A"],
            "rlnDefocusAngle": table["astigmatism_angle_deg"],
        }
    )
    write_star(folder / "micrographs.star", mics, optics_block)


def make_dataset(
    folder: str | os.PathLike[str],
    n: int = 8,
    *,
    shape: tuple[int, int] = (1024, 1024),
    pixel_size_A: float = 1.0,
    tilt_angles_deg: Sequence[float] | None = None,
    seed: int = 0,
    defocus_range_A: tuple[float, float] = (8000.0, 25000.0),
    max_astigmatism_A: float = 1500.0,
    dose_range_e_per_A2: tuple[float, float] = (15.0, 40.0),
    voltage_kV: float = 300.0,
    spherical_aberration_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    hot_pixels: int = 0,
    dead_pixels: int = 0,
    gradient: float = 0.0,
    phase_std: float = 0.05,
    dtype: str = "float32",
    make_star: bool = False,
) -> pd.DataFrame:
    """Write ``n`` synthetic micrographs ``mic_000.mrc``... and their ``truth.csv``.

    Per micrograph, defocus, astigmatism (magnitude up to ``max_astigmatism_A``, random
    angle), dose and the tilt axis are drawn uniformly; tilts are ``tilt_angles_deg`` or, by
    default, alternately 0 and uniform in [10, 50]°.

    Parameters
    ----------
    folder : path-like
        Output folder (created).
    n : int
        Number of micrographs, >= 1.
    shape, pixel_size_A, voltage_kV, spherical_aberration_mm, amplitude_contrast : optional
        As in :func:`synthesize_micrograph`, shared by the set (one optics group).
    tilt_angles_deg : sequence of float, optional
        One tilt per micrograph.
    seed : int
        Seed of the whole set; micrograph ``i`` uses an independent child seed.
    defocus_range_A, dose_range_e_per_A2 : tuple of float
        Uniform ranges of the mean defocus and the dose.
    max_astigmatism_A : float
        Upper bound of the uniform astigmatism magnitude ``Δf_U - Δf_V``.
    hot_pixels, dead_pixels, gradient, phase_std, dtype : optional
        As in :func:`synthesize_micrograph`, for every micrograph.
    make_star : bool
        Also write a RELION ``micrographs.star`` (optics + micrographs with their true defocus).

    Returns
    -------
    pandas.DataFrame
        ``truth.csv``: one row per micrograph, ``micrograph``, ``path`` (relative to
        ``folder``) and the truth of :func:`synthesize_micrograph`, defect positions as JSON.

    Examples
    --------
    >>> from daskmic.datasets import make_dataset
    >>> truth = make_dataset("raw", n=2, shape=(256, 256), tilt_angles_deg=[0.0, 30.0])
    >>> list(truth["micrograph"]), list(truth["tilt_angle_deg"])
    (['mic_000', 'mic_001'], [0.0, 30.0])
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tilts = _tilts(rng, n, tilt_angles_deg)
    children = np.random.SeedSequence(seed).spawn(n)
    rows = []
    for i, tilt in enumerate(tilts):
        image, truth = synthesize_micrograph(
            shape,
            pixel_size_A=pixel_size_A,
            defocus_A=float(rng.uniform(*defocus_range_A)),
            astigmatism_A=float(rng.uniform(0.0, max_astigmatism_A)),
            astigmatism_angle_deg=float(rng.uniform(0.0, 180.0)),
            tilt_angle_deg=tilt,
            tilt_axis_deg=float(rng.uniform(0.0, 180.0)),
            dose_e_per_A2=float(rng.uniform(*dose_range_e_per_A2)),
            voltage_kV=voltage_kV,
            spherical_aberration_mm=spherical_aberration_mm,
            amplitude_contrast=amplitude_contrast,
            hot_pixels=hot_pixels,
            dead_pixels=dead_pixels,
            gradient=gradient,
            phase_std=phase_std,
            dtype=dtype,
            seed=int(children[i].generate_state(1)[0]),
        )
        name = f"mic_{i:03d}"
        write_mrc(folder / f"{name}.mrc", image, pixel_size_A)
        for key in ("shape", "hot_pixels_yx", "dead_pixels_yx"):
            truth[key] = json.dumps(truth[key])
        rows.append({"micrograph": name, "path": f"{name}.mrc", **truth})
    table = pd.DataFrame(rows)
    with atomic_path(folder / "truth.csv") as tmp:
        table.to_csv(tmp, index=False)
    if make_star:
        optics = {
            "pixel_size_A": pixel_size_A,
            "voltage_kV": voltage_kV,
            "spherical_aberration_mm": spherical_aberration_mm,
            "amplitude_contrast": amplitude_contrast,
        }
        _write_star(folder, table, optics)
    return table
