"""MRC headers (strict, then permissive) from the file's first KiB, and region reads.

The header is parsed from the first 1024 bytes the reader already holds (one read locally,
one ranged request at a URL); the extended header, which daskmic does not use, is never read,
so a header costs 1 KiB whatever the file. Pixels come through :func:`daskmic.io.raster.
read_raster` (a memory map locally, a ranged request of the rows at a URL).
"""

from __future__ import annotations

import io
import warnings

import mrcfile.dtypes
import mrcfile.utils
import numpy as np
from mrcfile.mrcinterpreter import MrcInterpreter

from daskmic.io.errors import MicrographError
from daskmic.io.header import MicrographHeader
from daskmic.io.raster import Region, read_raster
from daskmic.io.storage import Location, absolute

MRC_HEADER_BYTES = 1024
SUPPORTED_MODES = {0: "int8", 1: "int16", 2: "float32", 6: "uint16", 12: "float16"}


def _precheck(path: Location, raw: bytes, size: int) -> None:
    """Refuse files whose first 1024 bytes (``raw``) cannot be an MRC header of a ``size``-byte
    file, before mrcfile sees them (a text file read permissively could announce gigabytes of
    extended header)."""
    if len(raw) < MRC_HEADER_BYTES:
        raise MicrographError(
            path, f"not an MRC file ({len(raw)} bytes; an MRC header alone has 1024)"
        )
    room = size - MRC_HEADER_BYTES
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


class _MainHeader(MrcInterpreter):
    """mrcfile's reading and checks of the 1024-byte main header, without the extended header.

    daskmic uses no extended header field; not reading it keeps a header at 1 KiB (one request
    at a URL) and :func:`_precheck` has already checked that it fits in the file.
    """

    def _read_extended_header(self) -> None:
        self._extended_header = None


def _raw_header(path: Location, raw: bytes, size: int) -> tuple[np.recarray, str | None]:
    """Parse the 1024-byte header; return it and the strict-mode complaint, if any.

    MotionCor2 and some detectors write headers that mrcfile accepts only with
    ``permissive=True`` (e.g. no ``MAP`` ID, zero machine stamp). Strict reading is tried first;
    the permissive retry is silenced, and the header is validated by :func:`_layout` instead.
    """
    _precheck(path, raw, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _MainHeader(io.BytesIO(raw), header_only=True).header.copy(), None
        except ValueError as strict_error:
            complaint = str(strict_error)
        try:
            mrc = _MainHeader(io.BytesIO(raw), permissive=True, header_only=True)
            return mrc.header.copy(), complaint
        except ValueError as error:
            raise MicrographError(path, f"not an MRC file ({error})") from error


def _layout(path: Location, raw: bytes, size: int) -> tuple[np.recarray, np.dtype, int]:
    """Validate an MRC header; return it, the stored pixel dtype and the data offset in bytes."""
    header, complaint = _raw_header(path, raw, size)
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


def mrc_header(path: Location, raw: bytes, size: int) -> MicrographHeader:
    """Validate the header of a 2-D MRC file of ``size`` bytes from its first KiB ``raw``."""
    header, dtype, _ = _layout(path, raw, size)
    return MicrographHeader(
        path=absolute(path),
        shape=(int(header.ny), int(header.nx)),
        dtype=dtype.newbyteorder("="),
        pixel_size_A=_voxel_size_A(header),
        format="mrc",
    )


def read_mrc(path: Location, raw: bytes, size: int, region: Region) -> np.ndarray:
    """Read ``region`` of a 2-D MRC file (first KiB ``raw``); only the rows holding it."""
    header, dtype, offset = _layout(path, raw, size)
    return read_raster(path, offset, (int(header.ny), int(header.nx)), dtype, region)
