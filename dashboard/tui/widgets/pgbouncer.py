"""PgBouncer: its pools (clients active / waiting, servers active / idle / used,
maxwait, pool size, mode; paused databases marked) and its clients per service
against their budgets. Every colour is a judged check; PgBouncer's text (database,
user and application names) is shown as data, never as markup."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container
from textual.content import Content

from collectors.core.model import CheckResult, Reading, Status
from collectors.pgbouncer.config import check_prefix, instances
from collectors.pgbouncer.data import PgBouncerData, Pool
from collectors.pgbouncer.rules import NO_APP, service_clients
from collectors.registry import pgbouncer_services
from dashboard.tui.viewmodel import STATUS_STYLE, ViewModel, duration
from dashboard.tui.widgets.base import Line, Panel, SyncTable, cell, down_line, status_cell
from dashboard.tui.widgets.record import StructRecord


class PgBouncerPanel(Panel):
    TITLE = "PgBouncer"
    COMPONENT = "pgbouncer"

    def compose(self) -> ComposeResult:
        yield Line(id="pgb-summary")
        # Side by side across the wide grid (every service's row in view), one above
        # the other in a tab (app.tcss).
        with Container(id="pgb-tables"):
            yield from self._tables()

    @staticmethod
    def _tables() -> ComposeResult:
        yield SyncTable(
            [
                ("database", "database", 14),
                ("user", "user", 10),
                ("status", "status", 10),
                ("cl_active", "cl act", 6),
                ("cl_waiting", "wait", 5),
                ("sv_active", "sv act", 6),
                ("sv_idle", "idle", 5),
                ("sv_used", "used", 5),
                ("maxwait", "maxwait", 8),
                ("size", "size", 5),
                ("mode", "mode", 11),
                ("note", "note", 22),
            ],
            id_column="database",
            id="pgb-pools",
        )
        yield SyncTable(
            [
                ("service", "service", 18),
                ("clients", "clients", 7),
                ("waiting", "waiting", 7),
                ("budget", "budget", 6),
                ("status", "status", 10),
            ],
            id_column="service",
            id="pgb-services",
        )

    def show(self, model: ViewModel) -> None:
        self.set_status(model.status_of("pgbouncer"))
        readings = model.readings("pgbouncer")
        summary = self.query_one("#pgb-summary", Line)
        pools, services = (
            self.query_one("#pgb-pools", SyncTable),
            self.query_one("#pgb-services", SyncTable),
        )
        if not readings:
            summary.set(
                "no [pgbouncer] section configured"
                if model.report
                else "waiting for the first round…"
            )
            pools.sync([])
            services.sync([])
            return
        config = getattr(self.app, "config", None)
        pb = config.pgbouncer if config is not None else None
        # Several [[pgbouncer]]: each row and each summary names its instance.
        several = len(instances(pb)) > 1 or len(readings) > 1
        lines: list[Content] = []
        pool_rows: list[Any] = []
        service_rows: list[Any] = []
        for r in readings:
            prefix = check_prefix(pb, r.target) if several else "pgbouncer"
            who = f"{r.target}: " if several else ""
            if not r.ok or not isinstance(r.data, PgBouncerData):
                lines.append(down_line(model, r))
                continue
            lines.append(Content(who + _summary(model, r, r.data)))
            pool_rows += self._pool_rows(model, r, r.data, prefix, several)
            service_rows += self._service_rows(model, r, r.data, prefix, several)
        summary.set(Content(" | ").join(lines))
        pools.sync(pool_rows)
        services.sync(service_rows)

    def _pool_rows(
        self, model: ViewModel, r: Reading, d: PgBouncerData, prefix: str, several: bool
    ) -> list[Any]:
        judged = {c.id: c.status for c in model.checks("pgbouncer", r.target)}
        dbs = {x.name: x for x in d.databases}
        where = {"instance": r.target} if several else {}
        key = f"{r.target}:" if several else ""
        rows = []
        seen = set()
        for p in d.pools:
            seen.add(p.database)
            if not model.matches(p.database, p.user, *where.values()):
                continue
            db = dbs.get(p.database)
            note = _note(db.paused if db else False, db.disabled if db else False)
            status = judged.get(f"{prefix}.pool.{p.database}")
            record = StructRecord({"database": p.database, **where}, p, {"note": note})
            cells = _pool_cells(p, status, note, key)
            rows.append((f"{key}{p.database}/{p.user}", record, cells))
        for x in d.databases:  # served, but no client yet: no pool row in SHOW POOLS
            if x.name in seen or not model.matches(x.name, *where.values()):
                continue
            note = _note(x.paused, x.disabled) or "no clients yet"
            status = judged.get(f"{prefix}.pool.{x.name}")
            empty = Pool(database=x.name, user="", pool_mode=x.pool_mode, pool_size=x.pool_size)
            record = StructRecord({"database": x.name, **where}, empty, {"note": note})
            rows.append((f"{key}{x.name}/", record, _pool_cells(empty, status, note, key)))
        return rows

    def _service_rows(
        self, model: ViewModel, r: Reading, d: PgBouncerData, prefix: str, several: bool
    ) -> list[Any]:
        """The configured services first (their budget check's status), then the
        other application names PgBouncer's clients give."""
        config = getattr(self.app, "config", None)
        services = pgbouncer_services(config) if config is not None else []
        judged = {c.id: c for c in model.checks("pgbouncer", r.target)}
        key = f"{r.target}: " if several else ""
        rows = []
        claimed = set()
        for svc in services:
            claimed.add(svc.application_name)
            n, waiting = service_clients(d, svc)
            check = judged.get(f"{prefix}.budget.{svc.name}")
            rows.append(_service_row(model, svc.name, svc.application_name, n, waiting, check, key))
        others = sorted(
            ((a, c) for a, c in d.clients.items() if a not in claimed),
            key=lambda kv: (-kv[1].count, kv[0]),
        )
        for app, c in others:
            rows.append(_service_row(model, app or NO_APP, app, c.count, c.waiting, None, key))
        return [row for row in rows if row is not None]

    def selected(self) -> dict[str, Any] | None:
        return self.query_one("#pgb-pools", SyncTable).selected()


def _service_row(
    model: ViewModel,
    name: str,
    app: str,
    n: int,
    waiting: int,
    check: CheckResult | None,
    key: str = "",
) -> tuple[str, dict[str, Any], list[Text]] | None:
    if not model.matches(name, app):
        return None
    over = check is not None and check.status is not Status.OK
    budget = check.warn if check is not None else None
    record = {"service": name, "application_name": app, "clients": n, "waiting": waiting}
    cells = [
        cell(key + name),
        cell(n, STATUS_STYLE[check.status] if check is not None and over else ""),
        cell(waiting or None, "yellow" if waiting else ""),
        cell(None if budget is None else int(budget)),
        status_cell(check.status if check is not None else None),
    ]
    return key + name, record, cells


def _note(paused: bool, disabled: bool) -> str:
    return ", ".join(w for w, on in (("PAUSED", paused), ("DISABLED", disabled)) if on)


def _pool_cells(p: Pool, status: Status | None, note: str, key: str = "") -> list[Text]:
    warn = STATUS_STYLE[status] if status and status is not Status.OK else ""
    saturated = bool(p.pool_size) and p.sv_active >= (p.pool_size or 0) and p.sv_idle == 0
    return [
        cell(key + p.database),
        cell(p.user),
        status_cell(status),
        cell(p.cl_active),
        cell(p.cl_waiting or None, warn if p.cl_waiting else ""),
        cell(p.sv_active, warn if saturated else ""),
        cell(p.sv_idle),
        cell(p.sv_used),
        cell(f"{p.maxwait_s:.1f}s" if p.maxwait_s else None, warn if p.maxwait_s else ""),
        cell(p.pool_size),
        cell(p.pool_mode),
        cell(note, "bold yellow" if "PAUSED" in note or "DISABLED" in note else "dim"),
    ]


def _summary(model: ViewModel, r: Reading, d: PgBouncerData) -> str:
    parts = [f"PgBouncer {d.version or '?'}"]
    if d.clients_used is not None and d.max_client_conn:
        parts.append(f"clients {d.clients_used}/{d.max_client_conn}")
    if d.pool_mode:
        parts.append(f"{d.pool_mode} pooling")
    paused = [x.name for x in d.databases if x.paused]
    if paused:
        parts.append(f"PAUSED: {', '.join(paused)}")
    if d.clients_age_s is not None and d.clients_age_s >= 1:
        parts.append(f"per service as of {duration(d.clients_age_s)} ago")
    stale = model.stale_for(r)
    if stale is not None:
        parts.append(f"stale for {duration(stale)}")
    return " · ".join(parts)
