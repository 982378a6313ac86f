"""What the actions that touch a service share: finding its local process to
signal, naming a signal, minting a short-lived admin token, and keeping secrets
out of the messages they report.

Process lookups are blocking (psutil walks /proc): async callers run them with
`asyncio.to_thread` so the TUI keeps drawing.
"""

from __future__ import annotations

import signal
import time
import warnings

import psutil

from collectors.core.settings import ProcessMatch
from collectors.processes.collector import find_pids
from dashboard.actions.audit import redact_tokens
from dashboard.actions.base import ActionRefused

__all__ = [
    "admin_token",
    "alive",
    "local_targets",
    "redact_tokens",
    "signal_number",
    "top_of_tree",
]

TOKEN_LIFETIME = 60  # seconds: the most DESIGN.md allows for an admin token

Target = tuple[int, float]  # (pid, create_time): guards against pid reuse


def signal_number(name: str, where: str = "the configuration") -> signal.Signals:
    """ "SIGTERM", "term", "15" -> the signal; ActionRefused naming `where` otherwise."""
    text = name.strip().upper()
    if text.isdigit():
        try:
            return signal.Signals(int(text))
        except ValueError:
            raise ActionRefused(f"unknown signal {name!r} in {where}") from None
    try:
        return signal.Signals[text if text.startswith("SIG") else "SIG" + text]
    except KeyError:
        raise ActionRefused(f"unknown signal {name!r} in {where}") from None


def admin_token(secret: str, algorithm: str = "HS256", lifetime: int = TOKEN_LIFETIME) -> str:
    """An admin JWT for a service's /admin/* calls: role=admin, valid <= 60 s."""
    import jwt

    now = int(time.time())
    exp = now + max(1, min(int(lifetime), TOKEN_LIFETIME))
    payload = {"sub": "ultrawatch", "role": "admin", "iat": now, "exp": exp}
    with warnings.catch_warnings():  # a short (weak) key being rotated away still signs
        warnings.simplefilter("ignore")
        return jwt.encode(payload, secret, algorithm=algorithm)


def top_of_tree(pids: list[int]) -> list[Target]:
    """The matched processes whose parent is not matched too: signal only the top
    of a process tree, its children follow it. Gone processes are left out."""
    out = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if p.ppid() in pids:
                continue
            out.append((pid, p.create_time()))
        except psutil.Error:
            continue
    return out


def local_targets(match: ProcessMatch) -> tuple[list[Target], str | None]:
    """A service's local process(es) to signal, or ([], why not). Blocking.
    find_pids skips ourselves and our ancestors and checks a pidfile's pid exists."""
    pids, why = find_pids(cmdline=match.cmdline, pid=match.pid, pidfile=match.pidfile)
    if not pids:
        return [], why
    targets = top_of_tree(pids)
    if not targets:
        return [], "the matched processes exited before they could be signalled"
    return targets, None


def alive(targets: list[Target]) -> list[int]:
    """Which of the targets still run (same pid and start time, not a zombie). Blocking."""
    out = []
    for pid, created in targets:
        try:
            p = psutil.Process(pid)
            if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.Error:
            continue
    return out
