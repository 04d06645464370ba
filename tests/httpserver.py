"""A small local HTTP server for download tests (127.0.0.1, port 0): ranges and injected faults.

Tests register routes with :meth:`LocalServer.add` and fetch
``server.url("/path")``. Each route can misbehave on purpose:

* ``status``: answer with this HTTP status (e.g. 404, 500) and a short body;
* ``fail_times``: answer the first N requests with ``fail_status`` (then serve normally);
* ``cut_after`` / ``cut_times``: announce the full length, send only this many bytes,
  then close the connection (for the first ``cut_times`` requests);
* ``delay``: wait this long before the headers (a slow server);
* ``stall_after``: send this many bytes, then stall for ``stall`` seconds;
* ``ranges``: honour ``Range: bytes=N-`` (206 answers, ``Accept-Ranges: bytes``);
* ``query``: required query parameters (answer 401 when they differ).

Every request is logged in ``server.log`` as ``(path, headers dict)``. Nothing here
touches the network beyond the loopback interface.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass
class Route:
    body: bytes
    status: int = 200
    content_type: str = "application/octet-stream"
    ranges: bool = True
    delay: float = 0.0
    cut_after: int | None = None
    cut_times: int = 1
    fail_times: int = 0
    fail_status: int = 500
    stall_after: int | None = None
    stall: float = 0.0
    query: dict[str, str] = field(default_factory=dict)
    hits: int = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format, *args):
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        owner = self.server.owner
        with owner.lock:
            owner.log.append((parts.path, {k.lower(): v for k, v in self.headers.items()}))
            route = owner.routes.get(parts.path)
            if route is not None:
                route.hits += 1
                hit = route.hits
        if route is None:
            return self._plain(404, b"not found")
        if route.delay and owner.stop.wait(route.delay):
            return
        if route.query:
            got = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if any(got.get(k) != v for k, v in route.query.items()):
                return self._plain(401, b'{"status_message": "Invalid API key"}')
        if hit <= route.fail_times:
            return self._plain(route.fail_status, b"injected failure")
        if route.status != 200:
            return self._plain(route.status, b"error")
        body, start, status = route.body, 0, 200
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if route.ranges and m:
            start = int(m.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                return
            status = 206
        chunk = body[start:]
        self.send_response(status)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Content-Length", str(len(chunk)))
        self.send_header("Connection", "close")
        if route.ranges:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        self.close_connection = True
        if route.cut_after is not None and hit <= route.cut_times:
            self.wfile.write(chunk[: route.cut_after])
            self.wfile.flush()
            return  # the connection closes with the body incomplete
        if route.stall_after is not None:
            self.wfile.write(chunk[: route.stall_after])
            self.wfile.flush()
            if owner.stop.wait(route.stall):
                return
            chunk = chunk[route.stall_after :]
        try:
            self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _plain(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: LocalServer


class LocalServer:
    """Serve registered byte strings on ``http://127.0.0.1:<free port>``."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.log: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def add(self, path: str, body: bytes, **kw) -> str:
        """Register ``path`` (must start with '/'); return its full URL."""
        self.routes[path] = Route(body=body, **kw)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests_for(self, path: str) -> list[dict]:
        """Headers of every request made for ``path``."""
        with self.lock:
            return [h for p, h in self.log if p == path]


@pytest.fixture
def http_server():
    """A running :class:`LocalServer`, shut down after the test."""
    with LocalServer() as server:
        yield server
