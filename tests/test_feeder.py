"""The feeder on a real cluster: everything completes, at most 2 x threads in flight, and
rebuilding the tables takes at most its share of the time."""

from __future__ import annotations

import time

import pytest

import daskmic.run.publish
from daskmic.preprocessing.params import PreprocessParams
from daskmic.run.config import RunConfig
from daskmic.run.driver import prepare
from daskmic.run.feeder import PUBLISH_SHARE, Feeder

CONFIG = RunConfig(preprocess=PreprocessParams(crop=2, invert=True), write_stack=False)


@pytest.fixture
def sources(write_micrographs, tmp_path):
    paths = write_micrographs(n=6, shape=(64, 64))
    return prepare([str(p) for p in paths], tmp_path / "out", CONFIG)


def _publishes(monkeypatch, seconds: float) -> list[float]:
    """Record when the feeder rebuilds the tables, as if each rebuild took ``seconds``."""
    times: list[float] = []

    def publish(out_dir, config, *, stream_open):
        assert stream_open, "a rebuild during the run leaves the Scipion sets open"
        times.append(time.monotonic())
        time.sleep(seconds)
        return []

    monkeypatch.setattr(daskmic.run.publish, "publish", publish)  # imported when used
    return times


def _feed(client, sources, tmp_path, monkeypatch, *, batch_size: int) -> list[dict]:
    found, digest = sources
    in_flight = []
    feeder = Feeder(client, tmp_path / "out", CONFIG, digest, batch_size=batch_size)
    submit = client.submit

    def counting_submit(*args, **kwargs):
        in_flight.append(len(feeder._futures) + 1)
        return submit(*args, **kwargs)

    monkeypatch.setattr(client, "submit", counting_submit)
    feeder.add(found)
    rows = list(feeder.rows())
    assert max(in_flight) <= 2 * sum(client.nthreads().values())
    return rows


def test_every_micrograph_completes_once(client, sources, tmp_path, monkeypatch):
    rows = _feed(client, sources, tmp_path, monkeypatch, batch_size=4)
    assert sorted(r["micrograph"] for r in rows) == [f"mic_{i:03d}" for i in range(6)]
    assert {r["status"] for r in rows} == {"done"}


def test_quick_rebuilds_follow_every_batch_but_the_last(client, sources, tmp_path, monkeypatch):
    times = _publishes(monkeypatch, 0.0)
    _feed(client, sources, tmp_path, monkeypatch, batch_size=2)
    assert len(times) == 2, "after 2 and 4 of 6; the caller publishes the last"


def test_slow_rebuilds_are_spaced_to_their_share_of_the_time(
    client, sources, tmp_path, monkeypatch
):
    seconds = 0.4
    times = _publishes(monkeypatch, seconds)
    _feed(client, sources, tmp_path, monkeypatch, batch_size=1)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert times, "the first batch is still published"
    assert all(gap >= seconds / PUBLISH_SHARE * 0.99 for gap in gaps), gaps
