"""The notebooks: committed without outputs, and run as a user runs them.

A user opens Jupyter in ``notebooks/`` and runs the notebooks one after the other, then again
(in another order): every notebook must work in that one shared folder, whatever the others
left there, and leave nothing git does not ignore.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
EXPECTED = ["01_quickstart", "02_dataset_qc", "03_cluster_and_streaming"]
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def _read(path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    return notebook


def _untracked(repository: Path) -> set[str]:
    """Files in ``repository`` that git neither tracks nor ignores."""
    listing = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"],
        cwd=repository,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(listing.stdout.splitlines())


def test_the_notebooks_are_there():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    notebook = _read(path)
    assert notebook.nbformat == 4
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "a notebook with no code"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def _execute(path: Path, folder: Path) -> nbformat.NotebookNode:
    """Run one notebook top to bottom in ``folder``, as Jupyter opened there would."""
    from nbclient import NotebookClient

    notebook = _read(path)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    client.execute()  # raises CellExecutionError on the first cell that fails
    return notebook


@pytest.mark.slow
def test_notebooks_run_in_one_folder_twice_and_leave_git_clean(tmp_path, monkeypatch):
    """01, 02, 03 in ``notebooks/`` of a clone, then 03, 02, 01 again in the same folder."""
    # a clone of the repository's view: its .gitignore and its notebooks, all tracked
    clone = tmp_path / "clone"
    (clone / "notebooks").mkdir(parents=True)
    for path in NOTEBOOKS:
        shutil.copy(path, clone / "notebooks" / path.name)
    shutil.copy(ROOT / ".gitignore", clone / ".gitignore")
    subprocess.run(["git", "init", "-q"], cwd=clone, check=True)
    subprocess.run(["git", "add", "-A"], cwd=clone, check=True)
    assert _untracked(clone) == set()
    repository_before = _untracked(ROOT)
    # the kernel imports this checkout of daskmic, whatever the working directory
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    folder = clone / "notebooks"
    for path in NOTEBOOKS + NOTEBOOKS[::-1]:
        notebook = _execute(folder / path.name, folder)
        outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
        assert not [o for o in outputs if o.output_type == "error"], path.stem
        assert [o for o in outputs if "image/png" in o.get("data", {})], f"{path.stem}: no plots"
    assert _untracked(clone) == set(), "the notebooks leave files git does not ignore"
    assert _untracked(ROOT) <= repository_before, "the notebooks write into the repository"
