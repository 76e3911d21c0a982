"""The preprocessing contenders daskmic is measured against, in plain numpy/scipy.

* ``floor``: read, one ``scipy.fft.rfft2`` of the cropped frame, one ``irfft2`` at the output
  size, write — the least any Fourier-downsampling pipeline must do.
* ``chain``: the protocol's typical steps each as its own pass, as Xmipp's programs compute them
  (float64, one single-threaded numpy FFT per Fourier step, bad-pixel medians only at the bad
  pixels), the image written to and read back from a float32 MRC file between steps.

Both spread the micrographs over two processes. Independent of daskmic's kernels. Run as::

    python -m benchmarks.contenders {floor,chain} --crop N -o OUT INPUT...

where an INPUT may be a glob (``'raw/*.mrc'``: sets too large for a command line).
"""

from __future__ import annotations

import argparse
import glob
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import mrcfile
import numpy as np
import scipy.fft

BAD_PIXEL_K = 5.0
GAUSSIAN_SIGMA_PX = 1.0
HIGHPASS = (0.002, 0.001)
LOWPASS = (0.25, 0.02)


def read_mrc(path: str | os.PathLike[str]) -> np.ndarray:
    """The pixels of a 2-D MRC file, as stored."""
    with mrcfile.open(path, permissive=True) as mrc:
        return np.array(mrc.data)


def write_mrc(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write ``image`` as a float32 MRC file."""
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.asarray(image, dtype=np.float32))


def floor_one(path: str, out_dir: str, crop_px: int) -> None:
    """Read, one forward transform, one inverse at half the size, write."""
    image = read_mrc(path)
    if crop_px:
        image = image[crop_px:-crop_px, crop_px:-crop_px]
    ny, nx = image.shape
    spectrum = scipy.fft.rfft2(image.astype(np.float32, copy=False), workers=1)
    out_y, out_x = ny // 2, nx // 2
    rows = np.r_[0 : out_y - out_y // 2, ny - out_y // 2 : ny]
    kept = spectrum[rows, : out_x // 2 + 1]
    result = scipy.fft.irfft2(kept, s=(out_y, out_x), workers=1)
    write_mrc(Path(out_dir) / Path(path).name, result)


def _radial_freq(shape: tuple[int, int]) -> np.ndarray:
    """|f| in cycles/pixel on the rfft half plane of ``shape``."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    return np.sqrt(fy**2 + fx**2)


def _raised_cosine(freq: np.ndarray, edge: float, width: float, low: bool) -> np.ndarray:
    """1 in the passband, a raised-cosine transition of ``width`` beyond ``edge``, 0 after."""
    beyond = (freq - edge) if low else (edge - freq)
    ramp = 0.5 * (1.0 + np.cos(np.pi * np.clip(beyond / width, 0.0, 1.0)))
    return np.where(beyond <= 0, 1.0, ramp)


def _fourier_filter(image: np.ndarray, mask: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    spectrum = np.fft.rfft2(image)
    spectrum *= mask(_radial_freq(image.shape))
    return np.fft.irfft2(spectrum, s=image.shape)


def _gaussian_mask(freq: np.ndarray) -> np.ndarray:
    return np.exp(-2.0 * (np.pi * GAUSSIAN_SIGMA_PX * freq) ** 2)


def _bad_pixels(image: np.ndarray) -> np.ndarray:
    """Replace strict outliers, in raster order, by the median of good 5×5 neighbours."""
    mean, std = image.mean(), image.std()
    bad = np.abs(image - mean) > BAD_PIXEL_K * std
    out = image.copy()
    for y, x in zip(*np.nonzero(bad), strict=True):
        rows = slice(max(y - 2, 0), y + 3)
        cols = slice(max(x - 2, 0), x + 3)
        good = out[rows, cols][~bad[rows, cols]]
        if good.size:
            out[y, x] = np.median(good)
        bad[y, x] = False
    return out


def _downsample(image: np.ndarray) -> np.ndarray:
    ny, nx = image.shape
    out_y, out_x = ny // 2, nx // 2
    spectrum = np.fft.rfft2(image)
    rows = np.r_[0 : out_y - out_y // 2, ny - out_y // 2 : ny]
    kept = spectrum[rows, : out_x // 2 + 1]
    return np.fft.irfft2(kept, s=(out_y, out_x)) * (out_y * out_x) / (ny * nx)


def chain_steps(crop_px: int) -> list[Callable[[np.ndarray], np.ndarray]]:
    """The protocol's typical steps, each a float64 pass of its own."""
    steps: list[Callable[[np.ndarray], np.ndarray]] = []
    if crop_px:
        steps.append(partial(_crop, crop_px=crop_px))
    steps += [
        _bad_pixels,
        np.negative,
        _downsample,
        partial(_fourier_filter, mask=_gaussian_mask),
        partial(
            _fourier_filter,
            mask=partial(_raised_cosine, edge=HIGHPASS[0], width=HIGHPASS[1], low=False),
        ),
        partial(
            _fourier_filter,
            mask=partial(_raised_cosine, edge=LOWPASS[0], width=LOWPASS[1], low=True),
        ),
        _normalize,
    ]
    return steps


def _crop(image: np.ndarray, crop_px: int) -> np.ndarray:
    return image[crop_px:-crop_px, crop_px:-crop_px]


def _normalize(image: np.ndarray) -> np.ndarray:
    return (image - image.mean()) / image.std()


def chain_one(path: str, out_dir: str, crop_px: int) -> None:
    """Run every step as its own program would: read float32 MRC, compute float64, write."""
    with tempfile.TemporaryDirectory(dir=out_dir) as scratch:
        current = path
        for i, step in enumerate(chain_steps(crop_px)):
            image = read_mrc(current).astype(np.float64)
            current = str(Path(scratch) / f"step{i}.mrc")
            write_mrc(current, step(image))
        os.replace(current, Path(out_dir) / Path(path).name)


CONTENDERS = {"floor": floor_one, "chain": chain_one}


def run(name: str, inputs: list[str], out_dir: str, crop_px: int, processes: int = 2) -> None:
    """Process ``inputs`` with contender ``name`` over ``processes`` processes."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    one = partial(CONTENDERS[name], out_dir=out_dir, crop_px=crop_px)
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(one, inputs))


def main(argv: list[str] | None = None) -> None:
    """Command line: ``{floor,chain} --crop N -o OUT INPUT...``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("contender", choices=sorted(CONTENDERS))
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--crop", type=int, default=0)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    inputs = [found for item in args.inputs for found in sorted(glob.glob(item)) or [item]]
    run(args.contender, inputs, args.output, args.crop, args.processes)


if __name__ == "__main__":
    main()
