"""Serve an output folder's QC page on 127.0.0.1, for an operator on another machine.

The page opens from disk with no server; this is for viewing it through an SSH tunnel
(``ssh -L 8000:127.0.0.1:8000 user@host``, then http://127.0.0.1:8000/ on the operator's
machine). Only the page is served (``/`` and ``/report.html``), read afresh on every request, so a
live page stays live; the server listens on the loopback interface only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from daskmic.errors import UsageError
from daskmic.io.storage import Location, StorageOptions, location
from daskmic.report.page import write_report
from daskmic.run.layout import REPORT_NAME, OutputLayout

HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class _PageHandler(BaseHTTPRequestHandler):
    """GET/HEAD of the page; anything else is 404."""

    def __init__(self, *args: object, page: Location, **kwargs: object) -> None:
        self.page = page
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _send_page(self, body: bool) -> None:
        if urlsplit(self.path).path not in ("/", f"/{REPORT_NAME}"):
            self.send_error(HTTPStatus.NOT_FOUND, "only the QC page is served")
            return
        try:
            content = self.page.read_bytes()  # renamed into place whole: never half a page
        except FileNotFoundError:
            self.send_error(HTTPStatus.NOT_FOUND, f"no {REPORT_NAME} yet")
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(content)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._send_page(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._send_page(body=False)


def page_server(
    out_dir: str | os.PathLike[str] | Location, port: int = DEFAULT_PORT
) -> ThreadingHTTPServer:
    """A server of ``OUT/report.html`` bound to 127.0.0.1:``port`` (0: any free port).

    The page is read at each request, from the folder's place (a local path, or a URL as a
    ``Location`` carrying its storage options).

    Call ``serve_forever()`` on it; ``server_address`` gives the port bound.

    Raises
    ------
    UsageError
        If ``port`` is not in 0–65535.
    """
    if not 0 <= port <= 65535:
        raise UsageError(f"port must be in 0-65535, got {port}; give another with --serve PORT")
    out = location(out_dir)
    page = OutputLayout(out.resolve() if isinstance(out, Path) else out).report
    handler = partial(_PageHandler, page=page)
    return ThreadingHTTPServer((HOST, port), handler)


def serve(
    out_dir: str | os.PathLike[str] | Location,
    port: int = DEFAULT_PORT,
    *,
    announce: Callable[[str], None] = print,
    storage_options: StorageOptions | None = None,
) -> None:
    """Serve an output folder's page on 127.0.0.1 until interrupted (Ctrl-C).

    The page is written first (:func:`~daskmic.report.page.write_report`) unless a running
    run keeps a live one there (:func:`~daskmic.report.live.is_live`), which is then served as
    the run updates it.

    Parameters
    ----------
    out_dir : path-like, URL or Location
        An output folder.
    port : int
        The port on 127.0.0.1 (0: any free port).
    announce : callable
        Called once with the page's URL when the server listens.
    storage_options : dict, optional
        For an output folder given by URL: its filesystem's options (credentials, endpoint).
    """
    from daskmic.report.live import is_live

    out = location(out_dir, storage_options)
    page = OutputLayout(out).report
    if not is_live(page):
        write_report(out)
    with page_server(out, port) as server:
        host, bound = str(server.server_address[0]), int(server.server_address[1])
        announce(f"serving {page} at http://{host}:{bound}/ (Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
