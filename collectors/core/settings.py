"""What every config section is made of: the error an engineer reads, the base
Struct, value types that parse and check themselves, and helpers for cross-field rules."""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from collectors.core.units import (
    ByteSize,
    Count,
    Duration,
    Interval,
    Number,
    PositiveCount,
    PositiveDuration,
    Ratio,
    Timeout,
)


class ConfigError(Exception):
    """A configuration problem, already phrased for the engineer."""

    def __init__(self, source: str, path: str, message: str) -> None:
        self.source = source
        self.path = path
        self.message = message
        where = f"{source}: {path}: " if path else f"{source}: "
        super().__init__(where + message)


class HttpUrl(str):
    @classmethod
    def parse(cls, value: object) -> HttpUrl:
        if isinstance(value, str) and "@" in value.split("://", 1)[-1].split("/", 1)[0]:
            # The URL is shown and audited everywhere: no place for credentials.
            raise ValueError("expected an http(s) URL without user or password in it")
        if isinstance(value, str) and re.fullmatch(r"https?://[^/\s:@]+(:\d+)?(/\S*)?", value):
            return cls(value.rstrip("/"))
        raise ValueError(f"expected an http(s) URL, got {value!r}")


class UrlPath(str):
    @classmethod
    def parse(cls, value: object) -> UrlPath:
        if isinstance(value, str) and value.startswith("/") and not re.search(r"\s", value):
            return cls(value)
        raise ValueError(f"expected a path starting with '/', got {value!r}")


class Regex(str):
    @classmethod
    def parse(cls, value: object) -> Regex:
        if not isinstance(value, str):
            raise ValueError(f"expected a regular expression, got {value!r}")
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"expected a regular expression, got {value!r} ({e})") from None
        return cls(value)


class Name(str):
    """A name used in check ids: letters, digits, '-', '_' and '.'."""

    @classmethod
    def parse(cls, value: object) -> Name:
        if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
            return cls(value)
        raise ValueError(f"expected a name of letters, digits, '-', '_' or '.', got {value!r}")


class SecretKey(str):
    """A key in the secret store: an environment-variable-like name (or file name)."""

    @classmethod
    def parse(cls, value: object) -> SecretKey:
        if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", value):
            return cls(value)
        raise ValueError(
            f"expected a key name of letters, digits, '_', '-' or '.' (no spaces), got {value!r}"
        )


_CUSTOM: dict[type, Any] = {
    Duration: Duration.parse,
    PositiveDuration: PositiveDuration.parse,
    Interval: Interval.parse,
    Timeout: Timeout.parse,
    Number: Number.parse,
    SecretKey: SecretKey.parse,
    ByteSize: ByteSize.parse,
    HttpUrl: HttpUrl.parse,
    UrlPath: UrlPath.parse,
    Regex: Regex.parse,
    Name: Name.parse,
    Ratio: Ratio.parse,
}


def dec_hook(tp: type, obj: object) -> object:
    parse = _CUSTOM.get(tp)
    if parse is None:
        raise NotImplementedError(tp)
    return parse(obj)


class Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every config section: immutable, keyword-only, unknown keys refused.

    A subclass repeats `frozen=True` in its class line: msgspec inherits it anyway,
    but type checkers read each class line on its own (without it mypy says
    "Non-frozen dataclass cannot inherit from a frozen dataclass")."""


class ProcessMatch(Section, frozen=True):
    cmdline: Regex | None = None
    pid: PositiveCount | None = None
    pidfile: str | None = None


def redact_url(url: str) -> str:
    """The URL with any password replaced by *** (a lone user part may be a password)."""
    url = re.sub(r"(?i)(password=)[^&#]*", r"\1***", url)  # ?password=... too
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***" if "@" in url else url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:***" if colon else "***"
    return f"{scheme}://{shown}@{host}{slash}{tail}"


def exactly_one(source: str, path: str, obj: object, keys: tuple[str, ...]) -> None:
    given = [k for k in keys if getattr(obj, k) is not None]
    if len(given) != 1:
        wanted = " or ".join(keys)
        got = ", ".join(given) if given else "none"
        raise ConfigError(source, path, f"expected exactly one of {wanted}, got {got}")


# The [http] section: settings of the one shared HTTP client (core/http.py), kept
# here so loading a config does not import asyncio and ssl.
class HttpConfig(Section, frozen=True):
    concurrency: PositiveCount = 64
    timeout: Timeout = Timeout(5)
    max_body: ByteSize = ByteSize(1024 * 1024)
    max_redirects: Count = 5
    verify: bool = True
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    engine: Literal["aiohttp", "httpx"] = "aiohttp"  # httpx costs ms of CPU per request
