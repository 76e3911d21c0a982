"""PNG bytes of figures, for pages that embed them (no files, no pyplot); grey images are
:func:`daskmic.io.png.grey_png`'s."""

from __future__ import annotations

import base64
import io

from matplotlib.figure import Figure


def figure_png(fig: Figure, *, dpi: float = 90.0) -> bytes:
    """Render a figure as PNG (without matplotlib's software tag)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI that embeds ``png`` in a page."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
