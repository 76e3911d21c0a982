""""PNG bytes of figures, for pages that embed them (no files, no pyplot); grey images are
``daskmic.io.png.grey_png``'s."""

from __future__ import annotations

import base64
import io

from matplotlib.figure import Figure, SubFigure


def figure_png(fig: Figure | SubFigure, *, dpi: float = 90.0) -> bytes:
    """Render a figure (the whole figure of a subfigure) as PNG, without the software tag."""
    buffer = io.BytesIO()
    fig.get_figure(root=True).savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI that embeds ``png`` in a page."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
