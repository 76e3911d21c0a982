"""A progress bar for long runs: futures as they complete, counted against the total."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")


def track(
    completed: Iterable[T],
    *,
    total: int,
    description: str = "micrographs",
    stream: TextIO | None = None,
    enabled: bool | None = None,
) -> Iterator[T]:
    """Yield the items of ``completed`` while a progress bar counts them against ``total``.

    Meant for results as they complete: ``for row in track(feeder.rows(), total=n): ...``;
    ``total`` is what the bar aims at. Lines printed to stdout meanwhile appear above the
    bar.

    Parameters
    ----------
    completed : iterable
        The completed futures (or anything), in completion order.
    total : int
        How many items the run expects.
    description : str
        What is counted, shown left of the bar.
    stream : file-like, optional
        Where the bar goes (default stderr).
    enabled : bool, optional
        Show the bar; by default only when ``stream`` is a terminal, so logs and pipes stay
        clean.

    Yields
    ------
    object
        The items of ``completed``, unchanged and in the same order.
    """
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    stream = sys.stderr if stream is None else stream
    if enabled is None:
        enabled = bool(getattr(stream, "isatty", lambda: False)())
    if not enabled:
        yield from completed
        return
    from rich.console import Console  # only for a terminal
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(file=stream)) as progress:
        task = progress.add_task(description, total=total)
        for item in completed:
            progress.advance(task)
            yield item
