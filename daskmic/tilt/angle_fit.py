"""Numerical pieces of the tilt estimator: ring alignment, CTF correlation curves, plane fits.

Notation: ``s = k²`` (1/Å²); ``χ(s, Δf) = π λ Δf s - (π/2) C_s λ³ s²`` (the constant phase of
amplitude contrast is added by the model, it does not move with defocus).
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse
from scipy.ndimage import uniform_filter1d

from daskmic.tilt.ctf import Optics


def phase_matched_s(
    s_invA2: np.ndarray,
    defocus_to_A: np.ndarray | float,
    defocus_from_A: np.ndarray | float,
    optics: Optics,
) -> np.ndarray:
    """Where a spectrum at ``defocus_from_A`` has the CTF phase that ``defocus_to_A`` has at ``s``.

    Solves ``χ(s', Δf_from) = χ(s, Δf_to)`` for the smaller root ``s'`` (arrays broadcast).
    Reading a profile at ``s'`` therefore moves its Thon rings to where ``Δf_to`` puts them.
    """
    lam = optics.wavelength_A
    c = 0.5 * math.pi * optics.spherical_aberration_mm * 1e7 * lam**3
    target = math.pi * lam * defocus_to_A * s_invA2 - c * s_invA2 * s_invA2
    b = math.pi * lam * defocus_from_A
    disc = np.maximum(b * b - 4.0 * c * target, 0.0)
    return 2.0 * target / (b + np.sqrt(disc))


def interp_matrix(s_invA2: np.ndarray, s_src: np.ndarray) -> scipy.sparse.csr_matrix:
    """Sparse ``(n_bins, n_rows · n_bins)`` map: the sum over rows of each row read at ``s_src``.

    ``s_src`` has shape ``(n_rows, n_bins)``; applied to a profile block flattened row-major it
    returns ``Σ_r profile_r(s_src[r, b])`` by linear interpolation (0 outside the grid).
    """
    n_rows, n = s_src.shape
    left, frac, weight = interp_weights(s_invA2, s_src)
    index = np.int32 if 2 * n_rows * n < 2**31 else np.int64  # scipy's own choice: no copy
    # output bin b holds, row after row, the pair (left, left + 1): its columns in order
    columns = np.empty((n, n_rows, 2), dtype=index)
    np.add(left.T, (np.arange(n_rows) * n)[None, :], out=columns[..., 0], casting="unsafe")
    np.add(columns[..., 0], 1, out=columns[..., 1])
    values = np.empty((n, n_rows, 2))
    np.multiply(weight.T, 1 - frac.T, out=values[..., 0])
    np.multiply(weight.T, frac.T, out=values[..., 1])
    pointers = np.arange(0, 2 * n_rows * n + 1, 2 * n_rows, dtype=index)
    return scipy.sparse.csr_matrix(
        (values.ravel(), columns.ravel(), pointers), shape=(n, n_rows * n)
    )


def interp_weights(
    s_invA2: np.ndarray, s_src: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left neighbour, fraction and weight (1 inside the grid, else 0) of each ``s_src``."""
    n = len(s_invA2)
    position = (s_src - s_invA2[0]) / (s_invA2[1] - s_invA2[0])
    valid = (position >= 0) & (position < n - 1)
    left = np.clip(np.floor(position).astype(np.int64), 0, n - 2)
    return left, np.where(valid, position - left, 0.0), valid.astype(np.float64)


def defocus_groups(defocus_A: np.ndarray, relative_step: float = 0.005) -> list[np.ndarray]:
    """Indices of ``defocus_A`` grouped in bins of constant relative width ``relative_step``."""
    keys = np.round(np.log(np.maximum(defocus_A, 1.0)) / math.log1p(relative_step))
    return [np.flatnonzero(keys == key) for key in np.unique(keys)]


def box_width(period_bins: float) -> int:
    """The flattening box's width in bins for a ring period of ``period_bins`` (:func:`flatten`)."""
    return max(int(round(period_bins)), 3)


def flatten(profiles: np.ndarray, period_bins: float) -> np.ndarray:
    """Relative ring modulation: ``p / boxcar(p) - 1``, the box one ring period wide."""
    background = uniform_filter1d(profiles, box_width(period_bins), axis=-1, mode="nearest")
    return profiles / np.maximum(background, 1e-30) - 1.0


def ring_model(s_invA2: np.ndarray, defocus_A: np.ndarray, optics: Optics) -> np.ndarray:
    """``sin² χ`` for every ``s`` (rows) and defocus (columns), float64."""
    lam = optics.wavelength_A
    c = 0.5 * math.pi * optics.spherical_aberration_mm * 1e7 * lam**3
    s = s_invA2[:, None]
    chi = math.pi * lam * defocus_A[None, :] * s
    chi -= c * s * s
    chi += optics.constant_phase_rad
    np.sin(chi, out=chi)
    chi *= chi
    return chi


def weighted_correlation(
    data: np.ndarray,
    s_invA2: np.ndarray,
    defocus_A: np.ndarray,
    optics: Optics,
    weights: np.ndarray,
    envelope: np.ndarray | None = None,
    rings: np.ndarray | None = None,
) -> np.ndarray:
    """Weighted Pearson correlation of each data row with the ring model at each defocus.

    ``corr = Σ w x̃ ỹ / √(Σ w x̃² · Σ w ỹ²)`` with ``x̃, ỹ`` centred by their weighted means;
    the data rows and ``weights`` are over ``s_invA2`` (only bins with ``w > 0`` are used).
    The model ``y`` is ``sin² χ``, or ``E(s) (sin² χ - ½)`` with an ``envelope`` ``E``: the
    rings as the data show them (an ``(n_rows, n_bins)`` envelope gives each row its own;
    rows whose envelopes are all the same share one model, as the 1-D form does).
    When the data's rings fade along ``s`` (drift fades them within a few rings), only the
    model with their envelope peaks at the true defocus (Cauchy–Schwarz: ``corr ≤ 1`` with
    equality iff ``ỹ ∝ x̃``); weighting a bare
    ``sin² χ`` by the envelope gives the same numerator but a denominator
    ``Σ w E (sin² χ)~²`` that changes as the rings slide along the envelope, and that moved
    the peak by up to a few hundred Å at 0.5–0.9 µm defocus with 5–20 Å of drift.
    ``rings``, if given, is :func:`ring_model` of all of ``s_invA2`` and ``defocus_A`` (its
    rows are the same bits as the model of the rows used: a caller that correlates on one
    grid several times computes it once). Returns ``(n_rows, n_defocus)`` float64, the same
    bits whatever the BLAS (see :func:`exact_unit_product`).
    """
    used = weights > 0
    w = weights[used] / weights[used].sum()
    root = np.sqrt(w)
    x = data[..., used]
    x = (x - (x * w).sum(axis=-1, keepdims=True)) * root
    x /= np.maximum(np.sqrt((x * x).sum(axis=-1, keepdims=True)), 1e-30)
    rings = ring_model(s_invA2[used], defocus_A, optics) if rings is None else rings[used]
    if envelope is None:
        return exact_unit_product(x, _unit_columns(rings, w, root))
    envelope = np.asarray(envelope, np.float64)[..., used, None]
    rings -= 0.5
    if envelope.ndim == 3 and _same_rows(envelope):  # no drift: every sector fades alike
        envelope = envelope[0]
    if envelope.ndim == 2:
        return exact_unit_product(x, _unit_columns(envelope * rings, w, root))
    return np.concatenate([  # (n_rows, n_bins): one model per data row
        exact_unit_product(x[i : i + 1], _unit_columns(row * rings, w, root))
        for i, row in enumerate(envelope)
    ])


def _same_rows(values: np.ndarray) -> bool:
    """Whether every row of ``values`` (contiguous float64) has the bits of the first."""
    bits = values.view(np.int64)
    return bool((bits == bits[:1]).all())


def _unit_columns(model: np.ndarray, w: np.ndarray, root: np.ndarray) -> np.ndarray:
    """``model``'s columns centred by their ``w``-weighted means, times ``√w``, unit norm.

    In place (the callers pass a fresh array): at the tile curves' size every new array of
    the model's size costs as much as the arithmetic on it.
    """
    scratch = w[:, None] * model
    model -= scratch.sum(axis=0)
    model *= root[:, None]
    np.multiply(model, model, out=scratch)
    model /= np.maximum(np.sqrt(scratch.sum(axis=0)), 1e-30)
    return model


_FIXED_POINT = 2.0**26
_BLAS_LOCK = threading.Lock()


def exact_unit_product(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``rows @ columns`` for unit-norm rows and columns, bit-identical on any BLAS and CPU.

    A matrix product's rounding depends on the order of its sums, which the BLAS picks by
    kernel (CPU kind) and thread count: in float32 that moved a tilt angle by 1.5e-4° between
    a one-thread and a two-thread run. Here both factors are rounded to multiples of
    ``2⁻²⁶`` (an error below 1.5e-8 per element), so every product is a multiple of
    ``2⁻⁵²`` below 1 in magnitude and, by Cauchy–Schwarz, every partial sum of a row
    times a column is below ~1 too: it is an integer below ``2⁵³`` times ``2⁻⁵²`` and held
    exactly in float64. Exact sums do not depend on their order, so the result does not
    depend on the BLAS.

    The BLAS runs on one thread: at these sizes (a few hundred rows) a second thread mostly
    spins, and on a busy machine it waits for a core (a product took 6× the CPU time).
    """
    q_rows, q_columns = _fixed_point(rows), _fixed_point(columns)
    with _BLAS_LOCK, _blas().limit(limits=1, user_api="blas"):  # each limit undone in turn
        return q_rows @ q_columns


def _fixed_point(values: np.ndarray) -> np.ndarray:
    """``values`` rounded to the nearest multiple of ``2⁻²⁶`` (float64; scaling is exact)."""
    scaled = np.multiply(values, _FIXED_POINT, dtype=np.float64)
    np.rint(scaled, out=scaled)
    scaled *= 1.0 / _FIXED_POINT
    return scaled


@functools.cache
def _blas() -> Any:
    """The process's thread pools (threadpoolctl's controller, made once: it scans libraries)."""
    from threadpoolctl import ThreadpoolController  # 16 ms of import, paid by estimates only

    return ThreadpoolController()


def refine_peak(curve: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Sub-sample position of maxima at ``index`` by a parabola through three samples."""
    index = np.clip(index, 1, curve.shape[-1] - 2)
    rows = np.arange(curve.shape[0])
    y0, y1, y2 = curve[rows, index - 1], curve[rows, index], curve[rows, index + 1]
    denom = y0 - 2 * y1 + y2
    shift = np.where(denom < 0, 0.5 * (y0 - y2) / np.where(denom < 0, denom, -1.0), 0.0)
    return index + np.clip(shift, -0.5, 0.5)


def weighted_lstsq(
    design: np.ndarray, values: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise ``Σ w (v - D c)²``; returns ``c`` and ``(Dᵀ W D)⁻¹``, the same bits on any CPU.

    Small problems (a few columns) solved by the normal equations with element-wise numpy
    sums and Gaussian elimination (partial pivoting) instead of BLAS/LAPACK, whose rounding
    depends on the CPU's kernels. The columns are scaled by powers of two (exactly) to unit
    size first, which keeps the normal matrix well conditioned for centred coordinates. A
    singular system falls back to the pseudo-inverse.
    """
    design = np.asarray(design, dtype=np.float64)
    scale = np.exp2(np.ceil(np.log2(np.maximum(np.abs(design).max(axis=0), 1e-300))))
    unit = design / scale
    weighted = unit * np.asarray(weights, dtype=np.float64)[:, None]
    normal = (weighted[:, :, None] * unit[:, None, :]).sum(axis=0)
    rhs = (weighted * np.asarray(values, dtype=np.float64)[:, None]).sum(axis=0)
    n = len(scale)
    solved = _gauss_jordan(normal, np.column_stack([rhs, np.eye(n)]))
    if np.isnan(solved).any():
        inverse = np.linalg.pinv(normal)
        solved = np.column_stack([inverse @ rhs, inverse])
    return solved[:, 0] / scale, solved[:, 1:] / np.outer(scale, scale)


def _gauss_jordan(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``matrix⁻¹ rhs`` by Gauss–Jordan elimination with partial pivoting; NaN if singular.

    ``matrix`` ``(n, n)`` and ``rhs`` ``(n, m)``, or batches of them ``(B, n, n)``,
    ``(B, n, m)``; a singular system of the batch gives NaN, the others their solution.
    """
    single = matrix.ndim == 2
    a = np.concatenate([matrix, rhs], axis=-1).astype(np.float64)
    a = a[None] if single else a
    n = matrix.shape[-1]
    tolerance = 1e-12 * np.maximum(np.abs(a[:, :, :n]).max(axis=(1, 2)), 1e-300)
    batch = np.arange(len(a))
    singular = np.zeros(len(a), bool)
    for col in range(n):
        pivot = col + np.argmax(np.abs(a[:, col:, col]), axis=1)
        singular |= np.abs(a[batch, pivot, col]) <= tolerance
        top = a[:, col].copy()
        a[:, col] = a[batch, pivot]
        a[batch, pivot] = top
        a[singular, col, col] = 1.0  # keeps the arithmetic finite; the result is NaN anyway
        a[:, col] = a[:, col] / a[:, col, col : col + 1]
        for row in range(n):
            if row != col:
                a[:, row] = a[:, row] - a[:, row, col : col + 1] * a[:, col]
    a[singular] = np.nan
    return a[0, :, n:] if single else a[:, :, n:]


def batched_lstsq(design: np.ndarray, values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Coefficients of :func:`weighted_lstsq` for each row of ``weights`` ``(B, n)`` at once.

    Element-wise numpy sums and a batched Gauss–Jordan: the same bits on every CPU. A
    singular system of the batch falls back to :func:`weighted_lstsq` (pseudo-inverse).
    """
    design = np.asarray(design, dtype=np.float64)
    scale = np.exp2(np.ceil(np.log2(np.maximum(np.abs(design).max(axis=0), 1e-300))))
    unit = design / scale
    pairs = (unit[:, :, None] * unit[:, None, :]).reshape(len(unit), -1)
    normal = (weights[:, :, None] * pairs[None, :, :]).sum(axis=1)
    normal = normal.reshape(len(weights), unit.shape[1], unit.shape[1])
    rhs = (weights[:, :, None] * (unit * np.asarray(values, np.float64)[:, None])[None]).sum(axis=1)
    solved = _gauss_jordan(normal, rhs[:, :, None])[..., 0] / scale
    for row in np.flatnonzero(np.isnan(solved).any(axis=1)):
        solved[row] = weighted_lstsq(design, values, weights[row])[0]
    return solved


@dataclass(frozen=True)
class PlaneFit:
    """``Δf = c0 + gx·x + gy·y (+ o_k in region k)`` with covariance, residuals and inliers.

    ``coef`` is ``(c0, gx, gy, o_1, …)``; ``labels`` the region of each point (0: the
    specimen plane itself, k ≥ 1: a region with its own offset ``o_k``, −1: left out);
    ``weights`` the final Tukey weights (0 for outliers and left-out points).
    """

    coef: np.ndarray
    cov: np.ndarray
    residuals: np.ndarray
    inliers: np.ndarray
    scale: float
    labels: np.ndarray
    weights: np.ndarray

    def at(self, xy_A: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """The fitted defocus at ``xy_A`` (with region offsets when ``labels`` is given)."""
        plane = plane_at(self.coef, xy_A)
        if labels is None or len(self.coef) == 3:
            return plane
        offsets = np.concatenate([[0.0], self.coef[3:]])
        return plane + offsets[np.clip(labels, 0, None)]


def plane_at(coef: np.ndarray, xy_A: np.ndarray) -> np.ndarray:
    """``c0 + gx·x + gy·y`` at the points ``xy_A`` (element-wise: the same bits on any CPU)."""
    xy = np.asarray(xy_A, dtype=np.float64).reshape(-1, 2)
    return coef[0] + xy[:, 0] * coef[1] + xy[:, 1] * coef[2]


def plane_design(xy_A: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """Columns ``1, x, y`` and one indicator per region ``k ≥ 1`` of ``labels``."""
    xy = np.asarray(xy_A, dtype=np.float64).reshape(-1, 2)
    columns = [np.ones(len(xy)), xy[:, 0], xy[:, 1]]
    if labels is not None:
        columns += [(labels == k).astype(np.float64) for k in range(1, int(labels.max()) + 1)]
    return np.column_stack(columns)


def robust_fit(
    design: np.ndarray,
    values: np.ndarray,
    use: np.ndarray,
    *,
    iterations: int = 20,
    min_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Linear model by iteratively reweighted least squares (L1 start, then Tukey).

    Starts from a least-absolute-deviations fit, then applies Tukey's biweight with a
    scale of 1.4826 · MAD, at least ``min_scale`` (tuning constant 4.685). Only rows with
    ``use`` take part. Returns the coefficients, the final weights (0: outlier or unused)
    and the scale.
    """
    weights = use.astype(np.float64)
    coef = np.zeros(design.shape[1])
    for _ in range(10):  # L1 start (IRLS on |r|)
        coef = weighted_lstsq(design, values, weights)[0]
        residuals = values - (design * coef).sum(axis=1)
        weights = np.where(use, 1.0 / np.maximum(np.abs(residuals), min_scale), 0.0)
    scale = 1.0
    for _ in range(iterations):
        residuals = values - (design * coef).sum(axis=1)
        scale = max(1.4826 * float(np.median(np.abs(residuals[use]))), min_scale)
        u = residuals / (4.685 * scale)
        new = np.where(use & (np.abs(u) < 1), (1 - u * u) ** 2, 0.0)
        if np.count_nonzero(new) < design.shape[1] + 1:
            break
        weights = new
        coef = weighted_lstsq(design, values, weights)[0]
    return coef, weights, scale


def robust_plane(
    xy_A: np.ndarray,
    defocus_A: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    iterations: int = 20,
) -> PlaneFit:
    """Plane through ``defocus_A`` at ``xy_A`` by a robust fit (:func:`robust_fit`).

    With ``labels``, points of region ``k ≥ 1`` share the plane's gradient but have their
    own offset (a support film at another height, or read with another amplitude contrast),
    and points labelled −1 are left out. The covariance is ``σ² (Dᵀ D)⁻¹`` over the inliers.
    """
    labels = np.zeros(len(defocus_A), np.int64) if labels is None else np.asarray(labels)
    design = plane_design(xy_A, labels)
    coef, weights, scale = robust_fit(design, defocus_A, labels >= 0, iterations=iterations)
    residuals = defocus_A - (design * coef).sum(axis=1)
    inliers = weights > 0
    dof = max(int(inliers.sum()) - design.shape[1], 1)
    sigma2 = float((residuals[inliers] ** 2).sum()) / dof
    cov = sigma2 * weighted_lstsq(design, defocus_A, inliers.astype(np.float64))[1]
    return PlaneFit(coef, cov, residuals, inliers, scale, labels, weights)
