"""Readings -> CheckResults: thresholds from config, then hysteresis.

Each target has one judge, in its own package (collectors/<target>/rules.py, listed
in collectors.registry): a pure function of a Reading and the Config that
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
from collectors.core.model import CheckResult, Reading, Report, Snapshot, Status
from collectors.registry import TARGETS

Judge = Callable[[Reading, Config], list[CheckResult]]


JUDGES: dict[str, Judge] = {t.name: t.judge for t in TARGETS}


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
    where: tuple[str, str]  # (component, target) of the reading it came from
    pending: Status | None = None
    count: int = 0


class Rules:
    def __init__(self, config: Config, *, raise_after: int = 1, clear_after: int = 1) -> None:
        self.config = config
        self.raise_after = max(1, raise_after)
        self.clear_after = max(1, clear_after)
        self._held: dict[str, _Held] = {}

    def evaluate(self, snapshot: Snapshot) -> Report:
        raw = [(r, c) for r in snapshot.readings for c in judge(r, self.config)]
        checks = tuple(self._hold(r, c) for r, c in raw)
        seen = {c.id for c in checks}
        # A target that failed this round reports its other checks unknown, "not read"
        # (`unread`): no verdict, so their held state is kept as it was and a
        # one-round blip neither re-raises nor forgets them. A check a failed target
        # did not report at all is kept the same way.
        blind = {(r.component, r.target) for r in snapshot.readings if not r.ok}
        for gone in self._held.keys() - seen:
            if self._held[gone].where not in blind:
                del self._held[gone]
        return Report(snapshot=snapshot, checks=checks)

    def _hold(self, reading: Reading, check: CheckResult) -> CheckResult:
        if check.unread:
            return check  # shown as it is (unknown: not read); the held state waits
        held = self._held.get(check.id)
        if held is None:
            # First sight: a fresh start has no history to smooth.
            self._held[check.id] = _Held(check.status, (reading.component, reading.target))
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
