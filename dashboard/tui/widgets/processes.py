"""Processes: RSS sparkline, growth rate, projected time to the memory limit."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult

from collectors.core.model import Reading, Status
from collectors.processes.data import ProcessData, process_data
from dashboard.tui.viewmodel import STATUS_STYLE, ViewModel, duration, num, rate, size, spark
from dashboard.tui.widgets.base import Fit, Line, Panel, SyncTable, cell
from dashboard.tui.widgets.record import StructRecord


class ProcessesPanel(Panel):
    TITLE = "Processes"
    COMPONENT = "processes"

    def compose(self) -> ComposeResult:
        yield Line(id="proc-summary")
        yield SyncTable(
            [
                ("name", "process", 16),
                ("pids", "pids", 8),
                ("rss", "RSS", 10),
                ("spark", "trend", 12),
                ("growth", "growth", 11),
                ("ttl", "to limit", 8),
                ("cpu", "cpu", 5),
                ("note", "note", 60),
            ],
            id_column="name",
            fit=Fit("note", least=8),
            id="proc-table",
        )

    def show(self, model: ViewModel) -> None:
        self.set_status(model.status_of("processes"))
        rows: list[Any] = []
        readings = model.readings("processes")
        for r in readings:
            if not model.matches(r.target, r.error):
                continue
            d = process_data(r.data)
            record = StructRecord(
                {"process": r.target}, d if r.data is not None else None, {"error": r.error}
            )
            rows.append((r.target, record, self._cells(model, r, d)))
        self.query_one("#proc-summary", Line).set(
            f"{len(readings)} processes"
            if readings
            else ("no processes configured" if model.report else "waiting for the first round…")
        )
        self.query_one(SyncTable).sync(rows)

    @staticmethod
    def _cells(model: ViewModel, r: Reading, d: ProcessData) -> list[Text]:
        """One row; every colour is a judged status (the judge owns the thresholds):
        RSS as `process.<name>.memory` says, growth and time to the limit as
        `process.<name>.memory_growth` says (warning: steady growth; critical: the
        limit is near)."""
        if not r.ok:
            stale = model.stale_for(r)
            when = f"stale for {duration(stale)}: " if stale is not None else ""
            return [cell(r.target), *[cell(None)] * 6, cell(f"{when}{r.error}", "red")]
        judged = {c.id: c.status for c in model.checks("processes", r.target)}
        memory = judged.get(f"process.{r.target}.memory", Status.OK)
        growth = judged.get(f"process.{r.target}.memory_growth", Status.OK)
        pids = d.pids
        ttl = d.time_to_limit_s
        return [
            cell(r.target),
            cell(
                ",".join(str(p) for p in pids[:3]) + ("…" if len(pids) > 3 else "")
                if pids
                else None
            ),
            cell(size(d.rss_bytes), STATUS_STYLE[memory] if memory is not Status.OK else ""),
            cell(spark(d.rss_history)),
            cell(
                rate(d.growth_bytes_per_s),
                "yellow" if growth in (Status.WARNING, Status.CRITICAL) else "",
            ),
            cell(
                duration(ttl) if ttl is not None else None,
                "red" if growth is Status.CRITICAL else "",
            ),
            cell(num(d.cpu_percent, "{:.0f}%")),
            cell(f"limit {size(d.memory_limit)}" if d.memory_limit else None),
        ]

    def selected(self) -> dict[str, Any] | None:
        return self.query_one(SyncTable).selected()
