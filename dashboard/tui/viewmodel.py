"""What the screen shows, derived from Reports: alerts with their history,
acknowledgements, snoozes, small histories, filters. No textual here, so the
model is cheap to update on every round and easy to test; panels only render it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from collectors.core.model import CheckResult, Reading, Report, Status
from collectors.core.units import clock_time

HISTORY = 60  # points in the sparklines the TUI keeps itself


@dataclass
class Alert:
    check: CheckResult
    first_seen: float
    last_seen: float
    acked_by: str | None = None
    acked_at: float | None = None
    snoozed_until: float | None = None
    silence_id: str | None = None  # the Alertmanager silence made by acknowledge / snooze

    def snoozed(self, now: float) -> bool:
        return self.snoozed_until is not None and now < self.snoozed_until


@dataclass
class ViewModel:
    report: Report | None = None
    now: float = 0.0
    alerts: dict[str, Alert] = field(default_factory=dict)
    pg_used: dict[str, deque[float]] = field(default_factory=dict)
    filter: str = ""
    hide_idle: bool = False
    session_sort: str = "interest"
    rounds: int = 0
    # Alertmanager's word on this platform's open alerts (alertname -> Silenced), when
    # [alertmanager] is configured: None until read; am_error when the last read failed.
    am_states: dict[str, Any] | None = None
    am_error: str | None = None
    # check id -> the remedy `f` applies (dashboard.actions.fix.Remedy), filled by the
    # app for the open alerts of each round when actions may run
    remedies: dict[str, Any] = field(default_factory=dict)
    # check id -> why an open alert has no remedy, where that is worth saying (the
    # alert's detail view): e.g. a pooler alert without [postgres]
    no_remedy: dict[str, str] = field(default_factory=dict)
    _by_target: dict[tuple[str, str | None], list[CheckResult]] = field(default_factory=dict)
    _status: dict[tuple[str, str | None], Status] = field(default_factory=dict)

    def apply(self, report: Report) -> list[CheckResult]:
        """Take a new round; return the checks that just became critical."""
        self.report = report
        self.rounds += 1
        self._index(report)
        t = report.snapshot.started_at
        self.now = t
        fresh: list[CheckResult] = []
        seen: set[str] = set()
        for c in report.checks:
            if c.status is Status.OK:
                continue
            seen.add(c.id)
            alert = self.alerts.get(c.id)
            if alert is None:
                alert = self.alerts[c.id] = Alert(c, first_seen=t, last_seen=t)
                was = Status.OK
            else:
                was = alert.check.status
            alert.check, alert.last_seen = c, t
            if c.status is Status.CRITICAL and was is not Status.CRITICAL and not alert.snoozed(t):
                fresh.append(c)
        # A target that did not answer hides its checks: its open alerts (and their
        # acknowledgements) stay open rather than clear and ring again on its return.
        blind = {(r.component, r.target) for r in report.snapshot.readings if not r.ok}
        for gone in self.alerts.keys() - seen:
            check = self.alerts[gone].check
            if (check.component, check.target) not in blind:
                del self.alerts[gone]  # cleared: its acknowledgement goes with it
        for r in report.snapshot.readings:
            if r.component == "postgres" and r.ok and r.data is not None:
                used, usable = r.data.connections_used, r.data.usable
                if isinstance(used, int | float):
                    hist = self.pg_used.setdefault(r.target, deque(maxlen=HISTORY))
                    hist.append(float(used) / usable if usable else float(used))
        return fresh

    # ------------------------------------------------------------- queries

    def readings(self, component: str) -> list[Reading]:
        if self.report is None:
            return []
        return [r for r in self.report.snapshot.readings if r.component == component]

    def checks(self, component: str, target: str | None = None) -> list[CheckResult]:
        return list(self._by_target.get((component, target), ()))

    def status_of(self, component: str, target: str | None = None) -> Status | None:
        return self._status.get((component, target))

    def _index(self, report: Report) -> None:
        """Checks by (component, target) and by component, built once per round:
        panels ask for hundreds of targets' status on every render."""
        by: dict[tuple[str, str | None], list[CheckResult]] = {}
        for c in report.checks:
            by.setdefault((c.component, c.target), []).append(c)
            by.setdefault((c.component, None), []).append(c)
        self._by_target = by
        self._status = {k: Status.worst(c.status for c in v) for k, v in by.items()}

    def open_alerts(self) -> list[Alert]:
        """Newest first; snoozed ones last."""
        return sorted(
            self.alerts.values(),
            key=lambda a: (
                a.snoozed(self.now),
                -a.first_seen,
                -a.check.status.severity,
                a.check.id,
            ),
        )

    def matches(self, *texts: Any) -> bool:
        if not self.filter:
            return True
        needle = self.filter.lower()
        return any(needle in str(t).lower() for t in texts if t is not None)

    def stale_for(self, reading: Reading) -> float | None:
        if reading.stale_since is None:
            return None
        return max(0.0, self.now - reading.stale_since)


# ------------------------------------------------------------- formatting

DASH = "—"
STATUS_STYLE = {
    Status.OK: "green",
    Status.WARNING: "yellow",
    Status.CRITICAL: "bold red",
    Status.UNKNOWN: "magenta",
}
STATUS_ICON = {Status.OK: "●", Status.WARNING: "▲", Status.CRITICAL: "✖", Status.UNKNOWN: "?"}
_BLOCKS = "▁▂▃▄▅▆▇█"


def num(v: Any, fmt: str = "{:,.0f}") -> str:
    if v is None or isinstance(v, bool) or not isinstance(v, int | float):
        return DASH
    if isinstance(v, float) and not math.isfinite(v):
        return DASH
    return fmt.format(v)


def duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        return DASH
    s = float(seconds) + 0.0  # -0.0 (an age rounded from just below zero) reads 0s
    if 0 < s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    if s < 172800:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.0f}d"


def size(n: Any) -> str:
    if not isinstance(n, int | float) or isinstance(n, bool):
        return DASH
    v = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(v) < 1024 or unit == "TiB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return DASH


def rate(bytes_per_s: Any) -> str:
    if not isinstance(bytes_per_s, int | float) or isinstance(bytes_per_s, bool):
        return DASH
    sign = "+" if bytes_per_s >= 0 else "-"
    return f"{sign}{size(abs(bytes_per_s))}/s"


def clock(ts: float | None) -> str:
    if ts is None:
        return DASH
    return clock_time(ts)


def spark(values: Any, width: int = 12) -> str:
    """A one-line sparkline of the last `width` numbers (for table cells)."""
    if not isinstance(values, list | tuple | deque):
        return DASH
    pts = [float(v) for v in list(values)[-width:] if isinstance(v, int | float)]
    if not pts:
        return DASH
    lo, hi = min(pts), max(pts)
    span = hi - lo
    if span <= 0:
        return _BLOCKS[0] * len(pts)
    return "".join(_BLOCKS[min(7, int((p - lo) / span * 7.999))] for p in pts)


def gauge(ratio: float | None, width: int = 20) -> str:
    if ratio is None:
        return "░" * width
    filled = max(0, min(width, round(ratio * width)))
    return "█" * filled + "░" * (width - filled)
