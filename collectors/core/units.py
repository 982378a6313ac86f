"""Units every target shares: durations and sizes as written in the config, and
how durations and moments are shown. Each format exists once, here; where two
outputs differ on purpose (a config-style "90s" beside a spoken "90 s") they are
named variants, so recordings and summaries keep their exact text."""

from __future__ import annotations

import math
import re
import typing
from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec

# Ceilings: a value past these is a typo or an attack, never a setting. Each number a
# user gives (config key or CLI flag) goes through one of the types below, once.
MAX_DURATION = 10 * 365 * 86400.0  # ten years: the longest max_age or window that makes sense
MIN_INTERVAL = 0.1  # a round every 100 ms at most: the monitor must not become the incident
MAX_INTERVAL = 86400.0  # a round a day at least: past that the screen is a photograph
MAX_TIMEOUT = 86400.0  # a day; PostgreSQL's statement_timeout itself stops at 24.8 days
MAX_COUNT = 2**31 - 1  # a C int: what every API a count reaches accepts
MAX_SCAN_COUNT = 100_000  # Redis takes a signed 64-bit COUNT; past this one SCAN call stalls it
MAX_NUMBER = 1e15  # an invariant's threshold: exact in a float, far past any row count
MAX_BYTES = 2**60  # an exbibyte


def _finite(value: float, what: str, raw: object) -> float:
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"expected a finite {what}, got {raw!r}")
    return value


class Duration(float):
    """Seconds, written as "500ms", "30s", "5m", "2h", "90d" or "1h30m" (or a number of
    seconds): finite, not negative, at most ten years. Subclasses narrow the range."""

    _PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
    _UNITS: typing.ClassVar[dict[str, float]] = {
        "ms": 0.001,
        "s": 1,
        "m": 60,
        "h": 3600,
        "d": 86400,
        "w": 604800,
    }
    # What a value of this kind is called in an error, and its bounds (inclusive).
    kind: typing.ClassVar[str] = "duration"
    above_zero: typing.ClassVar[bool] = False
    floor: typing.ClassVar[float] = 0.0
    ceiling: typing.ClassVar[float] = MAX_DURATION

    @classmethod
    def seconds(cls, value: object) -> float:
        """The seconds `value` is written as, checked to be finite and not negative."""
        if isinstance(value, bool):
            raise ValueError(f"expected a duration like '30s', '5m' or '90d', got {value!r}")
        if isinstance(value, int | float):
            seconds = _finite(float(value), "duration", value)
            if seconds < 0:
                raise ValueError(f"expected a positive duration, got {value!r}")
            return seconds
        if isinstance(value, str):
            text = value.strip().replace(" ", "")
            parts = cls._PART.findall(text)
            if parts and "".join(n + u for n, u in parts) == text:
                total = sum(float(n) * cls._UNITS[u] for n, u in parts)
                return _finite(total, "duration", value)
        raise ValueError(f"expected a duration like '30s', '5m' or '90d', got {value!r}")

    @classmethod
    def parse(cls, value: object) -> typing.Self:
        seconds = cls.seconds(value)
        too_low = seconds < cls.floor or (cls.above_zero and seconds <= 0)
        if too_low or seconds > cls.ceiling:
            raise ValueError(cls._range_error(value))
        return cls(seconds)

    @classmethod
    def _range_error(cls, value: object) -> str:
        low = f"of at least {format_duration(cls.floor)}" if cls.floor else ""
        low = low or ("above 0" if cls.above_zero else "")
        high = f"at most {format_duration(cls.ceiling)}"
        span = f"{low} and {high}" if low else f"of {high}"
        return f"expected {_article(cls.kind)} {cls.kind} {span}, got {value!r}"

    def __str__(self) -> str:
        return format_duration(self)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


class PositiveDuration(Duration):
    """A duration that must be above zero: a window or lifetime of 0 is a mistake.
    (Thresholds stay plain Durations: 0 there means "alert on everything".)"""

    above_zero = True


class Interval(PositiveDuration):
    """How often something runs (a poll round, a reconcile, a probe): at least 100 ms,
    at most a day."""

    kind = "interval"
    floor = MIN_INTERVAL
    ceiling = MAX_INTERVAL


class Timeout(PositiveDuration):
    """How long to wait for something: above 0, at most a day."""

    ceiling = MAX_TIMEOUT


# Counts with a floor and a ceiling: msgspec says "expected an integer >= 1, got 0".
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
PositiveCount = Annotated[int, msgspec.Meta(ge=1, le=MAX_COUNT)]
ScanCount = Annotated[int, msgspec.Meta(ge=1, le=MAX_SCAN_COUNT)]


def parse_count(value: object, kind: object = PositiveCount) -> int:
    """A count given as text (a command-line argument), held to the same bounds as the
    config's `kind` (Count, PositiveCount, ScanCount)."""
    meta = next(m for m in typing.get_args(kind) if isinstance(m, msgspec.Meta))
    low, high = meta.ge or 0, meta.le or MAX_COUNT
    text = str(value).strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError(f"expected a whole number from {low} to {high}, got {value!r}")
    number = int(text)
    if not low <= number <= high:
        raise ValueError(f"expected a whole number from {low} to {high}, got {value!r}")
    return number


class Number(float):
    """A threshold: a finite number, at most 1e15 either way (TOML knows nan and inf)."""

    @classmethod
    def parse(cls, value: object) -> Number:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, int) and abs(value) > MAX_NUMBER:
                raise ValueError(f"expected a number from -1e15 to 1e15, got {value!r}")
            number = _finite(float(value), "number", value)
            if abs(number) <= MAX_NUMBER:
                return cls(number)
            raise ValueError(f"expected a number from -1e15 to 1e15, got {value!r}")
        raise ValueError(f"expected a number, got {value!r}")


def parse_factor(value: object, floor: float, ceiling: float) -> float:
    """A finite multiplier given as text (`replay --speed`), within [floor, ceiling]."""
    try:
        number = float(str(value))
    except ValueError:
        raise ValueError(f"expected a number, got {value!r}") from None
    number = _finite(number, "number", value)
    if not floor <= number <= ceiling:
        raise ValueError(f"expected a number from {floor:g} to {ceiling:g}, got {value!r}")
    return number


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
        size: int | None = None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            size = value
        elif isinstance(value, str):
            m = cls._RE.fullmatch(value.strip())
            if m and (m.group(2) or "B") in cls._UNITS:
                number = float(m.group(1)) * cls._UNITS[m.group(2) or "B"]
                size = int(number) if number <= MAX_BYTES else MAX_BYTES + 1
        if size is not None and size > MAX_BYTES:
            raise ValueError(f"expected a size of at most 1EiB, got {value!r}")
        if size is not None:
            return cls(size)
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
    if -0.0005 < s < 0.0005:
        return "0ms"  # never "-0ms" for an age a hair below zero
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
