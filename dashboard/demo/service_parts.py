"""Pieces of a demo service: its event emitter, its JWT secrets, admin authorization."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web

from collectors.core.units import iso_time
from collectors.secrets.store import fingerprint, parse_dotenv

ALGORITHM = "HS256"
MAX_TOKEN_LIFE_S = 60.0  # an admin token's exp is at most this far ahead (DESIGN.md)
CLOCK_LEEWAY_S = 5.0  # the minting clock may run a little ahead of ours


class Emitter:
    """A Node-style event emitter, counted the way /health/memory reports it."""

    def __init__(self, max_per_event: int = 10) -> None:
        self.max_per_event = max_per_event
        self._listeners: dict[str, list[Callable[..., Any]]] = defaultdict(list)

    def on(self, event: str, fn: Callable[..., Any]) -> None:
        self._listeners[event].append(fn)

    def count(self, event: str) -> int:
        return len(self._listeners.get(event, ()))

    def emit(self, event: str, *args: Any) -> None:
        for fn in list(self._listeners.get(event, ())):
            fn(*args)

    def snapshot(self) -> dict[str, Any]:
        by_event = {k: len(v) for k, v in self._listeners.items() if v}
        return {
            "total": sum(by_event.values()),
            "maxPerEvent": self.max_per_event,
            "byEvent": by_event,
        }


class Secrets:
    """JWT_SECRET, JWT_REFRESH_SECRET and, during a rotation, JWT_SECRET_PREVIOUS.

    The previous secret is honoured for `grace_s` seconds after the load that
    first saw it: long enough for tokens signed before the rotation, and no
    longer, so a leaked old secret stops working by itself.
    """

    def __init__(self, path: str | Path, grace_s: float) -> None:
        self.path = Path(path)
        self.grace_s = grace_s
        self.current = ""
        self.refresh = ""
        self.previous: str | None = None
        self.previous_until = 0.0
        self.loaded_at = datetime.now(UTC)

    def load(self) -> None:
        values = parse_dotenv(self.path.read_text(encoding="utf-8"))
        current = values.get("JWT_SECRET", "")
        previous = values.get("JWT_SECRET_PREVIOUS") or None
        if previous and previous != current:
            if previous != self.previous:
                self.previous_until = time.monotonic() + self.grace_s
        else:
            previous = None
        self.current, self.previous = current, previous
        self.refresh = values.get("JWT_REFRESH_SECRET", "")
        self.loaded_at = datetime.now(UTC)

    def accepted(self) -> list[str]:
        keys = [self.current] if self.current else []
        if self.previous and time.monotonic() < self.previous_until:
            keys.append(self.previous)
        return keys

    def describe(self) -> dict[str, Any]:
        return {
            "algorithm": ALGORITHM,
            "accessKeyFingerprint": fingerprint(self.current) if self.current else None,
            "refreshKeyFingerprint": fingerprint(self.refresh) if self.refresh else None,
            "loadedAt": iso_time(self.loaded_at),
        }


def _deny(status: int, message: str) -> web.Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.json_response({"error": message}, status=status, headers=headers)


def authorize(request: web.Request, secrets: Secrets) -> web.Response | None:
    """None when the request carries an HS256 admin token signed with a key we accept."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _deny(401, "a bearer token is required")
    claims: dict[str, Any] | None = None
    for key in secrets.accepted():
        try:
            claims = jwt.decode(
                token.strip(), key, algorithms=[ALGORITHM], options={"require": ["exp"]}
            )
            break
        except jwt.PyJWTError:
            continue
    if claims is None:
        return _deny(401, "invalid token")
    # DESIGN.md: admin tokens expire at most 60 s after they are minted, so a
    # token with a distant expiry is as good as a leaked password: refused.
    if claims["exp"] > time.time() + MAX_TOKEN_LIFE_S + CLOCK_LEEWAY_S:
        return _deny(401, f"token expires more than {MAX_TOKEN_LIFE_S:.0f} s ahead")
    if claims.get("role") != "admin":
        return _deny(403, "admin role required")
    request["claims"] = claims
    return None
