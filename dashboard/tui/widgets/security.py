"""Security: each secret's strength, age and fingerprint, distinctness, services'
fingerprint match, rotation and the forged-token probe. Never a value.

Colours are the judged checks' statuses (`secrets.<KEY>.strength`, `secrets.distinct`,
`service.<name>.secret_fingerprint`, `secrets.forged_token`)."""

from __future__ import annotations

from typing import Any

import msgspec
from textual.app import ComposeResult
from textual.content import Content

from collectors.core.model import Status
from collectors.secrets.data import Probe, Rotation, SecretsData
from dashboard.tui.viewmodel import DASH, STATUS_STYLE, ViewModel, duration
from dashboard.tui.widgets.base import Fit, Line, Panel, SyncTable, cell, down_line


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
            fit=Fit("reason", wrap=True, fold="key"),
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
        d: SecretsData = r.data
        # Colours come from the judged checks: the panel never re-judges the data.
        judged = {c.id: c.status for c in model.checks("secrets", r.target)}
        summary.set(self._summary(d, judged, model))
        probe_line.set(self._probe(d.probe, judged.get("secrets.forged_token")))
        rows = []
        for key, info in sorted(d.keys.items()):
            if not model.matches(key, info.strength):
                continue
            strength_status = judged.get(f"secrets.{key}.strength")
            record = {"secret": key, **msgspec.structs.asdict(info)}
            rows.append(
                (
                    key,
                    record,
                    [
                        cell(key),
                        cell(info.strength, _style(strength_status)),
                        cell(info.length),
                        cell(duration(info.age_s)),
                        cell(info.fingerprint),
                        cell(info.reason),
                    ],
                )
            )
        table.sync(rows)

    @staticmethod
    def _summary(d: SecretsData, judged: dict[str, Status], model: ViewModel) -> Content:
        if d.distinct is None:
            distinct = (DASH, "")
        else:
            text = "yes" if d.distinct else "NO: access == refresh"
            distinct = (text, _style(judged.get("secrets.distinct")))
        services = d.services
        bad = sorted(n for n, i in services.items() if i.matches is False)
        fingerprints = [
            c.status
            for c in model.checks("services")
            if c.id.endswith(".secret_fingerprint") and c.target in bad
        ]
        bad_style = _style(Status.worst(fingerprints)) if fingerprints else ""
        rotation = d.rotation
        return Content.assemble(
            ("distinct ", "bold"),
            distinct,
            ("  services ", "bold"),
            (f"{len(services) - len(bad)}/{len(services)} match", bad_style),
            (f" (mismatch: {', '.join(bad)})" if bad else "", bad_style),
            _rotation_note(rotation, model.now),
        )

    @staticmethod
    def _probe(probe: Probe | None, status: Status | None) -> Content:
        if probe is None:
            return Content.styled("forged-token probe not configured", "dim")
        style = _style(status)
        if probe.accepted:
            verdict = f"ACCEPTED forged {', '.join(probe.accepted)}"
        elif probe.error:
            verdict = f"error: {probe.error}"
        else:
            verdict = "rejected every forged token"
        return Content.assemble(
            ("forged-token probe ", "bold"),
            f"{probe.service or DASH}{probe.path or ''}: ",
            (verdict, style),
        )

    def selected(self) -> dict[str, Any] | None:
        return self.query_one(SyncTable).selected()


def _rotation_note(rotation: Rotation | None, now: float) -> tuple[str, str]:
    """Why a rotation's alerts stay open and what ends them, without opening a row:
    the previous secret is accepted until the rotation is finished (`r`)."""
    if rotation is None or not rotation.in_progress:
        return ("", "")
    if rotation.can_finish:
        return ("  rotation: grace over: r finishes it (drops the previous secret)", "bold yellow")
    if rotation.grace_ends_at is not None:
        left = max(0.0, rotation.grace_ends_at - now)
        return (
            f"  rotation: previous secret accepted; r finishes it in {duration(left)}",
            "yellow",
        )
    return ("  rotation in progress: previous secret still accepted", "yellow")


def _style(status: Status | None) -> str:
    """The colour of a judged status ("" when there is no such check)."""
    return "" if status is None else STATUS_STYLE[status]
