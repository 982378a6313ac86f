"""The PostgreSQL judge: every threshold and budget is applied here, from the
section and the services' refs it is given (collectors.registry adapts the
whole Config), to the raw facts a reading holds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from collectors.core.model import CheckResult, Limits, Reading, Status
from collectors.core.thresholds import at_least, failure, not_read, why_unread
from collectors.postgres.config import Invariant, PostgresConfig, ServiceRef
from collectors.postgres.data import OTHER, InvariantResult, PostgresData, ServiceCount


def judge_postgres(
    reading: Reading, pg: PostgresConfig, services: Sequence[ServiceRef] = ()
) -> list[CheckResult]:
    if not reading.ok:
        unread = check_ids(pg, services)[1:]
        why = why_unread(reading, "PostgreSQL")
        return [
            failure(reading, "postgres.reachable", "PostgreSQL"),
            *not_read(reading, unread, why),
        ]
    d: PostgresData = reading.data
    t = reading.target
    budgets = _budgets(services)
    out = [
        CheckResult(
            "postgres.reachable",
            "postgres",
            t,
            Status.OK,
            f"PostgreSQL {d.server_version or '?'} answered in {d.latency_ms or 0:.0f} ms",
            value=d.latency_ms,
            unit="ms",
        )
    ]
    out.append(_pg_connections(d, pg, budgets, t))
    out += _pg_budgets(d, pg, services, budgets, t)
    out.append(_pg_idle_in_transaction(d, pg, t))
    out.append(_pg_blocked(d, pg, t))
    out += [_pg_invariant(d.invariants.get(inv.name), inv, t) for inv in pg.invariants]
    return out


def check_ids(pg: PostgresConfig, services: Sequence[ServiceRef] = ()) -> list[str]:
    """Every check id a reading judged with this config has, in the judge's order
    (postgres.reachable first): the same whether or not the server could be read."""
    return [
        "postgres.reachable",
        "postgres.connections",
        *(f"postgres.budget.{s.name}" for s in services if s.connection_budget is not None),
        *(["postgres.budget.total"] if pg.connection_budget is not None else []),
        "postgres.idle_in_transaction",
        "postgres.blocked",
        *(f"postgres.invariant.{inv.name}" for inv in pg.invariants),
    ]


def _budgets(services: Sequence[ServiceRef]) -> dict[str, int]:
    """service -> its connection budget, for the services that have one (first wins)."""
    out: dict[str, int] = {}
    for svc in services:
        if svc.connection_budget is not None:
            out.setdefault(svc.name, svc.connection_budget)
    return out


def _pg_check(check_id: str, target: str, status: Status, summary: str, **kw: Any) -> CheckResult:
    return CheckResult(check_id, "postgres", target, status, summary, **kw)


def _pg_over_budget(
    d: PostgresData, budgets: dict[str, int]
) -> list[tuple[str, int, int, ServiceCount]]:
    """(service, count, budget, its by_service entry) for every counted service above
    its connection budget (the budget the config gives now, not the recorded one)."""
    out = []
    for name, s in d.by_service.items():
        budget = budgets.get(name) if name != OTHER else None
        if budget is not None and s.count > budget:
            out.append((name, s.count, budget, s))
    return out


def _pg_connections(
    d: PostgresData, pg: PostgresConfig, budgets: dict[str, int], t: str
) -> CheckResult:
    used, usable = d.connections_used, d.usable
    if used is None or not usable:
        return _pg_check("postgres.connections", t, Status.UNKNOWN, "connection counts unknown")
    ratio = used / usable
    hidden = d.hidden_sessions
    # Hidden rows may be parallel workers (no slot of their own): an upper bound.
    bound = "at most " if hidden else ""
    summary = f"{bound}{used} of {usable} usable connections in use ({ratio:.0%})"
    over = _pg_over_budget(d, budgets)
    if over:
        summary += "; " + ", ".join(
            f"{n} {_at_most(s)}{c} over its budget of {b}" for n, c, b, s in over
        )
    if hidden:
        summary += f"; {_pg_hidden_count_note(d)}"
    return _pg_check(
        "postgres.connections",
        t,
        at_least(ratio, pg.connections_warn, pg.connections_crit),
        summary,
        value=round(ratio, 3),
        unit="ratio",
        warn=pg.connections_warn,
        crit=pg.connections_crit,
        limits=Limits(warn_above=pg.connections_warn, crit_above=pg.connections_crit, reach=True),
    )


def _pg_budgets(
    d: PostgresData,
    pg: PostgresConfig,
    services: Sequence[ServiceRef],
    budgets: dict[str, int],
    t: str,
) -> list[CheckResult]:
    """postgres.budget.<service> per budgeted service; postgres.budget.total for the
    platform: the configured services' connections together (every client
    connection when no service names its application) against postgres.connection_budget."""
    out = [
        _pg_service_budget(d.by_service.get(svc.name), svc.name, svc.connection_budget, t)
        for svc in services
        if svc.connection_budget is not None
    ]
    if pg.connection_budget is not None:
        out.append(_pg_total_budget(d, pg.connection_budget, budgets, t))
    return out


def _pg_service_budget(s: ServiceCount | None, name: str, budget: int, t: str) -> CheckResult:
    cid = f"postgres.budget.{name}"
    if s is None:
        return _pg_check(cid, t, Status.UNKNOWN, f"{name}: set pg_application_name to count it")
    n = s.count
    word = "over" if n > budget else "within"
    summary = f"{name}: {_at_most(s)}{n} connections, {word} its budget of {budget}"
    if s.hidden:
        summary += f" ({s.hidden} of them hidden, maybe parallel workers)"
    return _pg_check(
        cid,
        t,
        Status.WARNING if n > budget else Status.OK,
        summary,
        value=n,
        unit="count",
        warn=budget,
    )


def _pg_total_budget(d: PostgresData, budget: int, budgets: dict[str, int], t: str) -> CheckResult:
    named = [s for name, s in d.by_service.items() if name != OTHER]
    if named:
        what = "the services hold"
        total = sum(s.count for s in named)
        hidden = sum(s.hidden for s in named)
    else:
        what = "clients hold"
        total = d.connections_used or 0
        hidden = d.hidden_sessions
    bound = "at most " if hidden else ""
    summary = f"{what} {bound}{total} connections; platform budget {budget}"
    if total > budget:
        over = _pg_over_budget(d, budgets)
        summary += " (over" + (
            ": " + ", ".join(f"{n} {c}/{b}" for n, c, b, _ in over) + ")" if over else ")"
        )
    if hidden:
        summary += f"; {hidden} of them hidden sessions of other roles, maybe parallel workers"
    return _pg_check(
        "postgres.budget.total",
        t,
        Status.WARNING if total > budget else Status.OK,
        summary,
        value=total,
        unit="count",
        warn=budget,
    )


def _at_most(service: ServiceCount) -> str:
    return "at most " if service.hidden else ""


def _pg_hidden_count_note(d: PostgresData) -> str:
    return (
        f"{d.hidden_sessions} of them hidden sessions of other roles, which may include "
        "parallel workers (grant pg_monitor to see them)"
    )


def _pg_hidden_note(d: PostgresData) -> str:
    n = d.hidden_sessions
    return f"{n} sessions of other roles hidden (grant pg_monitor to see them)" if n else ""


def _pg_idle_in_transaction(d: PostgresData, pg: PostgresConfig, t: str) -> CheckResult:
    cid = "postgres.idle_in_transaction"
    warn, crit = pg.idle_in_transaction_warn, pg.idle_in_transaction_crit
    states = d.by_state
    count = states.get("idle in transaction", 0) + states.get("idle in transaction (aborted)", 0)
    worst = d.longest_idle_in_xact
    hidden = _pg_hidden_note(d)
    if not worst:
        status, summary = Status.OK, "no session idle in transaction"
        if hidden:
            status, summary = Status.UNKNOWN, f"none visible idle in transaction; {hidden}"
        return _pg_check(cid, t, status, summary, value=0.0, unit="s", warn=warn, crit=crit)
    age = worst.age_s or 0.0
    summary = (
        f"{count} idle in transaction; longest pid {worst.pid} ({worst.service}) for {_secs(age)}"
    )
    return _longest(cid, t, summary, age, warn, crit, hidden)


def _longest(
    cid: str, t: str, summary: str, seconds: float, warn: float, crit: float, hidden: str
) -> CheckResult:
    """The check of the longest wait of its kind (idle in transaction, blocked): its
    duration against warn/crit, reaching a limit counts; unknown while sessions the
    monitor cannot see may hide a worse one."""
    status = at_least(seconds, warn, crit)
    if hidden and status is Status.OK:
        status, summary = Status.UNKNOWN, f"{summary}; {hidden}"
    return _pg_check(
        cid,
        t,
        status,
        summary,
        value=round(seconds, 1),
        unit="s",
        warn=warn,
        crit=crit,
        limits=Limits(warn_above=warn, crit_above=crit, reach=True),
    )


def _pg_blocked(d: PostgresData, pg: PostgresConfig, t: str) -> CheckResult:
    cid = "postgres.blocked"
    warn, crit = pg.blocked_warn, pg.blocked_crit
    blocked = d.blocked
    hidden = _pg_hidden_note(d)
    if not blocked:
        status, summary = Status.OK, "no session waiting on a lock"
        if hidden:
            status, summary = Status.UNKNOWN, f"none visible waiting on a lock; {hidden}"
        return _pg_check(cid, t, status, summary, value=0.0, unit="s", warn=warn, crit=crit)
    worst = max(blocked, key=lambda b: b.waiting_s or 0.0)
    waited = worst.waiting_s or 0.0
    by = ", ".join(str(p) for p in worst.blocked_by) or "?"
    total = d.blocked_total if d.blocked_total is not None else len(blocked)
    summary = (
        f"{total} waiting on a lock; longest pid {worst.pid} ({worst.service}) "
        f"for {_secs(waited)}, blocked by pid {by}"
    )
    return _longest(cid, t, summary, waited, warn, crit, hidden)


def _pg_invariant(got: InvariantResult | None, inv: Invariant, t: str) -> CheckResult:
    cid = f"postgres.invariant.{inv.name}"
    if got is None or got.error or got.value is None:
        why = (got.error if got else None) or "not run"
        return _pg_check(cid, t, Status.UNKNOWN, f"{inv.name}: not checked: {why}")
    value = got.value
    if not math.isfinite(value):
        # 'NaN'::float or an infinity compares false with every threshold: no verdict.
        return _pg_check(
            cid, t, Status.UNKNOWN, f"{inv.name}: the query returned {value}, not a finite number"
        )
    bounds = Limits(
        warn_above=inv.warn_above,
        crit_above=inv.crit_above,
        warn_below=inv.warn_below,
        crit_below=inv.crit_below,
    )
    status = bounds.status(value)
    limits = [
        f"{word} {v:g}"
        for word, v in (
            ("warn above", inv.warn_above),
            ("crit above", inv.crit_above),
            ("warn below", inv.warn_below),
            ("crit below", inv.crit_below),
        )
        if v is not None
    ]
    summary = f"{inv.name} = {value:g}" + (f" ({', '.join(limits)})" if limits else "")
    warn = inv.warn_above if inv.warn_above is not None else inv.warn_below
    crit = inv.crit_above if inv.crit_above is not None else inv.crit_below
    falls = inv.warn_above is None and inv.crit_above is None  # only *_below limits
    return _pg_check(
        cid, t, status, summary, value=value, warn=warn, crit=crit, below=falls, limits=bounds
    )


def _secs(s: float) -> str:
    if s < 120:
        return f"{s:.0f}s" if s >= 10 else f"{s:.1f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    return f"{s / 3600:.1f}h"
