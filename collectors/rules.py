"""Readings -> CheckResults: thresholds from config, then hysteresis.

Each component has one judge: a pure function of a Reading and the Config that
returns that reading's checks. `Rules` runs them over a Snapshot and holds the
hysteresis state: an alert is raised after `raise_after` consecutive rounds at
the worse level and cleared after `clear_after` rounds better. In a one-shot
`check` both are 1, so one poll decides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from collectors.config import Config
from collectors.model import CheckResult, Reading, Report, Snapshot, Status

Judge = Callable[[Reading, Config], list[CheckResult]]


# ----------------------------------------------------------------- thresholds


def above(value: float | None, warn: float | None, crit: float | None) -> Status:
    """Higher is worse: critical when value > crit, warning when > warn."""
    if value is None:
        return Status.UNKNOWN
    if crit is not None and value > crit:
        return Status.CRITICAL
    if warn is not None and value > warn:
        return Status.WARNING
    return Status.OK


def at_least(value: float | None, warn: float | None, crit: float | None) -> Status:
    """Like `above`, but reaching the threshold counts (80 % of slots is a warning)."""
    if value is None:
        return Status.UNKNOWN
    if crit is not None and value >= crit:
        return Status.CRITICAL
    if warn is not None and value >= warn:
        return Status.WARNING
    return Status.OK


def below(value: float | None, warn: float | None, crit: float | None) -> Status:
    """Lower is worse: critical when value < crit, warning when < warn."""
    if value is None:
        return Status.UNKNOWN
    if crit is not None and value < crit:
        return Status.CRITICAL
    if warn is not None and value < warn:
        return Status.WARNING
    return Status.OK


def failure(reading: Reading, check_id: str, what: str) -> CheckResult:
    """The check a failed reading becomes: critical when the target is
    unreachable (a real result), unknown when the collector itself failed."""
    if reading.error_kind == "unreachable":
        return CheckResult(
            check_id,
            reading.component,
            reading.target,
            Status.CRITICAL,
            f"{what} unreachable: {reading.error}",
        )
    return CheckResult(
        check_id,
        reading.component,
        reading.target,
        Status.UNKNOWN,
        f"{what} not checked: {reading.error}",
    )


# --------------------------------------------------------------------- judges


def judge_postgres(reading: Reading, config: Config) -> list[CheckResult]:
    if not reading.ok:
        return [failure(reading, "postgres.reachable", "PostgreSQL")]
    d = reading.data
    pg = config.postgres
    assert pg is not None
    t = reading.target
    out = [
        CheckResult(
            "postgres.reachable",
            "postgres",
            t,
            Status.OK,
            f"PostgreSQL {d.get('server_version', '?')} answered in "
            f"{d.get('latency_ms', 0):.0f} ms",
            value=d.get("latency_ms"),
            unit="ms",
        )
    ]
    used = d.get("connections_used")
    usable = d.get("usable")
    if used is not None and usable:
        ratio = used / usable
        out.append(
            CheckResult(
                "postgres.connections",
                "postgres",
                t,
                at_least(ratio, pg.connections_warn, pg.connections_crit),
                f"{used} of {usable} usable connections in use ({ratio:.0%})",
                value=round(ratio, 3),
                unit="ratio",
                warn=pg.connections_warn,
                crit=pg.connections_crit,
            )
        )
    return out


from collectors.secret_rules import judge_secrets  # noqa: E402

JUDGES: dict[str, Judge] = {
    "postgres": judge_postgres,
    "secrets": judge_secrets,
}


def judge(reading: Reading, config: Config) -> list[CheckResult]:
    fn = JUDGES.get(reading.component)
    if fn is None:
        return [
            CheckResult(
                f"{reading.component}.{reading.target}",
                reading.component,
                reading.target,
                Status.UNKNOWN,
                f"no rules for component {reading.component!r}",
            )
        ]
    try:
        return fn(reading, config)
    except Exception as e:  # a judge bug must not hide the other checks
        return [
            CheckResult(
                f"{reading.component}.{reading.target}.rules",
                reading.component,
                reading.target,
                Status.UNKNOWN,
                f"rules failed: {type(e).__name__}: {e}",
            )
        ]


# ----------------------------------------------------------------- hysteresis


@dataclass
class _Held:
    status: Status
    pending: Status | None = None
    count: int = 0


class Rules:
    def __init__(self, config: Config, *, raise_after: int = 1, clear_after: int = 1) -> None:
        self.config = config
        self.raise_after = max(1, raise_after)
        self.clear_after = max(1, clear_after)
        self._held: dict[str, _Held] = {}

    def evaluate(self, snapshot: Snapshot) -> Report:
        raw = [c for r in snapshot.readings for c in judge(r, self.config)]
        checks = tuple(self._hold(c) for c in raw)
        seen = {c.id for c in checks}
        for gone in self._held.keys() - seen:
            del self._held[gone]
        return Report(snapshot=snapshot, checks=checks)

    def _hold(self, check: CheckResult) -> CheckResult:
        held = self._held.get(check.id)
        if held is None:
            # First sight: a fresh start has no history to smooth.
            self._held[check.id] = _Held(check.status)
            return check
        if check.status == held.status:
            held.pending, held.count = None, 0
            return check
        if held.pending == check.status:
            held.count += 1
        else:
            held.pending, held.count = check.status, 1
        worse = check.status.severity > held.status.severity
        needed = self.raise_after if worse else self.clear_after
        if held.count >= needed:
            held.status, held.pending, held.count = check.status, None, 0
            return check
        verb = "raising" if worse else "clearing"
        return dataclasses.replace(
            check,
            status=held.status,
            summary=f"{check.summary} ({verb} to {check.status}: {held.count}/{needed})",
        )
