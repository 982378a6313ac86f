"""Lock keys and owner tokens as text: display-safe, and a lossless escaped form.

Values under lock keys are whatever the lock library wrote: usually a hex uuid,
sometimes raw bytes. The display form is printable and bounded; the exact form
round-trips (`parse_exact(exact_text(b)) == b`) so the engineer can hand the value
they saw back to `release-lock --owner` or the TUI.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

SIGNAL_PREFIX = b"lock-signal:"  # python-redis-lock's wake-up lists: not locks

OWNER_CHARS = 64  # display width of an owner token
EXACT_LIMIT = 512  # longer raw values get no exact form in readings

_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})|\\\\")


def exact_text(raw: bytes) -> str:
    """Lossless text: valid printable UTF-8 without backslashes as is; otherwise
    printable ASCII as is, `\\\\` for a backslash and `\\xNN` for every other byte."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\\" not in text and text.isprintable():
        return text
    out = []
    for b in raw:
        if b == 0x5C:
            out.append("\\\\")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def parse_exact(text: str) -> bytes:
    """The inverse of `exact_text`."""
    if "\\" not in text:
        return text.encode("utf-8")
    raw = text.encode("utf-8")
    return _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]) if m.group(1) else b"\\", raw)


def display_text(raw: bytes, limit: int = OWNER_CHARS) -> str:
    """Printable, bounded text for a key or an owner token (never markup-safe:
    the TUI escapes it)."""
    text = exact_text(raw)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def node_name(url: str) -> str:
    """host:port of a Redis URL (an IPv6 host in brackets), never its password.
    Never raises: a junk port shows as written (connecting then says what is wrong)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    try:
        port: int | str = parts.port or 6379
    except ValueError:
        port = parts.netloc.rpartition("@")[2].rpartition(":")[2] or "?"
    return host_port(host, port)


def host_port(host: str, port: int | str) -> str:
    """`host:port`, with an IPv6 address bracketed as in a URL."""
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def glob_regex(pattern: str) -> re.Pattern[bytes]:
    """A Redis glob (`*`, `?`, `[a-z]`, `[^x]`, `\\` escapes; the patterns SCAN's
    MATCH takes) as a regular expression over raw keys."""
    raw = parse_exact(pattern)
    out = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i : i + 1]
        if c == b"\\" and i + 1 < n:
            out.append(re.escape(raw[i + 1 : i + 2]))
            i += 2
            continue
        if c == b"*":
            out.append(b".*")
        elif c == b"?":
            out.append(b".")
        elif c == b"[" and b"]" in raw[i + 1 :]:
            end = raw.index(b"]", i + 2 if raw[i + 1 : i + 2] in (b"^", b"]") else i + 1)
            body = raw[i + 1 : end]
            neg = body.startswith(b"^")
            body = body[1:] if neg else body
            chars = re.sub(rb"[\\\]\[^]", lambda m: b"\\" + m.group(0), body)
            out.append(b"[" + (b"^" if neg else b"") + chars + b"]")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile(b"".join(out), re.S)


def matches_any(patterns: list[str], key: bytes) -> bool:
    """Does `key` match one of these Redis globs (as SCAN MATCH would)?"""
    return any(glob_regex(p).fullmatch(key) for p in patterns)
