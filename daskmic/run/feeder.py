"""Feeding the per-micrograph unit to a cluster: a few tasks in flight, the rest as paths.

A :class:`Feeder` keeps at most ``2 × worker threads`` tasks submitted (each worker has the next
one queued when it finishes one), holds the other micrographs as paths, never pixels, and
rebuilds the tables after every ``batch_size`` completions while the workers go on. A task is
one micrograph, or a group of smaller ones (:func:`group_size`): scheduling a task costs the
driver (client and scheduler) about 2.5 ms of CPU and a worker 2 ms, more than a 128²
micrograph's compute and 4 % of a 2048² one's, so micrographs travel in groups of up to
:data:`GROUP_PX` pixels (:func:`daskmic.run.unit.process_micrographs`); each still runs the
unit alone (one bad micrograph fails alone) and gets its own record, the group's records made
durable together. A rebuild is spaced so that rebuilds take at most :data:`PUBLISH_SHARE` of
the driver's time, the first one included (:data:`FIRST_REBUILD_S`), which keeps a session of
thousands of micrographs streaming at the workers' pace. The batch driver
(:func:`daskmic.run.driver.process_sources`) gives it a fixed list, and so no rebuild in the
last stretch of the run (:func:`worth_a_rebuild`), whose tables the final one would replace at
once after waiting for it; streaming (:func:`daskmic.watch`) adds micrographs as they arrive,
so the workers never wait for a batch to drain.

A task whose worker process dies (a crash, the system's out-of-memory kill, a worker a cluster
gave up on) does not stop the run: its micrographs run again one at a time with nothing beside
them, so a micrograph that kills its worker again is the one that does it, and it fails alone
(:func:`daskmic.run.unit.record_lost`) while the others go on.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from queue import Empty, SimpleQueue
from time import monotonic
from typing import Any, Final

from daskmic.cluster.threads import worker_threads
from daskmic.io.storage import is_url, location
from daskmic.run.config import RunConfig
from daskmic.run.unit import Row, Source, process_micrographs, record_lost

PUBLISH_SHARE: Final = 0.1
"""Largest share of the wall-clock time spent rebuilding tables before the last one."""

FIRST_REBUILD_S: Final = 0.2
"""What the first rebuild is taken to cost until one is timed, so that it too keeps to
:data:`PUBLISH_SHARE`: it comes no sooner than 1.8 s after the feeder starts. A fresh
folder's first rebuild (the STAR, CSV and XMD tables, three Scipion sets, the zarr store)
took 0.1-0.25 s of the driver's CPU on two shared cores, a tenth to a fifth of a whole run of
16 × 2048² micrographs on a local cluster there, whose last rebuild replaces its tables at
once."""

GROUP_PX: Final = 2**23
"""Pixels of micrographs one task holds at most (unless one micrograph alone is larger): two
2048² micrographs (the typical steps take 0.2 s of a worker for both, the task 2 % more), 512
of 128²; a 4096² one travels alone."""

THREADS_REFRESH_S: Final = 2.0
"""How long the feeder trusts its count of worker threads (asking the scheduler is a round
trip; an adaptive cluster's workers come and go slowly)."""


def group_size(shape: tuple[int, int] | None, queued: int, tasks: int) -> int:
    """How many micrographs of ``shape`` to put in one task.

    Up to :data:`GROUP_PX` pixels, and no more than ``queued / tasks`` so that a small set
    still spreads over the ``tasks`` the workers can take at once.

    Examples
    --------
    >>> group_size((128, 128), queued=2000, tasks=4), group_size((4096, 4096), 2000, 4)
    (500, 1)
    >>> group_size((2048, 2048), queued=64, tasks=4)
    2
    >>> group_size((128, 128), queued=8, tasks=4), group_size(None, 8, 4)
    (2, 1)
    """
    if shape is None:  # unreadable: it fails at once, alone
        return 1
    return max(1, min(GROUP_PX // max(shape[0] * shape[1], 1), queued // max(tasks, 1)))


def worth_a_rebuild(left: int, done: int, elapsed_s: float, rebuild_s: float) -> bool:
    """Whether tables rebuilt now in a run with ``left`` micrographs to do, after ``done`` in
    ``elapsed_s``, would stand long enough to be worth a rebuild of ``rebuild_s``.

    Not when the work left, at the pace so far, ends sooner than the rebuild makes the next
    one wait (:data:`PUBLISH_SHARE`): the run's final rebuild would replace the tables at once,
    after waiting for this one.

    Examples
    --------
    >>> worth_a_rebuild(left=8, done=8, elapsed_s=0.6, rebuild_s=0.2)  # 0.6 s left, wait 1.8 s
    False
    >>> worth_a_rebuild(left=900, done=100, elapsed_s=10.0, rebuild_s=0.2)  # 90 s left
    True
    """
    if done <= 0:
        return True
    return left * elapsed_s / done >= _spacing(rebuild_s)


def _spacing(rebuild_s: float) -> float:
    """Seconds to wait after a rebuild of ``rebuild_s`` so that it is :data:`PUBLISH_SHARE` of
    the time."""
    return rebuild_s * (1 - PUBLISH_SHARE) / PUBLISH_SHARE


class Feeder:
    """Submit micrographs to ``client`` as capacity frees up; publish every ``batch_size``.

    Parameters
    ----------
    client : distributed.Client or daskmic.cluster.inprocess.InProcess
        Where the unit runs.
    out_dir : path-like
        The output folder (bound to ``digest``).
    config : RunConfig
        The run's steps and options.
    digest : str
        The parameters' hash the output folder is bound to.
    batch_size : int
        Rebuild the tables and the zarr store after this many completions, unless nothing is
        left to do (the caller publishes once at the end), the last rebuild (before the
        first, the feeder's start) was so recent that another would take more than
        :data:`PUBLISH_SHARE` of the time, or all the micrographs were added and those left
        would be done before the next rebuild could come (:func:`worth_a_rebuild`).
    on_row : callable, optional
        Called with each micrograph's row as it completes.
    on_publish : callable, optional
        Called after each rebuild (the live report); its time counts as the rebuild's.
    """

    def __init__(
        self,
        client: Any,
        out_dir: str | os.PathLike[str],
        config: RunConfig,
        digest: str,
        *,
        batch_size: int,
        on_row: Callable[[Row], None] | None = None,
        on_publish: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        # workers may run in another directory; a URL is where it is
        self.out_dir = str(out_dir) if is_url(out_dir) else os.path.abspath(out_dir)
        self.config = config
        self.digest = digest
        self.batch_size = batch_size
        self.on_row = on_row
        self.on_publish = on_publish
        self._queue: deque[Source] = deque()
        self._suspects: deque[Source] = deque()  # in a task whose worker died; to run alone
        self._futures: dict[Any, tuple[list[Source], bool]] = {}  # → (group, run alone)
        self._done: SimpleQueue[Any] = SimpleQueue()
        self._since_publish = 0
        self._started = monotonic()
        self._next_publish = self._started + _spacing(FIRST_REBUILD_S)
        self._rebuild_s = FIRST_REBUILD_S  # the last rebuild's time (taken, before the first)
        self._completed = 0
        self._all_added = False
        self._threads = (0, -math.inf)  # (count, when counted)

    @property
    def busy(self) -> bool:
        """Whether micrographs are queued or in flight."""
        return bool(self._queue or self._suspects or self._futures)

    def add(self, sources: Iterable[Source], *, last: bool = False) -> None:
        """Queue ``sources`` (in order) and submit as many as there is room for.

        ``last``: no micrograph will be added after these (a batch run), so no rebuild is made
        in the run's last stretch (:func:`worth_a_rebuild`).
        """
        self._all_added = last
        self._queue.extend(sources)
        self._top_up()

    def _capacity(self) -> int:
        count, when = self._threads
        if monotonic() - when > THREADS_REFRESH_S:
            count = worker_threads(self.client)
            self._threads = (count, monotonic())
        return max(2 * count, 2)

    def _next_group(self, tasks: int) -> list[Source]:
        first = self._queue.popleft()
        group = [first]
        size = group_size(first.shape, len(self._queue) + 1, tasks)
        while len(group) < size and self._queue and self._queue[0].shape == first.shape:
            group.append(self._queue.popleft())
        return group

    def _top_up(self) -> None:
        if self._suspects:  # one at a time, nothing beside it, until none is left
            if not self._futures:
                self._submit([self._suspects.popleft()], alone=True)
            return
        if not self._queue:
            return
        capacity = self._capacity()
        for _ in range(capacity - len(self._futures)):
            if not self._queue:
                break
            self._submit(self._next_group(capacity), alone=False)

    def _submit(self, group: list[Source], alone: bool) -> None:
        key = f"micrographs-{self.digest}-{group[0].micrograph}-{len(group)}"
        future = self.client.submit(
            process_micrographs,
            group,
            self.config,
            self.out_dir,
            self.digest,
            key=f"{key}-alone" if alone else key,
            pure=False,
        )
        self._futures[future] = (group, alone)
        future.add_done_callback(self._done.put)  # called from the executor's thread

    def _results(self, done: list[Any]) -> list[list[Row]]:
        """The rows of the tasks ``done``; the micrographs of a lost task become suspects, and a
        suspect lost again, alone, is recorded failed."""
        tasks = [self._futures.pop(future) for future in done]
        try:
            return list(self.client.gather(done))  # one round trip for all (the usual case)
        except Exception:  # a task was lost: see each on its own
            pass
        results = []
        for future, (group, alone) in zip(done, tasks, strict=True):
            try:
                results.append(self.client.gather([future])[0])
            except Exception as error:
                if not alone:
                    self._suspects.extend(group)
                    continue
                reason = (
                    "its worker process died (or failed) while processing it, also when it ran "
                    f"alone: {type(error).__name__}: {error}"
                )
                results.append(
                    record_lost(group, self.config, self.out_dir, self.digest, reason)
                )
        return results

    def completed(self, timeout: float | None = None) -> list[Row]:
        """Rows of the micrographs that complete next; wait at most ``timeout`` seconds.

        Returns
        -------
        list of dict
            At least one row unless ``timeout`` passed first, nothing is in flight, or the
            tasks that completed were lost (their micrographs run again).
        """
        if not self._futures:
            return []
        try:
            done = [self._done.get(timeout=timeout)]
        except Empty:
            return []
        while not self._done.empty():
            done.append(self._done.get_nowait())
        rows = [row for group in self._results(done) for row in group]
        self._top_up()
        for row in rows:
            if self.on_row is not None:
                self.on_row(row)
        self._since_publish += len(rows)
        self._completed += len(rows)
        if (
            self._since_publish >= self.batch_size
            and self.busy
            and monotonic() >= self._next_publish
            and (not self._all_added or self._lasts())
        ):
            self._publish()
        return rows

    def _lasts(self) -> bool:
        """Whether the micrographs left keep the workers long enough for a rebuild now."""
        left = len(self._queue) + len(self._suspects)
        left += sum(len(group) for group, _ in self._futures.values())
        elapsed_s = monotonic() - self._started
        return worth_a_rebuild(left, self._completed, elapsed_s, self._rebuild_s)

    def flush(self) -> None:
        """Rebuild the tables (stream still open) if micrographs completed since the last time.

        Streaming calls it while waiting for arrivals, so what is done is visible downstream
        (a follower of ``micrographs.sqlite``) without waiting for the next batch.
        """
        if self._since_publish and not self.busy:
            self._publish()

    def _publish(self) -> None:
        from daskmic.run.publish import publish  # pandas, zarr: not before the first task

        started = monotonic()
        out = location(self.out_dir, self.config.storage_options)
        publish(out, self.config, stream_open=True)
        if self.on_publish is not None:
            self.on_publish()
        finished = monotonic()
        self._rebuild_s = finished - started
        self._next_publish = finished + _spacing(self._rebuild_s)
        self._since_publish = 0

    def rows(self) -> Iterator[Row]:
        """Every row, in completion order, until nothing is queued or in flight."""
        while self.busy:
            yield from self.completed()
