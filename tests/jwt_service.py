"""A real HTTP server that behaves like an UltraMarket service's JWT side.

It loads its keys from a real secret store (dotenv or dir), publishes their
fingerprints at /health/security, verifies admin tokens on /admin/reload-secrets
with the current or the previous secret and re-reads the store, and protects
/api/admin/me. `vulnerable=True` makes it accept `alg: none` and tokens signed
with `your-secret-key`, like the incident's services.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import jwt
import pytest

from collectors.secrets.config import SecretStoreConfig
from collectors.secrets.store import fingerprint, open_store
from tests.helpers import http_server, respond


class JwtService:
    def __init__(
        self,
        store_path: Path,
        *,
        kind: str = "dotenv",
        keys: tuple[str, str] = ("JWT_SECRET", "JWT_REFRESH_SECRET"),
        vulnerable: bool = False,
        ignore_reload: bool = False,
        bad_token_status: int = 401,
    ) -> None:
        self.store = open_store(SecretStoreConfig(kind=kind, path=str(store_path)))  # type: ignore[arg-type]
        self.keys = keys
        self.vulnerable = vulnerable
        self.ignore_reload = ignore_reload
        self.bad_token_status = bad_token_status  # e.g. 500: a service that crashes on them
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.reloads = 0
        self.load()

    def load(self) -> None:
        with self.lock:
            items = self.store.items()
            self.access = items.get(self.keys[0])
            self.refresh = items.get(self.keys[1])
            self.previous = items.get(self.keys[0] + "_PREVIOUS")
            self.loaded_at = datetime.now(UTC).isoformat(timespec="seconds")

    def _verify(self, header: str | None, *, admin_exp_limit: bool = False) -> dict | None:
        if not header or not header.startswith("Bearer "):
            return None
        token = header[7:]
        with self.lock:
            candidates = [k for k in (self.access, self.previous) if k]
        if self.vulnerable:
            try:
                if jwt.get_unverified_header(token).get("alg") == "none":
                    return jwt.decode(token, options={"verify_signature": False})
            except jwt.PyJWTError:
                return None
            candidates.append("your-secret-key")
        for key in candidates:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    claims = jwt.decode(
                        token, key, algorithms=["HS256"], options={"require": ["exp"]}
                    )
            except jwt.PyJWTError:
                continue
            if admin_exp_limit and claims["exp"] > time.time() + 61:
                return None
            return claims
        return None

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        status, body = self._handle(req)
        # Recorded before the answer goes out: a client that has its answer can count it.
        self.requests.append((req.command, req.path, status))
        respond(req, status, json.dumps(body))

    def _handle(self, req: BaseHTTPRequestHandler) -> tuple[int, dict]:
        auth = req.headers.get("Authorization")
        length = int(req.headers.get("Content-Length") or 0)
        if length:
            req.rfile.read(length)
        if req.path == "/health/security":
            with self.lock:
                body = {
                    "jwt": {
                        "algorithm": "HS256",
                        "accessKeyFingerprint": fingerprint(self.access or ""),
                        "refreshKeyFingerprint": fingerprint(self.refresh or ""),
                        "loadedAt": self.loaded_at,
                    }
                }
            return 200, body
        if req.path == "/health":
            return 200, {"status": "pass"}
        if req.path == "/admin/reload-secrets" and req.command == "POST":
            claims = self._verify(auth, admin_exp_limit=True)
            if not claims or claims.get("role") != "admin":
                return 401, {"error": "unauthorized"}
            self.reloads += 1
            if not self.ignore_reload:
                self.load()
            return 200, {"accessKeyFingerprint": fingerprint(self.access or "")}
        if req.path == "/api/admin/me":
            claims = self._verify(auth)
            if not claims:
                status = self.bad_token_status if auth else 401
                return status, {"error": "unauthorized"}
            if claims.get("role") != "admin":
                return 403, {"error": "forbidden"}
            return 200, {"user": claims.get("sub"), "role": "admin"}
        return 404, {"error": "not found"}


@contextlib.contextmanager
def running(service: JwtService) -> Iterator[str]:
    with http_server(service.handle) as url:
        yield url


def assert_no_secret(values: list[str | None], *texts: str) -> None:
    """Fail if any secret value appears in anything the tool printed, logged or wrote."""
    for value in values:
        if not value:
            continue
        for i, text in enumerate(texts):
            if value in text:  # not `assert ... in`: pytest would print the value
                pytest.fail(f"secret {fingerprint(value)} leaked into output #{i}")


def main() -> None:
    """Run one service as a local process: `python -m tests.jwt_service STORE`.

    Prints its URL, re-reads the store on SIGHUP (the `reload = {signal}` path).
    """
    import signal
    import sys

    service = JwtService(Path(sys.argv[1]))
    signal.signal(signal.SIGHUP, lambda *_: service.load())
    with running(service) as url:
        print(url, flush=True)
        while True:
            signal.pause()


if __name__ == "__main__":
    main()
