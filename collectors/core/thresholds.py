"""Threshold helpers every judge shares: how a number or a failed reading becomes a Status."""

from __future__ import annotations

import math
from collections.abc import Iterable

from collectors.core.model import CheckResult, Reading, Status


def above(value: float | None, warn: float | None, crit: float | None) -> Status:
    """Higher is worse: critical when value > crit, warning when > warn."""
    if value is None or not math.isfinite(value):  # NaN or infinite: no verdict
        return Status.UNKNOWN
    if crit is not None and value > crit:
        return Status.CRITICAL
    if warn is not None and value > warn:
        return Status.WARNING
    return Status.OK


def at_least(value: float | None, warn: float | None, crit: float | None) -> Status:
    """Like `above`, but reaching the threshold counts (80 % of slots is a warning)."""
    if value is None or not math.isfinite(value):  # NaN or infinite: no verdict
        return Status.UNKNOWN
    if crit is not None and value >= crit:
        return Status.CRITICAL
    if warn is not None and value >= warn:
        return Status.WARNING
    return Status.OK


def below(value: float | None, warn: float | None, crit: float | None) -> Status:
    """Lower is worse: critical when value < crit, warning when < warn."""
    if value is None or not math.isfinite(value):  # NaN or infinite: no verdict
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


def why_unread(reading: Reading, what: str) -> str:
    """Why a failed reading's checks were not read: "Redis unreachable", ..."""
    if reading.error_kind == "unreachable":
        return f"{what} unreachable"
    if reading.error_kind == "timeout":
        return f"{what} did not answer in time"
    if reading.error_kind == "invalid":
        return f"{what} gave an invalid answer"
    return f"{what} not checked"


def not_read(reading: Reading, check_ids: Iterable[str], why: str) -> list[CheckResult]:
    """The checks a failed reading would have had, `unknown` with the reason
    ("Redis unreachable: not read"): a round never drops a check id because its
    target could not be read (a dashboard keyed on the id would see "resolved")."""
    return [
        CheckResult(
            cid,
            reading.component,
            reading.target,
            Status.UNKNOWN,
            f"{why}: not read",
            unread=True,
        )
        for cid in check_ids
    ]
