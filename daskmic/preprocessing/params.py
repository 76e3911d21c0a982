"""The preprocessing protocol's options, checked: :class:`PreprocessParams`.

Order (fixed, the protocol's): crop, log, bad pixels, invert, downsample, denoise, gaussian,
highpass, lowpass, normalize. Frequencies are in cycles/pixel of the grid at their step (after a
downsample, the downsampled grid); ``highpass_A``/``lowpass_A`` give the cutoff as a resolution
in ångström instead, converted with the pixel size at that step.
:mod:`daskmic.preprocessing.pipeline` turns the parameters into kernels; :func:`pipeline_geometry`
says what they do to one input's shape and pixel size (what validation checks).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields
from typing import Any, Final

import numpy as np

from daskmic.errors import UsageError
from daskmic.ops.crop import cropped_shape
from daskmic.ops.fourier import downsampled_shape
from daskmic.ops.kernel import Shape2D

ORDER: Final = (
    "crop",
    "log",
    "bad_pixels",
    "invert",
    "downsample",
    "denoise",
    "gaussian",
    "highpass",
    "lowpass",
    "normalize",
)
"""The protocol's order of operations."""

DEFAULTS: Final[dict[str, Any]] = {
    "crop": 10,
    "log": (4.431, 0.402, 336.6),
    "bad_pixels": 5.0,
    "downsample": 2.0,
    "denoise": 50,
    "gaussian": 2.0,
    "highpass": (0.002, 0.001),
    "lowpass": (0.4, 0.001),
}
"""Values an option takes when enabled without one (the protocol form's, spec A.1)."""

DEFAULT_WIDTH: Final = 0.001
"""Raised-cosine width (cycles/pixel) when only a cutoff is given."""


def _fail(name: str, value: Any, valid: str) -> UsageError:
    return UsageError(f"{name}: got {value!r}; valid range: {valid}")


def _number(name: str, value: Any, valid: str, check: Any = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise _fail(name, value, valid)
    number = float(value)
    if not math.isfinite(number) or (check is not None and not check(number)):
        raise _fail(name, value, valid)
    return number


def _whole(name: str, value: Any, minimum: int) -> int:
    valid = f"integers ≥ {minimum}"
    number = _number(name, value, valid, lambda v: v == int(v) and v >= minimum)
    return int(number)


def _pair(name: str, value: Any, first: str, first_check: Any) -> tuple[float, float]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise _fail(name, value, f"a pair ({first}, width)")
    cutoff = _number(f"{name} cutoff", value[0], first, first_check)
    width = _number(f"{name} width", value[1], "width > 0 cycles/pixel", lambda v: v > 0)
    return cutoff, width


@dataclass(frozen=True)
class PreprocessParams:
    """Options of the preprocessing protocol; ``None``/``False`` means the step is off.

    Parameters
    ----------
    crop : int, optional
        Pixels removed from each border (protocol default 10).
    log : tuple of float, optional
        ``(a, b, c)`` of ``a - b*ln(x + c)`` (default 4.431, 0.402, 336.6).
    bad_pixels : float, optional
        ``k``: pixels beyond ``mean ± k·std`` are replaced (default 5).
    invert : bool
        Multiply by -1.
    downsample : float, optional
        Fourier-crop factor ``> 1`` (default 2).
    denoise : int, optional
        Total-variation iterations ``≥ 1`` (default 50).
    gaussian : float, optional
        Real-space standard deviation in pixels of the grid at that step (default 2).
    highpass, lowpass : tuple of float, optional
        ``(cutoff, width)`` in cycles/pixel, cutoff in (0, 0.5) (defaults (0.002, 0.001) and
        (0.4, 0.001)).
    highpass_A, lowpass_A : tuple of float, optional
        ``(cutoff_A, width)``: the cutoff as a resolution in ångström (converted with the pixel
        size at that step), the width in cycles/pixel. Exclusive with ``highpass``/``lowpass``.
    normalize : bool
        Scale to mean 0, standard deviation 1.
    xmipp_compat : bool
        Reproduce the reference's quirks (Gaussian σ/√2, output pixel size × F, denoise in its
        [0, 1] domain, double-precision transforms).
    """

    crop: int | None = None
    log: tuple[float, float, float] | None = None
    bad_pixels: float | None = None
    invert: bool = False
    downsample: float | None = None
    denoise: int | None = None
    gaussian: float | None = None
    highpass: tuple[float, float] | None = None
    lowpass: tuple[float, float] | None = None
    highpass_A: tuple[float, float] | None = None
    lowpass_A: tuple[float, float] | None = None
    normalize: bool = False
    xmipp_compat: bool = False

    def __post_init__(self) -> None:
        for name, value in self._normalised().items():
            object.__setattr__(self, name, value)

    def _normalised(self) -> dict[str, Any]:
        """Each field checked and converted to its canonical type (tuples, int, float)."""
        values: dict[str, Any] = {}
        for name in ("invert", "normalize", "xmipp_compat"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise _fail(name, getattr(self, name), "True or False")
            values[name] = bool(getattr(self, name))
        checks = {
            "crop": lambda v: _whole("crop", v, 0),
            "log": self._log,
            "bad_pixels": lambda v: _number("bad_pixels", v, "k > 0", lambda k: k > 0),
            "downsample": lambda v: _number("downsample", v, "factor > 1", lambda f: f > 1),
            "denoise": lambda v: _whole("denoise", v, 1),
            "gaussian": lambda v: _number("gaussian", v, "sigma > 0 px", lambda s: s > 0),
            "highpass": lambda v: _pair("highpass", v, "0 < cutoff < 0.5", below_nyquist),
            "lowpass": lambda v: _pair("lowpass", v, "0 < cutoff < 0.5", below_nyquist),
            "highpass_A": lambda v: _pair("highpass_A", v, "cutoff_A > 0 Å", _positive),
            "lowpass_A": lambda v: _pair("lowpass_A", v, "cutoff_A > 0 Å", _positive),
        }
        for name, check in checks.items():
            value = getattr(self, name)
            values[name] = None if value is None else check(value)
        for band in ("highpass", "lowpass"):
            if values[band] is not None and values[f"{band}_A"] is not None:
                raise UsageError(
                    f"{band} and {band}_A both given ({values[band]!r}, {values[band + '_A']!r});"
                    " give the cutoff in cycles/pixel or in ångström, not both"
                )
        return values

    @staticmethod
    def _log(value: Any) -> tuple[float, float, float]:
        if not isinstance(value, tuple | list) or len(value) != 3:
            raise _fail("log", value, "three finite numbers (a, b, c)")
        a, b, c = (
            _number(f"log {n}", v, "finite reals") for n, v in zip("abc", value, strict=True)
        )
        return a, b, c

    @classmethod
    def from_options(cls, **options: Any) -> PreprocessParams:
        """Parameters from protocol-style options: ``True`` takes the default, a value is used.

        ``crop=True`` crops 10 px, ``highpass=(0.01, 0.005)`` sets both values, a bare number
        for ``highpass``/``lowpass``/``*_A`` is the cutoff with width 0.001; ``None``/``False``
        leave a step off. Lists are accepted for tuples (YAML/JSON).

        Raises
        ------
        TypeError
            For an unknown option name.
        ValueError
            For an invalid value, naming the option, the value and the valid range.
        """
        names = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(f"unknown preprocessing option(s) {unknown}; known: {sorted(names)}")
        values: dict[str, Any] = {}
        for name, value in options.items():
            flag = name in ("invert", "normalize", "xmipp_compat")
            if value is None or value is False:
                values[name] = False if flag else None
            elif value is True and not flag:
                if name not in DEFAULTS:
                    raise _fail(name, value, "a pair (cutoff_A, width); it has no default")
                values[name] = DEFAULTS[name]
            elif name in ("highpass", "lowpass", "highpass_A", "lowpass_A") and not isinstance(
                value, tuple | list | bool
            ):
                values[name] = (value, DEFAULT_WIDTH)
            else:
                values[name] = value
        return cls(**values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PreprocessParams:
        """Inverse of :meth:`to_dict`; also reads a config file's ``preprocess`` mapping."""
        return cls.from_options(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able parameters: every option, tuples as lists."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in fields(self)
            if f.init
        }

    def enabled(self) -> list[str]:
        """Names of the enabled steps, in the protocol's order."""
        on = {name for name in ORDER if getattr(self, name) not in (None, False)}
        on |= {band for band in ("highpass", "lowpass") if getattr(self, f"{band}_A") is not None}
        return [name for name in ORDER if name in on]

    def validate(self, shape: Shape2D | None = None, pixel_size_A: float | None = None) -> None:
        """Refuse invalid values before any work starts.

        The values themselves are checked when the parameters are made; with ``shape`` this
        also checks that the crop and the downsampling fit the image, and with a pixel size
        that the ångström cutoffs lie below Nyquist at their step.

        Raises
        ------
        UsageError
            Naming the parameter, the value given and the valid range.
        """
        self._normalised()
        if shape is not None:
            try:
                pipeline_geometry(self, shape, pixel_size_A, warn=False)
            except ValueError as error:  # the kernels' own checks: a step that cannot fit
                raise UsageError(str(error)) from error


ANISOTROPY_TOLERANCE: Final = 1e-4
"""Relative difference of the y and x downsampling ratios above which a warning is given."""


def below_nyquist(value: float) -> bool:
    """Whether a frequency in cycles/pixel lies in (0, 0.5)."""
    return 0 < value < 0.5


@dataclass(frozen=True)
class PipelineGeometry:
    """Shapes and pixel sizes along the pipeline for one input."""

    cropped: Shape2D
    output: Shape2D
    pixel_size_A: float  # at the Fourier steps, i.e. of the output, as recorded
    highpass: tuple[float, float] | None  # in cycles/pixel at its step
    lowpass: tuple[float, float] | None


def _known(pixel_size_A: float | None) -> bool:
    return pixel_size_A is not None and math.isfinite(pixel_size_A) and pixel_size_A > 0


def _band(params: PreprocessParams, band: str, pixel_size_A: float) -> tuple[float, float] | None:
    in_A = getattr(params, f"{band}_A")
    if in_A is None:
        return getattr(params, band)
    cutoff_A, width = in_A
    if not _known(pixel_size_A):
        raise ValueError(f"{band}_A: the pixel size is unknown, so {cutoff_A} Å cannot be used")
    cutoff = pixel_size_A / cutoff_A
    if not below_nyquist(cutoff):
        raise ValueError(
            f"{band}_A: cutoff {cutoff_A} Å is {cutoff:.4g} cycles/pixel at a pixel size of "
            f"{pixel_size_A:.4g} Å; valid range: cutoff_A > {2 * pixel_size_A:.4g} Å (Nyquist)"
        )
    return cutoff, width


def pipeline_geometry(
    params: PreprocessParams, shape: Shape2D, pixel_size_A: float | None, *, warn: bool
) -> PipelineGeometry:
    """Shapes, pixel size and band cutoffs along the pipeline (what validation checks)."""
    shape = (int(shape[0]), int(shape[1]))
    cropped = cropped_shape(shape, params.crop or 0)
    output = cropped
    size = float("nan") if pixel_size_A is None else float(pixel_size_A)
    if params.downsample is not None:
        try:
            output = downsampled_shape(cropped, params.downsample)
        except ValueError as error:
            raise ValueError(f"{error} (after cropping)") from None
        ratio_y, ratio_x = cropped[0] / output[0], cropped[1] / output[1]
        if warn and abs(ratio_y / ratio_x - 1) > ANISOTROPY_TOLERANCE:
            warnings.warn(
                f"downsample: {cropped[0]}×{cropped[1]} → {output[0]}×{output[1]} scales y by "
                f"{ratio_y:.6g} and x by {ratio_x:.6g}; the recorded pixel size uses x's",
                UserWarning,
                stacklevel=3,
            )
        size *= params.downsample if params.xmipp_compat else ratio_x
    return PipelineGeometry(
        cropped, output, size, _band(params, "highpass", size), _band(params, "lowpass", size)
    )


def _positive(value: float) -> bool:
    return value > 0


TYPICAL_SETTINGS = PreprocessParams.from_options(
    crop=True,
    bad_pixels=True,
    invert=True,
    downsample=True,
    gaussian=1.0,
    highpass=True,
    lowpass=(0.25, 0.02),
    normalize=True,
)
"""The protocol's typical settings (crop 10, bad pixels 5, invert, downsample 2, Gaussian 1,
high-pass 0.002/0.001, low-pass 0.25/0.02, normalize): the demo's and the benchmarks'."""
