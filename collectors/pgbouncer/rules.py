"""The PgBouncer judge: every threshold and budget is applied here, from the
section and the services' refs (collectors.registry adapts the whole Config), to
the raw facts a reading holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from collectors.core.model import CheckResult, Limits, Reading, Status
from collectors.core.thresholds import at_least, failure, not_read, why_unread
from collectors.pgbouncer.config import BouncerService, PgBouncerConfig, app_services
from collectors.pgbouncer.data import PgBouncerData, Pool

NO_APP = "(no application_name)"


class Seen:
    """The pool databases each PgBouncer target showed in its last good reading, so
    that a round where it cannot be read still reports their checks, `unknown` "not
    read" (the ids of a config stay the same when `databases` is not set). One per
    Config (collectors.registry); bounded by the targets of that config."""

    def __init__(self) -> None:
        self.databases: dict[str, list[str]] = {}


def check_ids(
    cfg: PgBouncerConfig,
    services: Sequence[BouncerService] = (),
    data: PgBouncerData | None = None,
    known: Sequence[str] = (),
) -> list[str]:
    """Every check id a reading judged with this config has, in the judge's order.
    The pool checks are the configured `databases`, else the databases the reading
    shows, else (an unread PgBouncer) `known`: those of the last good reading."""
    return [
        "pgbouncer.reachable",
        *(f"pgbouncer.pool.{db}" for db in pool_databases(cfg, data, known)),
        "pgbouncer.clients",
        *(f"pgbouncer.budget.{s.name}" for s in services if s.budget is not None),
        "pgbouncer.paused",
    ]


def pool_databases(
    cfg: PgBouncerConfig, data: PgBouncerData | None, known: Sequence[str] = ()
) -> list[str]:
    if cfg.databases:
        return list(dict.fromkeys(cfg.databases))
    if data is None:
        return list(known)
    return sorted({p.database for p in data.pools} | {d.name for d in data.databases})


def judge_pgbouncer(
    reading: Reading,
    cfg: PgBouncerConfig,
    services: Sequence[BouncerService] = (),
    seen: Seen | None = None,
    prefix: str = "pgbouncer",
) -> list[CheckResult]:
    """The reading's checks; their ids start with `prefix` (`pgbouncer.<name>` when
    the config has several PgBouncers: see config.check_prefix)."""
    checks = _judge(reading, cfg, services, seen if seen is not None else Seen())
    if prefix == "pgbouncer":
        return checks
    return [replace(c, id=prefix + c.id.removeprefix("pgbouncer")) for c in checks]


def _judge(
    reading: Reading, cfg: PgBouncerConfig, services: Sequence[BouncerService], seen: Seen
) -> list[CheckResult]:
    if not reading.ok:
        why = why_unread(reading, "PgBouncer")
        known = seen.databases.get(reading.target, ())
        return [
            failure(reading, "pgbouncer.reachable", "PgBouncer"),
            *not_read(reading, check_ids(cfg, services, known=known)[1:], why),
        ]
    d: PgBouncerData = reading.data
    t = reading.target
    apps = app_services(services)
    databases = pool_databases(cfg, d)
    seen.databases[t] = databases
    out = [
        _check(
            "pgbouncer.reachable",
            t,
            Status.OK,
            f"PgBouncer {d.version or '?'} answered in {d.latency_ms or 0:.1f} ms",
            value=d.latency_ms,
            unit="ms",
        )
    ]
    out += [_pool_check(d, db, cfg, apps, t) for db in databases]
    out.append(_clients(d, cfg, t))
    out += [_budget(d, s, t) for s in services if s.budget is not None]
    out.append(_paused(d, t))
    return out


def _check(check_id: str, target: str, status: Status, summary: str, **kw: Any) -> CheckResult:
    return CheckResult(check_id, "pgbouncer", target, status, summary, **kw)


def pool_totals(pools: Sequence[Pool]) -> dict[str, Any]:
    """One database's pools (one per user) added up; `saturated`: some pool has
    every server busy (sv_active at pool_size, none idle)."""
    return {
        "cl_active": sum(p.cl_active for p in pools),
        "cl_waiting": sum(p.cl_waiting for p in pools),
        "sv_active": sum(p.sv_active for p in pools),
        "sv_idle": sum(p.sv_idle for p in pools),
        "sv_used": sum(p.sv_used for p in pools),
        "sv_login": sum(p.sv_login for p in pools),
        "maxwait_s": max((p.maxwait_s for p in pools), default=0.0),
        "saturated": any(
            p.pool_size and p.sv_active >= p.pool_size and p.sv_idle == 0 for p in pools
        ),
    }


def waiting_services(d: PgBouncerData, database: str, apps: dict[str, str]) -> dict[str, int]:
    """service (or application_name) -> its clients waiting on `database`'s pool,
    as of the last SHOW CLIENTS; most waiting first."""
    out: dict[str, int] = {}
    for app, c in d.clients.items():
        n = c.waiting_by_database.get(database, 0)
        if n:
            who = apps.get(app) or app or NO_APP
            out[who] = out.get(who, 0) + n
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def _pool_check(
    d: PgBouncerData, db: str, cfg: PgBouncerConfig, apps: dict[str, str], t: str
) -> CheckResult:
    cid = f"pgbouncer.pool.{db}"
    pools = [p for p in d.pools if p.database == db]
    known = {x.name for x in d.databases}
    if not pools:
        if db not in known:
            return _check(cid, t, Status.UNKNOWN, f"{db}: not a database of this PgBouncer")
        return _check(cid, t, Status.OK, f"{db}: no clients yet", value=0.0, unit="s")
    s = pool_totals(pools)
    size = next((p.pool_size for p in pools if p.pool_size), None)
    waits, maxwait = s["cl_waiting"], s["maxwait_s"]
    servers = f"servers {s['sv_active']} active, {s['sv_idle']} idle, {s['sv_used']} used"
    servers += f" of pool_size {size}" if size else ""
    if s["saturated"]:
        servers += " (saturated)"
    if s["sv_login"]:  # stuck here: the server refuses PgBouncer's login, or DNS
        servers += f", {s['sv_login']} logging in"
    if waits:
        who = waiting_services(d, db, apps)
        named = ", ".join(f"{k} {v}" for k, v in who.items())
        age = d.clients_age_s or 0.0
        if named and age >= 1:
            named += f", as of {age:.0f}s ago"
        summary = f"{db}: {waits} clients waiting" + (f" ({named})" if named else "")
        summary += f", maxwait {_secs(maxwait)}; {s['cl_active']} active; {servers}"
    else:
        summary = f"{db}: no client waiting; {s['cl_active']} active; {servers}"
    status = at_least(maxwait, cfg.waiting_warn, cfg.waiting_crit)
    if status is Status.OK and (waits or s["saturated"]):
        status = Status.WARNING
    return _check(
        cid,
        t,
        status,
        summary,
        value=round(maxwait, 3),
        unit="s",
        warn=cfg.waiting_warn,
        crit=cfg.waiting_crit,
        limits=Limits(warn_above=cfg.waiting_warn, crit_above=cfg.waiting_crit, reach=True),
    )


def _clients(d: PgBouncerData, cfg: PgBouncerConfig, t: str) -> CheckResult:
    used, most = d.clients_used, d.max_client_conn
    if used is None or not most:
        return _check("pgbouncer.clients", t, Status.UNKNOWN, "client connection counts unknown")
    ratio = used / most
    return _check(
        "pgbouncer.clients",
        t,
        at_least(ratio, cfg.clients_warn, cfg.clients_crit),
        f"{used} of max_client_conn {most} client connections ({ratio:.0%})",
        value=round(ratio, 3),
        unit="ratio",
        warn=cfg.clients_warn,
        crit=cfg.clients_crit,
        limits=Limits(warn_above=cfg.clients_warn, crit_above=cfg.clients_crit, reach=True),
    )


def service_clients(d: PgBouncerData, svc: BouncerService) -> tuple[int, int]:
    """(client connections, of them waiting) of a service, from SHOW CLIENTS."""
    c = d.clients.get(svc.application_name)
    return (c.count, c.waiting) if c else (0, 0)


def _budget(d: PgBouncerData, svc: BouncerService, t: str) -> CheckResult:
    cid = f"pgbouncer.budget.{svc.name}"
    budget = svc.budget or 0
    if d.clients_age_s is None:
        return _check(cid, t, Status.UNKNOWN, f"{svc.name}: SHOW CLIENTS not read yet")
    n, waiting = service_clients(d, svc)
    word = "over" if n > budget else "within"
    summary = f"{svc.name}: {n} client connections through PgBouncer, {word} its budget of {budget}"
    if waiting:
        summary += f" ({waiting} waiting)"
    return _check(
        cid,
        t,
        Status.WARNING if n > budget else Status.OK,
        summary,
        value=n,
        unit="count",
        warn=budget,
    )


def _paused(d: PgBouncerData, t: str) -> CheckResult:
    paused = [x.name for x in d.databases if x.paused]
    disabled = [x.name for x in d.databases if x.disabled]
    if not paused and not disabled:
        return _check("pgbouncer.paused", t, Status.OK, "no database paused or disabled", value=0)
    parts = []
    if paused:
        parts.append(f"paused: {', '.join(paused)} (clients wait until RESUME)")
    if disabled:
        parts.append(f"disabled: {', '.join(disabled)} (new clients refused until ENABLE)")
    return _check(
        "pgbouncer.paused",
        t,
        Status.WARNING,
        "; ".join(parts),
        value=len(set(paused) | set(disabled)),
        unit="count",
    )


def _secs(s: float) -> str:
    if s < 10:
        return f"{s:.1f}s"
    if s < 120:
        return f"{s:.0f}s"
    return f"{s / 60:.0f}m"
