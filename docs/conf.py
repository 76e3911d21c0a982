"""Sphinx configuration of the daskmic documentation (``make docs``).

The site is built offline: no intersphinx inventories are fetched, the theme loads no web
fonts, and every page's figures are made at build time from :mod:`daskmic.datasets`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
ROOT = HERE.parent
# This checkout of daskmic, whatever is installed: here, in the notebooks' kernels and in the
# dask workers they start.
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

import daskmic  # noqa: E402

project = "daskmic"
author = "daskmic developers"
copyright = "daskmic developers"
version = release = daskmic.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
    "sphinxarg.ext",
    "sphinx-mathjax-offline",
    "daskmic_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "_generated", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
root_doc = "index"
templates_path = ["_templates"]

# Warnings are errors (``-W`` in the Makefile); references to daskmic's own names must resolve.
nitpicky = True
# Types from other libraries are named in docstrings but not linked: fetching their
# inventories would need the network.
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|xarray|xr|pandas|pd|dask|distributed|matplotlib|fsspec|zarr|upath|s3fs)(\..*)?"),
    (r"py:.*", r"(os|pathlib|collections|typing|concurrent)\..*"),
    (r"py:class", r"(array[-_]like|path-like|optional|callable|mapping|sequence|iterable)"),
    (r"py:class", r"(int|float|str|bool|dict|list|tuple|object|bytes|None)"),
    (r"py:class", r"(tuple|list|dict|sequence|iterable) of .*"),
    (r"py:class", r"default .*"),
]

# API reference: one page per public name, from its numpydoc docstring.
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_typehints = "none"  # the docstrings' Parameters sections carry the types
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = {"GL08"}  # a public name without a docstring fails the build
numpydoc_validation_exclude = {r"\.__version__$"}

# Notebooks and executed pages: run at build time, cached by their source, failures fatal.
nb_execution_mode = os.environ.get("DASKMIC_DOCS_EXECUTE", "cache")
nb_execution_cache_path = str(HERE / "_build" / ".jupyter_cache")
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_in_temp = True
nb_merge_streams = True
nb_render_image_options = {"width": "100%"}
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# Offline theme: Furo ships its own CSS, JS and icons and uses the system font stack.
html_theme = "furo"
html_title = f"daskmic {release}"
html_static_path: list[str] = []
html_theme_options = {"navigation_with_keys": True}
html_show_sourcelink = False
