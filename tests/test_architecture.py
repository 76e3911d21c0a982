"""The package's shape: no import cycle, and the parts the design keeps apart stay apart.

Module-level imports only (what runs on ``import``): imports inside functions and under
``TYPE_CHECKING`` are deferred on purpose and cannot form an import-time cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "daskmic"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """daskmic modules imported at module level by the file at ``path``."""
    found: set[str] = set()
    this = _module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in modules and name != this}
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {name: _imports(path, modules) for name, path in files.items()}


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_no_import_cycle():
    graph = _graph()
    assert sum(map(len, graph.values())) > 100, "the import graph was read"
    cycles = sorted(name for name in graph if name in _reachable(graph, name))
    assert cycles == [], f"modules that import themselves through others: {cycles}"


@pytest.mark.parametrize(("part", "other"), [("daskmic.tilt", "daskmic.preprocessing"),
                                             ("daskmic.preprocessing", "daskmic.tilt"),
                                             ("daskmic.ops", "daskmic.run"),
                                             ("daskmic.io", "daskmic.run")])
def test_parts_the_design_keeps_apart(part, other):
    graph = _graph()
    crossing = sorted(
        (name, target)
        for name in graph
        if name == part or name.startswith(part + ".")
        for target in _reachable(graph, name)
        if target == other or target.startswith(other + ".")
    )
    assert crossing == [], f"{part} reaches {other}: {crossing[:5]}"


def test_every_package_is_an_attribute_of_daskmic():
    """``import daskmic as dm; dm.io.open_results(...)`` works as in a notebook, and
    ``import daskmic`` alone still imports none of the packages (they load on first use)."""
    import json
    import subprocess
    import sys

    parts = sorted(
        p.stem for p in PACKAGE.iterdir()
        if (p / "__init__.py").exists()
        or (p.suffix == ".py" and not p.stem.startswith("_") and p.stem not in {"cli", "errors"})
    )
    code = (
        "import json, sys, daskmic as dm\n"
        "before = sorted(m for m in sys.modules if m.startswith('daskmic.'))\n"
        f"missing = [name for name in {parts!r} if not hasattr(dm, name)]\n"
        "print(json.dumps([before, missing, callable(dm.io.open_results)]))\n"
    )
    before, missing, opens = json.loads(subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert "datasets" in parts and "io" in parts
    assert before == [], f"import daskmic imported {before}"
    assert missing == [], f"not attributes of daskmic: {missing}"
    assert opens
