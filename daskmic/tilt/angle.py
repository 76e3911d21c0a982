"""Specimen tilt angle and axis of one micrograph, from the local defocus of its Thon rings.

Conventions
-----------
Pixel ``(row, col)`` sits at ``x = (col - (nx-1)/2)·p``, ``y = (row - (ny-1)/2)·p`` (Å, row 0
shown at the bottom: MRC/IMOD/RELION display). A tilted flat specimen has the defocus plane
``Δf(x, y) = Δf₀ + g_x x + g_y y`` (underfocus positive), and

- ``tilt_angle_deg`` ``θ = atan |g|`` ≥ 0;
- ``tilt_direction_deg`` ``β = atan2(g_y, g_x)`` in [0, 360): the direction, counter-clockwise
  from +x, towards which the underfocus increases (the signed form);
- ``tilt_axis_deg`` ``= (β - 90°) mod 180`` in [0, 180): the direction of the lines of constant
  defocus.

CTFFIND5 reports a signed tilt angle and an axis angle measured *clockwise* from x (its paper,
Elferich et al.); with its image y axis pointing down the two agree once the axis is mirrored,
``tilt_axis_deg = (-axis_ctffind5) mod 180`` and ``tilt_angle_deg = |θ_ctffind5|``, the sign of
``θ_ctffind5`` choosing between ``β`` and ``β + 180°``. Check the sign on a micrograph of known
geometry before relying on it; daskmic's own convention is the one above.

Method
------
1. **Spectra.** Half-overlapping ``T × T`` tiles (``T`` = 512 px for micrographs of ≥ 1536 px,
   else 256 px), mean-subtracted and Hann-tapered; each periodogram is averaged in 24 angular
   sectors × bins of ``s = k²`` (1/Å², where the Thon rings are periodic with period
   ``1/(λΔf)`` and every bin holds the same number of pixels), up to ``resolution_A``
   (``daskmic.tilt.angle_spectra``). The pixels within one frequency sample of either axis
   are left out: a gain reference's per-row (per-column) errors put a line there, the same
   in every tile of a row of tiles, whose random profile reads as rings in one sector and
   moves that row's defocus readings together (a flat frame read 0.63°, 0.28° without).
2. **Ring correlation.** A profile ``P(s)`` is flattened to ``P̃ = P / box(P) - 1`` (``box``
   one ring period wide; in step 6 one of the tile's own, at its predicted defocus: the
   mean defocus's let the rings of tiles far from it leak into the box, which compressed
   the readings of a 35° tilt at 0.56 µm by 1.5 %, 0.3° low) and compared with
   ``sin² χ(s, Δf)``,
   ``χ = πλΔf s - (π/2) C_s λ³ s² + asin(w)``, on a 10 Å grid of ``Δf``, by a *weighted*
   Pearson correlation. The weights are a band — from the first CTF maximum to the highest
   ``s`` whose ring period still spans 6 tile frequency samples — with raised-cosine edges
   (hard edges let rings enter and leave the fit as ``Δf`` changes, which pulls every tile
   towards one defocus and flattens the plane). For the tiles (step 6) the model is the
   matched filter ``E(s) (sin² χ - ½)``, ``E`` the ring amplitude measured on the aligned
   mean of all tiles (step 5; smoothed over 4 ring periods, times drift's fade lobes).
3. **Global defocus, several hypotheses.** The mean profile of all tiles gives, per band of
   ×1.5 of ``defocus_range_A``, its best defocus (``angle_steps.defocus_candidates``). The
   best band is the mean defocus unless the field spans a large defocus range: a 40° tilt
   at 0.55 µm puts the tiles between ~0.27 and ~0.85 µm, the mean profile mixes ring periods
   a factor 3 apart, and a band holding none of the tiles may match it better. So steps 4–6
   start from the best band; a start is judged by its **support**, per tile of the
   specimen's regions its peak z-score (step 8) if it is an inlier of the final plane, else
   0, and its score, the mean support. Tiles whose rings are visible have z ≳ 2; when the
   score falls below 2 the other bands are tried too (each from its own start: it costs
   0.1–0.25 s of CPU per band at 4092 × 5760), and the one of highest score wins — among
   the planes whose inliers do not scatter about them as readings of noise would (step 7's
   window test); such a plane wins only when every start's does, and is no rival to one
   that holds its tiles. (Noise readings fill the ± 800 Å window, and with 40–300 tiles
   some clear ``z`` ≥ 1.5 by chance: an untilted 2048² frame at 2 µm whose first start
   scored 1.99 lost to a start at 0.54 µm scoring 2.14 with its readings scattered by
   441 Å, and read 29.5° at 0.77 µm.) A start whose
   fitted plane leaves its defocus grid (``start ± half-diagonal · tan(search_max_tilt)``)
   could not represent it and scores 0. When the first start fails the signal check of
   step 8, another start's answer is taken only if its score reaches 2 (clear rings; on
   pure noise the best of 7 starts scored 1.4: more starts find more noise that fits a
   plane), else the frame is ``low_signal``. Another start is a **rival** when the tiles do not
   prefer the winner clearly: the mean of the tile-wise support differences is below 2
   standard errors, ``2 · sd · √(4/n)`` (half-overlapping tiles share their pixels with
   about 4 others). The rivals' largest angle and axis differences from the winner are
   added in quadrature to ``tilt_angle_err_deg`` and ``tilt_axis_err_deg``: a frame whose
   answer depends on where the search starts reports a ± as large as that dependence (and
   the message says so). **The untilted start.** When the first start scored below 2 and
   the winner's plane lies within ``W`` (800 Å, the tiles' search window) of the same plane
   without its gradient at every tile, steps 5–6 run once more from that untilted plane
   (the winner's mean defocus and film offsets), a start like the others. Tiles whose
   readings are noise fill the window about their start: the plane then follows its first
   plane (step 4), which was fitted to noise as well, and the bootstrap (step 7), which
   resamples those readings, cannot see it. An untilted held-out 2048 × 2883 frame (17 Å of
   drift at 0.69 µm, 10 e/Å²; seed 1796505245, frame 72) read 4.42° ± 1.31° from its own
   start and 0.00° from the untilted one: with that rival it reads 4.42° ± 4.00°. A frame
   whose tiles show rings reads the same from both (its tiles' peaks lie inside both
   windows), so the rival costs it nothing but the CPU of one more start.
4. **Regions and first plane.** Tiles are told apart by their brightness over a smooth
   illumination (:mod:`~daskmic.tilt.angle_regions`): a support film (carbon) passes
   another fraction of the beam than the ice, so its tiles form a second region whose
   defocus gets its own offset in every plane fit (its rings sit elsewhere: another height,
   another amplitude contrast) while sharing the gradient; contamination, film-edge, empty
   and saturated tiles are left out. A tile astride the film's edge whose brightness still
   names one region is left out when a finer map (blocks of a quarter tile) says that more
   than a fifth of its ring power is the other region's (the film's rings are stronger:
   a quarter of film can hold half a tile's rings). Each tile's correlation curve summed with its 8
   neighbours; the argmax per tile; a robust plane (L1 start, then Tukey biweight IRLS with
   scale 1.4826·MAD) with the region offsets.
   **Which tiles are the film?** The brightness can nearly tie between two labellings
   (:mod:`~daskmic.tilt.angle_regions`, note 5): a faint film whose edge crosses the frame
   with contamination on the ice. The final readings are then refitted on the tiles that
   both labellings keep, once with each; the rival counts unless the readings clearly
   prefer one: ``s_r² / s_c²`` (robust scales) outside the two-sided 95 % range of an F
   distribution with ``n/4`` degrees of freedom each (``n`` inliers; ~4 tiles share an
   area). Its angle and axis differences then enter the ± as a rival start's do (step 3).
   The readings seldom decide: an untilted frame (seed 1796488195, frame 60) read 2.40°
   with the wrong labels and 0.83° with the right ones, the wrong fitting *better*
   (scales 8.7 and 13.7 Å: the gradient absorbs the film's offset); its ± went from
   0.28° to 1.60°. It is a partial cover: on 20 noise draws of that frame's brightness the
   rival nearly ties on 9 and covers 8; on the rest the brightness prefers the wrong
   labels outright and the ± stays short.
5. **Astigmatism and drift.** Every tile's sector profiles are moved onto one common
   defocus (reading them at ``s'`` with ``χ(s', Δf_tile) = χ(s, Δf_ref)``, ``Δf_ref`` the
   harmonic mean) and averaged; each sector's offset from ``Δf_ref`` is fitted by
   ``c + A cos 2α + B sin 2α``: ``|ΔU - ΔV| = 2√(A² + B²)``, angle of U ``= ½ atan2(B, A)``.
   Drift of length ``L`` along ``θ`` fades the rings of sector ``α`` by
   ``f_α(k) = sinc²(k L cos(α - θ))``, in lobes that at low defocus are about a ring period
   wide; ``(L, θ)`` are found by a matched-filter search over the averaged sectors
   (:mod:`~daskmic.tilt.angle_drift`; none unless it explains the rings clearly better),
   and the sector offsets are measured again against templates that carry the fade.
6. **Local defocus.** Each tile's sectors are moved from ``Δf_tile + a(α)`` onto ``Δf_tile``
   and averaged with the weight ``f_α(s)`` of each sector and bin (a matched filter:
   drift's faded sectors count where they still have rings), as a weighted *mean* of the
   sectors that reach each ``s`` (a sector with sparser rings runs off the grid first; a
   plain sum steps down there, at an ``s`` that moves with the tile's defocus, and that
   step had the ring correlation read defocus differences 1.2 × too large at 0.57 µm with
   0.16 µm astigmatism). Its correlation curve, with the template ``E(s) (sin² χ - ½)``
   (``E`` the rings' envelope in the combined profile, fade lobes included: only such a
   template peaks at the true defocus when the rings fade within a ring period), is
   maximised within ± 800 Å of the plane, refined by a parabola; a robust plane is
   refitted on the tiles with rings (z ≥ 1.5, step 8). Steps 5–6 run twice.
7. **Angle and uncertainty.** ``Σ``, the covariance of ``(g_x, g_y)``, comes from a block
   bootstrap over the tiles (:mod:`~daskmic.tilt.angle_error`; the least-squares covariance
   of the inlier residuals when that is larger). ``|g|`` is de-biased:
   ``|ĝ|² - tr Σ'`` floored at 0, ``Σ' = Σ + f² I`` with ``f`` the 0.15° floor below in
   gradient units (the same noise the ± counts). For ``ĝ = g + e``, ``e ~ N(0, Σ')``,
   ``E|ĝ|² = |g|² + tr Σ'``: the square is unbiased, its root biased only at second order
   (``-u·Σ'u / 2|g|``, ``u = g/|g|``); the plain ``|ĝ|`` is Rice-distributed and reads a
   flat specimen at ``√(π/2) σ`` on average. A flat specimen so reads 0 with probability
   ``1 - e⁻¹`` (``Σ' = σ² I``), else ``σ √(2E - 2)``, ``E`` exponential: above ``3σ`` with
   probability ``e^-5.5 = 0.4 %`` (:func:`~daskmic.tilt.angle_error.debiased_magnitude`).
   ``tilt_angle_err_deg`` is ``σ_|g| / (1 + |g|²)`` in degrees, with a floor of 0.15° added
   in quadrature: the estimator's own model error (CTF model, ring alignment), which no
   resampling of the tiles can see, measured on simulated frames
   (``benchmarks/angle_accuracy.py --hard``, seed 11: errors of 0.1–0.3° on frames whose
   bootstrap ± was below 0.1°). ``tilt_axis_err_deg`` is the circular spread of the
   bootstrap replicates' axes with the same model error across the gradient added in
   quadrature, ``atan(f / |ĝ|)``: without it the axes of frames with a bootstrap axis ±
   of 0.3–0.7° were off by 1.3–2.4° (seed 1796470589). ``f`` is the floor in gradient
   units, ``0.15° · (1 + |ĝ|²)`` (``dθ = d|g| / (1 + |g|²)``).
   **A plane?** A reading bias that grows with the defocus bends the readings off a
   plane, and neither the bootstrap nor the floor sees it (a 40° tilt at 0.59 µm, whose
   low corner sits at 0.35 µm with few rings in the band, read 1.57° low with a ± of
   0.48°). The inliers are split at the median of ``x·u`` (``u = ĝ/|ĝ|``), the two halves
   refitted, and the difference of their slopes along ``u``, ``Δ``, compared with its
   spread over the same bootstrap draws, ``s_Δ``
   (:func:`~daskmic.tilt.angle_error.half_plane_excess`). On a plane ``z = Δ/s_Δ`` is about
   N(0, 1); when ``z² > 9`` (χ² with 1 degree of freedom: 0.27 % of planes), the de-biased
   half difference ``√(Δ² - s_Δ²)/2`` is added to ``σ_|g|`` in quadrature (that frame,
   ``z = 3.5``: ± 2.07°, ``"uncertain"``). It is a scale, not an exact correction: a bend
   that is even about the centre leaves the full slope alone and one at an end (as there)
   moves it by about half the halves' difference. ``s_Δ`` is several times ``σ_|g|``
   (half the tiles, half the lever arm), so a 5 % gate widened a good frame's ± to 2.1°
   (the test suite's drift frame: ``z = -2.0``, error 0.3°).
   **No tilt?** Under ``g = 0``, ``T = ĝᵀ Σ'⁻¹ ĝ`` is χ² with 2 degrees of freedom, whose
   survival function is ``p = exp(-T/2)``
   (:func:`~daskmic.tilt.angle_error.untilted_p_value`). With ``p ≥ 1 %`` the frame is
   consistent with an untilted specimen and the flat model is kept: the angle reads 0,
   the plane's de-biased angle ``m`` is added to its ± in quadrature (the answer set aside,
   counted as a rival start's is), and the message says that the axis has no meaning
   (:func:`~daskmic.tilt.angle_error.reported_magnitude`). A tilt is reported when the
   data ask for one, as an astigmatism or a drift is. The de-biased length alone read
   flat frames at ``σ √(2E - 2)`` above 0 in 37 % of them: above 0.5° in 10 of the 112
   untilted ``ok`` frames of held-out rounds 7–10 (``σ`` 0.2–0.9°), all with
   ``p ≥ 1 %``, while none of those rounds' 360 tilted frames (5–45°) had ``p ≥ 1 %``.
   A flat frame now reads above 0 only when the test rejects, in 1 % of them. The cost
   falls on tilts of about ``3σ`` (``T ≈ 9``): these read 0 about half of the time, with
   a ± that covers them within 3 × (within 1 × only about 40 % of the time).
   **Status.** ``"uncertain"`` (the numbers are kept, with a message saying why) when the
   frame cannot support a confident answer, each test on the frame's own data:
   the angle's ± is above 1° (twice the 0.5° the estimator is specified to: such a frame,
   tilted or not, cannot tell a flat specimen from one tilted by 2–3°); the specimen is
   tilted (``p < 1 %``) and the axis ± is
   above 1.5° (a 2σ interval wider than ± 3°); or the tiles' readings scatter about the
   plane nearly as noise would: their rms off the plane exceeds 3/4 of ``W/√3``, the rms
   of readings spread uniformly over the ``± W`` (800 Å) window they are searched in.
   Drift can wipe the rings out at the tiles' resolution; every tile is then read at a
   random place in its window (394 and 483 Å on two K3 frames with 7–10 Å of drift at
   2 µm, one of them fitted in the wrong defocus band with its axis 20° off), the plane
   is only its start again, and the bootstrap, which resamples those readings, cannot
   see how far off that start was. Every plane within ``W`` of the start at the tiles
   then fits as well, so the ± of the angle and of the axis gain ``W / (h √3)`` in
   quadrature (uniform gradient errors up to ``W/h``, ``h`` the shorter half-extent of the
   used tiles). That is a bound, not the variance of a zero-mean error, so it does not
   enter the de-biasing or the χ² test (with it, de-biasing took 27.7° to 13.8° and
   7.2° to 0° on the two frames above, true 26.9° and 9.9°). The ``ok`` frames scattered by
   15–95 Å at 2048 × 2883 and 28–330 Å at 4092 × 5760 (drift raises it; seeds
   1796470589/90).
8. **Signal check.** A tile's z-score is its peak correlation over the standard deviation of
   its whole curve (noise alone gives ~1, visible rings ≳ 2). A tile is usable when it is an
   inlier of the plane with z ≥ 1.5 (``patch_notes`` says how many were used and why the
   others were not). A median z below 1.4, or fewer than max(6, 30 %) usable
   tiles, gives ``status="low_signal"``, NaN angles and a message instead of a number.

Cost: the tile spectra dominate a frame of one start (294 tiles of 512² for a 4092 × 5760
frame, ~0.35 s of its ~0.65 s of CPU); with all starts (step 3) it takes 1.4–1.7 s.
Everything after the spectra works on ``(tiles × sectors × bins)`` profiles, a few MB. The
matrix products run on one BLAS thread (``angle_fit.exact_unit_product``); ``workers``
threads share the tile batches and the further starts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import scipy.stats

from daskmic.tilt import angle_steps as steps
from daskmic.tilt.angle_error import (
    axis_spread_deg,
    gradient_covariance,
    gradient_replicates,
    half_plane_excess,
    reported_magnitude,
    untilted_p_value,
)
from daskmic.tilt.angle_fit import PlaneFit, robust_plane
from daskmic.tilt.angle_model import spectrum_model
from daskmic.tilt.angle_regions import labellings, mixed_tiles, other_region_fraction
from daskmic.tilt.angle_spectra import SectorProfiles, sector_profiles, threaded_map
from daskmic.tilt.ctf import Optics, canonical_astigmatism

ANGLE_COLUMNS = (
    "tilt_angle_deg",
    "tilt_axis_deg",
    "tilt_direction_deg",
    "tilt_angle_err_deg",
    "tilt_axis_err_deg",
    "defocus_mean_A",
    "astigmatism_A",
    "astigmatism_angle_deg",
    "usable_patches",
    "total_patches",
    "plane_residual_A",
    "patch_notes",
    "angle_status",
    "angle_message",
)
"""Columns that :meth:`~daskmic.tilt.angle.TiltAngleResult.as_row` gives, in table order."""

_SECTORS = 24
_WINDOW_A = 800.0
_TILE_Z = 1.5
_MEDIAN_Z = 1.4
_MIN_USABLE_FRACTION = 0.3
_MAX_ERR_DEG = 1.0
_MAX_AXIS_ERR_DEG = 1.5
_FLAT_P = 0.01
_NOISE_FRACTION = 0.75
_BENT_Z2 = 9.0  # χ² with 1 degree of freedom: noise exceeds it in 0.27 % of frames
_FLOOR_ERR_DEG = 0.15
_CONFIDENT_SCORE = 2.0
_RIVAL_Z = 2.0
_TILES_PER_AREA = 4.0
_LABEL_ALPHA = 0.05


def _empty_xy() -> np.ndarray:
    return np.empty((0, 2))


def _empty() -> np.ndarray:
    return np.empty(0)


@dataclass(frozen=True)
class TiltAngleResult:
    """Tilt of one micrograph (conventions in the module notes).

    ``as_row()`` gives the scalar columns of a results table; the ``patch_*`` arrays hold the
    local defocus map (tile centres in Å from the image centre) for plots.
    """

    tilt_angle_deg: float
    tilt_axis_deg: float
    tilt_direction_deg: float
    tilt_angle_err_deg: float
    defocus_mean_A: float
    astigmatism_A: float
    astigmatism_angle_deg: float
    usable_patches: int
    total_patches: int
    plane_residual_A: float
    status: str
    message: str = ""
    tilt_axis_err_deg: float = math.nan
    patch_notes: str = ""
    defocus_gradient: tuple[float, float] = (math.nan, math.nan)
    patch_centers_A: np.ndarray = field(default_factory=_empty_xy, repr=False, compare=False)
    patch_defocus_A: np.ndarray = field(default_factory=_empty, repr=False, compare=False)
    patch_usable: np.ndarray = field(default_factory=_empty, repr=False, compare=False)

    def as_row(self) -> dict[str, float | int | str]:
        """Scalar fields, named as the tilt table's columns."""
        return {
            "tilt_angle_deg": self.tilt_angle_deg,
            "tilt_axis_deg": self.tilt_axis_deg,
            "tilt_direction_deg": self.tilt_direction_deg,
            "tilt_angle_err_deg": self.tilt_angle_err_deg,
            "tilt_axis_err_deg": self.tilt_axis_err_deg,
            "defocus_mean_A": self.defocus_mean_A,
            "astigmatism_A": self.astigmatism_A,
            "astigmatism_angle_deg": self.astigmatism_angle_deg,
            "usable_patches": self.usable_patches,
            "total_patches": self.total_patches,
            "plane_residual_A": self.plane_residual_A,
            "patch_notes": self.patch_notes,
            "angle_status": self.status,
            "angle_message": self.message,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any], **maps: Any) -> TiltAngleResult:
        """The inverse of :meth:`as_row`; ``maps`` gives the non-scalar fields, if any.

        Parameters
        ----------
        row : mapping
            At least the :data:`ANGLE_COLUMNS` (other keys are ignored).
        **maps
            ``defocus_gradient`` and the ``patch_*`` arrays.
        """
        scalars = {name: row[name] for name in ANGLE_COLUMNS if not name.startswith("angle_")}
        if not isinstance(scalars["patch_notes"], str):  # a table read back gives NaN for ""
            scalars["patch_notes"] = ""
        return cls(**scalars, status=row["angle_status"], message=row["angle_message"], **maps)


def _auto_tile_px(shape: tuple[int, int]) -> int:
    side = min(shape)
    return 512 if side >= 1536 else 256


def _s_edges(
    pixel_size_A: float, resolution_A: float, defocus_max_A: float, optics: Optics
) -> np.ndarray:
    """Bins of ``s`` fine enough for 8 per ring period at the largest defocus."""
    k_top = min(0.95 * 0.5 / pixel_size_A, 1.0 / resolution_A)
    ds = 1.0 / (8.0 * optics.wavelength_A * defocus_max_A)
    return np.arange(0.0, k_top * k_top + ds, ds)


def _validate(image: np.ndarray, pixel_size_A: float, **ranges: tuple[float, float, float]):
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got {image.ndim} dimensions")
    if not pixel_size_A > 0:
        raise ValueError(f"pixel_size_A must be > 0, got {pixel_size_A}")
    for name, (value, low, high) in ranges.items():
        if not low < value < high:
            raise ValueError(f"{name} must be in ({low}, {high}), got {value}")


def estimate_tilt(
    image: np.ndarray,
    pixel_size_A: float,
    *,
    voltage_kV: float = Optics.voltage_kV,
    spherical_aberration_mm: float = Optics.spherical_aberration_mm,
    amplitude_contrast: float = Optics.amplitude_contrast,
    defocus_range_A: tuple[float, float] = (3000.0, 40000.0),
    resolution_A: float = 3.5,
    search_max_tilt_deg: float = 70.0,
    max_astigmatism_A: float = 3000.0,
    tile_px: int | None = None,
    workers: int = 1,
) -> TiltAngleResult:
    """Estimate the specimen tilt angle and axis of one micrograph (method in the module notes).

    Parameters
    ----------
    image : numpy.ndarray
        2-D micrograph (any real dtype), at least 3 tiles along each axis.
    pixel_size_A : float
        Pixel size in ångström, > 0.
    voltage_kV, spherical_aberration_mm, amplitude_contrast : float
        Microscope optics (see :class:`daskmic.tilt.ctf.Optics`).
    defocus_range_A : tuple of float
        Range searched for the mean defocus (underfocus, Å), ``0 < low < high``.
    resolution_A : float
        Highest resolution used, Å (> 2 · pixel size is implied by the Nyquist limit).
    search_max_tilt_deg : float
        Largest tilt searched (it sets the span of the defocus grid), in (0, 85) degrees; a
        search limit, not a discard threshold.
    max_astigmatism_A : float
        Largest ``|ΔU - ΔV|`` searched, > 0.
    tile_px : int, optional
        Tile size (even, >= 64); by default from the micrograph size.
    workers : int
        Threads for the tile spectra and the further starts of step 3 (the estimate does
        not depend on it): the cores this estimate may use alone, so 1 when micrographs are
        estimated side by side, one per core (a dask worker's threads, the pipeline).

    Returns
    -------
    TiltAngleResult
        Angle, axis, signed direction, uncertainty, mean defocus, astigmatism, fit quality
        and status (``"ok"``, ``"uncertain"`` or ``"low_signal"``, with a message saying
        why; step 7 of the module notes).
    """
    image = np.asarray(image)
    lo, hi = (float(v) for v in defocus_range_A)
    if not 0 < lo < hi:
        raise ValueError(f"defocus_range_A must satisfy 0 < low < high, got {defocus_range_A}")
    _validate(
        image,
        pixel_size_A,
        search_max_tilt_deg=(search_max_tilt_deg, 0.0, 85.0),
        resolution_A=(resolution_A, 0.0, math.inf),
        max_astigmatism_A=(max_astigmatism_A, 0.0, math.inf),
    )
    optics = Optics(voltage_kV, spherical_aberration_mm, amplitude_contrast)
    tile = int(tile_px) if tile_px is not None else _auto_tile_px(image.shape)
    if tile < 64 or tile % 2:
        raise ValueError(f"tile_px must be even and >= 64, got {tile}")
    if min(image.shape) < 2 * tile:
        raise ValueError(
            f"image of shape {image.shape} is too small for tiles of {tile} px "
            f"(needs >= {2 * tile} px per axis)"
        )
    edges = _s_edges(pixel_size_A, resolution_A, hi, optics)
    prof = sector_profiles(
        image, pixel_size_A, tile_px=tile, s_edges=edges, n_sectors=_SECTORS, workers=workers
    )
    candidates = steps.defocus_candidates(prof, optics, (lo, hi))
    if not candidates:
        return _low_signal(prof, "no Thon rings found in the defocus range")
    half_diagonal_A = 0.5 * math.hypot(*image.shape) * pixel_size_A
    span = half_diagonal_A * math.tan(math.radians(search_max_tilt_deg))
    regions, rival_regions = labellings(prof.centers_A, prof.mean_counts)
    for labels in (regions, rival_regions):
        if labels is not None:
            fraction = other_region_fraction(
                image, pixel_size_A, prof.centers_A, prof.mean_counts, labels, prof.grid_shape,
                tile,
            )  # fmt: skip
            labels[mixed_tiles(fraction, labels)] = -2  # rings from both regions

    def fit(start: tuple[float, float]) -> _Fit:
        return _fit_from(prof, start[0], regions, optics, (0.5 * lo, span), max_astigmatism_A)

    fits = [fit(candidates[0])]
    if fits[0].score < _CONFIDENT_SCORE:  # the other starts, on ``workers`` threads
        fits += threaded_map(fit, candidates[1:], workers)
    best = _best_start(fits)
    weak = _weak_signal(fits[0])
    if weak and best.score < _CONFIDENT_SCORE:  # more starts find more noise that fits
        return _low_signal(prof, f"{weak}; no other starting defocus shows clear rings either")
    best = best if best.score > 0 else fits[0]
    untilted = _untilted_start(best, prof.centers_A, regions)
    if fits[0].score < _CONFIDENT_SCORE and untilted is not None:  # step 3: the start's echo?
        start = candidates[next(i for i, f in enumerate(fits) if f is best)]
        fits.append(_fit_from(prof, start[0], regions, optics, (0.5 * lo, span),
                              max_astigmatism_A, untilted))  # fmt: skip
    rivals = [
        f
        for f in fits
        if f is not best and f.plane and _is_rival(best, f) and f.noise_like <= best.noise_like
    ]
    return _result(prof, best, rivals, regions, rival_regions)


@dataclass(frozen=True)
class _Fit:
    """The local defocus and plane reached from one starting mean defocus (step 3)."""

    plane: PlaneFit | None  # None: fewer than 6 tiles with rings
    local_A: np.ndarray
    z_score: np.ndarray
    astig_ab_A: tuple[float, float]
    support: np.ndarray  # per tile of the specimen's regions: its z-score if an inlier, else 0

    @property
    def score(self) -> float:
        return float(self.support.mean()) if len(self.support) else 0.0

    @property
    def noise_like(self) -> bool:
        """Whether the inliers scatter about the plane as readings of noise would (step 7)."""
        if self.plane is None:
            return True
        residuals = self.plane.residuals[self.plane.inliers]
        return _window_bound(float(np.sqrt(np.mean(residuals**2))))


def _best_start(fits: list[_Fit]) -> _Fit:
    """The start of highest score among those whose planes hold their tiles (step 3).

    A plane whose inliers scatter about it as readings of noise would wins only when every
    start's does; the first of equals is the best global match.
    """
    return max(fits, key=lambda fit: (not fit.noise_like, fit.score))


def _is_rival(best: _Fit, other: _Fit) -> bool:
    """Whether the tiles prefer ``best`` to ``other`` by less than ``_RIVAL_Z`` standard errors.

    The tile-wise differences of support have a standard error ``sd · √(4 / n)``: half-
    overlapping tiles share their pixels with about 4 others (:mod:`~daskmic.tilt.angle_error`).
    """
    diff = best.support - other.support
    standard_error = float(diff.std()) * math.sqrt(_TILES_PER_AREA / max(len(diff), 1))
    return float(diff.mean()) < _RIVAL_Z * standard_error


def _fit_from(
    prof: SectorProfiles,
    start_A: float,
    regions: np.ndarray,
    optics: Optics,
    limits_A: tuple[float, float],
    max_astigmatism_A: float,
    start_plane: PlaneFit | None = None,
) -> _Fit:
    """Steps 4–6 from the mean defocus ``start_A``; ``limits_A`` the grid's floor and half-span.

    The score is the sum of the inlier tiles' peak z-scores over the number of tiles on the
    specimen's regions (step 3 of the module notes). ``start_plane`` replaces step 4's
    plane (step 3's untilted start).
    """
    floor, span = limits_A
    step = steps.DEFOCUS_STEP_A
    grid = np.arange(max(start_A - span, floor), start_A + span + step, step)
    rings = steps.ring_table(prof, grid, optics)  # one table for the three correlations
    plane = start_plane
    if plane is None:
        curves = steps.tile_curves(
            prof.power.mean(axis=1), start_A, grid, prof, optics, rings=rings
        )
        plane = steps.initial_plane(curves, grid, prof, regions)
    astig_ab = (0.0, 0.0)
    for _ in range(2):
        predicted = np.clip(plane.at(prof.centers_A, regions), grid[0], grid[-1])
        model = spectrum_model(prof, predicted, optics, 0.5 * max_astigmatism_A)
        astig_ab = model.astig_ab_A
        profiles = steps.corrected_profiles(prof, predicted, astig_ab, optics, model.weights)
        curves = steps.tile_curves(
            profiles, model.d_ref_A, grid, prof, optics, model.envelope, rings, predicted
        )
        local, z_score = steps.local_defocus(curves, grid, predicted, _WINDOW_A)
        labels = np.where(z_score >= _TILE_Z, regions, -1)
        if (labels >= 0).sum() < 6:  # no rings near this plane: nothing to fit
            return _Fit(None, local, z_score, astig_ab, np.zeros(int((regions >= 0).sum())))
        plane = robust_plane(prof.centers_A, local, labels)
    reached = plane.at(prof.centers_A, regions)[regions >= 0]
    support = np.where(plane.inliers, z_score, 0.0)[regions >= 0]
    if reached.min() < grid[0] or reached.max() > grid[-1]:  # its grid cannot hold the plane
        support = np.zeros_like(support)
    return _Fit(plane, local, z_score, astig_ab, support)


def _untilted_start(fit: _Fit, xy_A: np.ndarray, regions: np.ndarray) -> PlaneFit | None:
    """``fit``'s plane without its gradient, if every tile's window about it holds ``fit``'s.

    ``None`` without a plane, or when the fitted plane lies ``_WINDOW_A`` or more from the
    untilted one at some tile (a tilted specimen's rings would lie outside its windows).
    """
    plane = fit.plane
    if plane is None:
        return None
    coef = plane.coef.copy()
    coef[1:3] = 0.0
    untilted = dataclasses.replace(plane, coef=coef)
    gap = np.abs(plane.at(xy_A, regions) - untilted.at(xy_A, regions))[regions >= 0]
    return untilted if gap.size and gap.max() < _WINDOW_A else None


def _low_signal(prof: SectorProfiles, message: str) -> TiltAngleResult:
    nan = math.nan
    return TiltAngleResult(
        nan, nan, nan, nan, nan, nan, nan, 0, len(prof.centers_A), nan, "low_signal", message,
        patch_centers_A=prof.centers_A,
    )  # fmt: skip


def _patch_notes(plane: PlaneFit, regions: np.ndarray, z_score: np.ndarray) -> str:
    """How many tiles the plane used, and why the others were not."""
    used = plane.inliers
    parts = [f"{int(used.sum())} of {len(used)} tiles used"]
    n = int((used & (regions == 1)).sum())
    if n and len(plane.coef) > 3:
        parts.append(f"{n} in a second region (film) with its own offset {plane.coef[3]:+.0f} Å")
    left_out = {
        "off the illumination surface (contamination, film edge, empty or saturated)": int(
            (regions == -1).sum()
        ),
        "astride a film edge (rings from both regions)": int((regions == -2).sum()),
        "weak Thon rings": int(((regions >= 0) & (z_score < _TILE_Z)).sum()),
        "off the plane": int(((regions >= 0) & (z_score >= _TILE_Z) & ~used).sum()),
    }
    reasons = [f"{n} {why}" for why, n in left_out.items() if n]
    return "; ".join(parts) + ("; left out: " + ", ".join(reasons) if reasons else "")


def _weak_signal(fit: _Fit) -> str:
    """Why ``fit`` shows too few Thon rings for an answer (step 8), or ``""``."""
    median_z = float(np.median(fit.z_score))
    if median_z < _MEDIAN_Z:
        return f"Thon rings too weak in the tiles (median peak z-score {median_z:.2f})"
    n_tiles = len(fit.z_score)
    used = int(fit.plane.inliers.sum()) if fit.plane is not None else 0
    if used < max(6, math.ceil(_MIN_USABLE_FRACTION * n_tiles)):
        return f"only {used} of {n_tiles} tiles show Thon rings"
    return ""


def _rival_labelling(
    xy_A: np.ndarray,
    local_A: np.ndarray,
    with_rings: np.ndarray,
    regions: np.ndarray,
    rival: np.ndarray | None,
) -> tuple[PlaneFit, PlaneFit] | None:
    """Planes of the same tiles under the chosen and the rival labels, if both fit (step 4).

    Both planes are fitted on the tiles with rings that both labellings keep, so that they
    differ only in which tiles carry the film's offset. The rival counts unless the
    readings clearly prefer one: the ratio of the squared robust scales is within the
    two-sided 95 % range of an F distribution with ``n/4`` degrees of freedom each (``n``
    inliers; half-overlapping tiles share their pixels with about 4 others). ``None`` when
    there is no rival labelling or it fits clearly worse or better.
    """
    if rival is None or np.array_equal(rival, regions):
        return None
    common = (regions >= 0) & (rival >= 0) & with_rings
    if common.sum() < 6:
        return None
    chosen, other = (
        robust_plane(xy_A, local_A, np.where(common, labels, -1))
        for labels in (regions, rival)
    )
    dof = max(min(chosen.inliers.sum(), other.inliers.sum()) / _TILES_PER_AREA, 1.0)
    bound = float(scipy.stats.f.ppf(1.0 - _LABEL_ALPHA / 2.0, dof, dof))
    ratio = (other.scale / max(chosen.scale, 1e-9)) ** 2
    return (chosen, other) if 1.0 / bound <= ratio <= bound else None


def _rival_spread_deg(best: PlaneFit, rivals: list[PlaneFit]) -> tuple[float, float]:
    """Largest angle and axis differences between the best plane and its rivals' (steps 3–4)."""
    angle, axis = 0.0, 0.0
    tilt = math.degrees(math.atan(math.hypot(*best.coef[1:3])))
    direction = math.degrees(math.atan2(best.coef[2], best.coef[1]))
    for rival in rivals:
        gx, gy = rival.coef[1:3]
        angle = max(angle, abs(math.degrees(math.atan(math.hypot(gx, gy))) - tilt))
        turn = abs((math.degrees(math.atan2(gy, gx)) - direction + 90.0) % 180.0 - 90.0)
        axis = max(axis, turn)
    return angle, axis


def _result(
    prof: SectorProfiles,
    fit: _Fit,
    rivals: list[_Fit],
    regions: np.ndarray,
    rival_regions: np.ndarray | None,
) -> TiltAngleResult:
    plane, local_A, z_score, astig_ab_A = fit.plane, fit.local_A, fit.z_score, fit.astig_ab_A
    weak = _weak_signal(fit)
    if weak or plane is None:  # no plane: fewer than 6 tiles with rings, which ``weak`` says
        return _low_signal(prof, weak)
    usable = plane.inliers
    n_tiles = len(local_A)
    g = plane.coef[1:3]
    residual_A = float(np.sqrt(np.mean(plane.residuals[usable] ** 2)))
    rival_angle, rival_axis = _rival_spread_deg(
        plane, [f.plane for f in rivals if f.plane is not None]
    )
    relabelled = _rival_labelling(
        prof.centers_A, local_A, z_score >= _TILE_Z, regions, rival_regions
    )
    label_angle, label_axis = (
        _rival_spread_deg(relabelled[0], [relabelled[1]]) if relabelled else (0.0, 0.0)
    )  # the answer depends on which tiles are the film
    spread = _uncertainty(
        prof, plane, residual_A, (max(rival_angle, label_angle), max(rival_axis, label_axis))
    )
    direction = math.degrees(math.atan2(g[1], g[0])) % 360.0
    half = math.hypot(*astig_ab_A)
    angle_u = 0.5 * math.degrees(math.atan2(astig_ab_A[1], astig_ab_A[0]))
    u, v, angle = canonical_astigmatism(plane.coef[0] + half, plane.coef[0] - half, angle_u)
    status, message = _status(
        spread.err_deg, spread.axis_err_deg, spread.p_flat, residual_A, (len(rivals), rival_angle)
    )
    if label_angle > 0 and status != "ok":
        message += (
            f"; another reading of which tiles are the film fits the tiles as well, "
            f"its angle {label_angle:.1f}° apart"
        )
    if spread.bent > 0 and status != "ok":
        message += (
            f"; the defocus bends off a plane (its halves' slopes differ by {spread.bent_z:.1f} σ)"
        )
    return TiltAngleResult(
        tilt_angle_deg=math.degrees(math.atan(spread.magnitude)),
        tilt_axis_deg=(direction - 90.0) % 180.0,
        tilt_direction_deg=direction,
        tilt_angle_err_deg=spread.err_deg,
        tilt_axis_err_deg=spread.axis_err_deg,
        defocus_mean_A=float(plane.coef[0]),
        astigmatism_A=u - v,
        astigmatism_angle_deg=angle,
        usable_patches=int(usable.sum()),
        total_patches=n_tiles,
        plane_residual_A=residual_A,
        patch_notes=_patch_notes(plane, regions, z_score),
        status=status,
        message=message,
        defocus_gradient=(float(g[0]), float(g[1])),
        patch_centers_A=prof.centers_A,
        patch_defocus_A=local_A,
        patch_usable=usable,
    )


class _Spread(NamedTuple):
    """The de-biased gradient length and the uncertainties of step 7."""

    magnitude: float
    err_deg: float
    axis_err_deg: float
    p_flat: float
    bent_z: float
    bent: float


def _uncertainty(
    prof: SectorProfiles, plane: PlaneFit, residual_A: float, rival_deg: tuple[float, float]
) -> _Spread:
    """Step 7: bootstrap, model-error floor, window bound, plane test and rivals combined."""
    g = plane.coef[1:3]
    usable = plane.inliers
    replicates = gradient_replicates(plane, prof.centers_A, prof.grid_shape)
    cov = gradient_covariance(replicates)
    least_squares = plane.cov[1:3, 1:3]
    if least_squares[0, 0] + least_squares[1, 1] > cov[0, 0] + cov[1, 1]:
        cov = least_squares  # few blocks: the bootstrap's spread falls short
    window = _window_noise(residual_A, prof.centers_A[usable])
    g2 = float(g[0] * g[0] + g[1] * g[1])
    along = float(g[0] * g[0] * cov[0, 0] + 2 * g[0] * g[1] * cov[0, 1] + g[1] * g[1] * cov[1, 1])
    floor = math.radians(_FLOOR_ERR_DEG) * (1.0 + g2)  # the model error as gradient noise
    noise = cov + floor * floor * np.eye(2)
    magnitude, set_aside = reported_magnitude(g, noise, _FLAT_P)
    sigma = math.sqrt(along / g2) if g2 > 0 else math.sqrt(float(cov[0, 0] + cov[1, 1]) / 2)
    bent_z, bent = half_plane_excess(plane, prof.centers_A, prof.grid_shape)
    bent = bent if bent_z * bent_z > _BENT_Z2 else 0.0
    sigma = math.hypot(sigma, window, bent)
    err_deg = math.hypot(math.degrees(sigma / (1.0 + magnitude**2)), _FLOOR_ERR_DEG)
    err_deg = math.hypot(err_deg, rival_deg[0], math.degrees(math.atan(set_aside)))
    across = math.degrees(math.atan2(math.hypot(floor, window), math.sqrt(g2)))  # floor, window
    axis_err = min(math.hypot(axis_spread_deg(replicates), rival_deg[1], across), 90.0)
    return _Spread(magnitude, err_deg, axis_err, untilted_p_value(g, noise), bent_z, bent)


def _status(
    err_deg: float,
    axis_err_deg: float,
    p_flat: float,
    residual_A: float,
    rivals: tuple[int, float],
) -> tuple[str, str]:
    """``"ok"`` or ``"uncertain"`` and why (step 7 of the module notes).

    ``p_flat`` is :func:`~daskmic.tilt.angle_error.untilted_p_value`, ``residual_A`` the rms
    of the inliers off the plane, ``rivals`` the number of rival starts and their largest
    angle difference.
    """
    reasons = []
    if err_deg > _MAX_ERR_DEG:
        reason = f"the tiles disagree: ± {err_deg:.2f}° exceeds {_MAX_ERR_DEG}°"
        if rivals[1] > 0:
            reason += (
                f" ({rivals[0]} other start(s) fit almost as well, "
                f"their angles {rivals[1]:.1f}° apart)"
            )
        reasons.append(reason)
    if p_flat < _FLAT_P and axis_err_deg > _MAX_AXIS_ERR_DEG:
        reasons.append(f"the axis is uncertain: ± {axis_err_deg:.1f}° exceeds {_MAX_AXIS_ERR_DEG}°")
    if _window_bound(residual_A):
        reasons.append(
            f"the tiles' defocus readings scatter by {residual_A:.0f} Å about the plane, "
            f"nearly as noise would across the ± {_WINDOW_A:.0f} Å search window "
            f"({_WINDOW_A / math.sqrt(3.0):.0f} Å)"
        )
    if reasons:
        return "uncertain", "; ".join(reasons)
    if p_flat >= _FLAT_P:
        return "ok", f"consistent with an untilted specimen (p = {p_flat:.2f}): read as 0°, no axis"
    return "ok", ""


def _window_bound(residual_A: float) -> bool:
    """Whether the tiles' readings scatter nearly as readings of noise would (step 7)."""
    return residual_A > _NOISE_FRACTION * _WINDOW_A / math.sqrt(3.0)


def _window_noise(residual_A: float, used_xy_A: np.ndarray) -> float:
    """Gradient noise of a plane that only its search window holds (step 7), else 0.

    Readings of noise fill the ``± W`` window about the start's plane, so every plane
    within ``W`` of it at the tiles fits as well: a gradient error up to ``W / h`` with
    ``h`` the tiles' half-extent, whose standard deviation (uniform) is ``W / (h √3)``.
    The shorter half-extent is taken, so that the bound holds in every direction.
    """
    if not _window_bound(residual_A) or len(used_xy_A) == 0:
        return 0.0
    half_extent_A = float(np.abs(used_xy_A).max(axis=0).min())
    return _WINDOW_A / (max(half_extent_A, 1.0) * math.sqrt(3.0))
