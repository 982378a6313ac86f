"""Alerts: every check not ok, newest first, with first/last seen and duration,
acknowledgements and snoozes, and (with [alertmanager]) which ones Alertmanager
silences, by whom and until when, or inhibits: the rota's one truth."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import DataTable

from dashboard.tui.viewmodel import ViewModel, clock, duration
from dashboard.tui.widgets.base import Fit, Line, Panel, SyncTable, cell, status_cell


class AlertsPanel(Panel):
    TITLE = "Alerts"
    COMPONENT = ""
    fixes = False  # a column of remedies (`f`)
    _counts = ""

    def compose(self) -> ComposeResult:
        yield Line(id="alerts-summary")
        # The remedy `f` applies, when actions may run (not read-only, not a replay).
        self.fixes = bool(getattr(self.app, "actions_enabled", False))
        fix = [("fix", "fix", 5)] if self.fixes else []
        yield SyncTable(
            [
                ("status", "status", 11),
                # Beside the status: in a folded row the check id column takes the
                # free width, and an `f` after it would sit far from its alert.
                *fix,
                ("id", "check", 30),
                ("first", "first seen", 10),
                ("last", "last seen", 10),
                ("for", "for", 6),
                ("ack", "ack", 12),
                ("summary", "summary", 80),
            ],
            id_column="id",
            # The summary in full: wrapped in the free width, or under the check id
            # (first/last seen then only in the details) when too narrow.
            fit=Fit("summary", wrap=True, fold="id", drop=("first", "last"), least=48),
            id="alerts-table",
        )

    def show(self, model: ViewModel) -> None:
        alerts = model.open_alerts()
        status = None if model.report is None else model.report.status
        self.set_status(status)
        rows = []
        am = model.am_states or {}
        for a in alerts:
            c = a.check
            if not model.matches(c.id, c.summary):
                continue
            snoozed = a.snoozed(model.now)
            ack = f"ack {a.acked_by}" if a.acked_by else ""
            if snoozed:
                ack = f"zz {clock(a.snoozed_until)}"
            said = am.get(c.id)
            if said is not None and said.silenced_by:
                ack = f"sil {said.silenced_by[0][1]}"
            elif said is not None and said.inhibited:
                ack = "inhibited"
            record: dict[str, Any] = {
                "check": c.id,
                "status": c.status.value,
                "summary": c.summary,
                "target": c.target,
                "first_seen": clock(a.first_seen),
                "last_seen": clock(a.last_seen),
                "duration": duration(a.last_seen - a.first_seen),
                "acknowledged_by": a.acked_by,
                "snoozed_until": clock(a.snoozed_until) if a.snoozed_until else None,
                "value": c.value,
                "unit": c.unit,
                "warn": c.warn,
                "crit": c.crit,
            }
            if said is not None:
                record["alertmanager"] = said.text or said.state
                record["silences"] = ", ".join(
                    f"{sid} by {who} until {clock(until)}" for sid, who, until in said.silenced_by
                )
            remedy = model.remedies.get(c.id)
            if remedy is not None:
                record["remedy"] = remedy.description
            elif c.id in model.no_remedy:
                record["no_remedy"] = model.no_remedy[c.id]
            dim = "dim" if snoozed or a.acked_by or (said is not None and said.text) else ""
            rows.append(
                (
                    c.id,
                    record,
                    [
                        status_cell(c.status),
                        *([_badge(remedy)] if self.fixes else []),
                        cell(c.id, dim),
                        cell(clock(a.first_seen), dim),
                        cell(clock(a.last_seen), dim),
                        cell(duration(a.last_seen - a.first_seen), dim),
                        cell(ack or None, dim),
                        # Alertmanager's word first: who silenced it and until when.
                        cell(f"{said.text}: {c.summary}" if said and said.text else c.summary, dim),
                    ],
                )
            )
        n = len(alerts)
        acked = sum(1 for a in alerts if a.acked_by)
        line = (
            f"{n} open, {acked} acknowledged"
            if n
            else ("all checks ok" if model.report else "waiting for the first round…")
        )
        if model.am_error is not None:
            line += f"; Alertmanager not read: {model.am_error}"
        elif model.am_states is not None and n:
            muted = sum(1 for a in alerts if (s := am.get(a.check.id)) and s.text)
            line += f", {muted} silenced or inhibited in Alertmanager"
        self._counts = line
        self.query_one(SyncTable).sync(rows)
        self._summary_line()

    def _summary_line(self) -> None:
        """The counts, then the selected alert's remedy in words (what `f` would do)."""
        record = self.query_one(SyncTable).selected() if self.fixes else None
        remedy = record.get("remedy") if record else None
        line = Content(self._counts)
        if record and remedy:
            line = Content.assemble(
                self._counts, " │ ", ("f", "bold reverse"), f" {record['check']}: {remedy}"
            )
        self.query_one("#alerts-summary", Line).set(line)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._summary_line()

    def selected(self) -> dict[str, Any] | None:
        return self.query_one(SyncTable).selected()


def _badge(remedy: Any) -> Any:
    """The fix column: `f` when the alert has a remedy; with the wait until it can
    run (a rotation's grace period)."""
    if remedy is None:
        return cell(None)
    if remedy.wait_s:
        return cell(f"f {duration(remedy.wait_s)}", "yellow")
    return cell("f", "bold reverse")
