"""Security: each secret's strength, age and fingerprint, distinctness, services'
fingerprint match, rotation and the forged-token probe. Never a value."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.content import Content

from dashboard.tui.viewmodel import DASH, ViewModel, duration
from dashboard.tui.widgets.base import Line, Panel, SyncTable, cell, down_line

_STRENGTH_STYLE = {"ok": "green", "missing": "bold red", "known-weak": "bold red"}


class SecurityPanel(Panel):
    TITLE = "Security"
    COMPONENT = "secrets"

    def compose(self) -> ComposeResult:
        yield Line(id="sec-summary")
        yield Line(id="sec-probe")
        yield SyncTable(
            [
                ("key", "secret", 20),
                ("strength", "strength", 11),
                ("length", "len", 4),
                ("age", "age", 6),
                ("fingerprint", "fingerprint", 20),
                ("reason", "reason", 40),
            ],
            id_column="key",
            id="sec-table",
        )

    def show(self, model: ViewModel) -> None:
        self.set_status(model.status_of("secrets"))
        readings = model.readings("secrets")
        summary = self.query_one("#sec-summary", Line)
        probe_line = self.query_one("#sec-probe", Line)
        table = self.query_one(SyncTable)
        if not readings:
            summary.set(
                "secrets are not configured" if model.report else "waiting for the first round…"
            )
            probe_line.set("")
            table.sync([])
            return
        r = readings[0]
        if not r.ok:
            summary.set(down_line(model, r))
            probe_line.set("")
            table.sync([])
            return
        d = r.data
        distinct = d.get("distinct")
        services = d.get("services") or {}
        bad = sorted(
            n for n, i in services.items() if isinstance(i, dict) and i.get("matches") is False
        )
        rotation = d.get("rotation") or None
        summary.set(
            Content.assemble(
                ("distinct ", "bold"),
                (
                    {True: ("yes", "green"), False: ("NO: access == refresh", "bold red")}.get(
                        distinct, (DASH, "")
                    )
                ),
                ("  services ", "bold"),
                (
                    f"{len(services) - len(bad)}/{len(services)} match",
                    "" if not bad else "bold red",
                ),
                (f" (mismatch: {', '.join(bad)})" if bad else "", "red"),
                (
                    "  rotation in progress" if rotation and rotation.get("in_progress") else "",
                    "yellow",
                ),
            )
        )
        probe = d.get("probe")
        if isinstance(probe, dict):
            accepted = probe.get("accepted") or []
            probe_line.set(
                Content.assemble(
                    ("forged-token probe ", "bold"),
                    f"{probe.get('service') or DASH}{probe.get('path') or ''}: ",
                    (f"ACCEPTED forged {', '.join(map(str, accepted))}", "bold red")
                    if accepted
                    else (f"error: {probe.get('error')}", "magenta")
                    if probe.get("error")
                    else ("rejected every forged token", "green"),
                )
            )
        else:
            probe_line.set(Content.styled("forged-token probe not configured", "dim"))
        rows = []
        for key, info in sorted((d.get("keys") or {}).items()):
            if not isinstance(info, dict) or not model.matches(key, info.get("strength")):
                continue
            strength = info.get("strength")
            record = {"secret": key, **info}
            rows.append(
                (
                    key,
                    record,
                    [
                        cell(key),
                        cell(strength, _STRENGTH_STYLE.get(str(strength), "yellow")),
                        cell(info.get("length")),
                        cell(duration(info.get("age_s"))),
                        cell(info.get("fingerprint")),
                        cell(info.get("reason")),
                    ],
                )
            )
        table.sync(rows)

    def selected(self) -> dict[str, Any] | None:
        return self.query_one(SyncTable).selected()
