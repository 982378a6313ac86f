"""The TUI on the demo: the five failures appear, and keys fix them (Pilot).

The CLI end-to-end test in test_demo.py applies every remedy; this one shows the
same platform through the console and fixes the stuck locks and the leaking
service from the keyboard, with the real confirm modal and the real actions.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path

import pytest

from collectors.config import parse_config
from dashboard.demo.schema import NO_TTL_PRODUCT, STALE_PRODUCT, lock_key
from tests.test_demo import INCIDENT_CHECKS, running_demo

pytestmark = pytest.mark.timeout(150)


def _sync(fn):  # type: ignore[no-untyped-def]
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


async def _until(pilot, cond: Callable[[], object], seconds: float, what: str) -> object:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.1)):
        await pilot.pause(0.1)
        value = cond()
        if value:
            return value
    raise AssertionError(f"timed out waiting for {what}")


async def _act(pilot, app, table_id: str, match: Callable[[dict], bool], key: str):  # type: ignore[no-untyped-def]
    """Select the row the engineer would, press the action key, confirm, return the outcome."""
    from dashboard.screens.confirm import ConfirmScreen
    from dashboard.widgets.base import SyncTable

    table = app.query_one(table_id, SyncTable)

    def find() -> str | None:
        return next((k for k, r in table.records.items() if match(r)), None)

    row = await _until(pilot, find, 20, f"a row in {table_id}")
    table.focus()
    table.move_cursor(row=table.get_row_index(row))
    await pilot.pause()
    app.last_outcome = None
    await pilot.press(key)
    await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, "the confirm modal")
    await pilot.click("#confirm")
    return await _until(pilot, lambda: app.last_outcome, 60, f"the outcome of {key!r}")


def _key_is(key: str) -> Callable[[dict], bool]:
    return lambda record: record.get("key") == key


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@_sync
async def test_tui_shows_the_incident_and_fixes_locks_and_leak_from_keys(tmp_path: Path) -> None:
    from dashboard.app import UltrawatchApp

    with running_demo("incident", tmp_path) as demo:
        text = demo.text.replace(
            'interval = "2s"', 'interval = "500ms"\nraise_after = 1\nclear_after = 1'
        )
        app = UltrawatchApp(parse_config(text, str(demo.config_path)))
        async with app.run_test(size=(200, 60), notifications=True) as pilot:
            await _until(
                pilot,
                lambda: set(INCIDENT_CHECKS) <= set(app.model.alerts),
                40,
                f"the incident's alerts (have {sorted(app.model.alerts)})",
            )
            for key in (lock_key(NO_TTL_PRODUCT), lock_key(STALE_PRODUCT)):
                outcome = await _act(pilot, app, "#redis-locks", _key_is(key), "x")
                assert outcome.result.value == "verified", outcome.message
            outcome = await _act(
                pilot, app, "#svc-table", lambda r: r.get("service") == "order-service", "d"
            )
            assert outcome.result.value == "verified", outcome.message
            fixed = {"redis.locks.no_ttl", "redis.locks.stale", "service.order-service.listeners"}
            await _until(
                pilot,
                lambda: not fixed & set(app.model.alerts),
                40,
                f"the fixed alerts to clear (have {sorted(app.model.alerts)})",
            )
            # the others are still there: nothing was fixed by accident
            assert {"secrets.forged_token", "postgres.budget.payment-service"} <= set(
                app.model.alerts
            )
