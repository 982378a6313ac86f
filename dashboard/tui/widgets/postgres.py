"""PostgreSQL: connections gauge and sparkline, per-service budgets, sessions, blocked."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Sparkline

from dashboard.tui.viewmodel import DASH, ViewModel, duration, gauge, num
from dashboard.tui.widgets.base import Line, Panel, SyncTable, cell, down_line

SORTS = ("interest", "age", "pid", "service", "state")


def _age(s: dict[str, Any]) -> float:
    for k in ("xact_age_s", "state_age_s", "query_age_s"):
        v = s.get(k)
        if isinstance(v, int | float):
            return float(v)
    return -1.0


class PostgresPanel(Panel):
    TITLE = "PostgreSQL"
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
            id="pg-sessions",
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
        if not r.ok:
            # No old numbers presented as fresh: the error, and for how long.
            self.query_one("#pg-gauge", Line).set(down_line(model, r))
            for wid in ("#pg-budgets", "#pg-blocked"):
                self.query_one(wid, Line).set("")
            spark.display = False
            table.sync([])
            return
        spark.display = True
        d = r.data
        used, usable = d.get("connections_used"), d.get("usable")
        ratio = used / usable if isinstance(used, int | float) and usable else None
        self.query_one("#pg-gauge", Line).set(
            Content.assemble(
                ("connections ", "bold"),
                (
                    gauge(ratio, 16),
                    "red"
                    if ratio and ratio >= 0.95
                    else "yellow"
                    if ratio and ratio >= 0.8
                    else "green",
                ),
                f" {num(used)}/{num(usable)} usable",
                f" ({ratio:.0%})" if ratio is not None else "",
                f"  max {num(d.get('max_connections'))}",
                f"  PG {d.get('server_version') or DASH}  {num(d.get('latency_ms'))} ms",
            )
        )
        hist = model.pg_used.get(r.target)
        data = list(hist) if hist else []
        if data != list(spark.data or []):
            spark.data = data  # a new list: Sparkline redraws only on assignment
        parts: list[Any] = [("budgets ", "bold")]
        by_service = d.get("by_service") or {}
        for name, info in sorted(by_service.items()):
            info = info or {}
            count, budget = info.get("count"), info.get("budget")
            over = isinstance(count, int) and isinstance(budget, int) and count > budget
            text = f"{name} {num(count)}" + (f"/{budget}" if budget is not None else "")
            parts += [(text, "bold red" if over else ""), "  "]
        if not by_service:
            parts.append(DASH)
        self.query_one("#pg-budgets", Line).set(Content.assemble(*parts))
        blocked = d.get("blocked") or []
        if blocked:
            lines: list[Any] = [(f"blocked {len(blocked)}: ", "bold red")]
            for b in blocked[:3]:
                blockers = ", ".join(str(p) for p in b.get("blocked_by") or []) or DASH
                lines.append(
                    f"pid {b.get('pid')} ({b.get('service') or DASH}) waiting "
                    f"{duration(b.get('waiting_s'))} on {blockers}; "
                )
            self.query_one("#pg-blocked", Line).set(Content.assemble(*lines))
        else:
            self.query_one("#pg-blocked", Line).set(Content.styled("no blocked sessions", "dim"))
        table.sync(self._rows(model, d.get("sessions") or []))

    def _rows(self, model: ViewModel, sessions: list[dict[str, Any]]) -> list[Any]:
        chosen = [
            s
            for s in sessions
            if isinstance(s, dict)
            and not (model.hide_idle and s.get("state") == "idle")
            and model.matches(
                s.get("service"),
                s.get("pid"),
                s.get("state"),
                s.get("query"),
                s.get("application_name"),
                s.get("user"),
            )
        ]
        mode = model.session_sort
        if mode == "age":
            chosen.sort(key=_age, reverse=True)
        elif mode == "pid":
            chosen.sort(key=lambda s: s.get("pid") or 0)
        elif mode in ("service", "state"):
            chosen.sort(key=lambda s: str(s.get(mode) or ""))
        rows = []
        for s in chosen:
            key = f"{s.get('pid')}:{s.get('backend_start')}"
            state = s.get("state") or DASH
            wait = ":".join(str(x) for x in (s.get("wait_event_type"), s.get("wait_event")) if x)
            style = (
                "red" if s.get("blocked_by") else "yellow" if "transaction" in str(state) else ""
            )
            rows.append(
                (
                    key,
                    s,
                    [
                        cell(s.get("service")),
                        cell(s.get("pid")),
                        cell(state, style),
                        cell(duration(_age(s)) if _age(s) >= 0 else None),
                        cell(wait or None, "red" if s.get("blocked_by") else ""),
                        cell(duration(s.get("query_age_s"))),
                        cell(" ".join(str(s.get("query") or "").split())[:120] or None),
                    ],
                )
            )
        return rows

    def selected(self) -> dict[str, Any] | None:
        return self.query_one(SyncTable).selected()
