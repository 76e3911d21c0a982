"""The contrast transfer function (CTF) of a transmission electron microscope, in plain numpy.

Conventions (those of RELION and CTFFIND):

- **Defocus is underfocus, positive, in ångström.** ``defocus_u_A`` is the defocus along the
  direction ``astigmatism_angle_deg``, ``defocus_v_A`` along the perpendicular one; by
  convention ``defocus_u_A >= defocus_v_A`` (:func:`canonical_astigmatism` brings any triple
  to that form; the CTF itself is the same either way).
- **Angles** are counter-clockwise from the +x (column) axis, with row 0 shown at the bottom
  (MRC/IMOD/RELION display), i.e. the angle of a frequency ``(k_y, k_x)`` is
  ``atan2(k_y, k_x)`` with ``k_y`` along array axis 0.
- **Frequency grids** follow numpy's FFT layout (zero frequency at index 0, not shifted):
  ``rfft=True`` gives the ``numpy.fft.rfft2`` half-plane of shape ``(ny, nx // 2 + 1)``,
  ``rfft=False`` the full ``numpy.fft.fft2`` grid of shape ``(ny, nx)``. For even sizes the
  Nyquist column is at +1/2 on the rfft grid (``rfftfreq``) and at -1/2 on the full grid
  (``fftfreq``), as in numpy.

Notes
-----
With spatial frequency ``k`` (1/Å) at angle ``α``, the local defocus is

.. math:: Δf(α) = \\tfrac12 (Δf_U + Δf_V) + \\tfrac12 (Δf_U - Δf_V) \\cos 2(α - α_{ast})

and the phase aberration is

.. math:: χ(k, α) = π λ Δf(α) k^2 - \\tfrac{π}{2} C_s λ^3 k^4 + φ + \\arcsin(w)

with ``λ`` the relativistic electron wavelength, ``C_s`` the spherical aberration (Å),
``φ`` the additional phase shift (phase plate) and ``w`` the amplitude contrast fraction. The
CTF is ``sin χ``: RELION's sign (``-sin`` of its negated argument), positive at low frequency
for underfocus. The image of a weak phase object ``ψ`` is ``1 - 2 F⁻¹[Ψ · CTF]``, so
particles appear dark in underfocus. Zeros of the CTF are where ``χ = nπ``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_PLANCK_J_S = 6.62607015e-34
_ELECTRON_MASS_KG = 9.1093837015e-31
_ELEMENTARY_CHARGE_C = 1.602176634e-19
_SPEED_OF_LIGHT_M_S = 299792458.0


def electron_wavelength_A(voltage_kV: float) -> float:
    """Relativistic wavelength of electrons accelerated through ``voltage_kV``.

    Parameters
    ----------
    voltage_kV : float
        Acceleration voltage in kilovolts, > 0.

    Returns
    -------
    float
        Wavelength in ångström: ``h / sqrt(2 m e V (1 + e V / (2 m c²)))``; 0.019687 Å at 300 kV.
    """
    if not voltage_kV > 0:
        raise ValueError(f"voltage_kV must be > 0, got {voltage_kV}")
    energy_J = _ELEMENTARY_CHARGE_C * voltage_kV * 1e3
    rest_J = _ELECTRON_MASS_KG * _SPEED_OF_LIGHT_M_S**2
    momentum = math.sqrt(2.0 * _ELECTRON_MASS_KG * energy_J * (1.0 + energy_J / (2.0 * rest_J)))
    return _PLANCK_J_S / momentum * 1e10


@dataclass(frozen=True)
class Optics:
    """Microscope parameters that do not vary within a micrograph.

    Parameters
    ----------
    voltage_kV : float
        Acceleration voltage, > 0.
    spherical_aberration_mm : float
        Spherical aberration Cs, >= 0.
    amplitude_contrast : float
        Amplitude contrast fraction, in [0, 1).
    phase_shift_deg : float
        Additional phase shift (phase plate), degrees.
    """

    voltage_kV: float = 300.0
    spherical_aberration_mm: float = 2.7
    amplitude_contrast: float = 0.07
    phase_shift_deg: float = 0.0

    def __post_init__(self) -> None:
        electron_wavelength_A(self.voltage_kV)
        if not self.spherical_aberration_mm >= 0:
            raise ValueError(
                f"spherical_aberration_mm must be >= 0, got {self.spherical_aberration_mm}"
            )
        if not 0 <= self.amplitude_contrast < 1:
            raise ValueError(f"amplitude_contrast must be in [0, 1), got {self.amplitude_contrast}")

    @property
    def wavelength_A(self) -> float:
        """Electron wavelength in ångström."""
        return electron_wavelength_A(self.voltage_kV)

    @property
    def constant_phase_rad(self) -> float:
        """Phase added to χ at every frequency: amplitude contrast plus phase shift."""
        return math.asin(self.amplitude_contrast) + math.radians(self.phase_shift_deg)

    def chi(self, k2_invA2: np.ndarray, defocus_A: np.ndarray | float) -> np.ndarray:
        """Phase aberration χ (radians) at squared frequency ``k2_invA2`` (1/Å²)."""
        lam = self.wavelength_A
        cs_A = self.spherical_aberration_mm * 1e7
        return (
            math.pi * lam * defocus_A * k2_invA2
            - 0.5 * math.pi * cs_A * lam**3 * k2_invA2 * k2_invA2
            + self.constant_phase_rad
        )


def frequency_grid(
    shape: tuple[int, int], pixel_size_A: float, *, rfft: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Spatial frequency components on the FFT grid of an image.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(ny, nx)``.
    pixel_size_A : float
        Pixel size in ångström, > 0.
    rfft : bool
        ``True`` for the ``rfft2`` half-plane, ``False`` for the full ``fft2`` grid.

    Returns
    -------
    ky, kx : numpy.ndarray
        Broadcastable float64 arrays of shape ``(ny, 1)`` and ``(1, nx')`` in 1/Å.
    """
    ny, nx = (int(n) for n in shape)
    if ny < 1 or nx < 1:
        raise ValueError(f"shape must have two positive sizes, got {shape}")
    if not pixel_size_A > 0:
        raise ValueError(f"pixel_size_A must be > 0, got {pixel_size_A}")
    ky = np.fft.fftfreq(ny, d=pixel_size_A)[:, None]
    kx = (np.fft.rfftfreq if rfft else np.fft.fftfreq)(nx, d=pixel_size_A)[None, :]
    return ky, kx


def astigmatic_defocus(
    angle_rad: np.ndarray, defocus_u_A: float, defocus_v_A: float, astigmatism_angle_deg: float
) -> np.ndarray:
    """Defocus (Å) seen along direction ``angle_rad`` of an astigmatic objective lens."""
    mean = 0.5 * (defocus_u_A + defocus_v_A)
    half = 0.5 * (defocus_u_A - defocus_v_A)
    return mean + half * np.cos(2.0 * (angle_rad - math.radians(astigmatism_angle_deg)))


def canonical_astigmatism(
    defocus_u_A: float, defocus_v_A: float, astigmatism_angle_deg: float
) -> tuple[float, float, float]:
    """Return the same astigmatism with ``U >= V`` and the angle in [0, 180)."""
    if defocus_u_A < defocus_v_A:
        defocus_u_A, defocus_v_A = defocus_v_A, defocus_u_A
        astigmatism_angle_deg += 90.0
    return float(defocus_u_A), float(defocus_v_A), float(astigmatism_angle_deg % 180.0)


def ctf_1d(
    k_invA: np.ndarray,
    defocus_A: float | np.ndarray,
    *,
    voltage_kV: float = 300.0,
    spherical_aberration_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    phase_shift_deg: float = 0.0,
) -> np.ndarray:
    """CTF along one direction: ``sin χ(k)`` at frequencies ``k_invA`` (1/Å), float64."""
    optics = Optics(voltage_kV, spherical_aberration_mm, amplitude_contrast, phase_shift_deg)
    k = np.asarray(k_invA, dtype=np.float64)
    return np.sin(optics.chi(k * k, defocus_A))


def ctf_2d(
    shape: tuple[int, int],
    pixel_size_A: float,
    defocus_u_A: float,
    defocus_v_A: float,
    astigmatism_angle_deg: float,
    voltage_kV: float = 300.0,
    spherical_aberration_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    phase_shift_deg: float = 0.0,
    *,
    rfft: bool = True,
) -> np.ndarray:
    """The CTF on the FFT grid of an image of ``shape`` (see the module conventions).

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(ny, nx)``.
    pixel_size_A : float
        Pixel size in ångström, > 0.
    defocus_u_A, defocus_v_A : float
        Underfocus (positive, Å) along the astigmatism angle and perpendicular to it.
    astigmatism_angle_deg : float
        Direction of ``defocus_u_A``, counter-clockwise from +x, degrees.
    voltage_kV : float
        Acceleration voltage, > 0.
    spherical_aberration_mm : float
        Spherical aberration, >= 0.
    amplitude_contrast : float
        Amplitude contrast fraction in [0, 1).
    phase_shift_deg : float
        Additional phase shift, degrees.
    rfft : bool
        ``True`` (default): the ``rfft2`` grid ``(ny, nx // 2 + 1)``; ``False``: the full
        ``fft2`` grid ``(ny, nx)``. Zero frequency at index ``[0, 0]`` in both.

    Returns
    -------
    numpy.ndarray
        ``sin χ`` as float32.
    """
    optics = Optics(voltage_kV, spherical_aberration_mm, amplitude_contrast, phase_shift_deg)
    ky, kx = frequency_grid(shape, pixel_size_A, rfft=rfft)
    defocus = astigmatic_defocus(
        np.arctan2(ky, kx), defocus_u_A, defocus_v_A, astigmatism_angle_deg
    )
    return np.sin(optics.chi(ky * ky + kx * kx, defocus)).astype(np.float32)
