"""Feeding the per-micrograph unit to a cluster: a few in flight, the rest as paths.

A :class:`Feeder` keeps at most ``2 × worker threads`` micrographs submitted (each worker has
the next one queued when it finishes one), holds the others as paths, never pixels, and
rebuilds the tables after every ``batch_size`` completions while the workers go on. A rebuild
rereads every record, so its cost grows with the set; rebuilds are spaced so that they take at
most :data:`PUBLISH_SHARE` of the driver's time, which keeps a session of thousands of
micrographs streaming at the workers' pace. The batch
driver (:func:`daskmic.run.driver.process_sources`) gives it a fixed list; streaming
(:func:`daskmic.watch`) adds micrographs as they arrive, so the workers never wait for a batch
to drain.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from queue import Empty, SimpleQueue
from time import monotonic
from typing import Final

from distributed import Client, Future

from daskmic.cluster.client import worker_threads
from daskmic.io.storage import is_url
from daskmic.run.config import RunConfig
from daskmic.run.publish import publish
from daskmic.run.unit import Row, Source, process_micrograph

PUBLISH_SHARE: Final = 0.1
"""Largest share of the wall-clock time spent rebuilding tables before the last one."""


class Feeder:
    """Submit micrographs to ``client`` as capacity frees up; publish every ``batch_size``.

    Parameters
    ----------
    client : distributed.Client
        Where the unit runs.
    out_dir : path-like
        The output folder (bound to ``digest``).
    config : RunConfig
        The run's steps and options.
    digest : str
        The parameters' hash the output folder is bound to.
    batch_size : int
        Rebuild the tables and the zarr store after this many completions, unless nothing is
        left to do (the caller publishes once at the end) or the last rebuild was so recent
        that another would take more than :data:`PUBLISH_SHARE` of the time.
    on_row : callable, optional
        Called with each micrograph's row as it completes.
    on_publish : callable, optional
        Called after each rebuild (the live report); its time counts as the rebuild's.
    """

    def __init__(
        self,
        client: Client,
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
        self._futures: set[Future] = set()
        self._done: SimpleQueue[Future] = SimpleQueue()
        self._since_publish = 0
        self._next_publish = monotonic()

    @property
    def busy(self) -> bool:
        """Whether micrographs are queued or in flight."""
        return bool(self._queue or self._futures)

    def add(self, sources: Iterable[Source]) -> None:
        """Queue ``sources`` (in order) and submit as many as there is room for."""
        self._queue.extend(sources)
        self._top_up()

    def _capacity(self) -> int:
        return max(2 * worker_threads(self.client), 2)

    def _top_up(self) -> None:
        room = self._capacity() - len(self._futures) if self._queue else 0
        for _ in range(min(room, len(self._queue))):
            source = self._queue.popleft()
            future = self.client.submit(
                process_micrograph,
                source,
                self.config,
                self.out_dir,
                self.digest,
                key=f"micrograph-{self.digest}-{source.micrograph}",
                pure=False,
            )
            self._futures.add(future)
            future.add_done_callback(self._done.put)  # called from distributed's thread

    def completed(self, timeout: float | None = None) -> list[Row]:
        """Rows of the micrographs that complete next; wait at most ``timeout`` seconds.

        Returns
        -------
        list of dict
            At least one row unless ``timeout`` passed first or nothing is in flight.
        """
        if not self._futures:
            return []
        try:
            done = [self._done.get(timeout=timeout)]
        except Empty:
            return []
        while not self._done.empty():
            done.append(self._done.get_nowait())
        rows = []
        for future in done:
            rows.append(future.result())  # the unit returns a row even for bad data
            future.release()
            self._futures.discard(future)
        self._top_up()
        for row in rows:
            if self.on_row is not None:
                self.on_row(row)
        self._since_publish += len(rows)
        if (
            self._since_publish >= self.batch_size
            and self.busy
            and monotonic() >= self._next_publish
        ):
            self._publish()
        return rows

    def flush(self) -> None:
        """Rebuild the tables (stream still open) if micrographs completed since the last time.

        Streaming calls it while waiting for arrivals, so what is done is visible downstream
        (a follower of ``micrographs.sqlite``) without waiting for the next batch.
        """
        if self._since_publish and not self.busy:
            self._publish()

    def _publish(self) -> None:
        started = monotonic()
        publish(Path(self.out_dir), self.config, stream_open=True)
        if self.on_publish is not None:
            self.on_publish()
        finished = monotonic()
        self._next_publish = finished + (finished - started) * (1 - PUBLISH_SHARE) / PUBLISH_SHARE
        self._since_publish = 0

    def rows(self) -> Iterator[Row]:
        """Every row, in completion order, until nothing is queued or in flight."""
        while self.busy:
            yield from self.completed()
