"""Sphinx extension of the daskmic documentation: before/after figures made at build time.

The directive ``daskmic-before-after STEP`` synthesizes one micrograph with
:func:`daskmic.datasets.synthesize_micrograph`, runs :func:`daskmic.preprocess` with that one
step enabled (its protocol default unless ``:value:`` gives one), draws the input and the
result with :func:`daskmic.report.plot.before_after` and inserts the picture with a caption
naming the value used, read back from the result's ``parameters`` attribute. The pictures are
made on every build, so they show what the code does now.

Options
-------
value
    The step's value as JSON (``true``, the default, takes the protocol's default).
zoom
    Show only the central ``N × N`` input pixels (and the output samples inside them).
percentiles
    Contrast limits of both panels, two numbers (default ``1 99``).
max-px
    Thumbnail size: images are block-averaged down to at most this many pixels per axis
    (default 512), which shows slow variations under the shot noise.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

SHAPE_PX = 512
PIXEL_SIZE_A = 2.0
SEED = 3
SPECIMEN = (
    f"a synthetic {SHAPE_PX}² micrograph at {PIXEL_SIZE_A:g} Å/px (Poisson counts, 200 hot and "
    "200 dead pixels, a 20 % illumination gradient) from "
)


def _function(target: str) -> addnodes.pending_xref:
    """A cross-reference to a Python function, whatever the page's markup language."""
    reference = addnodes.pending_xref(
        "", refdomain="py", reftype="func", reftarget=target, refexplicit=False, refwarn=True
    )
    reference += nodes.literal(target, target + "()", classes=["xref", "py", "py-func"])
    return reference


@cache
def _micrograph() -> Any:
    """The input of every figure: one micrograph as a one-frame stack, Å coordinates."""
    import numpy as np
    import xarray as xr

    from daskmic.datasets import synthesize_micrograph

    image, _ = synthesize_micrograph(
        (SHAPE_PX, SHAPE_PX),
        pixel_size_A=PIXEL_SIZE_A,
        phase_std=0.3,
        hot_pixels=200,
        dead_pixels=200,
        gradient=0.2,
        seed=SEED,
    )
    position_A = np.arange(SHAPE_PX) * PIXEL_SIZE_A
    return xr.DataArray(
        image[np.newaxis],
        dims=("micrograph", "y", "x"),
        coords={
            "micrograph": ["example"],
            "pixel_size_A": ("micrograph", [PIXEL_SIZE_A]),
            "y": position_A,
            "x": position_A,
        },
    )


def _central(image: Any, zoom_px: int | None) -> Any:
    """The central ``zoom_px`` input pixels of ``image`` (selected on the Å coordinates)."""
    if zoom_px is None:
        return image
    low_A = (SHAPE_PX - zoom_px) / 2 * PIXEL_SIZE_A
    window = slice(low_A, low_A + zoom_px * PIXEL_SIZE_A)
    return image.sel(y=window, x=window)


def _percentiles(argument: str) -> tuple[float, float]:
    low, high = (float(v) for v in argument.split())
    return low, high


def draw_before_after(step: str, value: Any, path: Path, **view: Any) -> Any:
    """Preprocess the example with ``{step: value}``, save the figure; return the value used."""
    import daskmic as dm
    from daskmic.report.plot import before_after

    before = _micrograph()
    after = dm.preprocess(before, **{step: value})
    used = after.attrs["parameters"][step]
    zoom_px = view.pop("zoom_px", None)
    figure = before_after(
        _central(before.isel(micrograph=0), zoom_px),
        _central(after.isel(micrograph=0).compute(), zoom_px),
        titles=("input", f"{step} = {json.dumps(used)}"),
        **view,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return used


class BeforeAfter(SphinxDirective):
    """``daskmic-before-after STEP``: a before/after figure of one preprocessing step."""

    required_arguments = 1
    has_content = False
    option_spec = {
        "value": directives.unchanged,
        "zoom": directives.positive_int,
        "percentiles": _percentiles,
        "max-px": directives.positive_int,
    }

    def run(self) -> list[nodes.Node]:
        step = self.arguments[0]
        value = json.loads(self.options.get("value", "true"))
        zoom_px = self.options.get("zoom")
        view = {
            "zoom_px": zoom_px,
            "percentiles": self.options.get("percentiles", (1.0, 99.0)),
            "max_px": self.options.get("max-px", 512),
        }
        key = json.dumps([value, view])
        name = f"{step}-{hashlib.sha1(key.encode()).hexdigest()[:8]}.png"
        relative = Path("_generated") / "steps" / name
        used = draw_before_after(step, value, Path(self.env.srcdir) / relative, **view)
        default = " (the protocol's default)" if value is True else ""
        shown = f"the central {zoom_px}² input pixels of " if zoom_px else ""
        if "max-px" in self.options:
            shown = f"block averages (at most {view['max_px']}² per panel) of " + shown
        setting = f"{step}={json.dumps(used)}"
        figure = nodes.figure()
        figure += nodes.image(uri="/" + relative.as_posix(), alt=f"{step} before and after")
        figure += nodes.caption(
            "",
            "",
            nodes.literal(setting, setting),
            nodes.Text(f"{default} on {shown}{SPECIMEN}"),
            _function("daskmic.datasets.synthesize_micrograph"),
            nodes.Text(", drawn with "),
            _function("daskmic.report.plot.before_after"),
            nodes.Text("; made when this page was built."),
        )
        return [figure]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("daskmic-before-after", BeforeAfter)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
