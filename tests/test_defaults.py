"""One place for each option's default: the command line and the functions take it from there."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
import xarray as xr

import daskmic
from daskmic.cli import build_parser, preprocess_params, tilt_params
from daskmic.preprocessing.params import DEFAULTS, PreprocessParams
from daskmic.run.config import StreamOptions
from daskmic.tilt.ctf import Optics, ctf_2d
from daskmic.tilt.params import TiltParams


def _defaults(function) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def test_a_command_line_without_options_asks_for_the_defaults():
    parser = build_parser()
    tilt = parser.parse_args(["tilt", "raw", "-o", "out"])
    assert tilt_params(tilt) == TiltParams()
    watch = parser.parse_args(["watch", "raw", "-o", "out"])
    given = {
        "pattern": watch.pattern,
        "batch_size": watch.batch_size,
        "settle_seconds": watch.settle,
        "poll_seconds": watch.poll,
        "close_marker": watch.close_marker,
        "idle_timeout": watch.idle_timeout,
    }
    assert StreamOptions(**given) == StreamOptions()


def test_a_step_flag_alone_takes_the_protocol_default_the_help_shows(capsys):
    parser = build_parser()
    flags = ["--crop", "--log", "--bad-pixels", "--downsample", "--denoise", "--gaussian"]
    args = parser.parse_args(["preprocess", "raw", "-o", "out", *flags, "--highpass", "--lowpass"])
    assert preprocess_params(args) == PreprocessParams(**DEFAULTS)
    with pytest.raises(SystemExit):
        parser.parse_args(["preprocess", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for value in (10, 5, 50, "4.431 0.402 336.6", "0.002 0.001", "0.4 0.001"):
        assert f"(default {value})" in text


def test_a_filter_given_its_cutoff_alone_takes_the_default_width():
    args = build_parser().parse_args(
        ["preprocess", "raw", "-o", "out", "--highpass", "0.01", "--lowpass", "0.35", "0.02"]
    )
    params = preprocess_params(args)
    assert params.highpass == (0.01, DEFAULTS["highpass"][1])
    assert params.lowpass == (0.35, 0.02)


def test_the_functions_take_their_defaults_from_the_parameter_objects():
    tilt = _defaults(daskmic.tilt_analysis)
    for field in dataclasses.fields(TiltParams):
        assert tilt[field.name] == field.default, field.name
    watch = _defaults(daskmic.watch)
    for field in dataclasses.fields(StreamOptions):
        assert watch[field.name] == field.default, field.name
    ctf = _defaults(ctf_2d)
    for field in dataclasses.fields(Optics):
        assert ctf[field.name] == field.default, field.name


def test_the_resolution_is_resolution_A_everywhere_and_the_old_keyword_still_works():
    mics = xr.DataArray(
        np.random.default_rng(0).normal(size=(1, 512, 512)).astype(np.float32),
        dims=("micrograph", "y", "x"),
        coords={"micrograph": ["a"], "pixel_size_A": ("micrograph", [1.0])},
    )
    assert daskmic.tilt_analysis(mics, resolution_A=4.0).attrs["tilt_resolution_A"] == 4.0
    with pytest.warns(DeprecationWarning, match="resolution_A"):
        old = daskmic.tilt_analysis(mics, resolution=4.0)
    assert old.attrs["tilt_resolution_A"] == 4.0
