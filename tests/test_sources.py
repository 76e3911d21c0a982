"""One way from an input to a source, and the same checks before work, for batch and watch."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import starfile

import daskmic
from daskmic.errors import UsageError
from daskmic.run.config import RunConfig
from daskmic.run.sources import catalogue, check_run, sources_from
from daskmic.tilt.params import TiltParams


def test_a_catalogue_and_an_opened_set_describe_the_same_micrographs(write_micrographs, tmp_path):
    paths = write_micrographs(n=3, shape=(256, 256), pixel_size_A=1.5)
    (tmp_path / "raw" / "broken.mrc").write_bytes(b"not an mrc")
    star = tmp_path / "set.star"
    optics = pd.DataFrame(
        {"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["g"], "rlnMicrographPixelSize": [2.0]}
    )
    micrographs = pd.DataFrame(
        {
            "rlnMicrographName": [str(p) for p in paths] + [str(tmp_path / "raw" / "broken.mrc")],
            "rlnOpticsGroup": [1, 1, 1, 1],
            "rlnDefocusU": [1e4, 1.1e4, 1.2e4, 1.3e4],
        }
    )
    starfile.write({"optics": optics, "micrographs": micrographs}, star)
    for inputs, given in ((str(tmp_path / "raw"), None), (str(star), None), (str(star), 0.9)):
        listed, _ = catalogue(inputs, given)
        opened = sources_from(daskmic.open_micrographs(inputs, pixel_size_A=given))
        assert [s for s in listed if not s.error] == [s for s in opened if not s.error], inputs
        failed = [(s.micrograph, s.path, s.error) for s in listed if s.error]
        assert failed == [(s.micrograph, s.path, s.error) for s in opened if s.error], inputs
        assert len(failed) == 1
    assert [s.pixel_size_A for s in listed if not s.error] == [0.9] * 3  # the override, once
    assert [s.shape for s in listed] == [None, (256, 256), (256, 256), (256, 256)]


def test_the_checks_before_work_refuse_what_no_micrograph_supports(write_micrographs):
    listed, _ = catalogue([str(p) for p in write_micrographs(n=2, shape=(512, 512))])
    check_run(RunConfig(tilt=TiltParams(window_size=256)), listed)
    with pytest.raises(UsageError, match="resolution_A"):
        check_run(RunConfig(tilt=TiltParams(window_size=256, resolution_A=0.5)), listed)
    failed = [dataclasses.replace(s, error="unreadable", shape=None) for s in listed]
    check_run(RunConfig(tilt=TiltParams(window_size=256, resolution_A=0.5)), failed)


def test_a_stream_makes_the_checks_of_a_batch_run_before_any_work(
    write_micrographs, tmp_path, client
):
    """``watch`` used to skip them: every micrograph then failed alone with the same reason."""
    write_micrographs(n=2, shape=(512, 512))
    (tmp_path / "raw" / "CLOSED").write_bytes(b"")
    config = RunConfig(tilt=TiltParams(window_size=256, resolution_A=0.5))
    with pytest.raises(UsageError, match="resolution_A"):
        daskmic.run_batch(str(tmp_path / "raw"), tmp_path / "batch", config, client=client)
    with pytest.raises(UsageError, match="resolution_A"):
        daskmic.watch(
            tmp_path / "raw",
            tmp_path / "stream",
            config,
            settle_seconds=0.0,
            poll_seconds=0.05,
            client=client,
        )
    assert not (tmp_path / "stream" / "tilt.csv").exists(), "nothing was processed"
    assert not list((tmp_path / "stream" / ".daskmic" / "records").iterdir())
