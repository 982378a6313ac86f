"""The PgBouncer panel and its keys against a real PgBouncer: pools and clients per
service shown (PgBouncer's text never as markup), pause / resume from the panel and
as the remedy of a pgbouncer.paused alert, and no action keys in read-only mode."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dashboard.tui.app import UltrawatchApp
from dashboard.tui.screens.confirm import ConfirmScreen
from dashboard.tui.widgets.base import SyncTable
from tests.test_pgbouncer_actions import DB, admin_rows, paused
from tests.test_tui_actions import WIDE, _config, audit, cancel_then_confirm, select_row, until

EVIL = "[red]evil[/red] [link=x]"


def body(pgb: Any) -> str:
    return f"""
[pgbouncer]
dsn = "{pgb.admin_dsn()}"
[[services]]
name = "order-service"
url = "http://127.0.0.1:9"
pg_application_name = "order-service"
connection_budget = 2
"""


@pytest.fixture(autouse=True)
def resumed(pgbouncer: Any) -> Any:
    yield
    if paused(pgbouncer):
        with psycopg.connect(pgbouncer.admin_dsn(), autocommit=True) as c:
            c.execute(f"RESUME {DB}", prepare=False)


async def test_pools_and_services_are_shown_with_target_text_as_data(
    pgbouncer: Any, tmp_path: Path
) -> None:
    clients = [
        psycopg.connect(pgbouncer.dsn("app", "shop"), autocommit=True, application_name=app)
        for app in ("order-service", "order-service", EVIL)
    ]
    try:
        for c in clients:
            c.execute("select 1")
        app = UltrawatchApp(_config(tmp_path, body(pgbouncer)))
        async with app.run_test(size=WIDE) as pilot:
            services = app.query_one("#pgb-services", SyncTable)
            await until(pilot, lambda: EVIL in services.records)
            pools = app.query_one("#pgb-pools", SyncTable)
            await until(pilot, lambda: any(k.startswith("shop/") for k in pools.records))
            # the application name is one literal cell: no colour, no link made of it
            cell = services.get_row(EVIL)[0]
            assert cell.plain == EVIL and not cell.spans
            order = services.get_row("order-service")
            assert [c.plain for c in order[:4]] == ["order-service", "2", "—", "2"]
            row = pools.get_row(next(k for k in pools.records if k.startswith("shop/")))
            assert row[0].plain == "shop" and row[10].plain == "transaction"
    finally:
        for c in clients:
            c.close()


async def test_pause_and_resume_from_the_panel(pgbouncer: Any, tmp_path: Path) -> None:
    with psycopg.connect(pgbouncer.dsn("app", DB), autocommit=True) as c:
        c.execute("select 1")  # a pool row for the database
    app = UltrawatchApp(_config(tmp_path, body(pgbouncer)))
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await select_row(pilot, app, "#pgb-pools", lambda r: r.get("database") == DB)
        outcome, modal = await cancel_then_confirm(
            pilot, app, "b", untouched=lambda: not paused(pgbouncer)
        )
        assert f"PAUSE {DB}" in modal
        assert outcome.result.value == "verified", outcome.message
        assert paused(pgbouncer)
        # paused now: the same key resumes, and the alert's remedy is the same key
        alerts = app.query_one("#alerts").query_one(SyncTable)
        await until(pilot, lambda: "pgbouncer.paused" in alerts.records)
        app.last_outcome = None
        for _ in range(3):  # a round that reorders the alerts loses the selection: again
            await select_row(
                pilot, app, "#alerts SyncTable", lambda r: r["check"] == "pgbouncer.paused"
            )
            await pilot.press("b")
            with contextlib.suppress(AssertionError):
                await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), tries=20)
                break
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.plan.summary.startswith(f"RESUME {DB}")
        await pilot.click("#confirm")
        await until(pilot, lambda: app.last_outcome is not None, tries=200)
        assert app.last_outcome.result.value == "verified"
    assert not paused(pgbouncer)
    done = [(e["action"], e["outcome"]) for e in audit(tmp_path) if e["outcome"] != "started"]
    assert done == [
        ("pgbouncer-pause", "cancelled"),
        ("pgbouncer-pause", "verified"),
        ("pgbouncer-resume", "verified"),
    ]


async def test_read_only_hides_the_pgbouncer_keys(pgbouncer: Any, tmp_path: Path) -> None:
    with psycopg.connect(pgbouncer.dsn("app", DB), autocommit=True) as c:
        c.execute("select 1")
    app = UltrawatchApp(_config(tmp_path, body(pgbouncer)), read_only=True)
    async with app.run_test(size=WIDE) as pilot:
        await select_row(pilot, app, "#pgb-pools", lambda r: r.get("database") == DB)
        for action in ("pgbouncer_pause", "pgbouncer_reconnect", "pgbouncer_kill"):
            assert app.check_action(action, ()) is False
        await pilot.press("b", "n", "K")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmScreen)
    assert not paused(pgbouncer)
    assert [r for r in admin_rows(pgbouncer, "SHOW DATABASES") if r["name"] == DB]
    assert audit(tmp_path) == []


async def test_the_keys_reach_their_actions(tmp_path: Path) -> None:
    """b, n and K (shift+k, not k: terminate) are bound; without a [pgbouncer] section
    each says so instead of acting."""
    app = UltrawatchApp(_config(tmp_path, ""), poll=False)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        for key in ("b", "n", "K"):
            await pilot.press(key)
            await pilot.pause()
        said = [n.message for n in app._notifications]
        assert said.count("no [pgbouncer] section in the configuration") == 3
        assert not app.query("#pgbouncer")  # no panel for a config without the section
