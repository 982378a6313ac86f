"""The audit log: JSON lines (an attempt that executes has a "started" line and
one for its end), fsynced, mode 0600.

Entries never hold secret values: parameters whose names look secret are
redacted here as a last line of defence (actions should not pass them at all).
"""

from __future__ import annotations

import getpass
import json
import os
import re
from pathlib import Path
from typing import Any

from collectors.core.units import iso_now

_SECRET_NAME = re.compile(r"secret|password|passwd|credential|private", re.I)

# "Bearer <anything>" and JWT-looking strings (three base64url parts: a JSON header
# starts "eyJ"; otherwise long parts, so host names and versions are left alone),
# wherever a service echoes them back.
_BEARER = re.compile(r"(?i)\bbearer\s+[^\s\"',;]+")
_JWT = re.compile(
    r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
    r"|[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"
)


def redact_tokens(text: str) -> str:
    """Text safe for an Outcome, an exception message, a notification or the audit log."""
    return _JWT.sub("<redacted token>", _BEARER.sub("Bearer <redacted>", text))


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return str(os.getuid())


def redact(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        if _SECRET_NAME.search(k) and not k.endswith(("_fingerprint", "_length", "_keys")):
            out[k] = "<redacted>"
        elif isinstance(v, dict):
            out[k] = redact(v)
        else:
            out[k] = v
    return out


class AuditLog:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(os.path.expanduser(path))

    def append(
        self,
        *,
        action: str,
        target: str,
        outcome: str,
        params: dict[str, Any] | None = None,
        message: str = "",
        duration_ms: float = 0.0,
    ) -> dict[str, Any]:
        entry = {
            "time": iso_now("milliseconds"),
            "user": os_user(),
            "action": action,
            "target": target,
            "params": redact(params or {}),
            "outcome": outcome,
            "message": redact_tokens(message),
            "duration_ms": round(duration_ms, 1),
        }
        line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
