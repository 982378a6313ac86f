"""Bounded histories and the trend maths the rules and panels share.

Memory stays flat over days: every buffer has a fixed capacity, and trends are
computed over a time window of what the buffer holds.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_NONE = array("d")  # shared by every buffer until its first sample; never written


class RingBuffer:
    """(time, value) samples, oldest dropped first once `capacity` is reached.

    Two arrays of doubles allocated in full with the first sample (16 bytes a
    sample): the buffer's memory is the same on the first round and after a week. A
    deque of (time, value) tuples cost about 130 bytes a sample and kept growing until
    it was full, which at one round a second took 10-15 minutes (issue 17). Not
    before the first sample: a one-shot check builds 500 services' buffers (14 MB)
    and fills one sample of some of them.
    """

    __slots__ = ("_cap", "_len", "_start", "_t", "_v")

    def __init__(self, capacity: int = 600) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._cap = capacity
        self._t = self._v = _NONE
        self._start = 0
        self._len = 0

    @property
    def capacity(self) -> int:
        return self._cap

    def append(self, t: float, value: float) -> None:
        cap = self._cap
        if not self._t:
            self._t = array("d", bytes(8 * cap))
            self._v = array("d", bytes(8 * cap))
        if self._len < cap:
            i = (self._start + self._len) % cap
            self._len += 1
        else:
            i = self._start
            self._start = (self._start + 1) % cap
        self._t[i] = t
        self._v[i] = float(value)

    def __len__(self) -> int:
        return self._len

    def _order(self) -> Iterator[int]:
        cap, start = self._cap, self._start
        return ((start + k) % cap for k in range(self._len))

    def __iter__(self) -> Iterator[tuple[float, float]]:
        t, v = self._t, self._v
        return ((t[i], v[i]) for i in self._order())

    def last(self) -> tuple[float, float] | None:
        if not self._len:
            return None
        i = (self._start + self._len - 1) % self._cap
        return self._t[i], self._v[i]

    def first(self) -> tuple[float, float] | None:
        return (self._t[self._start], self._v[self._start]) if self._len else None

    def values(self) -> list[float]:
        v = self._v
        return [v[i] for i in self._order()]

    def window(self, seconds: float, now: float | None = None) -> list[tuple[float, float]]:
        """Samples no older than `seconds` before `now` (default: the newest sample)."""
        last = self.last()
        if last is None:
            return []
        start = (last[0] if now is None else now) - seconds
        return [(t, v) for t, v in self if t >= start]


@dataclass(frozen=True, slots=True)
class Trend:
    slope: float  # units per second
    intercept: float  # value at t = t0 (the first sample's time)
    r2: float  # coefficient of determination, 0..1
    n: int
    t0: float
    span: float  # seconds covered by the samples

    def value_at(self, t: float) -> float:
        return self.intercept + self.slope * (t - self.t0)

    def time_to(self, limit: float, now: float) -> float | None:
        """Seconds from `now` until the fitted line reaches `limit`; None if never."""
        return time_to_limit(self, limit, now)


def linear_trend(samples: Iterable[tuple[float, float]]) -> Trend | None:
    """Least-squares fit of value against time. None with fewer than 3 points or no span."""
    pts = list(samples)
    n = len(pts)
    if n < 3:
        return None
    t0 = pts[0][0]
    xs = [t - t0 for t, _ in pts]
    ys = [v for _, v in pts]
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    syy = sum((y - my) ** 2 for y in ys)
    slope = sxy / sxx
    intercept = my - slope * mx
    # A perfectly flat series is perfectly explained by a flat line.
    r2 = 1.0 if syy == 0 else max(0.0, min(1.0, (sxy * sxy) / (sxx * syy)))
    return Trend(slope, intercept, r2, n, t0, xs[-1])


def time_to_limit(trend: Trend, limit: float, now: float) -> float | None:
    """Projected seconds until `limit` is reached, or None when the trend moves away."""
    current = trend.value_at(now)
    if current >= limit:
        return 0.0
    if trend.slope <= 0 or math.isclose(trend.slope, 0.0):
        return None
    return (limit - current) / trend.slope


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None when empty."""
    data = sorted(values)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    k = (len(data) - 1) * q / 100
    lo = math.floor(k)
    hi = math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


class Histories:
    """Ring buffers by name, created on first use, all of the same capacity."""

    def __init__(self, capacity: int = 600, max_series: int = 10_000) -> None:
        self.capacity = capacity
        self.max_series = max_series
        self._series: dict[str, RingBuffer] = {}

    def add(self, key: str, t: float, value: float) -> RingBuffer:
        buf = self._series.get(key)
        if buf is None:
            if len(self._series) >= self.max_series:
                # Bounded even when targets churn: forget the oldest series.
                self._series.pop(next(iter(self._series)))
            buf = self._series[key] = RingBuffer(self.capacity)
        buf.append(t, value)
        return buf

    def get(self, key: str) -> RingBuffer | None:
        return self._series.get(key)

    def __len__(self) -> int:
        return len(self._series)
