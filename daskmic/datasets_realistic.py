"""Synthetic micrographs with what real exposures carry: carbon, contamination, drift, gain.

Built on :func:`daskmic.datasets.synthesize_micrograph`'s imaging (weak-phase specimen, CTF
per local defocus, B-factor envelope, Poisson noise; same tilt conventions). Each feature has
a physical model and leaves its truth in the returned dict:

Carbon support film (``carbon_fraction`` > 0)
    Holey carbon: the frame sees a hole's edge, a circle of radius ``hole_radius_A``
    (carbon outside it), placed so that carbon covers ``carbon_fraction`` of the frame. The
    film is its own specimen: a stronger phase object (``carbon_phase_std``), imaged with its
    own amplitude contrast (``carbon_amplitude_contrast``, amorphous carbon scatters more
    amplitude than vitreous ice), at a height ``carbon_offset_A`` above the ice's mid-plane
    (added to the underfocus there; the film is tilted with the grid, so it shares the
    gradient), and it passes a fraction ``carbon_transmission`` of the beam (elastic and
    inelastic losses of a film of another thickness than the ice). Truth:
    ``hole_center_yx_px``, ``hole_radius_px``, the actual ``carbon_area_fraction``.
Ice contamination (``contamination`` blobs)
    Crystalline-ice or ethane particles lying on the ice: thick, they pass only a fraction
    ``0.15–0.6`` of the beam (an amplitude object, soft-edged disc of radius
    ``150–700 Å``) and show no Thon rings of the specimen plane. Truth:
    ``contamination_yx_r_px`` (centre row, col and radius per blob) and
    ``contamination_transmission``.
Directional drift (``drift_A``)
    Uncorrected stage drift of length ``L`` along ``drift_angle_deg`` during the exposure:
    the image is convolved with a line of length ``L``, whose transfer is
    ``sinc(k·u L)`` (``u`` the unit drift direction): Thon rings fade along ``u`` only.
Gain stripes (``gain_stripes``)
    A gain reference that no longer matches the detector: every pixel column (or row, by
    ``gain_stripe_axis``) is off by a factor ``1 + ε_c``, with ``ε_c`` a per-column normal
    deviate of std ``gain_stripes`` plus a square wave of the same amplitude every 1/16 of
    the frame (readout sectors); applied to the recorded counts.
Illumination (``gradient``, ``vignetting``)
    The linear gradient of :func:`~daskmic.datasets.synthesize_micrograph` times a radial
    fall-off ``1 - vignetting · (r / r_corner)²``.
Frames and optics
    Any ``shape`` (K3: 4092 × 5760 and its 2048 × 2883 binned view), low defocus
    (``defocus_A`` down to 5000 Å) with strong astigmatism, doses of 10–20 e/Å².

The specimen plane (the truth an estimator must find) is the ice's: ``defocus_A``,
``tilt_angle_deg``, ``tilt_axis_deg`` as in :func:`~daskmic.datasets.synthesize_micrograph`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.fft

from daskmic import datasets as base
from daskmic.tilt.ctf import Optics

_CONTAMINATION_RADIUS_A = (150.0, 700.0)
_CONTAMINATION_TRANSMISSION = (0.15, 0.6)
_STRIPE_SECTORS = 16


def _coordinates(shape: tuple[int, int], margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices (float32) of a frame grown by ``margin`` px on each side."""
    ny, nx = shape
    rows = np.arange(-margin, ny + margin, dtype=np.float32)[:, None]
    cols = np.arange(-margin, nx + margin, dtype=np.float32)[None, :]
    return rows, cols


def _hole(
    rng: np.random.Generator, shape: tuple[int, int], fraction: float, radius_px: float
) -> tuple[tuple[float, float], float]:
    """Centre of a hole of ``radius_px`` whose outside covers ``fraction`` of the frame."""
    ny, nx = shape
    angle = rng.uniform(0.0, 2 * math.pi)
    direction = np.array([math.sin(angle), math.cos(angle)])
    centre = np.array([(ny - 1) / 2, (nx - 1) / 2])
    rows, cols = np.meshgrid(np.linspace(0, ny - 1, 96), np.linspace(0, nx - 1, 96), indexing="ij")

    def carbon_fraction(distance: float) -> float:
        cy, cx = centre + distance * direction
        return float(np.mean(np.hypot(rows - cy, cols - cx) > radius_px))

    lo, hi = -radius_px - math.hypot(ny, nx), radius_px + math.hypot(ny, nx)
    for _ in range(50):  # carbon fraction grows with the distance of the hole centre
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if carbon_fraction(mid) < fraction else (lo, mid)
    cy, cx = centre + 0.5 * (lo + hi) * direction
    return (float(cy), float(cx)), float(radius_px)


def _soft_disc(rows, cols, cy: float, cx: float, radius: float, edge: float) -> np.ndarray:
    """1 inside a disc, 0 outside, with a raised-cosine edge ``edge`` px wide (float32)."""
    r = np.hypot(rows - np.float32(cy), cols - np.float32(cx))
    t = np.clip((r - (radius - edge / 2)) / edge, 0.0, 1.0)
    return (0.5 + 0.5 * np.cos(np.pi * t)).astype(np.float32)


def _image(phi, transfer_args, optics, plane, pixel_size_A, tilted, shape) -> np.ndarray:
    """Image a specimen through the CTF at a plane (tilted) or one defocus (periodic)."""
    if tilted:
        size = base._STEP_PX + base._TAPER_PX + 2 * base._MARGIN_PX
        transfer = base._Transfer((size, size), pixel_size_A, optics, *transfer_args)
        return base._image_tilted(phi, transfer, plane, pixel_size_A)
    transfer = base._Transfer(shape, pixel_size_A, optics, *transfer_args)
    return base._image_uniform(phi, transfer, plane[0])


def _drift_blur(image: np.ndarray, length_px: float, angle_deg: float) -> np.ndarray:
    """Convolve with a line of ``length_px`` along ``angle_deg`` (from +x, counter-clockwise)."""
    ky = np.fft.fftfreq(image.shape[0])[:, None].astype(np.float32)
    kx = np.fft.rfftfreq(image.shape[1])[None, :].astype(np.float32)
    a = math.radians(angle_deg)
    along = np.float32(length_px) * (kx * np.float32(math.cos(a)) + ky * np.float32(math.sin(a)))
    spectrum = scipy.fft.rfft2(image)
    spectrum *= np.sinc(along)
    return scipy.fft.irfft2(spectrum, s=image.shape).astype(np.float32)


def _stripes(rng: np.random.Generator, length: int, amplitude: float) -> np.ndarray:
    """Per-line gain error: normal deviates plus a square wave over readout sectors."""
    sector = (np.arange(length) * _STRIPE_SECTORS // length) % 2
    return (1.0 + amplitude * (rng.standard_normal(length) + (2 * sector - 1))).astype(np.float32)


def synthesize_realistic(
    shape: tuple[int, int] = (2048, 2883),
    *,
    pixel_size_A: float = 1.0,
    defocus_A: float = 15000.0,
    astigmatism_A: float = 0.0,
    astigmatism_angle_deg: float = 0.0,
    tilt_angle_deg: float = 0.0,
    tilt_axis_deg: float = 0.0,
    dose_e_per_A2: float = 15.0,
    amplitude_contrast: float = 0.07,
    b_factor_A2: float = 80.0,
    phase_std: float = 0.05,
    carbon_fraction: float = 0.0,
    hole_radius_A: float = 6000.0,
    carbon_amplitude_contrast: float = 0.2,
    carbon_phase_std: float = 0.1,
    carbon_offset_A: float = 200.0,
    carbon_transmission: float = 0.9,
    contamination: int = 0,
    drift_A: float = 0.0,
    drift_angle_deg: float = 0.0,
    gain_stripes: float = 0.0,
    gain_stripe_axis: str = "x",
    gradient: float = 0.0,
    vignetting: float = 0.0,
    seed: int | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Synthesize a micrograph with the features of real exposures (see the module notes).

    Parameters
    ----------
    shape, pixel_size_A, defocus_A, astigmatism_A, astigmatism_angle_deg : optional
        As in :func:`daskmic.datasets.synthesize_micrograph` (300 kV, 2.7 mm).
    tilt_angle_deg, tilt_axis_deg, dose_e_per_A2, amplitude_contrast : optional
        The specimen (ice) plane, dose and the ice's amplitude contrast.
    b_factor_A2, phase_std : float
        Envelope and the ice specimen's phase noise (per Å²).
    carbon_fraction : float
        Fraction of the frame covered by carbon film, in [0, 0.9]; 0 for none.
    hole_radius_A, carbon_amplitude_contrast, carbon_phase_std : float
        The hole's radius and the film's amplitude contrast and phase noise.
    carbon_offset_A, carbon_transmission : float
        Extra underfocus of the film over the ice plane (Å) and its transmission in (0, 1].
    contamination : int
        Number of contamination blobs (>= 0).
    drift_A, drift_angle_deg : float
        Length (Å, >= 0) and direction of the drift blur.
    gain_stripes : float
        Relative std of the per-line gain error (>= 0).
    gain_stripe_axis : {"x", "y"}
        ``"x"``: one factor per column (stripes along y); ``"y"``: per row.
    gradient, vignetting : float
        Linear illumination gradient (as in ``synthesize_micrograph``) and radial fall-off
        at the corners, both in [0, 1).
    seed : int or None
        Seed; equal seeds give equal micrographs.

    Returns
    -------
    image : numpy.ndarray
        Float32 counts of shape ``shape``.
    truth : dict
        The parameters and the truth of each feature (module notes), with the specimen plane
        ``defocus_plane_c0_A``, ``defocus_plane_gx``, ``defocus_plane_gy``,
        ``tilt_direction_deg``.
    """
    ny, nx = (int(n) for n in shape)
    base._check_range("carbon_fraction", carbon_fraction, 0.0, 0.9)
    base._check_range("carbon_transmission", carbon_transmission, 1e-3, 1.0)
    base._check_range("vignetting", vignetting, 0.0, 0.99)
    if gain_stripe_axis not in ("x", "y"):
        raise ValueError(f"gain_stripe_axis must be 'x' or 'y', got {gain_stripe_axis!r}")
    rng = np.random.default_rng(seed)
    c0, gx, gy, direction = base.defocus_plane(defocus_A, tilt_angle_deg, tilt_axis_deg)
    tilted = tilt_angle_deg != 0.0
    margin = base._MARGIN_PX if tilted else 0
    grown = (ny + 2 * margin, nx + 2 * margin)
    rows, cols = _coordinates((ny, nx), margin)
    transfer_args = (astigmatism_A, astigmatism_angle_deg, b_factor_A2)
    image_args = (pixel_size_A, tilted, grown)
    phi = base._render_specimen(rng, grown, pixel_size_A, phase_std)
    truth: dict[str, Any] = {"carbon_area_fraction": 0.0}
    if carbon_fraction > 0:
        centre, radius = _hole(rng, (ny, nx), carbon_fraction, hole_radius_A / pixel_size_A)
        carbon = 1.0 - _soft_disc(rows, cols, *centre, radius, edge=4.0)
        phi *= 1.0 - carbon
        film = base._render_specimen(rng, grown, pixel_size_A, carbon_phase_std) * carbon
        film_optics = Optics(300.0, 2.7, carbon_amplitude_contrast)
        film_plane = (c0 + carbon_offset_A, gx, gy)
        contrast = _image(film, transfer_args, film_optics, film_plane, *image_args)
        del film
        inside = carbon[margin : margin + ny, margin : margin + nx]
        transmission = 1.0 - np.float32(1.0 - carbon_transmission) * inside
        truth.update(
            hole_center_yx_px=list(centre),
            hole_radius_px=radius,
            carbon_area_fraction=float(np.mean(inside > 0.5)),
        )
    else:
        contrast, transmission = np.zeros((ny, nx), np.float32), np.ones((ny, nx), np.float32)
    contrast = contrast + _image(phi, transfer_args, Optics(300.0, 2.7, amplitude_contrast),
                                 (c0, gx, gy), *image_args)  # fmt: skip
    del phi
    if drift_A > 0:
        contrast = _drift_blur(contrast, drift_A / pixel_size_A, drift_angle_deg)
    blobs, blob_transmission = [], []
    rows, cols = _coordinates((ny, nx), 0)
    for _ in range(int(contamination)):
        r_px = rng.uniform(*_CONTAMINATION_RADIUS_A) / pixel_size_A
        cy, cx = rng.uniform(0, ny), rng.uniform(0, nx)
        t = rng.uniform(*_CONTAMINATION_TRANSMISSION)
        disc = _soft_disc(rows, cols, cy, cx, r_px, 0.3 * r_px)
        transmission *= 1.0 - (1.0 - np.float32(t)) * disc
        blobs.append([float(cy), float(cx), float(r_px)])
        blob_transmission.append(float(t))
    dose_px = dose_e_per_A2 * pixel_size_A**2
    gamma = float(rng.uniform(0.0, 360.0))
    illumination = base.beam_intensity((ny, nx), dose_px, gradient, gamma, vignetting)
    expected = (1.0 + contrast) * illumination * transmission
    counts = rng.poisson(np.clip(expected, 0.0, None)).astype(np.float32)
    if gain_stripes > 0:
        if gain_stripe_axis == "x":
            counts *= _stripes(rng, nx, gain_stripes)[None, :]
        else:
            counts *= _stripes(rng, ny, gain_stripes)[:, None]
    truth.update(
        shape=[ny, nx], pixel_size_A=float(pixel_size_A), defocus_A=float(defocus_A),
        astigmatism_A=float(astigmatism_A),
        astigmatism_angle_deg=float(astigmatism_angle_deg % 180.0),
        tilt_angle_deg=float(abs(tilt_angle_deg)), tilt_axis_deg=float(tilt_axis_deg % 180.0),
        tilt_direction_deg=direction, defocus_plane_c0_A=c0, defocus_plane_gx=gx,
        defocus_plane_gy=gy, dose_e_per_A2=float(dose_e_per_A2),
        amplitude_contrast=float(amplitude_contrast), b_factor_A2=float(b_factor_A2),
        phase_std=float(phase_std), carbon_fraction=float(carbon_fraction),
        carbon_amplitude_contrast=float(carbon_amplitude_contrast),
        carbon_phase_std=float(carbon_phase_std), carbon_offset_A=float(carbon_offset_A),
        carbon_transmission=float(carbon_transmission), contamination_yx_r_px=blobs,
        contamination_transmission=blob_transmission, drift_A=float(drift_A),
        drift_angle_deg=float(drift_angle_deg % 180.0), gain_stripes=float(gain_stripes),
        gain_stripe_axis=gain_stripe_axis, gradient=float(gradient),
        gradient_angle_deg=gamma, vignetting=float(vignetting), seed=seed,
    )  # fmt: skip
    return counts, truth


FEATURES = ("carbon", "contamination", "drift", "stripes", "illumination", "low_defocus")
"""Feature kinds that :func:`draw_realistic` can put in a frame."""


def draw_realistic(
    rng: np.random.Generator,
    features: tuple[str, ...],
    *,
    tilted: bool,
    pixel_size_range_A: tuple[float, float] = (0.8, 1.2),
) -> dict[str, Any]:
    """Parameters of :func:`synthesize_realistic` for a frame showing ``features``.

    Common ranges: pixel size in ``pixel_size_range_A`` (a K3 frame of 4092 × 5760 at
    0.8–1.2 Å/px; its 2× binned view, 2048 × 2883, sees the same field at 1.6–2.4 Å/px),
    dose 10–20 e/Å², ice phase noise 0.08–0.15 rad per Å² (the film 1.5–2.5 × more),
    defocus 0.8–2.5 µm (0.5–0.9 µm with ``low_defocus``, astigmatism then 500–2000 Å
    instead of 0–800 Å), tilt 0 or 5–45°, random axis. Feature ranges: carbon over
    15–40 % of the frame, amplitude contrast 0.15–0.25, height offset −300…+300 Å,
    transmission 0.8–0.95; 1–5 contamination blobs; drift 5–20 Å; gain stripes of 1–3 %;
    gradient 0.05–0.3 with vignetting 0.02–0.1.
    """
    unknown = set(features) - set(FEATURES)
    if unknown:
        raise ValueError(f"unknown features {sorted(unknown)}; choose from {FEATURES}")
    low = "low_defocus" in features
    params: dict[str, Any] = {
        "pixel_size_A": float(rng.uniform(*pixel_size_range_A)),
        "dose_e_per_A2": float(rng.uniform(10.0, 20.0)),
        "defocus_A": float(rng.uniform(5000.0, 9000.0) if low else rng.uniform(8000.0, 25000.0)),
        "astigmatism_A": float(rng.uniform(500.0, 2000.0) if low else rng.uniform(0.0, 800.0)),
        "astigmatism_angle_deg": float(rng.uniform(0.0, 180.0)),
        "tilt_angle_deg": float(rng.uniform(5.0, 45.0)) if tilted else 0.0,
        "tilt_axis_deg": float(rng.uniform(0.0, 180.0)),
        "phase_std": float(rng.uniform(0.08, 0.15)),
    }
    if "carbon" in features:
        params.update(
            carbon_fraction=float(rng.uniform(0.15, 0.4)),
            carbon_amplitude_contrast=float(rng.uniform(0.15, 0.25)),
            carbon_offset_A=float(rng.uniform(-300.0, 300.0)),
            carbon_phase_std=float(rng.uniform(1.5, 2.5)) * params["phase_std"],
            carbon_transmission=float(rng.uniform(0.8, 0.95)),
        )
    if "contamination" in features:
        params["contamination"] = int(rng.integers(1, 6))
    if "drift" in features:
        params["drift_A"] = float(rng.uniform(5.0, 20.0))
        params["drift_angle_deg"] = float(rng.uniform(0.0, 180.0))
    if "stripes" in features:
        params["gain_stripes"] = float(rng.uniform(0.01, 0.03))
        params["gain_stripe_axis"] = str(rng.choice(["x", "y"]))
    if "illumination" in features:
        params["gradient"] = float(rng.uniform(0.05, 0.3))
        params["vignetting"] = float(rng.uniform(0.02, 0.1))
    return params
