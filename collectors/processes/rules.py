"""Judge for processes (registered in collectors.registry).

process.<name>.memory     RSS against the limit (config, cgroup or physical): 80 % / 95 %.
process.<name>.memory_growth
                          slope above growth_warn per minute with R^2 >= 0.8 over at least
                          growth_min_span: warning; and projected time to the limit under
                          growth_crit_ttl: critical.
"""

from __future__ import annotations

from collectors.config import Config, ProcessConfig
from collectors.core.model import CheckResult, Reading, Status

MEMORY_WARN = 0.8
MEMORY_CRIT = 0.95
GROWTH_R2 = 0.8


def _mb(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def _process_config(config: Config, name: str) -> ProcessConfig:
    for p in config.processes:
        if p.name == name:
            return p
    svc = config.service(name)
    return ProcessConfig(name=name, memory_limit=svc.memory_limit if svc else None)


def judge_processes(reading: Reading, config: Config) -> list[CheckResult]:
    name = reading.target
    cid = f"process.{name}"
    d = reading.data
    if not reading.ok:
        if reading.error_kind != "unreachable":
            return [
                CheckResult(
                    f"{cid}.memory",
                    "processes",
                    name,
                    Status.UNKNOWN,
                    f"not checked: {reading.error}",
                )
            ]
        return [
            CheckResult(f"{cid}.memory", "processes", name, Status.CRITICAL, str(reading.error))
        ]
    pc = _process_config(config, name)
    rss = d.get("rss_bytes") or 0
    limit = d.get("memory_limit")
    source = d.get("memory_limit_source") or "config"
    pids = d.get("pids") or []
    who = f"pid {pids[0]}" if len(pids) == 1 else f"{len(pids)} processes"
    out = []
    if limit:
        ratio = rss / limit
        st = Status.OK
        if ratio >= MEMORY_CRIT:
            st = Status.CRITICAL
        elif ratio >= MEMORY_WARN:
            st = Status.WARNING
        out.append(
            CheckResult(
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
        )
    else:
        out.append(
            CheckResult(
                f"{cid}.memory",
                "processes",
                name,
                Status.OK,
                f"{who}: RSS {_mb(rss)} (no limit known)",
                value=float(rss),
                unit="bytes",
            )
        )

    slope = d.get("growth_bytes_per_s")
    r2 = d.get("growth_r2") or 0.0
    span = d.get("growth_span_s") or 0.0
    warn_per_s = pc.growth_warn / 60
    if slope is None or span < pc.growth_min_span:
        status = Status.OK
        summary = (
            f"collecting samples ({_duration(span)} of {_duration(pc.growth_min_span)} "
            "needed for a trend)"
        )
    else:
        per_min = slope * 60
        summary = f"RSS {'+' if per_min >= 0 else ''}{_mb(per_min)}/min, R^2 {r2:.2f}"
        growing = slope > warn_per_s and r2 >= GROWTH_R2
        status = Status.OK
        ttl = d.get("time_to_limit_s")
        if growing:
            status = Status.WARNING
            summary += f", steady growth over {_duration(span)}"
            if ttl is not None:
                summary += f"; {source} limit in {_duration(ttl)}"
                if ttl < pc.growth_crit_ttl:
                    status = Status.CRITICAL
    out.append(
        CheckResult(
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
    )
    return out
