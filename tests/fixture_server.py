"""A static server for a fixture site, served the way the site (and the shared mirror's serve.py) serves it.

- ``.shtml`` goes out as ``Content-Type: text/html`` with no charset, so the pages' ``<meta>`` decides;
- ``/`` serves ``/index.shtml``; the query string is ignored, as a static server does;
- a missing file is a 404;
- every request is counted by path, so a test can tell what the crawler fetched and how often;
- ``canned`` (optional) maps a path to ``(headers, body)`` answered as is instead of a file: a gzip bomb
  (``Content-Encoding: gzip``), an oversized page. Content-Length is added unless the headers carry it
  or ``Connection: close``, in which case the body ends with the connection;
- ``redirects`` (optional) maps a path to the ``Location`` it answers with a 302.

Standard library only, on 127.0.0.1 and a free port, in a thread of the test process.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

CONTENT_TYPES = {
    ".shtml": "text/html",
    ".html": "text/html",
    ".txt": "text/plain",
    ".css": "text/css",
    ".js": "application/javascript",
    ".jpg": "image/jpeg",
    ".gif": "image/gif",
}
NOT_FOUND = b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>"


class FixtureServer:
    def __init__(
        self,
        root: Path,
        canned: Mapping[str, tuple[Mapping[str, str], bytes]] | None = None,
        redirects: Mapping[str, str] | None = None,
    ):
        self.root = Path(root).resolve()
        self.canned = dict(canned or {})  # path -> (headers, body)
        self.redirects = dict(redirects or {})  # path -> Location
        self.requests: Counter[str] = Counter()  # path -> number of requests
        self.statuses: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.site = self
        host, port = self._httpd.server_address[:2]
        self.url = f"http://{host}:{port}/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fixture-server", daemon=True)

    def __enter__(self) -> FixtureServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def file_for(self, path: str) -> Path | None:
        relative = unquote(path).lstrip("/") or "index.shtml"
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate

    def record(self, path: str, status: int) -> None:
        with self._lock:
            self.requests[path] += 1
            self.statuses[status] += 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the mirror
    server_version = "fixture-site"

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _respond(self, send_body: bool) -> None:
        site: FixtureServer = self.server.site
        path = urlsplit(self.path).path
        if path in site.canned:
            self._respond_canned(path, *site.canned[path], send_body=send_body)
            return
        if path in site.redirects:
            self._respond_canned(path, {"Location": site.redirects[path]}, b"", send_body=send_body, status=302)
            return
        file = site.file_for(path)
        if file is None:
            status, content_type, body = 404, "text/html", NOT_FOUND
        else:
            status = 200
            content_type = CONTENT_TYPES.get(file.suffix, "application/octet-stream")
            body = file.read_bytes()
        site.record(path, status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _respond_canned(
        self, path: str, headers: Mapping[str, str], body: bytes, send_body: bool, status: int = 200
    ) -> None:
        site: FixtureServer = self.server.site
        site.record(path, status)
        self.send_response(status)
        names = {name.lower() for name in headers}
        for name, value in headers.items():
            self.send_header(name, value)  # "Connection: close" makes the handler close after the body
        if "content-length" not in names and headers.get("Connection", "").lower() != "close":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up on a body it did not want

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass  # the test reads the counters instead
