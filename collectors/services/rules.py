"""Judge for services (registered in collectors.registry).

service.<name>.health     the health answer: fail/down critical, warn/degraded warning;
                          unreachable: critical while it has never answered (one-shot
                          `check`, or down from the start) and after 3 consecutive failed
                          polls, warning before that; flapping (state changes in the
                          window) is shown, and warns at flap_warn when the answer is ok.
service.<name>.latency    p95 over the window above latency_warn (latency_crit).
service.<name>.listeners  an event above the service's maxPerEvent (else max_per_event):
                          warning; total growing (at least 5 samples in the window, rising,
                          R^2 >= 0.8): warning; growing and doubled from its baseline:
                          critical.
service.<name>.heap       the heap the service reports (/health/memory heapUsed) keeps
                          growing: at least 6 samples over at least 30 s of the window,
                          R^2 >= 0.8, rising faster than 1 MiB/min: warning; and doubled
                          from its first value in this run: critical. Judged within the
                          first minute, where the process RSS slope needs minutes.

The judge takes the reading and the services' sections (ServicesRefs, built by the
registry); every threshold is here or in the config, none in the collector.
"""

from __future__ import annotations

from collections.abc import Callable

from collectors.core.model import CheckResult, Limits, Reading, Status
from collectors.core.thresholds import not_read, why_unread
from collectors.core.units import format_duration_spaced
from collectors.services.config import ServiceConfig, ServicesRefs
from collectors.services.data import (
    HeapTrend,
    Listeners,
    ListenerTrend,
    ServiceData,
    service_data,
)

UNREACHABLE_CRIT_AFTER = 3
# Where a service publishes its listener counts (the UltraMarket health contract): a
# service with this detail path always has a listeners check.
MEMORY_PATH = "/health/memory"
GROWTH_R2 = 0.8  # a listener total "keeps growing" when the fit is at least this good
GROWTH_MIN_SAMPLES = 5
# The reported heap: judged after HEAP_MIN_SPAN s (within the first minute), not the
# minutes the RSS slope waits for: the service counts its own live objects, which
# garbage collection makes steadier than RSS.
HEAP_MIN_SAMPLES = 6
HEAP_MIN_SPAN = 30.0
HEAP_GROWTH_WARN = 1024 * 1024 / 60  # bytes per second: 1 MiB/min

Result = Callable[..., CheckResult]
_STATUSES = {s.value for s in Status}


def judge_services(reading: Reading, refs: ServicesRefs) -> list[CheckResult]:
    name = reading.target
    svc = refs.service(name)

    def result(check: str, status: Status, summary: str, **kw: object) -> CheckResult:
        return CheckResult(f"service.{name}.{check}", "services", name, status, summary, **kw)  # type: ignore[arg-type]

    d = service_data(reading.data)
    if not reading.ok:
        unread = check_ids(svc)[1:] if svc is not None else []
        why = why_unread(reading, name)
        return [_unreachable(reading, result), *not_read(reading, unread, why)]
    out = [_health(reading, svc, result)]
    if svc is None:  # a recorded service the config no longer has: what it shows
        if d.listeners is not None:
            out.append(_listeners(d.listeners, d.listeners_trend, 10, result))
        return out
    if d.latency_p95_ms is not None:
        out.append(_latency(d.latency_p95_ms, d.latency_p50_ms, d.latency_samples, svc, result))
    else:
        out.append(result("latency", Status.UNKNOWN, "no latency sample in the window yet"))
    odd = {k: v for k, v in d.odd_numbers.items() if k.startswith("listeners.")}
    if odd:
        # NaN or an absurd count is no count: never "0 listeners, ok"
        why = "; ".join(f"{k} is {v}" for k, v in list(odd.items())[:3])
        out.append(result("listeners", Status.UNKNOWN, f"listener counts unusable: {why}"))
    elif d.listeners is not None:
        out.append(_listeners(d.listeners, d.listeners_trend, svc.max_per_event, result))
    elif publishes_listeners(svc):
        out.append(result("listeners", Status.UNKNOWN, _no_listeners(d.detail_errors)))
    if publishes_listeners(svc):
        out.append(_heap(d, result))
    return out


def publishes_listeners(svc: ServiceConfig) -> bool:
    return MEMORY_PATH in svc.detail_paths


def check_ids(svc: ServiceConfig) -> list[str]:
    """Every check id of this service a reading judged with its config has (health,
    latency, and listeners when it has /health/memory), answered or not. A listeners
    check also appears whenever another detail path carries the counts."""
    ids = [f"service.{svc.name}.health", f"service.{svc.name}.latency"]
    if publishes_listeners(svc):
        ids += [f"service.{svc.name}.listeners", f"service.{svc.name}.heap"]
    return ids


def _no_listeners(detail_errors: dict[str, str]) -> str:
    why = detail_errors.get(MEMORY_PATH)
    if why:
        return f"listener counts not read: {MEMORY_PATH}: {why}"
    return f"no listener counts in {MEMORY_PATH}"


def _unreachable(reading: Reading, result: Result) -> CheckResult:
    if reading.error_kind != "unreachable":
        return result("health", Status.UNKNOWN, f"not checked: {reading.error}")
    d = service_data(reading.data)
    fails, polls = d.consecutive_failures, d.polls
    # Never answered since we started (a one-shot check, or down from the start):
    # critical from the first failure on, so it never dips to warning on the 2nd
    # poll. A service that did answer warns first: 3 failures in a row are critical.
    never = not (d.ever_answered if d.ever_answered is not None else polls <= 1)
    # Critical already when it stopped answering (a failing or draining answer, then
    # gone): it stays critical, never dips to warning until it answers again.
    was_critical = d.last_answer == "critical"
    crit = never or was_critical or fails >= UNREACHABLE_CRIT_AFTER or not reading.data
    times = f" ({fails} consecutive polls)" if fails > 1 else ""
    if never and polls > 1:
        times += ", never answered since ultrawatch started"
    elif was_critical and fails < UNREACHABLE_CRIT_AFTER:
        times += ", critical before it stopped answering"
    # The failed polls against the limits that decided: any failure warns, the 3rd
    # (or the first, when critical from the start) is critical; so the perfdata
    # ranges say what the status says.
    crit_above = 0.0 if crit else float(UNREACHABLE_CRIT_AFTER - 1)
    return result(
        "health",
        Status.CRITICAL if crit else Status.WARNING,
        f"unreachable{times}: {reading.error}",
        value=float(fails),
        unit="count",
        warn=0.0,
        crit=crit_above,
        limits=Limits(warn_above=0.0, crit_above=crit_above),
    )


def _health(reading: Reading, svc: ServiceConfig | None, result: Result) -> CheckResult:
    d = service_data(reading.data)
    status = Status(d.status or "unknown")
    parts = [f"{d.message or status.value}"]
    parts.append(f"{d.format or '?'} format, HTTP {d.http_status}")
    if d.draining:
        parts.append("draining")
    if d.active_operations is not None:
        parts.append(f"{d.active_operations} active operations")
    bad = [c for c in d.components if c.status != "ok"]
    if bad:
        # The failing component's own words (its error, output, exception): the root
        # cause, not only its name. Worst first.
        bad.sort(key=lambda c: -Status(c.status if c.status in _STATUSES else "unknown").severity)
        named = [f"{c.name} ({c.detail})" if c.detail else c.name for c in bad[:3]]
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        parts.append("not ok: " + ", ".join(named) + more)
    other = [f"{k} {v}" for k, v in d.odd_numbers.items() if not k.startswith("listeners.")]
    if other:
        parts.append("numbers not usable: " + ", ".join(other[:3]))
    if d.detail_errors:
        failed = list(d.detail_errors.items())[:3]
        parts.append("detail paths failed: " + ", ".join(f"{p} ({e})" for p, e in failed))
    if d.flaps:
        window = format_duration_spaced(d.flap_window_s)
        parts.append(f"flapping: {d.flaps} state changes in {window}")
        limit = svc.flap_warn if svc is not None else None
        if limit and d.flaps >= limit and status is Status.OK:
            # Up now, but up and down too often to trust: someone should look.
            status = Status.WARNING
    return result("health", status, "; ".join(parts))


def _latency(
    p95: float, p50: float | None, samples: int, svc: ServiceConfig, result: Result
) -> CheckResult:
    warn = svc.latency_warn * 1000
    crit = svc.latency_crit * 1000 if svc.latency_crit is not None else None
    st = Status.OK
    if crit is not None and p95 > crit:
        st = Status.CRITICAL
    elif p95 > warn:
        st = Status.WARNING
    return result(
        "latency",
        st,
        f"p95 {p95:.0f} ms, p50 {p50 or 0:.0f} ms over {samples} polls",
        value=p95,
        unit="ms",
        warn=warn,
        crit=crit,
    )


def listeners_growing(trend: ListenerTrend | None) -> bool:
    """Does the listener total keep growing: enough samples in the window, a good fit,
    rising from the window's first sample to its last."""
    if trend is None:
        return False
    if trend.rise is None:  # recorded before the judge owned this: its verdict then
        return bool(trend.growing)
    return (
        trend.samples >= GROWTH_MIN_SAMPLES
        and trend.slope_per_s > 0
        and trend.r2 >= GROWTH_R2
        and trend.rise > 0
    )


def _listeners(
    lis: Listeners, trend: ListenerTrend | None, configured: int, result: Result
) -> CheckResult:
    total = lis.total
    # The service knows its own budget per event: its maxPerEvent wins over the config.
    reported = lis.maxPerEvent
    if reported is not None and reported > 0:
        limit, whose = reported, "the service's maxPerEvent"
    else:
        limit, whose = configured, "max_per_event from the config"
    over = {k: v for k, v in lis.byEvent.items() if v > limit}
    status = Status.OK
    parts = [f"{total} listeners", f"limit {limit} per event ({whose})"]
    if over:
        status = Status.WARNING
        worst = sorted(over.items(), key=lambda kv: -kv[1])[:3]
        parts.append(
            f"{len(over)} event(s) above {limit}: " + ", ".join(f"{k}={v}" for k, v in worst)
        )
    if trend is not None and listeners_growing(trend):
        base = trend.baseline
        per_min = trend.slope_per_s * 60
        parts.append(f"growing {per_min:.1f}/min (R^2 {trend.r2:.2f}) from {base}")
        status = Status.WARNING
        if base > 0 and total >= 2 * base:
            status = Status.CRITICAL
            parts.append("doubled from its baseline")
    return result("listeners", status, "; ".join(parts), value=float(total), unit="count")


def _mib(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


def heap_growing(trend: HeapTrend | None) -> bool:
    """Does the reported heap keep growing: enough samples over enough time in the
    window, a good fit, faster than HEAP_GROWTH_WARN, rising first to last."""
    return (
        trend is not None
        and trend.samples >= HEAP_MIN_SAMPLES
        and trend.span_s >= HEAP_MIN_SPAN
        and trend.r2 >= GROWTH_R2
        and trend.slope_per_s > HEAP_GROWTH_WARN
        and trend.rise > 0
    )


def _heap(d: ServiceData, result: Result) -> CheckResult:
    heap = d.memory.heapUsed if d.memory is not None else None
    trend = d.heap_trend
    if heap is not None and trend is None:
        # A reading recorded before the heap's trend was kept: the figure only.
        return result(
            "heap",
            Status.OK,
            f"heap {_mib(heap)}; no trend recorded",
            value=float(heap),
            unit="bytes",
        )
    if heap is None or trend is None:
        why = d.detail_errors.get(MEMORY_PATH)
        if why:
            return result("heap", Status.UNKNOWN, f"heap not read: {MEMORY_PATH}: {why}")
        return result("heap", Status.OK, f"no heapUsed in {MEMORY_PATH}: nothing to judge")
    status = Status.OK
    parts = [f"heap {_mib(heap)}"]
    if trend.span_s < HEAP_MIN_SPAN or trend.samples < HEAP_MIN_SAMPLES:
        parts.append(
            f"trend judged after {HEAP_MIN_SPAN:.0f} s of samples ({trend.span_s:.0f} s so far)"
        )
    elif heap_growing(trend):
        status = Status.WARNING
        parts.append(
            f"growing {_mib(trend.slope_per_s * 60)}/min (R^2 {trend.r2:.2f}) over "
            f"{format_duration_spaced(trend.span_s)}, from {_mib(trend.baseline)}"
        )
        if trend.baseline > 0 and heap >= 2 * trend.baseline:
            status = Status.CRITICAL
            parts.append("doubled from its first value")
    else:
        parts.append(
            f"steady ({'+' if trend.slope_per_s >= 0 else ''}{_mib(trend.slope_per_s * 60)}/min)"
        )
    return result(
        "heap",
        status,
        "; ".join(parts),
        value=float(heap),
        unit="bytes",
    )
