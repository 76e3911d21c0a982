"""The local-defocus map behind a tilt estimate, kept beside the outputs for plots."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from daskmic.io.storage import Location, location, write_whole
from daskmic.tilt.angle import TiltAngleResult


def save_defocus_map(path: str | os.PathLike[str] | Location, result: TiltAngleResult) -> None:
    """Write the patches' local defocus and the fitted plane as JSON, whole or not at all.

    Parameters
    ----------
    path : path-like or Location
        Destination (``OUT/defocus/<micrograph>.json``), local or a URL.
    result : TiltAngleResult
        The estimate; its ``patch_*`` arrays hold the map.
    """
    payload = {
        **result.as_row(),
        "defocus_gradient": [float(g) for g in result.defocus_gradient],
        "patch_centers_A": np.asarray(result.patch_centers_A, float).tolist(),
        "patch_defocus_A": np.asarray(result.patch_defocus_A, float).tolist(),
        "patch_usable": np.asarray(result.patch_usable, bool).tolist(),
    }
    text = json.dumps(payload, allow_nan=True, default=float)
    write_whole(location(path), text.encode())


def load_defocus_map(path: str | os.PathLike[str] | Location) -> dict[str, Any]:
    """Read a map written by :func:`save_defocus_map` (arrays as numpy arrays)."""
    payload = json.loads(location(path).read_bytes())
    for key in ("patch_centers_A", "patch_defocus_A", "patch_usable", "defocus_gradient"):
        payload[key] = np.asarray(payload[key])
    return payload


def result_from_map(payload: dict[str, Any]) -> TiltAngleResult:
    """Rebuild the :class:`TiltAngleResult` a saved map came from (for plots)."""
    return TiltAngleResult.from_row(
        payload,
        defocus_gradient=tuple(float(g) for g in payload["defocus_gradient"]),
        patch_centers_A=np.asarray(payload["patch_centers_A"], float).reshape(-1, 2),
        patch_defocus_A=np.asarray(payload["patch_defocus_A"], float),
        patch_usable=np.asarray(payload["patch_usable"], bool),
    )


def plane_defocus_A(payload: dict[str, Any], centers_A: np.ndarray) -> np.ndarray:
    """The fitted plane's defocus (Å) at ``centers_A`` (x, y in Å from the image centre)."""
    gx, gy = payload["defocus_gradient"]
    centers = np.asarray(centers_A, float).reshape(-1, 2)
    return payload["defocus_mean_A"] + gx * centers[:, 0] + gy * centers[:, 1]
