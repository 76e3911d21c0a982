"""The Examples sections of the public API's docstrings: every public function has one, and
each runs (in a fresh working folder) and prints what it says."""

from __future__ import annotations

import doctest
import inspect

import pytest

import daskmic
import daskmic.datasets

PUBLIC = {name: getattr(daskmic, name) for name in daskmic.__all__ if name != "__version__"}
PUBLIC |= {
    f"datasets.{name}": getattr(daskmic.datasets, name)
    for name in ("synthesize_micrograph", "make_dataset", "defocus_plane")
}


def _examples(obj) -> doctest.DocTest:
    """The doctest of ``obj``'s own docstring (not of its members)."""
    finder = doctest.DocTestFinder(recurse=False)
    tests = [t for t in finder.find(obj, obj.__name__, module=inspect.getmodule(obj)) if t.examples]
    assert tests, f"{obj.__module__}.{obj.__qualname__} has no Examples"
    return tests[0]


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_the_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples write their files in the working folder
    test = _examples(PUBLIC[name])
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, "".join(report)
    assert results.attempted > 0
