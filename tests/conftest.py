"""Fixtures shared across the suite: a real distributed cluster and small micrograph files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# The S3 endpoint's fake credentials, set before any test starts a cluster, so that workers
# started at any point of the session find them as a user's workers find theirs (environment).
for _name, _value in (
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
):
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def client() -> Iterator:
    """A real scheduler and two real worker processes on loopback, shared by the session.

    It is not made dask's default: tests pass it explicitly, and a plain ``.compute()`` of a
    graph holding test-module functions (which workers cannot import) stays local.
    """
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        memory_limit="4GiB",
    ) as cluster:
        with Client(cluster, set_as_default=False) as connected:
            yield connected


@pytest.fixture
def write_micrographs(tmp_path: Path):
    """Write small synthetic micrographs as MRC files; returns their paths."""
    from daskmic.datasets import synthesize_micrograph
    from daskmic.io.mrc_write import write_mrc

    def write(
        n: int = 3,
        shape: tuple[int, int] = (512, 512),
        pixel_size_A: float = 1.0,
        folder: str = "raw",
        seed: int = 0,
        **options,
    ) -> list[Path]:
        root = tmp_path / folder
        root.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(n):
            image, _ = synthesize_micrograph(
                shape, pixel_size_A=pixel_size_A, seed=seed + i, **options
            )
            path = root / f"mic_{i:03d}.mrc"
            write_mrc(path, image, pixel_size_A)
            paths.append(path)
        return paths

    return write


class Chromium:
    """Headless Chromium, offline (host names resolve nowhere), with its network log."""

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def render(self, url: str, *flags: str) -> tuple[str, dict]:
        """Run Chromium on ``url``; return its stdout and its network log."""
        with tempfile.TemporaryDirectory() as profile:
            netlog = Path(profile) / "net.json"
            command = [
                self.executable,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}/data",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                f"--log-net-log={netlog}",
                *flags,
                url,
            ]
            done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
            return done.stdout, json.loads(netlog.read_text())

    @staticmethod
    def page_requests(netlog: dict) -> list[str]:
        """URLs the *page* asked the network for (Chromium's own update/time pings excluded)."""
        names = {v: k for k, v in netlog["constants"]["logEventTypes"].items()}
        urls = []
        for event in netlog["events"]:
            params = event.get("params", {})
            if names[event["type"]] == "URL_REQUEST_START_JOB" and "url" in params:
                if params.get("initiator") != "not an origin":
                    urls.append(params["url"])
        return urls


@pytest.fixture(scope="session")
def chromium() -> Chromium:
    """The machine's headless Chromium; skips without one (fails under ``CI=true``)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return Chromium(found)
    reason = "headless Chromium is not installed (Debian: apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def side_venv():
    """Make (or reuse) a side environment: ``side_venv(name, installs, key="") -> python``."""
    return _side_venv


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _side_venv(name: str, installs: list[list[str]], key: str = "") -> Path:
    """A virtual environment of its own for tools that cannot share daskmic's (their pins).

    Made once under ``.venv-side/<name>`` in the repository (kept between runs, ignored by
    git) by one ``pip install`` per entry of ``installs``; made anew when ``installs`` or
    ``key`` change. When it cannot be made the test fails, unless PyPI is out of reach outside
    CI (``CI=true``), where it is skipped.

    Returns
    -------
    pathlib.Path
        The environment's ``python``.
    """
    folder = Path(__file__).resolve().parents[1] / ".venv-side" / name
    python = folder / "bin" / "python"
    stamp = folder / ".installed"
    wanted = json.dumps([installs, key])
    if stamp.is_file() and stamp.read_text() == wanted:
        return python
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [[base, "-m", "venv", "--clear", str(folder)]]
    steps += [[str(python), "-m", "pip", "install", "--quiet", *args] for args in installs]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            message = f"cannot make the {name} environment: {' '.join(step)}\n{done.stderr[-3000:]}"
            reachable = _pip(Path(sys.executable), "index", "versions", "pip").returncode == 0
            if os.environ.get("CI") == "true" or reachable:
                pytest.fail(message)
            pytest.skip(f"PyPI unreachable: {message}")
    stamp.write_text(wanted)
    return python


# --- object storage and HTTP, for real, on 127.0.0.1 -----------------------------------------


class Traffic:
    """What a test server answered: one ``(method, path, range header, bytes sent)`` per request.

    A WSGI middleware records each request, so tests can count the requests and bytes a read
    cost, as the client saw them on the wire.
    """

    def __init__(self, app) -> None:
        self.app = app
        self.requests: list[tuple[str, str, str, int]] = []

    def __call__(self, environ, start_response):
        entry = [environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""),
                 environ.get("HTTP_RANGE", ""), 0]
        self.requests.append(entry)  # type: ignore[arg-type]
        for chunk in self.app(environ, start_response):
            entry[3] += len(chunk)
            yield chunk

    def clear(self) -> None:
        self.requests.clear()

    def bytes_sent(self, path_part: str = "") -> int:
        """Bytes of the bodies of the responses to requests whose path holds ``path_part``."""
        return sum(sent for _, path, _, sent in self.requests if path_part in path)

    def count(self, path_part: str = "", method: str = "") -> int:
        """Requests whose path holds ``path_part`` (and with ``method``, when given)."""
        return sum(
            1 for m, path, _, _ in self.requests if path_part in path and method in ("", m)
        )


class S3Endpoint:
    """A real S3 API (moto's server) on 127.0.0.1, as zarr-python and s3fs test themselves.

    ``storage_options`` is what daskmic's ``storage_options=`` / ``--storage-options`` take;
    ``env`` the environment for a subprocess that should find the endpoint on its own;
    :meth:`bucket` makes a fresh, empty bucket and returns its ``s3://`` URL.
    """

    def __init__(self, url: str, traffic: Traffic) -> None:
        self.url = url
        self.traffic = traffic
        self.storage_options = {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": url},
        }
        self.env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": url,
        }
        self._made = 0

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(**self.storage_options, skip_instance_cache=True)

    def bucket(self, prefix: str = "daskmic") -> str:
        import uuid

        self._made += 1
        name = f"{prefix}-{self._made}-{uuid.uuid4().hex[:8]}"
        self.filesystem().mkdir(name)
        return f"s3://{name}"


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Endpoint]:
    """A session's S3 endpoint on 127.0.0.1 (moto's server, threaded, in this process)."""
    import threading

    pytest.importorskip("s3fs")
    moto_app = pytest.importorskip("moto.moto_server.werkzeug_app")
    from werkzeug.serving import make_server

    for name, value in S3Endpoint("", Traffic(None)).env.items():
        if name != "AWS_ENDPOINT_URL":
            os.environ.setdefault(name, value)
    traffic = Traffic(moto_app.DomainDispatcherApplication(moto_app.create_backend_app))
    server = make_server(
        "127.0.0.1", 0, traffic, threaded=True, request_handler=moto_app.MotoRequestHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield S3Endpoint(f"http://127.0.0.1:{server.server_port}", traffic)
    finally:
        server.shutdown()
        thread.join()


class HTTPFolder:
    """A local folder served over HTTP on 127.0.0.1 (with byte ranges, no listing)."""

    def __init__(self, root: Path, url: str, traffic: Traffic) -> None:
        self.root = root
        self.url = url
        self.traffic = traffic


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[HTTPFolder]:
    """Serve a fresh folder at ``http_folder.url`` (files: ``http_folder.root``).

    Answers GET and HEAD, honours one ``Range: bytes=a-b`` per request (206) as object stores
    and web servers do, and lists nothing: as EMPIAR's and the data portal's HTTPS servers
    behave for a client that has only URLs.
    """
    import threading
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    root = tmp_path / "served"
    root.mkdir()

    def app(environ, start_response):
        path = root / environ.get("PATH_INFO", "/").lstrip("/")
        if not path.is_file() or root not in path.resolve().parents:
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        data = path.read_bytes()
        size, status = len(data), "200 OK"
        headers = [("Accept-Ranges", "bytes"), ("Content-Type", "application/octet-stream")]
        wanted = environ.get("HTTP_RANGE", "")
        if wanted.startswith("bytes="):
            first, _, last = wanted[len("bytes="):].partition("-")
            start = int(first) if first else max(0, size - int(last))
            end = min(size - 1, int(last)) if first and last else size - 1
            data, status = data[start : end + 1], "206 Partial Content"
            headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        headers.append(("Content-Length", str(len(data))))
        start_response(status, headers)
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else data]

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args) -> None:
            pass

    class Threading(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    traffic = Traffic(app)
    server = make_server("127.0.0.1", 0, traffic, server_class=Threading, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HTTPFolder(root, f"http://127.0.0.1:{server.server_port}", traffic)
    finally:
        server.shutdown()
        thread.join()
