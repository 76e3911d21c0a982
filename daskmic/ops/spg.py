"""Spectral projected gradient (SPG) over the box [0, 1], optionally with a fixed sum.

The solver of the reference's total-variation denoiser (Xmipp ``denoiseTVFilter``; Birgin,
Martínez and Raydan's SPG with monotone Armijo backtracking and Barzilai–Borwein steps), written
for 2-D float64 arrays processed in cache-sized row strips with small scratch buffers: besides
the caller's arrays it holds the iterate, the trial point and their two gradients. The direction
is ``d = P(X - theta grad E) - X`` with ``P`` the projection onto the feasible set: ``clip(z, 0,
1)`` for the box, ``clip(z - tau, 0, 1)`` for the box intersected with ``sum X = const`` (the
KKT conditions of ``min |X - z|²`` under the box and one equality), ``tau`` the root of a
piecewise-linear, non-increasing function (:func:`mean_shift`). The method and its constants
are given in :func:`daskmic.ops.denoise.tv_denoise`'s Notes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np

THETA_MIN: Final = 1e-3
THETA_MAX: Final = 1e3
THETA_INITIAL: Final = 1.0
ARMIJO_GAMMA: Final = 1e-4
STEP_SIGMA1: Final = 0.1
STEP_SIGMA2: Final = 0.9
_SHIFT_TOLERANCE: Final = 1e-12  # mean error of the mean-preserving projection, in [0, 1] units
_SHIFT_MAX_PASSES: Final = 200
_STRIP_PIXELS: Final = 1 << 15  # pixels per row strip, so strip scratch buffers stay in cache

Evaluate = Callable[[np.ndarray, np.ndarray | None], float]


def strip_bounds(shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """Row ranges ``(r0, r1)`` of the cache-sized strips of a 2-D array of ``shape``."""
    rows = max(1, _STRIP_PIXELS // shape[1])
    return [(r0, min(r0 + rows, shape[0])) for r0 in range(0, shape[0], rows)]


def scratch(shape: tuple[int, ...], count: int) -> list[np.ndarray]:
    """``count`` float64 scratch buffers, each as large as one strip of ``shape``."""
    rows = max(1, min(shape[0], _STRIP_PIXELS // shape[1]))
    return [np.empty((rows, shape[1])) for _ in range(count)]


def _gradient_step(
    x: np.ndarray, grad: np.ndarray, theta: float, r0: int, r1: int, out: np.ndarray
) -> None:
    """``out = x - theta * grad`` on rows ``r0:r1``."""
    np.multiply(grad[r0:r1], -theta, out=out)
    out += x[r0:r1]


def _clipped_sum(
    x: np.ndarray, grad: np.ndarray, theta: float, shift: float
) -> tuple[float, int]:
    """Sum of ``clip(x - theta*grad - shift, 0, 1)`` and its number of unclipped pixels.

    One pass in row strips.
    """
    (z,) = scratch(x.shape, 1)
    total, inside = 0.0, 0
    for r0, r1 in strip_bounds(x.shape):
        zs = z[: r1 - r0]
        _gradient_step(x, grad, theta, r0, r1, zs)
        zs -= shift
        np.clip(zs, 0.0, 1.0, out=zs)
        total += float(zs.sum())
        inside += zs.size - int(np.count_nonzero(zs == 0.0)) - int(np.count_nonzero(zs == 1.0))
    return total, inside


def mean_shift(x: np.ndarray, grad: np.ndarray, theta: float, total: float) -> float:
    """Shift ``tau`` of the projection of ``z = x - theta*grad`` onto the fixed-sum box.

    Parameters
    ----------
    x, grad : numpy.ndarray
        The iterate and its gradient, 2-D float64 of one shape.
    theta : float
        The spectral step.
    total : float
        The fixed sum, in ``[0, x.size]``.

    Returns
    -------
    float
        ``tau`` with ``sum(clip(z - tau, 0, 1)) = total`` to ``1e-12`` per pixel.

    Raises
    ------
    RuntimeError
        If no such ``tau`` is found in 200 passes (bisection needs about 50).

    Notes
    -----
    The clipped sum is piecewise linear and non-increasing in ``tau``, its slope minus the
    number of unclipped pixels. Newton's method from the unclipped solution ends in one or two
    passes unless many pixels clip; a step that leaves the bracket (at first ``[min z - 1,
    max z]``, sums ``N`` and 0) is replaced by bisection.
    """
    tau = (float(x.sum()) - theta * float(grad.sum()) - total) / x.size
    low = high = np.nan  # the bracket, found only when a Newton step needs checking
    for _ in range(_SHIFT_MAX_PASSES):
        value, inside = _clipped_sum(x, grad, theta, tau)
        excess = value - total
        if abs(excess) <= _SHIFT_TOLERANCE * x.size:
            return tau
        if np.isnan(low):
            z_low, z_high = _shifted_range(x, grad, theta)
            low, high = z_low - 1.0, z_high
        low, high = (max(low, tau), high) if excess > 0 else (low, min(high, tau))
        newton = tau + excess / inside if inside else np.nan
        tau = newton if low < newton < high else 0.5 * (low + high)
    raise RuntimeError("spg: the projection onto the fixed-sum box did not converge")


def _shifted_range(x: np.ndarray, grad: np.ndarray, theta: float) -> tuple[float, float]:
    """``min`` and ``max`` of ``x - theta*grad``, one pass in row strips."""
    (z,) = scratch(x.shape, 1)
    low, high = np.inf, -np.inf
    for r0, r1 in strip_bounds(x.shape):
        zs = z[: r1 - r0]
        _gradient_step(x, grad, theta, r0, r1, zs)
        low, high = min(low, float(zs.min())), max(high, float(zs.max()))
    return low, high


def _trial_point(
    x: np.ndarray,
    grad: np.ndarray,
    theta: float,
    step: float,
    out: np.ndarray,
    shift: float = 0.0,
) -> float:
    """``out = x + step * d``, SPG direction ``d = clip(x - theta*grad - shift, 0, 1) - x``.

    Returns the directional derivative ``grad · d``.
    """
    (d,) = scratch(x.shape, 1)
    slope = 0.0
    for r0, r1 in strip_bounds(x.shape):
        dd, xs, gs = d[: r1 - r0], x[r0:r1], grad[r0:r1]
        _gradient_step(x, grad, theta, r0, r1, dd)
        if shift:
            dd -= shift
        np.clip(dd, 0.0, 1.0, out=dd)
        dd -= xs
        slope += float(np.einsum("ij,ij->", gs, dd))  # einsum: no BLAS threads
        if step != 1.0:
            dd *= step
        np.add(xs, dd, out=out[r0:r1])
    return slope


def _secant(
    x_new: np.ndarray, x: np.ndarray, grad_new: np.ndarray, grad: np.ndarray
) -> tuple[float, float, float]:
    """``(m·m, m·(grad_new - grad), max(m))`` for the move ``m = x_new - x``."""
    moved, change = scratch(x.shape, 2)
    moved_sq = curvature = 0.0
    moved_max = -np.inf
    for r0, r1 in strip_bounds(x.shape):
        m, c = moved[: r1 - r0], change[: r1 - r0]
        np.subtract(x_new[r0:r1], x[r0:r1], out=m)
        np.subtract(grad_new[r0:r1], grad[r0:r1], out=c)
        moved_sq += float(np.einsum("ij,ij->", m, m))
        curvature += float(np.einsum("ij,ij->", m, c))
        moved_max = max(moved_max, float(m.max()))
    return moved_sq, curvature, moved_max


def _backtrack(step: float, slope: float, f_old: float, f_new: float) -> float:
    """Safeguarded quadratic-interpolation step, else half the step."""
    trial = -0.5 * step * step * slope / (f_new - f_old - step * slope)
    return trial if STEP_SIGMA1 <= trial <= STEP_SIGMA2 * step else step / 2.0


def _spectral_step(moved_sq: float, curvature: float) -> float:
    """Barzilai–Borwein ``theta = m·m / m·(grad change)``, safeguarded to its interval."""
    if curvature <= 0:
        return THETA_MAX
    return min(THETA_MAX, max(THETA_MIN, moved_sq / curvature))


def minimise(
    x: np.ndarray, evaluate: Evaluate, iterations: int, *, fixed_sum: bool
) -> tuple[np.ndarray, list[float]]:
    """Minimise ``evaluate``'s energy from the start point ``x`` (overwritten) by SPG.

    Parameters
    ----------
    x : numpy.ndarray
        The start point, 2-D float64 in [0, 1]; the solver's first iterate.
    evaluate : callable
        ``evaluate(point, grad)`` returns the energy at ``point`` and, when ``grad`` is an
        array rather than None, writes the gradient into it.
    iterations : int
        Outer iterations, >= 1.
    fixed_sum : bool
        Keep ``sum(X) = sum(x)``: the feasible set is the box [0, 1] intersected with that
        hyperplane, else the box alone.

    Returns
    -------
    numpy.ndarray
        The last iterate (one of the solver's buffers).
    list of float
        The energy of the start point and of each accepted iterate (non-increasing).
    """
    x_new, grad, grad_new = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    total = float(x.sum())
    f_old = evaluate(x, grad)
    energies = [f_old]
    theta = THETA_INITIAL
    for _ in range(iterations):
        shift = mean_shift(x, grad, theta, total) if fixed_sum else 0.0
        slope = _trial_point(x, grad, theta, 1.0, x_new, shift)
        f_new, step = evaluate(x_new, grad_new), 1.0  # gradient is kept if step 1 holds
        while f_new > f_old + ARMIJO_GAMMA * step * slope:  # monotone Armijo backtracking
            step = _backtrack(step, slope, f_old, f_new)
            _trial_point(x, grad, theta, step, x_new, shift)
            f_new = evaluate(x_new, None)
        if step != 1.0:
            evaluate(x_new, grad_new)
        energies.append(f_new)
        moved_sq, curvature, moved_max = _secant(x_new, x, grad_new, grad)
        x, x_new, grad, grad_new = x_new, x, grad_new, grad
        if moved_max < 0:  # the reference's early exit (tolerance 0 on max(x_new - x_old))
            break
        theta, f_old = _spectral_step(moved_sq, curvature), f_new
    return x, energies
