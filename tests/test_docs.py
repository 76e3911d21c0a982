"""The documentation site: ``make docs`` on this checkout with warnings as errors, what the built
site holds (an API page per public name, the CLI, a page per preprocessing step, the executed
notebooks), that a broken reference, an undocumented name or a failing notebook fail the build,
and the pages rendered offline in headless Chromium.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest

import daskmic
import daskmic.datasets
import daskmic.report.plot
from daskmic.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SITE = DOCS / "_build" / "html"
STEP_PAGES = {
    "crop": "crop",
    "log": "log",
    "bad_pixels": "bad-pixels",
    "invert": "invert",
    "downsample": "downsample",
    "denoise": "denoise",
    "gaussian": "gaussian",
    "highpass": "highpass",
    "lowpass": "lowpass",
    "normalize": "normalize",
}
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
RESOURCE_TAGS = {"script", "link", "img", "iframe", "source", "audio", "video", "embed", "object"}
EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    """This checkout's daskmic first, for the build and the kernels it starts."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


@pytest.fixture(scope="module")
def site() -> Path:
    """``make docs`` with the running interpreter's tools (the environment is already made)."""
    command = ["make", "docs", f"BIN={Path(sys.executable).parent}", "-o", ".venv/.installed"]
    done = subprocess.run(
        command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, f"make docs failed:\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    return SITE


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data):
        self.text.append(data)


def _parse(path: Path) -> _Tags:
    page = _Tags()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _ids(path: Path) -> set[str]:
    return {attrs["id"] for _, attrs in _parse(path).tags if "id" in attrs}


def test_every_public_name_has_an_api_page(site):
    generated = site / "reference" / "generated"
    for name in daskmic.__all__:
        if name == "__version__":
            assert "daskmic.__version__" in _ids(site / "reference" / "api.html")
            continue
        page = generated / f"daskmic.{name}.html"
        assert page.is_file(), f"no API page for daskmic.{name}"
        assert f"daskmic.{name}" in _ids(page), f"daskmic.{name} is not documented on its page"


SUBMODULES = [daskmic.report.plot, daskmic.datasets]


@pytest.mark.parametrize("module", SUBMODULES, ids=lambda m: m.__name__)
def test_the_documented_submodules_have_a_page_per_public_name(site, module):
    generated = site / "reference" / "generated"
    names = getattr(module, "__all__", None) or [
        n for n, v in vars(module).items()
        if callable(v) and not n.startswith("_") and v.__module__ == module.__name__
    ]  # fmt: skip
    module_ids = _ids(generated / f"{module.__name__}.html")
    for name in names:
        if name.isupper():  # constants are documented on the module's page
            assert f"{module.__name__}.{name}" in module_ids
        else:
            page = generated / f"{module.__name__}.{name}.html"
            assert f"{module.__name__}.{name}" in _ids(page)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices)


def test_the_cli_page_names_every_subcommand_and_option(site):
    text = " ".join(_parse(site / "reference" / "cli.html").text)
    subcommands = _subcommands(build_parser())
    assert set(subcommands) >= {"preprocess", "tilt", "select", "run", "watch", "report", "demo"}
    for name, parser in subcommands.items():
        assert re.search(rf"\b{name}\b", text), name
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for option in action.option_strings:
                assert option in text, f"daskmic {name} {option} is not on the CLI page"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_notebooks_are_rendered_with_their_outputs(site, name):
    page = site / "notebooks" / f"{name}.html"
    source = page.read_text(encoding="utf-8")
    assert 'class="cell_output' in source, "the notebook was not executed"
    assert "Traceback" not in source
    images = [attrs["src"] for tag, attrs in _parse(page).tags if tag == "img"]
    assert images, "the notebook shows its plots"
    assert all((page.parent / src).is_file() for src in images), images


@pytest.mark.parametrize("step", STEP_PAGES)
def test_each_preprocessing_step_has_a_page_with_its_picture(site, step):
    page = site / "preprocessing" / f"{STEP_PAGES[step]}.html"
    source = page.read_text(encoding="utf-8")
    images = [attrs["src"] for tag, attrs in _parse(page).tags if tag == "img"]
    assert images and all((page.parent / src).is_file() for src in images), images
    # the caption names the value the picture was made with, read back from the result
    assert f"{step}=" in html.unescape(re.sub(r"<[^>]+>", "", source))


def test_no_page_loads_anything_from_the_network(site):
    offending = []
    for path in site.rglob("*.html"):
        for tag, attrs in _parse(path).tags:
            urls = [attrs[a] for a in ("src", "data", "srcset") if a in attrs]
            if tag in ("link", "script", "iframe", "source", "embed"):
                urls += [attrs[a] for a in ("href",) if a in attrs]
            if tag in RESOURCE_TAGS:
                offending += [(path.name, tag, u) for u in urls if EXTERNAL.match(u)]
    for path in site.rglob("*.css"):
        css = path.read_text(encoding="utf-8", errors="replace")
        for url in re.findall(r"(?:url\(|@import)\s*['\"]?([^'\")\s]+)", css):
            if EXTERNAL.match(url):
                offending.append((path.name, "css", url))
    assert offending == []


WRAPPER = """<!doctype html>
<html><body><pre id="result">pending</pre>
<iframe id="frame" style="width: 1400px; height: 1000px"></iframe>
<script>
const pages = PAGES;
const results = {};
const frame = document.getElementById("frame");
function inspect(doc) {
  const tree = doc.querySelector(".sidebar-tree");
  const box = tree ? tree.getBoundingClientRect() : null;
  return {
    navigation: tree ? Array.from(tree.querySelectorAll("a")).map(a => a.textContent.trim()) : [],
    navigation_shown: Boolean(box && box.width > 0 && box.height > 0),
    math: doc.querySelectorAll("mjx-container").length,
    images: Array.from(doc.images).map(
      i => [i.getAttribute("src"), i.complete && i.naturalWidth > 0]),
  };
}
function visit(i) {
  if (i === pages.length) {
    document.getElementById("result").textContent = JSON.stringify(results);
    return;
  }
  frame.onload = () => setTimeout(() => {
    results[pages[i]] = inspect(frame.contentDocument);
    visit(i + 1);
  }, 500);
  frame.src = pages[i];
}
visit(0);
</script></body></html>
"""


@pytest.mark.browser
def test_chromium_shows_the_navigation_and_every_image_offline(site, chromium, tmp_path):
    pages = ["index.html", "tilt.html", *(f"notebooks/{n}.html" for n in NOTEBOOKS)]
    pages += [f"preprocessing/{p}.html" for p in STEP_PAGES.values()]
    wrapper = tmp_path / "visit.html"
    urls = [(site / page).as_uri() for page in pages]
    wrapper.write_text(WRAPPER.replace("PAGES", json.dumps(urls)))
    dom, netlog = chromium.render(
        wrapper.as_uri(),
        "--allow-file-access-from-files",
        "--window-size=1500,1200",
        "--virtual-time-budget=60000",
        "--dump-dom",
    )
    assert chromium.page_requests(netlog) == [], "a page fetched something from the network"
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    results = json.loads(html.unescape(found.group(1)))
    assert sorted(results) == sorted(urls)
    index = results[(site / "index.html").as_uri()]
    assert index["navigation_shown"]
    for title in ("Getting started", "Preprocessing steps", "API reference", "Command line"):
        assert title in index["navigation"], (title, index["navigation"])
    assert results[(site / "tilt.html").as_uri()]["math"] > 0, "MathJax typeset the formulas"
    missing = [(u, src) for u, r in results.items() for src, ok in r["images"] if not ok]
    assert missing == []
    shown = sum(len(r["images"]) for r in results.values())
    assert shown >= len(STEP_PAGES) + len(NOTEBOOKS)


BROKEN = {
    "reference": ("index.rst", "See :func:`daskmic.no_such_function`.\n", "not found"),
    "docstring": (
        "index.rst",
        ".. autofunction:: undocumented.public_function\n",
        "GL08",
    ),
    "notebook": (
        "index.md",
        "---\nfile_format: mystnb\nkernelspec:\n  name: python3\n  display_name: Python 3\n---\n"
        "# Failing\n\n```{code-cell} ipython3\nraise RuntimeError('this cell fails')\n```\n",
        "this cell fails",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_the_build_fails_on_a_broken_page(case, tmp_path):
    """The site's own configuration turns each kind of mistake into a failed build."""
    name, text, expected = BROKEN[case]
    source = tmp_path / "source"
    source.mkdir()
    (source / "conf.py").write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(tmp_path)!r})
            __file__ = {str(DOCS / "conf.py")!r}
            exec(compile(open(__file__).read(), __file__, "exec"))
            nb_execution_cache_path = {str(tmp_path / "cache")!r}
            """
        )
    )
    (source / name).write_text(text)
    (tmp_path / "undocumented.py").write_text("def public_function():\n    pass\n")
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "-n", "-E", "-q"]
    done = subprocess.run(
        [*command, str(source), str(tmp_path / "html")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    assert expected in done.stderr, done.stderr[-3000:]


def test_the_outputs_page_explains_every_column_the_run_wrote(site):
    """The page's executed run prints the tables' columns; each has a row in its glossary."""
    text = html.unescape(re.sub(r"<[^>]+>", "", (site / "outputs.html").read_text("utf-8")))
    written = set()
    for table in ("micrographs.csv", "tilt.csv"):
        found = re.search(rf"^{re.escape(table)}: (.+)$", text, re.M)
        assert found, f"the page did not print the columns of {table}"
        written |= {c.strip() for c in found.group(1).split(",")}
    glossary = set()
    source = (site / "outputs.html").read_text("utf-8")
    for cell in re.findall(r"<tr[^>]*>\s*<td><p>(.*?)</p></td>", source):
        glossary |= set(re.findall(r'<span class="pre">([^<]+)</span>', cell))
    carried = {c for c in written if c.startswith("rln")}  # the input table's, documented as such
    assert sorted(written - carried - glossary) == []
