"""MRC files written from a cached header template are mrcfile's own files, byte for byte."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from daskmic.io.mrc_write import mrc_bytes, write_mrc

LABEL = "daskmic 0.1 preprocess xmipp_compat=False"


def mrcfile_bytes(tmp_path, image: np.ndarray, pixel_size_A: float, label: str) -> bytes:
    """The reference: mrcfile writes the file, with the voxel size, statistics and label."""
    path = tmp_path / "reference.mrc"
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.asarray(image, dtype=np.float32))
        mrc.voxel_size = pixel_size_A
        mrc.update_header_stats()
        mrc.header.label[0] = label.encode()
        mrc.header.nlabl = 1 if label else 0
    return path.read_bytes()


@pytest.mark.parametrize("shape", [(108, 108), (3, 5), (1, 1), (257, 130)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_written_files_equal_mrcfiles(tmp_path, shape, dtype):
    rng = np.random.default_rng(sum(shape))
    for pixel_size_A, label in [(1.0, ""), (0.83, LABEL)]:
        for _ in range(2):  # the second image of a kind reuses its cached header
            image = (rng.normal(size=shape) * 100).astype(dtype)
            expected = mrcfile_bytes(tmp_path, image, pixel_size_A, label)
            write_mrc(tmp_path / "out.mrc", image, pixel_size_A, label=label)
            assert (tmp_path / "out.mrc").read_bytes() == expected
            assert mrc_bytes(image, pixel_size_A, label=label) == expected
    with mrcfile.open(tmp_path / "out.mrc") as mrc:
        np.testing.assert_array_equal(mrc.data, image.astype(np.float32))
