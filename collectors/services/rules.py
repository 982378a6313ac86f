"""Judges for services and processes (registered in collectors.rules.JUDGES).

service.<name>.health     the health answer: fail/down critical, warn/degraded warning;
                          unreachable: critical while it has never answered (one-shot
                          `check`, or down from the start) and after 3 consecutive failed
                          polls, warning before that; flapping (state changes in the
                          window) is shown, and warns at flap_warn when the answer is ok.
service.<name>.latency    p95 over the window above latency_warn (latency_crit).
service.<name>.listeners  an event above the service's maxPerEvent (else max_per_event):
                          warning; total growing (R^2 >= 0.8): warning; growing and
                          doubled from its baseline: critical.
process.<name>.memory     RSS against the limit (config, cgroup or physical): 80 % / 95 %.
process.<name>.memory_growth
                          slope above growth_warn per minute with R^2 >= 0.8 over at least
                          growth_min_span: warning; and projected time to the limit under
                          growth_crit_ttl: critical.
"""

from __future__ import annotations

from collectors.config import Config
from collectors.core.model import CheckResult, Reading, Status

UNREACHABLE_CRIT_AFTER = 3
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


def judge_services(reading: Reading, config: Config) -> list[CheckResult]:
    name = reading.target
    cid = f"service.{name}"
    svc = config.service(name)
    d = reading.data

    def result(check: str, status: Status, summary: str, **kw: object) -> CheckResult:
        return CheckResult(f"{cid}.{check}", "services", name, status, summary, **kw)  # type: ignore[arg-type]

    if not reading.ok:
        fails = int(d.get("consecutive_failures") or 0)
        polls = int(d.get("polls") or 0)
        if reading.error_kind != "unreachable":
            return [result("health", Status.UNKNOWN, f"not checked: {reading.error}")]
        # Never answered since we started (a one-shot check, or down from the start):
        # critical from the first failure on, so it never dips to warning on the 2nd
        # poll. A service that did answer warns first: 3 failures in a row are critical.
        never = not d.get("ever_answered", polls <= 1)
        crit = never or fails >= UNREACHABLE_CRIT_AFTER or not d
        status = Status.CRITICAL if crit else Status.WARNING
        times = f" ({fails} consecutive polls)" if fails > 1 else ""
        if never and polls > 1:
            times += ", never answered since ultrawatch started"
        return [
            result(
                "health",
                status,
                f"unreachable{times}: {reading.error}",
                value=float(fails),
                unit="count",
                crit=float(UNREACHABLE_CRIT_AFTER),
            )
        ]

    out: list[CheckResult] = []
    status = Status(d.get("status") or "unknown")
    parts = [f"{d.get('message') or status.value}"]
    parts.append(f"{d.get('format') or '?'} format, HTTP {d.get('http_status')}")
    if d.get("draining"):
        parts.append("draining")
    if d.get("active_operations") is not None:
        parts.append(f"{d['active_operations']} active operations")
    bad = [c["name"] for c in d.get("components") or [] if c.get("status") != "ok"]
    if bad:
        parts.append("not ok: " + ", ".join(bad[:5]))
    failed = d.get("detail_errors") or {}
    if failed:
        parts.append(
            "detail paths failed: " + ", ".join(f"{p} ({e})" for p, e in list(failed.items())[:3])
        )
    flaps = int(d.get("flaps") or 0)
    if flaps:
        window = _duration(float(d.get("flap_window_s") or 0))
        parts.append(f"flapping: {flaps} state changes in {window}")
        limit = svc.flap_warn if svc is not None else None
        if limit and flaps >= limit and status is Status.OK:
            # Up now, but up and down too often to trust: someone should look.
            status = Status.WARNING
    out.append(result("health", status, "; ".join(parts)))

    p95 = d.get("latency_p95_ms")
    if p95 is not None and svc is not None:
        warn = svc.latency_warn * 1000
        crit = svc.latency_crit * 1000 if svc.latency_crit is not None else None
        st = Status.OK
        if crit is not None and p95 > crit:
            st = Status.CRITICAL
        elif p95 > warn:
            st = Status.WARNING
        out.append(
            result(
                "latency",
                st,
                f"p95 {p95:.0f} ms, p50 {d.get('latency_p50_ms') or 0:.0f} ms "
                f"over {d.get('latency_samples', 0)} polls",
                value=p95,
                unit="ms",
                warn=warn,
                crit=crit,
            )
        )

    lis = d.get("listeners")
    if lis and svc is not None:
        out.append(_listeners(result, lis, d.get("listeners_trend"), svc.max_per_event))
    return out


def _listeners(result, lis: dict, trend: dict | None, configured: int) -> CheckResult:  # type: ignore[no-untyped-def]
    total = lis.get("total") or 0
    # The service knows its own budget per event: its maxPerEvent wins over the config.
    reported = lis.get("maxPerEvent")
    if isinstance(reported, int | float) and not isinstance(reported, bool) and reported > 0:
        limit, whose = int(reported), "the service's maxPerEvent"
    else:
        limit, whose = configured, "max_per_event from the config"
    over = {k: v for k, v in (lis.get("byEvent") or {}).items() if v > limit}
    status = Status.OK
    parts = [f"{total} listeners", f"limit {limit} per event ({whose})"]
    if over:
        status = Status.WARNING
        worst = sorted(over.items(), key=lambda kv: -kv[1])[:3]
        parts.append(
            f"{len(over)} event(s) above {limit}: " + ", ".join(f"{k}={v}" for k, v in worst)
        )
    if trend and trend.get("growing"):
        base = trend.get("baseline") or 0
        per_min = trend.get("slope_per_s", 0) * 60
        parts.append(f"growing {per_min:.1f}/min (R^2 {trend.get('r2', 0):.2f}) from {base}")
        status = Status.WARNING
        if base > 0 and total >= 2 * base:
            status = Status.CRITICAL
            parts.append("doubled from its baseline")
    return result("listeners", status, "; ".join(parts), value=float(total), unit="count")
