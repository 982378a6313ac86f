"""Services: status, latency sparkline and p95, active operations, draining,
listeners and whether the service's key fingerprint matches the store."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult

from collectors.core.model import Reading, Status
from collectors.services.data import ServiceData, service_data
from dashboard.tui.viewmodel import STATUS_STYLE, ViewModel, duration, num, spark
from dashboard.tui.widgets.base import Fit, Line, Panel, SyncTable, cell, status_cell
from dashboard.tui.widgets.record import StructRecord


class ServicesPanel(Panel):
    TITLE = "Services"
    COMPONENT = "services"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._round: object = None  # the report the rows below were built from
        self._rows: list[tuple[Any, str]] = []  # (row, what the filter searches)
        self._down = 0

    def compose(self) -> ComposeResult:
        yield Line(id="svc-summary")
        yield SyncTable(
            [
                ("name", "service", 16),
                ("status", "status", 10),
                ("spark", "latency", 10),
                ("p95", "p95", 6),
                ("active", "active", 6),
                ("draining", "drain", 5),
                ("listeners", "lstnr", 6),
                ("key", "key", 8),
                ("note", "note", 60),
            ],
            id_column="name",
            fit=Fit("note", least=8),
            id="svc-table",
        )

    def show(self, model: ViewModel) -> None:
        self.set_status(model.status_of("services"))
        readings = model.readings("services")
        # Rows are built once per round; a filter keystroke only picks among them
        # (and the table skips rows whose cells are the very same objects).
        if model.report is not self._round:
            self._round = model.report
            self._rows, self._down = self._build(model, readings)
        needle = model.filter.lower()
        rows = [row for row, hay in self._rows if not needle or needle in hay]
        total = len(readings)
        self.query_one("#svc-summary", Line).set(
            f"{total} services, {self._down} not answering"
            if total
            else ("no services configured" if model.report else "waiting for the first round…")
        )
        self.query_one(SyncTable).sync(rows)

    def _build(self, model: ViewModel, readings: list[Reading]) -> tuple[list[Any], int]:
        rows: list[Any] = []
        down = 0
        for r in readings:
            d = service_data(r.data)
            name = r.target
            hay = "\n".join(str(t).lower() for t in (name, d.message, r.error) if t is not None)
            tail = {"error": r.error, "error_kind": r.error_kind}
            record = StructRecord({"service": name}, d if r.data is not None else None, tail)
            if not r.ok:
                down += 1
            rows.append(((name, record, self._cells(model, r, d)), hay))
        return rows, down

    @staticmethod
    def _cells(model: ViewModel, r: Reading, d: ServiceData) -> list[Text]:
        """One row; every colour is a judged status (the judge owns the thresholds)."""
        name = r.target
        check_status = model.status_of("services", name)
        if not r.ok:
            stale = model.stale_for(r)
            # Staleness first: a narrow column still shows it.
            when = f"stale for {duration(stale)}: " if stale is not None else ""
            fallback = Status.CRITICAL if r.error_kind == "unreachable" else Status.UNKNOWN
            return [
                cell(name),
                status_cell(check_status or fallback),
                cell(spark(d.latency_history, 10)),
                *[cell(None)] * 5,
                cell(f"{when}{r.error_kind or 'error'}: {r.error}", "red"),
            ]
        judged = {c.id: c.status for c in model.checks("services", name)}
        listeners = judged.get(f"service.{name}.listeners", Status.OK)
        lst = num(d.listeners.total) if d.listeners is not None else None
        trend = d.listeners_trend
        if lst and listeners is not Status.OK and trend is not None and trend.slope_per_s > 0:
            lst += " ↑"  # flagged, and rising
        return [
            cell(name),
            status_cell(check_status or d.status),
            cell(spark(d.latency_history, 10)),
            cell(f"{num(d.latency_p95_ms)}ms" if d.latency_p95_ms is not None else None),
            cell(num(d.active_operations) if d.active_operations is not None else None),
            cell(
                "yes" if d.draining else "no" if d.draining is False else None,
                "yellow" if d.draining else "",
            ),
            cell(lst, STATUS_STYLE[listeners] if listeners is not Status.OK else ""),
            _key_cell(judged.get(f"service.{name}.secret_fingerprint")),
            cell(d.message),
        ]

    def selected(self) -> dict[str, Any] | None:
        return self.query_one(SyncTable).selected()


def _key_cell(status: Status | None) -> Text:
    """Whether the service holds the store's current key, as its judged
    `service.<name>.secret_fingerprint` check says (no check: not known)."""
    if status is None or status is Status.UNKNOWN:
        return cell(None)
    if status is Status.OK:
        return cell("match")
    return cell("MISMATCH", "bold red")
