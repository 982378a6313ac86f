"""Judge for processes (registered in collectors.registry).

process.<name>.memory     RSS against the limit: 80 % warning, 95 % critical. The limit
                          is the target's configured memory_limit (so a replay with
                          another config judges against that one), else the one the
                          collector found (cgroup or physical memory).
process.<name>.memory_growth
                          slope above growth_warn per minute with R^2 >= 0.8 over at least
                          growth_min_span: warning; and projected time to the limit under
                          growth_crit_ttl: critical.

The judge takes the reading and the process targets (ProcessTargets, built by the
registry); every threshold is here or in the target's settings.
"""

from __future__ import annotations

from collectors.core.model import CheckResult, Reading, Status
from collectors.core.thresholds import not_read
from collectors.core.units import format_duration_spaced
from collectors.processes.config import ProcessConfig, ProcessTargets
from collectors.processes.data import ProcessData, process_data

MEMORY_WARN = 0.8
MEMORY_CRIT = 0.95
GROWTH_R2 = 0.8


def _mb(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


def judge_processes(reading: Reading, targets: ProcessTargets) -> list[CheckResult]:
    name = reading.target
    cid = f"process.{name}"
    if not reading.ok:
        status = Status.CRITICAL if reading.error_kind == "unreachable" else Status.UNKNOWN
        summary = (
            str(reading.error) if status is Status.CRITICAL else f"not checked: {reading.error}"
        )
        # The growth check stays, unknown: every round has the same ids.
        why = "process not found" if status is Status.CRITICAL else "process not checked"
        return [
            CheckResult(f"{cid}.memory", "processes", name, status, summary),
            *not_read(reading, [f"{cid}.memory_growth"], why),
        ]
    d = process_data(reading.data)
    pc = targets.target(name)
    limit, source = _limit(d, pc)
    return [
        _memory(cid, name, d, limit, source),
        _growth(cid, name, d, pc, _time_to_limit(d, limit), source),
    ]


def _limit(d: ProcessData, pc: ProcessConfig) -> tuple[int | None, str]:
    """The configured limit wins (the config may have changed since the reading);
    else the one the collector found."""
    if pc.memory_limit:
        return int(pc.memory_limit), "config"
    return d.memory_limit, d.memory_limit_source or "config"


def _time_to_limit(d: ProcessData, limit: int | None) -> float | None:
    """The collector's projection, moved along the same line when the limit is not the
    one it projected to."""
    ttl = d.time_to_limit_s
    if limit == d.memory_limit:
        return ttl
    slope = d.growth_bytes_per_s
    if limit is None or slope is None or slope <= 0:
        return None
    if ttl is not None and ttl > 0 and d.memory_limit:
        return max(0.0, ttl + (limit - d.memory_limit) / slope)
    return max(0.0, (limit - (d.rss_bytes or 0)) / slope)


def _memory(cid: str, name: str, d: ProcessData, limit: int | None, source: str) -> CheckResult:
    rss = d.rss_bytes or 0
    pids = d.pids
    who = f"pid {pids[0]}" if len(pids) == 1 else f"{len(pids)} processes"
    if not limit:
        return CheckResult(
            f"{cid}.memory",
            "processes",
            name,
            Status.OK,
            f"{who}: RSS {_mb(rss)} (no limit known)",
            value=float(rss),
            unit="bytes",
        )
    ratio = rss / limit
    st = Status.OK
    if ratio >= MEMORY_CRIT:
        st = Status.CRITICAL
    elif ratio >= MEMORY_WARN:
        st = Status.WARNING
    return CheckResult(
        f"{cid}.memory",
        "processes",
        name,
        st,
        f"{who}: RSS {_mb(rss)} of {_mb(limit)} ({source} limit, {ratio:.0%})",
        value=round(ratio, 4),
        unit="ratio",
        warn=MEMORY_WARN,
        crit=MEMORY_CRIT,
    )


def _growth(
    cid: str, name: str, d: ProcessData, pc: ProcessConfig, ttl: float | None, source: str
) -> CheckResult:
    slope = d.growth_bytes_per_s
    span = d.growth_span_s
    status = Status.OK
    if slope is None or span < pc.growth_min_span:
        have, need = format_duration_spaced(span), format_duration_spaced(pc.growth_min_span)
        summary = f"collecting samples ({have} of {need} needed for a trend)"
    else:
        per_min = slope * 60
        r2 = d.growth_r2 or 0.0
        summary = f"RSS {'+' if per_min >= 0 else ''}{_mb(per_min)}/min, R^2 {r2:.2f}"
        if slope > pc.growth_warn / 60 and r2 >= GROWTH_R2:
            status = Status.WARNING
            summary += f", steady growth over {format_duration_spaced(span)}"
            if ttl is not None:
                summary += f"; {source} limit in {format_duration_spaced(ttl)}"
                if ttl < pc.growth_crit_ttl:
                    status = Status.CRITICAL
    return CheckResult(
        f"{cid}.memory_growth",
        "processes",
        name,
        status,
        summary,
        # A rate, in base units per second (growth_warn is per minute).
        value=None if slope is None else round(slope, 2),
        unit="bytes_per_s",
        warn=round(pc.growth_warn / 60, 2),
    )
