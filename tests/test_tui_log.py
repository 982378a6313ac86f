"""The notification log (`l`): toasts vanish after seconds; the log keeps this
session's notifications (new alerts, action results, warnings), newest first,
as plain text."""

from __future__ import annotations

from collectors.rules import Rules
from dashboard.tui.screens.log import LogScreen
from dashboard.tui.widgets.base import SyncTable
from tests import tui_data as td
from tests.test_tui import WIDE, make_app, screen_text


async def test_l_shows_new_alerts_and_what_keys_did_newest_first() -> None:
    cfg = td.config()
    app = make_app(config=cfg)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, LogScreen)
        assert "no notifications yet" in screen_text(app)
        await pilot.press("escape")
        rules = Rules(cfg)
        app.absorb(rules.evaluate(td.snapshot(0)))
        app.absorb(rules.evaluate(td.snapshot(1, kind="incident")))
        await pilot.pause()
        alerts = app.query_one("#alerts-table", SyncTable)
        alerts.focus()
        alerts.move_cursor(row=0)
        first = alerts.selected()["check"]
        await pilot.press("a")
        app.notify("[b]literal[/b] from a target", markup=False)
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, LogScreen)
        text = screen_text(app)
        acked, raised = text.find(f"acknowledged {first}"), text.find("new critical")
        literal = text.find("[b]literal[/b] from a target")
        assert 0 <= literal < acked < raised, text  # newest first, markup shown as text
        await pilot.press("l")  # the same key closes it
        await pilot.pause()
        assert not isinstance(app.screen, LogScreen)
