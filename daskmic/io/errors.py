"""The one exception for unusable input files."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from upath import UPath


class MicrographError(ValueError):
    """A micrograph (or table) file that cannot be used, and why.

    ``str(error)`` is ``"<path>: <problem>"``. The exception pickles (it crosses process
    boundaries on a ``distributed`` cluster), so its ``args`` are ``(path, problem)``.

    Parameters
    ----------
    path : path-like or URL
        The offending file, as the user named it (or its absolute path, or its URL).
    problem : str
        What is wrong with it, in plain words.
    """

    def __init__(self, path: str | os.PathLike[str] | UPath, problem: str) -> None:
        super().__init__(str(path), problem)
        self.path = str(path)
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"
