"""Keeping what targets send harmless and what we hold secret out of sight.

- `printable`: text from a target (query text, health messages, error strings) may
  carry terminal escape sequences; they are shown as `\\xNN`, never interpreted.
- `mask_url` / `scrub`: connection strings carry passwords; errors that quote them
  and recordings that store the config must not.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec

# C0/C1 controls, and the invisible format characters (Unicode category Cf: the
# bidirectional overrides and isolates U+202A-202E and U+2066-2069 that reorder what
# a terminal shows, zero-width spaces and joiners U+200B-200F, U+2060-2064, U+FEFF,
# soft hyphen, tag characters...), plus the line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _invisible(ch: str) -> bool:
    return unicodedata.category(ch) == "Cf"


def printable(text: str) -> str:
    """`text` on one line: tabs and line breaks (U+2028, U+2029 too) as spaces,
    every other C0/C1 control character (ESC of a terminal escape sequence, BEL,
    ...) as `\\xNN`, and every invisible format character (category Cf: U+202E
    right-to-left override, U+200B zero-width space, ...) as `\\uNNNN`."""
    if text.isprintable():
        return text
    text = _CONTROL.sub(_escape_control, text)
    if text.isprintable():
        return text
    return "".join(_escape_format(ch) if _invisible(ch) else ch for ch in text)


def _escape_format(ch: str) -> str:
    n = ord(ch)
    return f"\\u{n:04x}" if n <= 0xFFFF else f"\\U{n:08x}"


def _escape_control(m: re.Match[str]) -> str:
    ch = m.group()
    return " " if ch in "\t\n\r\u2028\u2029" else f"\\x{ord(ch):02x}"


def _plain_str(value: Any) -> Any:
    """Subclasses of str, int and float from the config (Name, Duration...) are
    encoded as their value."""
    for base in (str, float, int):
        if isinstance(value, base):
            return base(value)
    raise TypeError(type(value).__name__)


_JSON = msgspec.json.Encoder(enc_hook=_plain_str)


def clean(value: Any) -> Any:
    """`printable` applied to every string in a JSON-like structure or msgspec Struct.
    Returns the very same object when nothing needed escaping (the common case costs
    no copies)."""
    if isinstance(value, str):
        return printable(value)
    if value is None or isinstance(value, int | float):
        return value
    # The common case, nothing to escape, is told by one pass in C: JSON escapes every
    # C0 control with a backslash and writes every other character as itself, so a
    # text with no backslash that is printable holds no string that needs escaping.
    # A reading of 500 sessions took ~10 ms to walk in Python and ~0.5 ms this way
    # (bench/postgres_collector.py); anything else (a backslash, a non-printable
    # character, a type JSON cannot carry) takes the walk.
    try:
        raw = _JSON.encode(value)
    except (TypeError, ValueError, msgspec.EncodeError):
        return _clean(value)
    if b"\\" in raw:
        return _clean(value)
    if raw.isascii():  # then only DEL (0x7f) is not printable
        return value if b"\x7f" not in raw else _clean(value)
    return value if raw.decode().isprintable() else _clean(value)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, msgspec.Struct):
        changed = {}
        for name in value.__struct_fields__:
            v = getattr(value, name)
            cv = _clean(v)
            if cv is not v:
                changed[name] = cv
        return msgspec.structs.replace(value, **changed) if changed else value
    if isinstance(value, dict):
        out = None
        for k, v in value.items():
            ck = printable(k) if isinstance(k, str) else k
            cv = _clean(v)
            if out is None and (ck is not k or cv is not v):
                out = dict(list(value.items())[: list(value).index(k)])
            if out is not None:
                out[ck] = cv
        return value if out is None else out
    if isinstance(value, list | tuple):
        items = [_clean(v) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items
    return value


# A password in a URL's query (`redis://host/0?password=...`, which redis-py honours).
_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:password|passwd|pwd)=)([^&#]*)")


def mask_url(url: str) -> str:
    """The URL with its password (if any, in the user part or as `?password=`)
    replaced by `***`."""
    url = _QUERY_PASSWORD.sub(lambda m: m.group(1) + "***" if m.group(2) else m.group(0), url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)
    if parts.password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@{parts.netloc.rsplit('@', 1)[1]}"
    return parts._replace(netloc=netloc).geturl()


def mask_dsn(dsn: str) -> str:
    """A libpq DSN (URL or key=value form) without its password."""
    if "://" in dsn:
        return mask_url(dsn)
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn)


def dsn_secrets(dsn: str) -> list[str]:
    """The password pieces of a DSN, in every spelling an error message may quote."""
    found: list[str] = []
    if "://" in dsn:
        for q in _QUERY_PASSWORD.finditer(dsn):
            found += [q.group(2), unquote(q.group(2)), unquote(q.group(2).replace("+", " "))]
        m = re.search(r"//[^:/@]*:([^@/]*)@", dsn)
        if m and m.group(1):
            found.append(m.group(1))
            try:
                password = urlsplit(dsn).password
            except ValueError:
                password = None
            if password:
                found += [password, unquote(password)]
    else:
        m = re.search(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn)
        if m:
            found.append(m.group(1).strip("'"))
    return [s for s in found if s]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret replaced by `***`."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text
