"""Plain immutable data passed from collectors to rules to the screens.

A Reading's payload is its target's typed data (a msgspec Struct from
`collectors/<target>/data.py`), JSON-compatible so a snapshot can be recorded,
replayed and judged again without the live targets: `to_dict` writes it as plain
JSON and `from_dict` reads it back into the Struct the registry names.
"""

from __future__ import annotations

import enum
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import msgspec


class Status(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"

    @property
    def severity(self) -> int:
        """Order for "the worst": ok < warning < unknown < critical.

        Unknown ranks above warning because a blind spot at 3 a.m. deserves
        more attention than a known mild problem; critical stays the worst.
        """
        return _SEVERITY[self]

    @property
    def exit_code(self) -> int:
        """The Nagios plugin exit code for this status."""
        return _EXIT[self]

    @staticmethod
    def worst(statuses: Iterable[Status]) -> Status:
        return max(statuses, key=lambda s: s.severity, default=Status.OK)


_SEVERITY = {Status.OK: 0, Status.WARNING: 1, Status.UNKNOWN: 2, Status.CRITICAL: 3}
_EXIT = {Status.OK: 0, Status.WARNING: 1, Status.CRITICAL: 2, Status.UNKNOWN: 3}

# Why a reading failed. "unreachable": the target refused, timed out or
# rejected us (a real result: critical on `*.reachable`). "timeout" and
# "internal": the collector itself hung or broke (we cannot see: unknown).
# invalid: the target answered, but with what it never answers (NaN, garbage)
ErrorKind = Literal["unreachable", "timeout", "invalid", "internal"]


@dataclass(frozen=True, slots=True)
class Reading:
    """What one collector saw of one target in one round."""

    component: str
    target: str
    taken_at: float
    # The target's typed data (a msgspec Struct); None when the reading failed.
    # A target not yet typed may still carry a plain dict.
    data: Any = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    stale_since: float | None = None
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "target": self.target,
            "taken_at": self.taken_at,
            "data": msgspec.to_builtins(self.data) if self.data is not None else None,
            "error": self.error,
            "error_kind": self.error_kind,
            "stale_since": self.stale_since,
            "duration_ms": self.duration_ms,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], data_type: type | None = None) -> Reading:
        """`data_type`: the target's data Struct (from the registry); without it the
        payload stays a plain dict."""
        # A recording is a file from elsewhere: its text is escaped like live text.
        from collectors.core.redact import clean

        raw = clean(d.get("data"))
        data = msgspec.convert(raw, data_type) if data_type and raw is not None else raw
        return cls(
            component=d["component"],
            target=clean(d["target"]),
            taken_at=d["taken_at"],
            data=data,
            error=clean(d.get("error")),
            error_kind=d.get("error_kind"),
            stale_since=d.get("stale_since"),
            duration_ms=d.get("duration_ms", 0.0),
        )


class Limits(msgspec.Struct, frozen=True):
    """Every limit a number was judged against, in both directions.

    A check whose status is its value against limits carries them, so the Nagios
    perfdata ranges can be written to say exactly what the status says (an invariant
    with `warn_above` and `crit_below` is one warning range and one critical range).
    `reach`: reaching an upper limit alerts (80 % of the slots used is a warning),
    not only passing it; it applies to upper limits alone. (A Struct: creating a
    dataclass costs a millisecond or more at every start of `check`.)
    """

    warn_above: float | None = None
    crit_above: float | None = None
    warn_below: float | None = None
    crit_below: float | None = None
    reach: bool = False

    def status(self, value: float) -> Status:
        """The status of `value` against these limits (NaN is unknown: not a number)."""
        if value != value:
            return Status.UNKNOWN

        def over(limit: float | None) -> bool:
            if limit is None:
                return False
            return value >= limit if self.reach else value > limit

        def under(limit: float | None) -> bool:
            return limit is not None and value < limit

        if over(self.crit_above) or under(self.crit_below):
            return Status.CRITICAL
        if over(self.warn_above) or under(self.warn_below):
            return Status.WARNING
        return Status.OK


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One judged check with a stable id (see README for the list)."""

    id: str
    component: str
    target: str
    status: Status
    summary: str
    value: float | None = None
    unit: str | None = None
    warn: float | None = None
    crit: float | None = None
    # True when the check alerts as the value falls to warn/crit (a key's strength, an
    # invariant's *_below), so Nagios ranges point the right way. Not in to_dict: the
    # JSON shape is fixed by DESIGN.md (its readers see it in the summary).
    below: bool = False
    # Every limit the value was judged against, when warn/crit/below cannot say it all
    # (both directions, or reaching a limit counts). Not in to_dict, like `below`.
    limits: Limits | None = None

    @property
    def bounds(self) -> Limits:
        """The limits the value was judged against: `limits`, else warn/crit/below."""
        if self.limits is not None:
            return self.limits
        if self.below:
            return Limits(warn_below=self.warn, crit_below=self.crit)
        return Limits(warn_above=self.warn, crit_above=self.crit)

    # True when the check's target could not be read this round: it is reported
    # (unknown, with the reason) so every round has the same ids, but it is no
    # verdict, so hysteresis neither raises nor clears on it. Not in to_dict either.
    unread: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "component": self.component,
            "target": self.target,
            "status": self.status.value,
            "summary": self.summary,
            "value": self.value,
            "unit": self.unit,
            "warn": self.warn,
            "crit": self.crit,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CheckResult:
        return cls(
            id=d["id"],
            component=d["component"],
            target=d["target"],
            status=Status(d["status"]),
            summary=d["summary"],
            value=d.get("value"),
            unit=d.get("unit"),
            warn=d.get("warn"),
            crit=d.get("crit"),
            below=bool(d.get("below", False)),
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every reading of one poll round."""

    round: int
    started_at: float
    duration_ms: float
    readings: tuple[Reading, ...]

    def of(self, component: str) -> tuple[Reading, ...]:
        return tuple(r for r in self.readings if r.component == component)

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "started_at": self.started_at,
            "duration_ms": self.duration_ms,
            "readings": [r.to_dict() for r in self.readings],
        }

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], data_types: Mapping[str, type] | None = None
    ) -> Snapshot:
        """`data_types`: component -> its data Struct (collectors.registry.data_types())."""
        types = data_types or {}
        return cls(
            round=d["round"],
            started_at=d["started_at"],
            duration_ms=d["duration_ms"],
            readings=tuple(Reading.from_dict(r, types.get(r["component"])) for r in d["readings"]),
        )


@dataclass(frozen=True, slots=True)
class Report:
    """A snapshot judged: what `check` prints and the TUI shows."""

    snapshot: Snapshot
    checks: tuple[CheckResult, ...]

    @property
    def status(self) -> Status:
        return Status.worst(c.status for c in self.checks)

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(check.status for check in self.checks)
        return {s.value: c.get(s, 0) for s in Status}

    def check(self, check_id: str) -> CheckResult | None:
        return next((c for c in self.checks if c.id == check_id), None)


def now() -> float:
    return time.time()
