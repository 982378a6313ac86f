"""Services: status, latency sparkline and p95, active operations, draining,
listeners and whether the service's key fingerprint matches the store."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult

from collectors.core.model import Status
from dashboard.tui.viewmodel import ViewModel, duration, num, spark
from dashboard.tui.widgets.base import Line, Panel, SyncTable, cell, status_cell


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

    def _build(self, model: ViewModel, readings: list[Any]) -> tuple[list[Any], int]:
        fingerprints = self._fingerprint_matches(model)
        rows: list[Any] = []
        down = 0
        for r in readings:
            d = r.data or {}
            name = r.target
            hay = "\n".join(
                str(t).lower() for t in (name, d.get("message"), r.error) if t is not None
            )
            record = {"service": name, **dict(d), "error": r.error, "error_kind": r.error_kind}
            check_status = model.status_of("services", name)
            if not r.ok:
                down += 1
                stale = model.stale_for(r)
                # Staleness first: a narrow column still shows it.
                when = f"stale for {duration(stale)}: " if stale is not None else ""
                note = f"{when}{r.error_kind or 'error'}: {r.error}"
                rows.append(
                    (
                        (
                            name,
                            record,
                            [
                                cell(name),
                                status_cell(
                                    check_status
                                    or (
                                        Status.CRITICAL
                                        if r.error_kind == "unreachable"
                                        else Status.UNKNOWN
                                    )
                                ),
                                cell(spark(d.get("latency_history"), 10)),
                                cell(None),
                                cell(None),
                                cell(None),
                                cell(None),
                                cell(None),
                                cell(note, "red"),
                            ],
                        ),
                        hay,
                    )
                )
                continue
            listeners = d.get("listeners") or {}
            trend = d.get("listeners_trend") or {}
            lst = num(listeners.get("total")) if listeners else None
            if lst and trend.get("growing"):
                lst += " ↑"
            match = fingerprints.get(name)
            rows.append(
                (
                    (
                        name,
                        record,
                        [
                            cell(name),
                            status_cell(check_status or d.get("status")),
                            cell(spark(d.get("latency_history"), 10)),
                            cell(
                                f"{num(d.get('latency_p95_ms'))}ms"
                                if d.get("latency_p95_ms") is not None
                                else None
                            ),
                            cell(
                                num(d.get("active_operations"))
                                if d.get("active_operations") is not None
                                else None
                            ),
                            cell(
                                "yes"
                                if d.get("draining")
                                else "no"
                                if d.get("draining") is False
                                else None,
                                "yellow" if d.get("draining") else "",
                            ),
                            cell(lst, "yellow" if trend.get("growing") else ""),
                            cell(
                                {True: "match", False: "MISMATCH"}.get(match)
                                if match is not None
                                else None,
                                "" if match is not False else "bold red",
                            ),
                            cell(d.get("message")),
                        ],
                    ),
                    hay,
                )
            )
        return rows, down

    @staticmethod
    def _fingerprint_matches(model: ViewModel) -> dict[str, bool | None]:
        out: dict[str, bool | None] = {}
        for r in model.readings("secrets"):
            if r.data is not None:
                for name, info in r.data.services.items():
                    out[name] = info.matches
        return out

    def selected(self) -> dict[str, Any] | None:
        return self.query_one(SyncTable).selected()
