"""The PostgreSQL judge (registered in collectors.rules.JUDGES)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collectors.config import Config
from collectors.core.model import CheckResult, Reading, Status
from collectors.core.thresholds import above, at_least, below, failure
from collectors.postgres.config import PostgresConfig


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
    out.append(_pg_connections(d, pg, t))
    out += _pg_budgets(d, config, t)
    out.append(_pg_idle_in_transaction(d, pg, t))
    out.append(_pg_blocked(d, pg, t))
    out += _pg_invariants(d, pg, t)
    return out


def _pg_check(check_id: str, target: str, status: Status, summary: str, **kw: Any) -> CheckResult:
    return CheckResult(check_id, "postgres", target, status, summary, **kw)


def _pg_over_budget(d: Mapping[str, Any]) -> list[tuple[str, int, int, Mapping[str, Any]]]:
    """(service, count, budget, its by_service entry) for every service above its
    connection budget."""
    return [
        (name, s["count"], s["budget"], s)
        for name, s in (d.get("by_service") or {}).items()
        if s.get("budget") is not None and s["count"] > s["budget"]
    ]


def _pg_connections(d: Mapping[str, Any], pg: PostgresConfig, t: str) -> CheckResult:
    used, usable = d.get("connections_used"), d.get("usable")
    if used is None or not usable:
        return _pg_check("postgres.connections", t, Status.UNKNOWN, "connection counts unknown")
    ratio = used / usable
    hidden = d.get("hidden_sessions") or 0
    # Hidden rows may be parallel workers (no slot of their own): an upper bound.
    bound = "at most " if hidden else ""
    summary = f"{bound}{used} of {usable} usable connections in use ({ratio:.0%})"
    over = _pg_over_budget(d)
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
    )


def _pg_budgets(d: Mapping[str, Any], config: Config, t: str) -> list[CheckResult]:
    """postgres.budget.<service> per budgeted service; postgres.budget.total for the
    platform: the configured services' connections together (every client
    connection when no service names its application) against postgres.connection_budget."""
    out: list[CheckResult] = []
    by_service = d.get("by_service") or {}
    for svc in config.services:
        if svc.connection_budget is None:
            continue
        cid = f"postgres.budget.{svc.name}"
        s = by_service.get(svc.name)
        if s is None:
            out.append(
                _pg_check(
                    cid, t, Status.UNKNOWN, f"{svc.name}: set pg_application_name to count it"
                )
            )
            continue
        n, budget = s["count"], svc.connection_budget
        word = "over" if n > budget else "within"
        summary = f"{svc.name}: {_at_most(s)}{n} connections, {word} its budget of {budget}"
        if s.get("hidden"):
            summary += f" ({s['hidden']} of them hidden, maybe parallel workers)"
        out.append(
            _pg_check(
                cid,
                t,
                Status.WARNING if n > budget else Status.OK,
                summary,
                value=n,
                unit="count",
                warn=budget,
            )
        )
    budget = config.postgres.connection_budget if config.postgres else None
    if budget is not None:
        named = [s for name, s in by_service.items() if name != "other"]
        total = sum(s["count"] for s in named) if named else d.get("connections_used", 0)
        what = "the services hold" if named else "clients hold"
        hidden = sum(s.get("hidden") or 0 for s in named) if named else d.get("hidden_sessions")
        bound = "at most " if hidden else ""
        summary = f"{what} {bound}{total} connections; platform budget {budget}"
        if total > budget:
            over = _pg_over_budget(d)
            summary += " (over" + (
                ": " + ", ".join(f"{n} {c}/{b}" for n, c, b, _ in over) + ")" if over else ")"
            )
        if hidden:
            summary += f"; {hidden} of them hidden sessions of other roles, maybe parallel workers"
        out.append(
            _pg_check(
                "postgres.budget.total",
                t,
                Status.WARNING if total > budget else Status.OK,
                summary,
                value=total,
                unit="count",
                warn=budget,
            )
        )
    return out


def _at_most(service: Mapping[str, Any]) -> str:
    return "at most " if service.get("hidden") else ""


def _pg_hidden_count_note(d: Mapping[str, Any]) -> str:
    n = d.get("hidden_sessions") or 0
    return (
        f"{n} of them hidden sessions of other roles, which may include parallel workers "
        "(grant pg_monitor to see them)"
    )


def _pg_hidden_note(d: Mapping[str, Any]) -> str:
    n = d.get("hidden_sessions") or 0
    return f"{n} sessions of other roles hidden (grant pg_monitor to see them)" if n else ""


def _pg_idle_in_transaction(d: Mapping[str, Any], pg: PostgresConfig, t: str) -> CheckResult:
    cid = "postgres.idle_in_transaction"
    warn, crit = pg.idle_in_transaction_warn, pg.idle_in_transaction_crit
    states = d.get("by_state") or {}
    count = states.get("idle in transaction", 0) + states.get("idle in transaction (aborted)", 0)
    worst = d.get("longest_idle_in_xact")
    hidden = _pg_hidden_note(d)
    if not worst:
        status, summary = Status.OK, "no session idle in transaction"
        if hidden:
            status, summary = Status.UNKNOWN, f"none visible idle in transaction; {hidden}"
        return _pg_check(cid, t, status, summary, value=0.0, unit="s", warn=warn, crit=crit)
    age = worst["age_s"] or 0.0
    summary = (
        f"{count} idle in transaction; longest pid {worst['pid']} ({worst['service']}) "
        f"for {_secs(age)}"
    )
    status = at_least(age, warn, crit)
    if hidden and status is Status.OK:
        status, summary = Status.UNKNOWN, f"{summary}; {hidden}"
    return _pg_check(cid, t, status, summary, value=round(age, 1), unit="s", warn=warn, crit=crit)


def _pg_blocked(d: Mapping[str, Any], pg: PostgresConfig, t: str) -> CheckResult:
    cid = "postgres.blocked"
    warn, crit = pg.blocked_warn, pg.blocked_crit
    blocked = d.get("blocked") or []
    hidden = _pg_hidden_note(d)
    if not blocked:
        status, summary = Status.OK, "no session waiting on a lock"
        if hidden:
            status, summary = Status.UNKNOWN, f"none visible waiting on a lock; {hidden}"
        return _pg_check(cid, t, status, summary, value=0.0, unit="s", warn=warn, crit=crit)
    worst = max(blocked, key=lambda b: b.get("waiting_s") or 0.0)
    waited = worst.get("waiting_s") or 0.0
    by = ", ".join(str(p) for p in worst.get("blocked_by") or []) or "?"
    total = d.get("blocked_total", len(blocked))
    summary = (
        f"{total} waiting on a lock; longest pid {worst['pid']} ({worst['service']}) "
        f"for {_secs(waited)}, blocked by pid {by}"
    )
    status = at_least(waited, warn, crit)
    if hidden and status is Status.OK:
        status, summary = Status.UNKNOWN, f"{summary}; {hidden}"
    return _pg_check(
        cid, t, status, summary, value=round(waited, 1), unit="s", warn=warn, crit=crit
    )


def _pg_invariants(d: Mapping[str, Any], pg: PostgresConfig, t: str) -> list[CheckResult]:
    out = []
    seen = d.get("invariants") or {}
    for inv in pg.invariants:
        cid = f"postgres.invariant.{inv.name}"
        got = seen.get(inv.name)
        if got is None or got.get("error"):
            why = got["error"] if got else "not run"
            out.append(_pg_check(cid, t, Status.UNKNOWN, f"{inv.name}: not checked: {why}"))
            continue
        value = got["value"]
        hi = above(value, inv.warn_above, inv.crit_above)
        lo = below(value, inv.warn_below, inv.crit_below)
        status = Status.worst([hi, lo])
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
        out.append(
            _pg_check(cid, t, status, summary, value=value, warn=warn, crit=crit, below=falls)
        )
    return out


def _secs(s: float) -> str:
    if s < 120:
        return f"{s:.0f}s" if s >= 10 else f"{s:.1f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    return f"{s / 3600:.1f}h"
