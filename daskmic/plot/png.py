"""PNG bytes of images and figures, for pages that embed them (no files, no pyplot)."""

from __future__ import annotations

import base64
import io

import matplotlib.image
import numpy as np
from matplotlib.figure import Figure


def image_png(image: np.ndarray) -> bytes:
    """Encode a [0, 1] grey image as PNG, row 0 at the bottom (NaN transparent).

    Parameters
    ----------
    image : numpy.ndarray
        Two-dimensional image scaled to [0, 1] (e.g. :func:`daskmic.plot.thumbnail_data`).

    Returns
    -------
    bytes
        The PNG file.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    buffer = io.BytesIO()
    matplotlib.image.imsave(
        buffer,
        image,
        cmap="gray",
        vmin=0.0,
        vmax=1.0,
        origin="lower",
        format="png",
        metadata={"Software": None},
    )
    return buffer.getvalue()


def figure_png(fig: Figure, *, dpi: float = 90.0) -> bytes:
    """Render a figure as PNG (without matplotlib's software tag)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI that embeds ``png`` in a page."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
