"""MRC headers (strict, then permissive) and region reads through a memory map."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import mrcfile
import mrcfile.dtypes
import mrcfile.utils
import numpy as np

from daskmic.io.errors import MicrographError
from daskmic.io.header import MicrographHeader

MRC_HEADER_BYTES = 1024
SUPPORTED_MODES = {0: "int8", 1: "int16", 2: "float32", 6: "uint16", 12: "float16"}


def _precheck(path: Path) -> None:
    """Refuse files whose first 1024 bytes cannot be an MRC header, before mrcfile sees them.

    mrcfile allocates the extended header (``nsymbt`` bytes) before reading it, so a text
    file read permissively could ask for gigabytes; this check costs one 1 KiB read.
    """
    with open(path, "rb") as handle:
        raw = handle.read(MRC_HEADER_BYTES)
    if len(raw) < MRC_HEADER_BYTES:
        raise MicrographError(
            path, f"not an MRC file ({len(raw)} bytes; an MRC header alone has 1024)"
        )
    room = os.path.getsize(path) - MRC_HEADER_BYTES
    fitting = []
    for order in "<>":
        fields = np.frombuffer(raw, mrcfile.dtypes.HEADER_DTYPE.newbyteorder(order), count=1)[0]
        dims = min(int(fields["nx"]), int(fields["ny"]), int(fields["nz"]))
        mode_ok = int(fields["mode"]) in SUPPORTED_MODES and dims > 0
        fits = 0 <= int(fields["nsymbt"]) <= room
        if mode_ok and fits:
            return
        if mode_ok:
            raise MicrographError(
                path,
                f"truncated: the header announces a {int(fields['nsymbt'])}-byte extended "
                f"header but only {room} bytes follow the header",
            )
        fitting.append(fits)
    if raw[208:212] != b"MAP ":
        raise MicrographError(path, "not an MRC file (no MAP ID and no valid mode/dimensions)")
    if not any(fitting):
        raise MicrographError(path, "corrupt MRC header: extended header larger than the file")


def _raw_header(path: Path) -> tuple[np.recarray, str | None]:
    """Read the 1024-byte header; return it and the strict-mode complaint, if any.

    MotionCor2 and some detectors write headers that mrcfile accepts only with
    ``permissive=True`` (e.g. no ``MAP`` ID, zero machine stamp). Strict reading is tried first;
    the permissive retry is silenced, and the header is validated by :func:`_layout` instead.
    """
    _precheck(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with mrcfile.open(path, header_only=True) as mrc:
                return mrc.header.copy(), None
        except ValueError as strict_error:
            complaint = str(strict_error)
        try:
            with mrcfile.open(path, header_only=True, permissive=True) as mrc:
                return mrc.header.copy(), complaint
        except ValueError as error:
            raise MicrographError(path, f"not an MRC file ({error})") from error


def _layout(path: Path) -> tuple[np.recarray, np.dtype, int]:
    """Validate an MRC header; return it, the stored pixel dtype and the data offset in bytes."""
    header, complaint = _raw_header(path)
    mode = int(header.mode)
    not_mrc = f"not an MRC file ({complaint})" if complaint else None
    if mode not in SUPPORTED_MODES:
        supported = ", ".join(f"{k} ({v})" for k, v in SUPPORTED_MODES.items())
        raise MicrographError(path, not_mrc or f"unsupported MRC mode {mode}; use {supported}")
    nx, ny, nz, nsymbt = (int(header.nx), int(header.ny), int(header.nz), int(header.nsymbt))
    if min(nx, ny, nz) <= 0 or nsymbt < 0:
        raise MicrographError(path, not_mrc or f"invalid MRC dimensions {nx} x {ny} x {nz}")
    if nz > 1:
        raise MicrographError(
            path, f"3-D stack of {nz} images ({nx} x {ny}); a single 2-D micrograph is expected"
        )
    dtype = mrcfile.utils.data_dtype_from_header(header)
    offset = MRC_HEADER_BYTES + nsymbt
    expected = offset + nx * ny * dtype.itemsize
    size = os.path.getsize(path)
    if size < expected:
        raise MicrographError(
            path,
            f"truncated: the header describes {nx} x {ny} pixels of {dtype.name} "
            f"({expected} bytes with the header) but the file has {size} bytes",
        )
    return header, dtype, offset


def _voxel_size_A(header: np.recarray) -> float | None:
    """Pixel size along x (cella / mx), or ``None`` when unset (0, negative or not finite)."""
    mx = int(header.mx)
    cella_x = float(header.cella.x)
    if mx <= 0 or not np.isfinite(cella_x) or cella_x <= 0:
        return None
    # cella is float32: round away its representation error (7 significant digits).
    return round(cella_x / mx, 6)


def mrc_header(path: Path) -> MicrographHeader:
    """Read and validate the header of a 2-D MRC file."""
    header, dtype, _ = _layout(path)
    return MicrographHeader(
        path=os.path.abspath(path),
        shape=(int(header.ny), int(header.nx)),
        dtype=dtype.newbyteorder("="),
        pixel_size_A=_voxel_size_A(header),
        format="mrc",
    )


def read_mrc(path: Path, region: tuple[slice, slice]) -> np.ndarray:
    """Read ``region`` of a 2-D MRC file; only the pages holding it are touched."""
    header, dtype, offset = _layout(path)
    shape = (int(header.ny), int(header.nx))
    mapped = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    try:
        return np.array(mapped[region], dtype=dtype.newbyteorder("="))
    finally:
        del mapped
