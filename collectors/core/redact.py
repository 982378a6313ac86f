"""Keeping what targets send harmless and what we hold secret out of sight.

- `printable`: text from a target (query text, health messages, error strings) may
  carry terminal escape sequences; they are shown as `\\xNN`, never interpreted.
- `mask_url` / `scrub`: connection strings carry passwords; errors that quote them
  and recordings that store the config must not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` on one line: tabs and line breaks as spaces, every other C0/C1 control
    character (ESC of a terminal escape sequence, BEL, ...) as `\\xNN`."""
    if text.isprintable():
        return text
    return _CONTROL.sub(_escape_control, text)


def _escape_control(m: re.Match[str]) -> str:
    ch = m.group()
    return " " if ch in "\t\n\r" else f"\\x{ord(ch):02x}"


def clean(value: Any) -> Any:
    """`printable` applied to every string in a JSON-like structure or msgspec Struct.
    Returns the very same object when nothing needed escaping (the common case costs
    no copies)."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, msgspec.Struct):
        changed = {}
        for name in value.__struct_fields__:
            v = getattr(value, name)
            cv = clean(v)
            if cv is not v:
                changed[name] = cv
        return msgspec.structs.replace(value, **changed) if changed else value
    if isinstance(value, dict):
        out = None
        for k, v in value.items():
            ck = printable(k) if isinstance(k, str) else k
            cv = clean(v)
            if out is None and (ck is not k or cv is not v):
                out = dict(list(value.items())[: list(value).index(k)])
            if out is not None:
                out[ck] = cv
        return value if out is None else out
    if isinstance(value, list | tuple):
        items = [clean(v) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items
    return value


def mask_url(url: str) -> str:
    """The URL with its password (if any) replaced by `***`."""
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
