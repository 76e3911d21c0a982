"""TiltParams: the protocol's ranges, refused before any work with a clear message."""

from __future__ import annotations

import dataclasses

import pytest

from daskmic.tilt.params import TiltParams, check_thresholds


def test_defaults_are_the_protocols():
    params = TiltParams()
    assert params.window_size == "auto"
    assert params.resolution_A == 3.0
    assert (params.mean_threshold, params.std_threshold) == (0.5, 0.1)
    assert params.xmipp_compat is False


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("window_size", 255, "window_size"),
        ("window_size", "512", "window_size"),
        ("window_size", True, "window_size"),
        ("window_size", 512.0, "window_size"),
        ("resolution_A", 0.0, "resolution_A"),
        ("resolution_A", -3.0, "resolution_A"),
        ("resolution_A", float("inf"), "resolution_A"),
        ("mean_threshold", -0.01, r"mean_threshold must be in \[0, 1\]"),
        ("mean_threshold", 1.01, r"mean_threshold must be in \[0, 1\]"),
        ("std_threshold", 0.0, "std_threshold must be a finite number > 0"),
        ("std_threshold", float("nan"), "std_threshold"),
        ("xmipp_compat", 1, "xmipp_compat"),
    ],
)
def test_invalid_parameters_name_parameter_value_and_range(field, value, words):
    with pytest.raises(ValueError, match=words) as caught:
        TiltParams(**{field: value})
    assert repr(value) in str(caught.value)


def test_range_ends_are_accepted():
    TiltParams(window_size=256, mean_threshold=0.0)
    TiltParams(mean_threshold=1.0, std_threshold=1e-9)


def test_dict_round_trip_and_unknown_keys():
    params = TiltParams(window_size=512, resolution_A=4.0, xmipp_compat=True)
    assert TiltParams.from_dict(params.to_dict()) == params
    with pytest.raises(ValueError, match="unknown tilt parameters"):
        TiltParams.from_dict({"resolution": 3.0})


def test_replace_revalidates():
    with pytest.raises(ValueError, match="mean_threshold"):
        dataclasses.replace(TiltParams(), mean_threshold=2.0)


def test_check_thresholds_alone():
    check_thresholds(0.5, 0.1)
    with pytest.raises(ValueError, match="std_threshold"):
        check_thresholds(0.5, -1.0)


def test_validate_for_set_accepts_when_one_micrograph_fits():
    params = TiltParams(resolution_A=3.0)
    # 1 Å: sub 85 px of a 256 px window; 20 Å: sub 12 px, too coarse; the set is still usable
    params.validate_for_set([(1024, 1024), (1024, 1024)], [20.0, 1.0])


def test_validate_for_set_refuses_a_resolution_no_micrograph_supports():
    with pytest.raises(ValueError, match="resolution_A=0.5 suits no micrograph"):
        TiltParams(resolution_A=0.5).validate_for_set([(1024, 1024)], [1.0])  # beyond Nyquist
    with pytest.raises(ValueError, match="resolution_A=20.0 suits no micrograph"):
        TiltParams(resolution_A=20.0).validate_for_set([(1024, 1024)], [1.0])  # sub 12 px


def test_validate_for_set_window_size_errors():
    with pytest.raises(ValueError, match="window_size=2048 px fits no micrograph"):
        TiltParams(window_size=2048).validate_for_set([(1024, 1024)], [1.0])
    # automatic windows on micrographs that are all too small: each fails alone, no usage error
    TiltParams().validate_for_set([(600, 600)], [1.0])
    with pytest.raises(ValueError, match="2 shapes but 1 pixel sizes"):
        TiltParams().validate_for_set([(1024, 1024)] * 2, [1.0])
