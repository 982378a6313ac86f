"""Test helpers: real HTTP servers on 127.0.0.1 and handles for external servers."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class ExternalPostgres:
    """A PostgreSQL named by ULTRAWATCH_TEST_POSTGRES_DSN: usable, not restartable."""

    url: str

    def dsn(self, user: str | None = None, dbname: str | None = None) -> str:
        return self.url

    def restart(self) -> None:
        pytest.skip("cannot restart an external PostgreSQL")

    def stop(self) -> None:
        pytest.skip("cannot stop an external PostgreSQL")


@dataclass
class ExternalRedis:
    url: str

    def restart(self) -> None:
        pytest.skip("cannot restart an external Redis")

    def stop(self) -> None:
        pytest.skip("cannot stop an external Redis")


Handler = Callable[[BaseHTTPRequestHandler], None]


@contextlib.contextmanager
def http_server(handle: Handler) -> Iterator[str]:
    """A real threaded HTTP server on 127.0.0.1:<free port>; yields its base URL.

    `handle(request)` is called for every request (any method) and writes the
    response with the usual BaseHTTPRequestHandler calls.
    """

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            handle(self)

        do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def respond(
    req: BaseHTTPRequestHandler,
    status: int,
    body: bytes | str = b"",
    content_type: str = "application/json",
) -> None:
    data = body.encode() if isinstance(body, str) else body
    req.send_response(status)
    req.send_header("Content-Type", content_type)
    req.send_header("Content-Length", str(len(data)))
    req.end_headers()
    if req.command != "HEAD":
        req.wfile.write(data)
