"""Processes: RSS sparkline, growth rate, projected time to the memory limit."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult

from dashboard.tui.viewmodel import ViewModel, duration, num, rate, size, spark
from dashboard.tui.widgets.base import Line, Panel, SyncTable, cell


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
            id="proc-table",
        )

    def show(self, model: ViewModel) -> None:
        self.set_status(model.status_of("processes"))
        rows = []
        readings = model.readings("processes")
        for r in readings:
            d = r.data or {}
            if not model.matches(r.target, r.error):
                continue
            record = {"process": r.target, **dict(d), "error": r.error}
            if not r.ok:
                stale = model.stale_for(r)
                when = f"stale for {duration(stale)}: " if stale is not None else ""
                note = f"{when}{r.error}"
                rows.append(
                    (r.target, record, [cell(r.target), *[cell(None)] * 6, cell(note, "red")])
                )
                continue
            pids = d.get("pids") or []
            ttl = d.get("time_to_limit_s")
            growth = d.get("growth_bytes_per_s")
            growing = (
                isinstance(growth, int | float) and growth > 0 and (d.get("growth_r2") or 0) >= 0.8
            )
            limit = d.get("memory_limit")
            rows.append(
                (
                    r.target,
                    record,
                    [
                        cell(r.target),
                        cell(
                            ",".join(str(p) for p in pids[:3]) + ("…" if len(pids) > 3 else "")
                            if pids
                            else None
                        ),
                        cell(size(d.get("rss_bytes"))),
                        cell(spark(d.get("rss_history"))),
                        cell(rate(growth), "yellow" if growing else ""),
                        cell(
                            duration(ttl) if ttl is not None else None,
                            "red" if isinstance(ttl, int | float) and ttl < 3600 else "",
                        ),
                        cell(num(d.get("cpu_percent"), "{:.0f}%")),
                        cell(f"limit {size(limit)}" if limit else None),
                    ],
                )
            )
        self.query_one("#proc-summary", Line).set(
            f"{len(readings)} processes"
            if readings
            else ("no processes configured" if model.report else "waiting for the first round…")
        )
        self.query_one(SyncTable).sync(rows)

    def selected(self) -> dict[str, Any] | None:
        return self.query_one(SyncTable).selected()
