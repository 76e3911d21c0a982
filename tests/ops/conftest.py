"""The xmippLib oracle (PyPI ``pyxmipp3``, test-only) for the operation tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import mrcfile
import numpy as np
import pytest


@pytest.fixture
def xmipp(tmp_path: Path) -> Callable[..., np.ndarray]:
    """Run an xmippLib filter on a float32 image: ``xmipp("bandPassFilter", image, *args)``.

    The binding's filters read their input from a file and rescale the result to ``dim``
    pixels on the longest side, so the image is written as a float32 MRC (as Xmipp's own
    programs read it) and ``dim`` is that longest side (no rescaling). Returns float64.
    """
    import xmippLib

    def run(name: str, image: np.ndarray, *args: float) -> np.ndarray:
        path = tmp_path / f"xmipp_input_{name}.mrc"
        with mrcfile.new(path, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(image, dtype=np.float32))
        result = xmippLib.Image()
        getattr(xmippLib, name)(result, str(path), *args, int(max(image.shape)))
        data = np.asarray(result.getData(), dtype=np.float64)
        assert data.shape == image.shape
        return data

    return run
