"""Bounded histories and the trend maths the rules and panels share.

Memory stays flat over days: every buffer has a fixed capacity, and trends are
computed over a time window of what the buffer holds.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


class RingBuffer:
    """(time, value) samples, oldest dropped first once `capacity` is reached."""

    __slots__ = ("_items",)

    def __init__(self, capacity: int = 600) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._items: deque[tuple[float, float]] = deque(maxlen=capacity)

    @property
    def capacity(self) -> int:
        return self._items.maxlen or 0

    def append(self, t: float, value: float) -> None:
        self._items.append((t, float(value)))

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[float, float]]:
        return iter(self._items)

    def last(self) -> tuple[float, float] | None:
        return self._items[-1] if self._items else None

    def first(self) -> tuple[float, float] | None:
        return self._items[0] if self._items else None

    def values(self) -> list[float]:
        return [v for _, v in self._items]

    def window(self, seconds: float, now: float | None = None) -> list[tuple[float, float]]:
        """Samples no older than `seconds` before `now` (default: the newest sample)."""
        if not self._items:
            return []
        end = self._items[-1][0] if now is None else now
        start = end - seconds
        return [(t, v) for t, v in self._items if t >= start]


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
