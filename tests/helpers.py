"""Test helpers: real HTTP servers on 127.0.0.1 and handles for external servers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme


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
def http_server(handle: Handler, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """A real threaded HTTP server on 127.0.0.1:<free port>; yields its base URL.

    `handle(request)` is called for every request (any method) and writes the
    response with the usual BaseHTTPRequestHandler calls. With `tls` it speaks
    HTTPS (a failed handshake drops that one connection, as a real server does).
    """

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            handle(self)

        do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    open_socks: list[socket.socket] = []

    class _Server(ThreadingHTTPServer):
        request_queue_size = 256  # the default 5 drops SYNs of a 64-wide poll (1 s retries)
        daemon_threads = True

        def process_request(self, request, client_address):  # type: ignore[no-untyped-def]
            open_socks.append(request)
            super().process_request(request, client_address)

    server = _Server(("127.0.0.1", 0), _Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    # A short poll interval: shutdown() waits for it (the default 0.5 s, paid by
    # every test that stops a server).
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http{'s' if tls else ''}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        for sock in open_socks:  # keep-alive connections too: the service is gone
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


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


@dataclass
class Pki:
    """A private CA with a server certificate for 127.0.0.1 and a client certificate,
    as PEM files (what ultrawatch's config names) and as contexts (what servers use)."""

    ca: trustme.CA
    ca_file: Path
    client_cert: Path
    client_key: Path
    server: trustme.LeafCert

    @classmethod
    def create(cls, directory: Path) -> Pki:
        ca = trustme.CA()
        client = ca.issue_cert("on-call@ultrawatch.test")
        ca.cert_pem.write_to_path(directory / "ca.pem")
        client.cert_chain_pems[0].write_to_path(directory / "client.pem")
        client.private_key_pem.write_to_path(directory / "client.key")
        return cls(
            ca,
            directory / "ca.pem",
            directory / "client.pem",
            directory / "client.key",
            ca.issue_cert("127.0.0.1"),
        )

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server.configure_cert(ctx)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(ctx)
        return ctx


@contextlib.contextmanager
def tls_proxy(target_port: int, ctx: ssl.SSLContext) -> Iterator[int]:
    """A TLS front for a plain TCP server on 127.0.0.1 (how Redis is often given TLS:
    a terminating proxy). Yields the TLS port; bytes are relayed unchanged. Runs its
    own event loop in a thread (an SSL socket must not be read and written from two
    threads at once)."""
    loop = asyncio.new_event_loop()

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            dst.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    # The loop runs in its thread from the start: the caller may be inside a running
    # loop itself (an async test), where run_until_complete is refused.
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    start = asyncio.start_server(serve, "127.0.0.1", 0, ssl=ctx)
    server = asyncio.run_coroutine_threadsafe(start, loop).result(5)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:

        async def shutdown() -> None:
            server.close()
            relays = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in relays:
                task.cancel()
            await asyncio.gather(*relays, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        if not thread.is_alive():
            loop.close()
