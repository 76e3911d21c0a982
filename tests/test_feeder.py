"""The feeder on a real cluster: everything completes, at most 2 x threads in flight, small
micrographs travel in groups (each failing alone), and rebuilding the tables takes at most its
share of the time, the first rebuild included."""

from __future__ import annotations

import time

import pytest

import daskmic.run.feeder
import daskmic.run.publish
from daskmic.preprocessing.params import PreprocessParams
from daskmic.run.config import RunConfig
from daskmic.run.driver import prepare
from daskmic.run.feeder import PUBLISH_SHARE, Feeder, worth_a_rebuild
from daskmic.run.manifest import Manifest

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


def _feed(
    client, sources, tmp_path, monkeypatch, *, batch_size: int, on_row=None, last: bool = False
) -> list[dict]:
    found, digest = sources
    in_flight = []
    feeder = Feeder(
        client, tmp_path / "out", CONFIG, digest, batch_size=batch_size, on_row=on_row
    )
    submit = client.submit

    def counting_submit(*args, **kwargs):
        in_flight.append(len(feeder._futures) + 1)
        return submit(*args, **kwargs)

    monkeypatch.setattr(client, "submit", counting_submit)
    feeder.add(found, last=last)
    rows = list(feeder.rows())
    assert max(in_flight) <= 2 * sum(client.nthreads().values())
    return rows


def test_every_micrograph_completes_once(client, sources, tmp_path, monkeypatch):
    rows = _feed(client, sources, tmp_path, monkeypatch, batch_size=4)
    assert sorted(r["micrograph"] for r in rows) == [f"mic_{i:03d}" for i in range(6)]
    assert {r["status"] for r in rows} == {"done"}


def test_quick_rebuilds_follow_every_batch_but_the_last(client, sources, tmp_path, monkeypatch):
    monkeypatch.setattr(daskmic.run.feeder, "FIRST_REBUILD_S", 0.0)  # quick from the first on
    seen: list[str] = []
    at: list[int] = []  # rows handed out when each rebuild started

    def publish(out_dir, config, *, stream_open):
        at.append(len(seen))
        return []

    monkeypatch.setattr(daskmic.run.publish, "publish", publish)
    _feed(client, sources, tmp_path, monkeypatch, batch_size=2, on_row=seen.append)
    # completions may arrive together on a busy machine: a rebuild follows each delivery that
    # brings the rows since the last rebuild to 2 or more, while micrographs remain
    steps = [b - a for a, b in zip([0, *at], at, strict=False)]
    assert at and all(step >= 2 for step in steps) and at[-1] < 6, at
    assert len(at) <= 2, "after 2 and 4 of 6 at most; the caller publishes the last"


def test_slow_rebuilds_are_spaced_to_their_share_of_the_time(
    client, sources, tmp_path, monkeypatch
):
    monkeypatch.setattr(daskmic.run.feeder, "FIRST_REBUILD_S", 0.0)
    seconds = 0.4
    times = _publishes(monkeypatch, seconds)
    _feed(client, sources, tmp_path, monkeypatch, batch_size=1)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert times, "the first batch is still published"
    assert all(gap >= seconds / PUBLISH_SHARE * 0.99 for gap in gaps), gaps


def test_a_run_shorter_than_the_first_rebuilds_share_rebuilds_only_at_its_end(
    client, sources, tmp_path, monkeypatch
):
    """The first rebuild is taken to cost ``FIRST_REBUILD_S`` until one is timed."""
    monkeypatch.setattr(daskmic.run.feeder, "FIRST_REBUILD_S", 3600.0)
    times = _publishes(monkeypatch, 0.0)
    rows = _feed(client, sources, tmp_path, monkeypatch, batch_size=1)
    assert len(rows) == 6 and times == [], "none within 9 h of the start"


def test_small_micrographs_travel_in_groups_and_a_bad_one_fails_alone(
    client, write_micrographs, tmp_path, monkeypatch
):
    paths = write_micrographs(n=40, shape=(32, 32), folder="small")
    paths[7].write_bytes(paths[7].read_bytes()[:-100])  # truncated: its pixels cannot be read
    found, digest = prepare([str(p) for p in paths], tmp_path / "grouped", CONFIG)
    groups, submit = [], client.submit

    def counting_submit(function, sources, *args, **kwargs):
        groups.append([s.micrograph for s in sources])
        return submit(function, sources, *args, **kwargs)

    monkeypatch.setattr(client, "submit", counting_submit)
    feeder = Feeder(client, tmp_path / "grouped", CONFIG, digest, batch_size=100)
    feeder.add(found)
    rows = {row["micrograph"]: row for row in feeder.rows()}
    names = [f"mic_{i:03d}" for i in range(40)]
    assert sorted(name for group in groups for name in group) == names, "each sent once"
    assert len(groups) < len(names) and max(map(len, groups)) > 1
    assert sorted(rows) == names
    assert rows["mic_007"]["status"] == "failed" and rows["mic_007"]["error"]
    assert {rows[n]["status"] for n in names if n != "mic_007"} == {"done"}
    records = Manifest(tmp_path / "grouped").rows()
    assert [r["micrograph"] for r in records] == names, "a record per micrograph"


@pytest.mark.parametrize(
    ("left", "done", "elapsed_s", "rebuild_s", "worth"),
    [
        (8, 8, 0.6, 0.2, False),  # 0.6 s of work left; the rebuild would hold the next 1.8 s
        (8, 8, 2.0, 0.2, True),  # 2 s left
        (900, 100, 10.0, 1.0, True),  # 90 s left, next rebuild in 9 s
        (10, 100, 10.0, 1.0, False),  # 1 s left
        (5, 0, 0.0, 0.2, True),  # no pace yet
    ],
)
def test_a_rebuild_is_worth_it_when_the_work_left_outlasts_its_spacing(
    left, done, elapsed_s, rebuild_s, worth
):
    assert worth_a_rebuild(left, done, elapsed_s, rebuild_s) is worth


def test_a_batch_asks_before_each_rebuild_whether_the_work_left_is_worth_it(
    client, sources, tmp_path, monkeypatch
):
    """All micrographs in at once (``last``): the rebuilds of the run's last stretch are left
    to the caller's final one; a stream, which may get more, is never asked."""
    monkeypatch.setattr(daskmic.run.feeder, "FIRST_REBUILD_S", 0.0)
    asked: list[tuple[int, int]] = []

    def never(left, done, elapsed_s, rebuild_s):
        asked.append((left, done))
        return False

    monkeypatch.setattr(daskmic.run.feeder, "worth_a_rebuild", never)
    times = _publishes(monkeypatch, 0.0)
    rows = _feed(client, sources, tmp_path, monkeypatch, batch_size=1, last=True)
    assert len(rows) == 6 and times == []
    assert asked and all(left + done == 6 and left > 0 for left, done in asked), asked
    asked.clear()
    _feed(client, sources, tmp_path / "stream", monkeypatch, batch_size=1)
    assert asked == [] and times, "a stream rebuilds as before"
