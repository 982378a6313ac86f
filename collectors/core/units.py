"""Units every target shares: durations and sizes as written in the config, and
how durations and moments are shown. Each format exists once, here; where two
outputs differ on purpose (a config-style "90s" beside a spoken "90 s") they are
named variants, so recordings and summaries keep their exact text."""

from __future__ import annotations

import re
import typing
from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec


class Duration(float):
    """Seconds, written as "500ms", "30s", "5m", "2h", "90d" or "1h30m"."""

    _PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
    _UNITS: typing.ClassVar[dict[str, float]] = {
        "ms": 0.001,
        "s": 1,
        "m": 60,
        "h": 3600,
        "d": 86400,
        "w": 604800,
    }

    @classmethod
    def parse(cls, value: object) -> Duration:
        if isinstance(value, bool):
            raise ValueError(f"expected a duration like '30s', '5m' or '90d', got {value!r}")
        if isinstance(value, int | float):
            if value < 0:
                raise ValueError(f"expected a positive duration, got {value!r}")
            return cls(value)
        if isinstance(value, str):
            text = value.strip().replace(" ", "")
            parts = cls._PART.findall(text)
            if parts and "".join(n + u for n, u in parts) == text:
                return cls(sum(float(n) * cls._UNITS[u] for n, u in parts))
        raise ValueError(f"expected a duration like '30s', '5m' or '90d', got {value!r}")

    def __str__(self) -> str:
        return format_duration(self)


class PositiveDuration(Duration):
    """A duration that must be above zero: an interval, window or timeout of 0 is a
    mistake. (Thresholds stay plain Durations: 0 there means "alert on everything".)"""

    @classmethod
    def parse(cls, value: object) -> PositiveDuration:
        seconds = Duration.parse(value)
        if seconds <= 0:
            raise ValueError(f"expected a duration above 0, got {value!r}")
        return cls(seconds)


# Counts with a floor: msgspec says "expected an integer >= 1, got 0".
Count = Annotated[int, msgspec.Meta(ge=0)]
PositiveCount = Annotated[int, msgspec.Meta(ge=1)]


class ByteSize(int):
    """Bytes, written as 1048576, "512MB", "1MiB" or "2GiB"."""

    _RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kKMGT]i?B|B)?")
    _UNITS: typing.ClassVar[dict[str, int]] = {
        "B": 1,
        "kB": 1000,
        "KB": 1000,
        "MB": 1000**2,
        "GB": 1000**3,
        "TB": 1000**4,
        "KiB": 1024,
        "kiB": 1024,
        "MiB": 1024**2,
        "GiB": 1024**3,
        "TiB": 1024**4,
    }

    @classmethod
    def parse(cls, value: object) -> ByteSize:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return cls(value)
        if isinstance(value, str):
            m = cls._RE.fullmatch(value.strip())
            if m and (m.group(2) or "B") in cls._UNITS:
                return cls(int(float(m.group(1)) * cls._UNITS[m.group(2) or "B"]))
        raise ValueError(f"expected a size like '512MiB' or '2GiB', got {value!r}")


class Ratio(float):
    @classmethod
    def parse(cls, value: object) -> Ratio:
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
            return cls(value)
        raise ValueError(f"expected a ratio between 0 and 1, got {value!r}")


# ------------------------------------------------------------------ durations


def format_duration(seconds: float) -> str:
    """One unit, as a config would write it: "250ms", "45s", "1.5s", "12m", "5h", "90d"."""
    s = float(seconds)
    if s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 120:
        return f"{s:.0f}s" if s == int(s) else f"{s:.1f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    if s < 172800:
        return f"{s / 3600:.0f}h"
    return f"{s / 86400:.0f}d"


def format_duration_spaced(seconds: float) -> str:
    """One unit, spelled out for a sentence: "45 s", "12 min", "5.0 h", "2.5 d"."""
    s = float(seconds)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def format_elapsed(seconds: float | None) -> str:
    """A stopwatch reading: "12.3s", "5m07s", "2h05m"; "?" when unknown."""
    if seconds is None:
        return "?"
    s = int(seconds)
    if s < 120:
        return f"{seconds:.1f}s"
    if s < 7200:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


# -------------------------------------------------------------------- moments

TimeSpec = Literal["seconds", "milliseconds", "microseconds"]


def iso_time(when: float | datetime, timespec: TimeSpec = "seconds") -> str:
    """ISO 8601 in UTC with a Z: "2026-11-24T10:00:00Z" (seconds, the default),
    "...T10:00:00.000Z" (milliseconds: check output, audit log) or "...T10:00:00.000000Z"
    (microseconds: a backend's start, which tells two sessions of one pid apart).
    `when` is a Unix time or an aware datetime."""
    dt = datetime.fromtimestamp(when, UTC) if isinstance(when, int | float) else when
    return dt.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def iso_now(timespec: TimeSpec = "seconds") -> str:
    """Now, as `iso_time` writes it."""
    return iso_time(datetime.now(UTC), timespec)


def clock_time(ts: float) -> str:
    """The time of day in UTC, for a screen: "10:00:00Z"."""
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%SZ")


def parse_iso(text: str | None) -> float | None:
    """ISO 8601 ("2026-11-24T10:00:00Z", "...+02:00", "2026-11-24 10:00:00") -> Unix
    time; a time without a zone is UTC. None when absent or malformed."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
