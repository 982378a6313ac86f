"""Issue 16 in the console: with --alertmanager it sends the same alerts as `serve`
(one alert in Alertmanager for both), acknowledging makes a silence there, and the
Alerts panel shows what Alertmanager silences, by whom and until when, whoever
made the silence (the CLI, another console)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from collectors.config import parse_config
from dashboard.actions.audit import os_user
from dashboard.tui.app import UltrawatchApp
from dashboard.tui.screens.confirm import ConfirmScreen
from dashboard.tui.widgets.base import Line, SyncTable
from tests.alertmanager_fixtures import AlertmanagerServer
from tests.conftest import run_cli
from tests.helpers import http_server, respond
from tests.test_serve import serve
from tests.test_tui_actions import WIDE, select_row, until

PLATFORM = "shop-tui"


def _failing(req: BaseHTTPRequestHandler) -> None:
    respond(req, 503, json.dumps({"status": "fail"}))


@pytest.fixture
def down_url() -> Iterator[str]:
    with http_server(_failing) as url:
        yield url


def _text(url: str, am: AlertmanagerServer, tmp_path: Path) -> str:
    return f"""
[dashboard]
interval = "200ms"
raise_after = 1
clear_after = 1
platform = "{PLATFORM}"

[[services]]
name = "svc-a"
url = "{url}"

[[services]]
name = "svc-b"
url = "{url}"

[alertmanager]
url = "{am.url}"
resend = "1s"

[actions]
audit_log = "{tmp_path / "audit.jsonl"}"
"""


def _in_am(am: AlertmanagerServer, name: str) -> list[dict]:
    return [a for a in am.alerts(PLATFORM) if a["labels"]["alertname"] == name]


async def test_console_alerts_silences_and_shows_them(
    down_url: str, alertmanager: AlertmanagerServer, tmp_path: Path
) -> None:
    text = _text(down_url, alertmanager, tmp_path)
    config_file = tmp_path / f"{PLATFORM}.toml"
    config_file.write_text(text)
    app = UltrawatchApp(parse_config(text, str(config_file)), send_alerts=True)
    a, b = "service.svc-a.health", "service.svc-b.health"
    async with app.run_test(size=WIDE) as pilot:
        # The console sends the alerts itself.
        await until(pilot, lambda: _in_am(alertmanager, a) and _in_am(alertmanager, b))
        # A `serve` of the same platform sends the same labels: still one alert each.
        with serve(config_file) as served:
            await until(pilot, lambda: "ultrawatch_rounds_total" in served.metrics())
            await pilot.pause(1.2)  # a resend of each has reached Alertmanager
            assert len(_in_am(alertmanager, a)) == 1 and len(_in_am(alertmanager, b)) == 1

        # Silenced from the CLI: the panel shows who and until when.
        r = run_cli(
            "silence",
            a,
            "--for",
            "1h",
            "--comment",
            "known",
            "--config",
            str(config_file),
            "--yes",
        )
        assert r.returncode == 0, r.stderr
        table = app.query_one("#alerts-table", SyncTable)

        def ack_cell(check: str) -> str:
            record = table.records.get(check) or {}
            return str(record.get("alertmanager", ""))

        await until(pilot, lambda: ack_cell(a).startswith(f"silenced by {os_user()} until "))
        # In the row itself: who, in the ack column; who and until when, before the summary.
        row = [str(c) for c in table.get_row(a)]
        assert f"sil {os_user()}" in row
        # the summary is its own column, or folded under the check id when narrow
        assert any(f"silenced by {os_user()} until " in c for c in row), row
        assert ack_cell(b) == "" or ack_cell(b) == "active"

        # Acknowledged in the console: confirmed, then a silence in Alertmanager.
        await select_row(pilot, app, "#alerts-table", lambda r: r["check"] == b)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.click("#confirm")
        await until(pilot, lambda: app.last_outcome is not None)
        assert app.last_outcome.ok, app.last_outcome.message
        made = [
            s
            for s in alertmanager.silences()
            if s["status"]["state"] == "active"
            and {"name": "alertname", "value": b, "isRegex": False, "isEqual": True}
            in s["matchers"]
        ]
        assert len(made) == 1 and made[0]["createdBy"] == os_user()
        assert made[0]["comment"] == "acknowledged in the ultrawatch console"
        await until(pilot, lambda: ack_cell(b).startswith("silenced by "))
        assert app.model.alerts[b].acked_by == os_user()
        await until(
            pilot,
            lambda: (
                "2 silenced or inhibited in Alertmanager"
                in str(app.query_one("#alerts-summary", Line)._content)
            ),
        )
        # Alertmanager says the same of its alerts.
        assert _in_am(alertmanager, b)[0]["status"]["state"] == "suppressed"
