"""The header says when the last round is old (older than two intervals), with Pilot."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from msgspec.structs import replace

from collectors.core.model import Report
from collectors.core.units import Duration
from collectors.rules import Rules
from dashboard.tui.app import UltrawatchApp
from tests import tui_data as td
from tests.test_tui import screen_text
from tests.test_tui_snapshots import replay_app

WIDE = (200, 50)


def report_ended(ago: float, config) -> Report:  # type: ignore[no-untyped-def]
    snap = td.snapshot(0)
    snap = dataclasses.replace(snap, started_at=time.time() - ago, duration_ms=0.0)
    return Rules(config).evaluate(snap)


def app_with_interval(seconds: float) -> UltrawatchApp:
    config = td.config()
    config = replace(config, dashboard=replace(config.dashboard, interval=Duration(seconds)))
    return UltrawatchApp(config, poll=False)


def header(app: UltrawatchApp) -> str:
    return screen_text(app).splitlines()[0]


async def test_header_says_the_last_round_is_old() -> None:
    app = app_with_interval(2)
    async with app.run_test(size=WIDE) as pilot:
        app.absorb(report_ended(180, app.config))
        app.render_now()
        await pilot.pause()
        assert "last round 3m ago" in header(app), header(app)
        # A fresh round: the note is gone.
        app.absorb(report_ended(0, app.config))
        app.render_now()
        await pilot.pause()
        assert "last round" not in header(app), header(app)


async def test_header_turns_stale_without_a_new_round() -> None:
    """Rounds stopped (a huge interval, a hung loop): no new round comes to redraw
    the header, yet it says how old the shown round is once two intervals passed."""
    # Stale after two intervals (4 s): the first look, a second after the round,
    # has room for a loaded machine.
    app = app_with_interval(2)
    async with app.run_test(size=WIDE) as pilot:
        app.absorb(report_ended(1.0, app.config))
        app.render_now()
        await pilot.pause()
        assert "last round" not in header(app), header(app)
        deadline = time.monotonic() + 8
        while "last round" not in header(app) and time.monotonic() < deadline:
            await pilot.pause(0.25)
        assert "ago" in header(app).split("last round", 1)[-1], header(app)


async def test_replay_never_says_stale() -> None:
    """A replayed round is old by nature: only live rounds are judged for age."""
    with tempfile.TemporaryDirectory() as d:
        app = replay_app(Path(d) / "ok.db", "ok")
        async with app.run_test(size=WIDE) as pilot:
            await pilot.pause()
            assert "REPLAY" in header(app)
            assert "last round" not in header(app), header(app)
