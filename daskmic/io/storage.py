"""Where data lives: local paths and URLs (``s3://``, ``gs://``, ``az://``, ``https://`` …).

Every input and output location in daskmic is a ``Location``: a local path stays a plain
:class:`pathlib.Path`, so local runs keep today's behaviour and speed; a URL becomes a
:class:`upath.UPath` from `universal_pathlib <https://github.com/fsspec/universal_pathlib>`_,
which gives one pathlib-like face to every fsspec filesystem and carries its
``storage_options`` (credentials, endpoint) with it, through joins and pickling, to the
workers. Credentials not given come the way each backend finds them itself
(environment variables, config files, the cloud's workload identity).

What pathlib cannot say, this module does, once:

- :func:`write_whole` — an object appears complete or not at all. Locally: a temporary sibling,
  fsync, rename. On an object store there is no rename (``mv`` is copy + delete), but one PUT
  is atomic, so the whole object goes in one request.
  :func:`write_wholes` writes several, made durable together (one flush for all, locally).
- :func:`create_exclusive` — write only if absent (``If-None-Match: *`` on S3; a hard
  link without overwrite locally): what binds an output prefix to its parameters when two
  runs race.
- :func:`read_range` — bytes ``[start, end)`` by one ranged request.
- :func:`fetched` — a local copy of a small object, for parsers that need a file.
- :func:`location` — parse a path or URL, naming the pip extra when its filesystem's package
  is missing.
- :func:`remove` — a file or a whole folder (prefix).
- :func:`list_stamped` — a folder's files, each with its modification time and what identifies
  its content as written, in one listing (:func:`list_files`: the times only);
  :func:`read_all` — many small objects fetched concurrently.
- :func:`zarr_store` — what zarr opens for a location (a path, or an fsspec store with the
  location's options).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import fsspec
from typing_extensions import TypeIs
from upath import UPath

from daskmic.errors import UsageError

if TYPE_CHECKING:
    from zarr.storage import FsspecStore

Location = Path | UPath
"""A local :class:`pathlib.Path`, or a URL as a ``upath.UPath`` with its storage options."""

_URL: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")

StorageOptions = dict[str, Any]

EXTRAS: Final = {
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "az": ("adlfs", "azure"),
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
    "http": ("aiohttp", "http"),
    "https": ("aiohttp", "http"),
}
"""URL scheme → (the package fsspec needs for it, the daskmic extra that installs it)."""


def is_url(value: str | os.PathLike[str] | UPath) -> bool:
    """Whether ``value`` names a location by URL (``scheme://…``) rather than a local path."""
    if isinstance(value, UPath):
        return not isinstance(value, Path)
    return _URL.match(str(value) if isinstance(value, UPath) else os.fspath(value)) is not None


def location(
    value: str | os.PathLike[str] | UPath, storage_options: Mapping[str, Any] | None = None
) -> Location:
    """The ``Location`` of a local path or a URL.

    Parameters
    ----------
    value : str or path-like
        A local path, ``file://`` URL, or any fsspec URL (``s3://bucket/key``,
        ``https://host/file.mrc`` …). An existing ``Location`` is returned as is when no
        ``storage_options`` are given.
    storage_options : dict, optional
        Passed to the filesystem (``key``, ``secret``, ``client_kwargs={"endpoint_url": …}``,
        ``anon`` …); ignored for local paths.

    Returns
    -------
    pathlib.Path or upath.UPath
        A plain :class:`pathlib.Path` for local paths (and ``file://`` URLs), else a ``UPath``
        carrying the options.

    Raises
    ------
    UsageError
        The URL's filesystem needs a package that is not installed (the message names the
        ``daskmic[...]`` extra that installs it), or its scheme is unknown to fsspec.
    """
    if isinstance(value, UPath):
        if isinstance(value, Path):  # universal_pathlib's local paths
            return Path(value)
        if not storage_options:
            return value
    elif isinstance(value, Path) or not is_url(value):
        return Path(value)
    text = str(value)
    scheme = text.partition("://")[0].lower()
    if scheme in ("file", "local"):
        return Path(text.partition("://")[2])
    try:
        fsspec.get_filesystem_class(scheme)  # imports the backend now, not on first read
        return UPath(text, **(storage_options or {}))
    except ImportError as exc:
        package, extra = EXTRAS.get(scheme, (None, None))
        hint = f": pip install 'daskmic[{extra}]' (installs {package})" if extra else ""
        raise UsageError(f"reading or writing {scheme}:// needs a missing package{hint}") from exc
    except ValueError as exc:
        raise UsageError(f"{text}: {exc}") from exc


def is_local(loc: Location) -> TypeIs[Path]:
    """Whether ``loc`` is on the local filesystem (then it is a :class:`pathlib.Path`)."""
    return isinstance(loc, Path)


def write_whole(loc: Location, data: bytes, *, sync: bool = True) -> None:
    """Write ``data`` as the whole of ``loc``: readers see the old object or the new, never part.

    Locally a temporary sibling (``.<name>.tmp-<random>``) is written, fsynced and renamed onto
    ``loc``; on an object store the object goes in one request (one PUT; a large one as a
    multipart upload that completes or aborts), which is atomic there.

    ``sync=False`` skips the fsync (locally; a PUT is durable when it returns): still atomic
    to readers, but after a crash of the machine the file may be empty or missing. For what
    can be made again from the inputs and is checked before use (derived files such as
    thumbnails and PNGs, like the MRC outputs); a done-record keeps ``sync=True``.
    """
    if isinstance(loc, Path):  # local
        from daskmic.io.atomic import write_bytes_atomic

        write_bytes_atomic(loc, data, sync=sync)
        return
    loc.fs.pipe_file(loc.path, data)


def write_wholes(files: Sequence[tuple[Location, bytes]]) -> None:
    """Write each ``(location, data)`` as :func:`write_whole` does, all on one filesystem.

    Locally the files are made durable together, then renamed into place in the order given
    (``daskmic.io.atomic.write_all_atomic``): one round of fsyncs for all, not one each;
    on an object store the objects go concurrently, one PUT each.
    """
    if not files:
        return
    first = files[0][0]
    if isinstance(first, Path):  # local
        from daskmic.io.atomic import write_all_atomic

        write_all_atomic([(loc, data) for loc, data in files if isinstance(loc, Path)])
        return
    first.fs.pipe({loc.path: data for loc, data in files if not isinstance(loc, Path)})


def create_exclusive(loc: Location, data: bytes) -> bool:
    """Create ``loc`` holding ``data`` only if nothing is there yet; whether this call did.

    Locally the bytes are written to a temporary sibling and hard-linked onto ``loc`` (the link
    fails if ``loc`` exists, so the object appears whole and only once); on S3 a conditional PUT
    (``If-None-Match: *``). Two racing callers: exactly one gets True.
    """
    if isinstance(loc, Path):  # local
        loc.parent.mkdir(parents=True, exist_ok=True)
        tmp = loc.with_name(f".{loc.name}.tmp-{uuid.uuid4().hex[:8]}")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, loc)
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
        return True
    try:
        loc.fs.pipe_file(loc.path, data, mode="create")
    except FileExistsError:
        return False
    return True


def file_stamp(path: Location) -> tuple[int, int | str]:
    """What identifies a file's content (a stack's dask token, a run's done-records):
    ``(size, mtime_ns)``, at a URL ``(size, version)`` (from the store's listing cache when it
    has one); ``(-1, -1)`` if it just vanished."""
    try:
        if not is_local(path):
            info = path.fs.info(path.path)
            version = info.get("ETag") or info.get("mtime") or info.get("LastModified") or ""
            return (int(info.get("size") or -1), str(version))
        stat = os.stat(path)
    except Exception:  # vanished, or unreachable: its read will say why
        return (-1, -1)
    return (stat.st_size, stat.st_mtime_ns)


def read_range(loc: Location, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of ``loc`` in one ranged request (one ``pread`` locally)."""
    if isinstance(loc, Path):  # local
        with open(loc, "rb") as handle:
            return os.pread(handle.fileno(), end - start, start)
    data: bytes = loc.fs.cat_file(loc.path, start=start, end=end)
    return data


def absolute(loc: Location) -> str:
    """``loc`` as daskmic records it (``path`` columns): an absolute local path, or the URL."""
    return os.path.abspath(loc) if isinstance(loc, Path) else str(loc)


@contextmanager
def fetched(loc: Location) -> Iterator[Path]:
    """A local file holding ``loc``'s bytes, for parsers that need one (starfile, sqlite3).

    A local ``loc`` is itself; at a URL the object is copied whole (one ``GET``) to a
    temporary folder removed afterwards. Meant for small objects: tables, Scipion sets.
    """
    if isinstance(loc, Path):  # local
        yield loc
        return
    with tempfile.TemporaryDirectory(prefix="daskmic-") as folder:
        copy = Path(folder) / (loc.name or "object")
        copy.write_bytes(loc.read_bytes())
        yield copy


def zarr_store(loc: Location, *, read_only: bool = False) -> str | FsspecStore:
    """What zarr opens for ``loc``: a local path as text, else an fsspec store with its options.

    The store's filesystem is made asynchronous, as zarr wants it (one per options, cached by
    fsspec); zarr is imported only here.
    """
    if isinstance(loc, Path):  # local
        return str(loc)
    from zarr.storage import FsspecStore

    options = dict(loc.storage_options)
    return FsspecStore.from_url(str(loc), storage_options=options, read_only=read_only)


def remove(loc: Location) -> None:
    """Remove a file, or a folder (prefix) with everything in it; nothing when absent.

    A local symlink is removed itself, never what it leads to.
    """
    if isinstance(loc, Path):  # local
        if loc.is_dir() and not loc.is_symlink():
            shutil.rmtree(loc, ignore_errors=True)
        else:
            loc.unlink(missing_ok=True)
        return
    try:
        loc.fs.rm(loc.path, recursive=True)
    except FileNotFoundError:
        pass


class Listed(NamedTuple):
    """A file as its folder's listing shows it (:func:`list_stamped`)."""

    modified_s: float
    """Modification time, seconds since the epoch (NaN when the store keeps none)."""
    stamp: tuple[Any, ...]
    """What identifies the content as written: locally the inode and the modification time in
    nanoseconds (a file replaced by a rename has a new inode, however soon after), on an object
    store the ETag, the size and the modification time."""


def list_stamped(folder: Location) -> dict[str, Listed]:
    """The files directly in ``folder``, each with its modification time and content stamp.

    One listing (one ``scandir`` locally, one paged LIST request on an object store), never a
    request per file; empty when the folder does not exist. The listing is not cached: a
    later read or listing sees what other processes wrote since.
    """
    found: dict[str, Listed] = {}
    stamp: tuple[Any, ...]
    if isinstance(folder, Path):  # local
        try:
            with os.scandir(folder) as scan:
                for item in scan:
                    try:
                        if item.is_file():
                            info = item.stat()
                            stamp = (info.st_ino, info.st_mtime_ns)
                            found[item.name] = Listed(info.st_mtime, stamp)
                    except OSError:  # removed since the listing
                        continue
        except (FileNotFoundError, NotADirectoryError):
            pass
        return found
    fs = folder.fs
    try:
        entries: list[dict[str, Any]] = fs.ls(folder.path, detail=True, refresh=True)
    except FileNotFoundError:
        entries = []
    finally:
        fs.invalidate_cache(folder.path)
    for entry in entries:
        if entry.get("type") == "file":
            modified_s = _modified(entry)
            when = None if math.isnan(modified_s) else modified_s  # NaN would never match
            stamp = (entry.get("ETag"), entry.get("size"), when)
            found[entry["name"].rstrip("/").rsplit("/", 1)[-1]] = Listed(modified_s, stamp)
    return found


def list_files(folder: Location) -> dict[str, float]:
    """The files directly in ``folder``: name → modification time (seconds since the epoch),
    from one listing (:func:`list_stamped`)."""
    return {name: listed.modified_s for name, listed in list_stamped(folder).items()}


def _modified(entry: dict[str, Any]) -> float:
    """A listing entry's modification time (each backend names it its own way); NaN if none."""
    for key in ("LastModified", "last_modified", "mtime", "updated", "created"):
        value = entry.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float("nan")


def read_all(locs: list[Location]) -> list[bytes | OSError]:
    """The bytes of each of ``locs`` (all on one filesystem), or the error reading it gave.

    On an object store the objects are fetched concurrently (one GET each, in one call);
    locally read one by one. A missing object gives :class:`FileNotFoundError`.
    """
    if not locs:
        return []
    first = locs[0]
    if isinstance(first, Path):  # local
        found: list[bytes | OSError] = []
        for loc in locs:
            try:
                found.append(loc.read_bytes())
            except OSError as error:
                found.append(error)
        return found
    paths = [loc.path for loc in locs if not isinstance(loc, Path)]
    fetched = first.fs.cat(paths, on_error="return")
    return [_as_result(fetched.get(path, FileNotFoundError(path))) for path in paths]


def _as_result(value: Any) -> bytes | OSError:
    if isinstance(value, bytes | OSError):
        return value
    return OSError(str(value))
