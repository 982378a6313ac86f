"""PostgreSQL: connections gauge and sparkline, per-service budgets, sessions, blocked.

Colours come from the judged checks (postgres.connections, postgres.budget.<service>,
postgres.blocked), never from thresholds of its own: the judge owns those."""

from __future__ import annotations

from typing import Any

from msgspec.structs import asdict
from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Sparkline

from collectors.core.model import CheckResult, Status
from collectors.postgres.data import PostgresData, Session
from dashboard.tui.viewmodel import DASH, ViewModel, duration, gauge, num
from dashboard.tui.widgets.base import Fit, Line, Panel, SyncTable, cell, down_line

SORTS = ("interest", "age", "pid", "service", "state")

# The connections gauge and the blocked line, by the status of their check.
GAUGE_STYLE = {
    Status.OK: "green",
    Status.WARNING: "yellow",
    Status.CRITICAL: "red",
    Status.UNKNOWN: "magenta",
}
BLOCKED_STYLE = {
    Status.OK: "bold",
    Status.WARNING: "bold yellow",
    Status.CRITICAL: "bold red",
    Status.UNKNOWN: "bold magenta",
}
_OVER = (Status.WARNING, Status.CRITICAL)


def _age(s: Session) -> float:
    for v in (s.xact_age_s, s.state_age_s, s.query_age_s):
        if isinstance(v, int | float):
            return float(v)
    return -1.0


class PostgresPanel(Panel):
    TITLE = "PostgreSQL"
    TAB_TITLE = "Postgres"
    COMPONENT = "postgres"

    def compose(self) -> ComposeResult:
        yield Line(id="pg-gauge")
        yield Sparkline([], id="pg-spark")
        yield Line(id="pg-budgets")
        yield Line(id="pg-blocked")
        yield SyncTable(
            [
                ("service", "service", 16),
                ("pid", "pid", 7),
                ("state", "state", 14),
                ("age", "age", 6),
                ("wait", "wait", 14),
                ("query_age", "query", 6),
                ("query", "query text", 80),
            ],
            id_column="pid",
            # Narrow: the query text before the wait event and the query's age.
            fit=Fit("query", least=16, drop=("wait", "query_age")),
            id="pg-sessions",
            markable=True,
        )

    def show(self, model: ViewModel) -> None:
        readings = model.readings("postgres")
        self.set_status(model.status_of("postgres"))
        table = self.query_one(SyncTable)
        if not readings:
            self.query_one("#pg-gauge", Line).set(
                "PostgreSQL is not configured" if model.report else "waiting for the first round…"
            )
            table.sync([])
            return
        r = readings[0]
        spark = self.query_one(Sparkline)
        if not r.ok or r.data is None:
            # No old numbers presented as fresh: the error, and for how long.
            self.query_one("#pg-gauge", Line).set(down_line(model, r))
            for wid in ("#pg-budgets", "#pg-blocked"):
                self.query_one(wid, Line).set("")
            spark.display = False
            table.sync([])
            return
        spark.display = True
        d: PostgresData = r.data
        checks = {c.id: c for c in model.checks("postgres", r.target)}
        self.query_one("#pg-gauge", Line).set(_gauge_line(d, checks.get("postgres.connections")))
        hist = model.pg_used.get(r.target)
        data = list(hist) if hist else []
        if data != list(spark.data or []):
            spark.data = data  # a new list: Sparkline redraws only on assignment
        self.query_one("#pg-budgets", Line).set(_budgets_line(d, checks))
        self.query_one("#pg-blocked", Line).set(_blocked_line(d, checks.get("postgres.blocked")))
        table.sync(self._rows(model, d.sessions))

    def _rows(self, model: ViewModel, sessions: list[Session]) -> list[Any]:
        chosen = [
            s
            for s in sessions
            if not (model.hide_idle and s.state == "idle")
            and model.matches(s.service, s.pid, s.state, s.query, s.application_name, s.user)
        ]
        mode = model.session_sort
        if mode == "age":
            chosen.sort(key=_age, reverse=True)
        elif mode == "pid":
            chosen.sort(key=lambda s: s.pid or 0)
        elif mode in ("service", "state"):
            chosen.sort(key=lambda s: str(getattr(s, mode) or ""))
        return [_row(s) for s in chosen]

    def selected(self) -> dict[str, Any] | None:
        return self.query_one(SyncTable).selected()


def _gauge_line(d: PostgresData, check: CheckResult | None) -> Content:
    """The connections gauge, coloured by the judged postgres.connections."""
    used, usable = d.connections_used, d.usable
    ratio = used / usable if used is not None and usable else None
    return Content.assemble(
        ("connections ", "bold"),
        (gauge(ratio, 16), GAUGE_STYLE[check.status] if check else ""),
        f" {num(used)}/{num(usable)} usable",
        f" ({ratio:.0%})" if ratio is not None else "",
        f"  max {num(d.max_connections)}",
        f"  PG {d.server_version or DASH}  {num(d.latency_ms)} ms",
    )


def _budgets_line(d: PostgresData, checks: dict[str, CheckResult]) -> Content:
    """Connections per service; the budget and its colour are the judged
    postgres.budget.<service>'s (the config's budget, not the recorded one)."""
    parts: list[Any] = [("budgets ", "bold")]
    for name, info in sorted(d.by_service.items()):
        check = checks.get(f"postgres.budget.{name}")
        budget = check.warn if check is not None else None
        text = f"{name} {num(info.count)}" + (f"/{int(budget)}" if budget is not None else "")
        over = check is not None and check.status in _OVER
        parts += [(text, "bold red" if over else ""), "  "]
    if not d.by_service:
        parts.append(DASH)
    return Content.assemble(*parts)


def _blocked_line(d: PostgresData, check: CheckResult | None) -> Content:
    if not d.blocked:
        return Content.styled("no blocked sessions", "dim")
    style = BLOCKED_STYLE[check.status] if check else "bold"
    lines: list[Any] = [(f"blocked {len(d.blocked)}: ", style)]
    for b in d.blocked[:3]:
        blockers = ", ".join(str(p) for p in b.blocked_by) or DASH
        lines.append(
            f"pid {b.pid} ({b.service or DASH}) waiting {duration(b.waiting_s)} on {blockers}; "
        )
    return Content.assemble(*lines)


def _row(s: Session) -> tuple[str, dict[str, Any], list[Any]]:
    """(key, record for the detail view and the actions, cells) of one session."""
    state = s.state or DASH
    wait = ":".join(x for x in (s.wait_event_type, s.wait_event) if x)
    style = "red" if s.blocked_by else "yellow" if "transaction" in state else ""
    age = _age(s)
    return (
        f"{s.pid}:{s.backend_start}",
        asdict(s),
        [
            cell(s.service),
            cell(s.pid),
            cell(state, style),
            cell(duration(age) if age >= 0 else None),
            cell(wait or None, "red" if s.blocked_by else ""),
            cell(duration(s.query_age_s)),
            cell(" ".join(str(s.query or "").split())[:120] or None),
        ],
    )
