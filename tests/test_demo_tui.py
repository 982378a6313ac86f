"""The TUI on the demo: the five failures appear, and keys fix them (Pilot).

The CLI end-to-end test in test_demo.py applies every remedy with subcommands;
this one applies the same remedies from the keyboard of the console, with the real
confirm modal and the real actions, until the console shows the platform healthy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from collectors.config import parse_config
from dashboard.demo.schema import NO_TTL_PRODUCT, STALE_PRODUCT, lock_key
from tests.external import require_program
from tests.test_demo import running_demo
from tests.test_demo_pgbouncer import POOLED_CHECKS

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # the whole platform, end to end


async def _until(  # type: ignore[no-untyped-def]
    pilot, cond: Callable[[], object], seconds: float, what: str | Callable[[], str]
) -> object:
    """Wait for `cond`; on timeout say `what` (a callable: as things are then)."""
    for _ in range(int(seconds / 0.05)):
        await pilot.pause(0.05)
        value = cond()
        if value:
            return value
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


async def _confirmed(pilot, app, key: str):  # type: ignore[no-untyped-def]
    """Press an action key, confirm in the modal, return the action's outcome."""
    from dashboard.tui.screens.confirm import ConfirmScreen

    app.last_outcome = None
    await pilot.press(key)
    await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, "the confirm modal")
    await pilot.click("#confirm")
    return await _until(pilot, lambda: app.last_outcome, 60, f"the outcome of {key!r}")


async def _act(pilot, app, table_id: str, match: Callable[[dict], bool], key: str):  # type: ignore[no-untyped-def]
    """Select the row the engineer would, press the action key, confirm, return the outcome."""
    from dashboard.tui.widgets.base import SyncTable

    table = app.query_one(table_id, SyncTable)

    def find() -> str | None:
        return next((k for k, r in table.records.items() if match(r)), None)

    row = await _until(pilot, find, 20, f"a row in {table_id}")
    table.focus()
    # With the arrow keys, as the engineer does: a cursor moved by the API alone
    # does not choose a row once the row under it went away (SyncTable.lost).
    await pilot.press("ctrl+home")
    for _ in range(4 * len(table.records) + 10):  # rows may move between presses
        await pilot.pause()
        row = find()
        assert row is not None, f"the row in {table_id} went away"
        if table.cursor_key() == row and table.selected() is not None:
            break
        await pilot.press("down" if table.cursor_row < table.get_row_index(row) else "up")
    assert table.cursor_key() == row and table.selected() is not None
    return await _confirmed(pilot, app, key)


def _key_is(key: str) -> Callable[[dict], bool]:
    return lambda record: record.get("key") == key


STORM = "pgbouncer.budget.payment-service"
INVARIANTS = ("postgres.invariant.oversold", "postgres.invariant.lost_orders")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_tui_shows_the_incident_and_fixes_every_failure_from_keys(tmp_path: Path) -> None:
    from collectors.core.model import Status
    from dashboard.tui.app import UltrawatchApp

    # The default a newcomer sees: behind PgBouncer, where the storm is fixed with `f`
    # on pgbouncer.budget.payment-service. (`f` straight to PostgreSQL, on
    # postgres.budget.*: tests/test_tui_fix.py; the direct demo: tests/test_demo.py.)
    require_program("pgbouncer")
    with running_demo("incident", tmp_path) as demo:
        assert demo.config.pgbouncer is not None
        # Quick rounds; the forged-token probe re-runs every 2 s instead of every
        # 5 min, so the finished rotation is seen within the test.
        # On a loaded machine (CI) the services answer slowly and a probe may take
        # seconds: room for both, so "healthy" means the five failures are gone.
        text = (
            demo.text.replace(
                'interval = "2s"',
                'interval = "500ms"\nraise_after = 1\nclear_after = 1\ncollector_timeout = "10s"',
            )
            .replace("probe = {", 'probe_every = "2s"\nprobe = {')
            .replace('health_path = "/health"', 'health_path = "/health"\nlatency_warn = "5s"')
        )
        app = UltrawatchApp(parse_config(text, str(demo.config_path)))
        assert app.config.secrets is not None and app.config.secrets.probe_every == 2
        assert float(app.config.dashboard.collector_timeout) == 10
        assert all(float(s.latency_warn) == 5 for s in app.config.services)
        invariants: list[tuple[str, Status]] = []  # every round's invariant checks
        absorb = app.absorb

        def watch(report):  # type: ignore[no-untyped-def]
            invariants.extend((c.id, c.status) for c in report.checks if c.id in INVARIANTS)
            absorb(report)

        app.absorb = watch  # type: ignore[method-assign]

        def alerts() -> str:
            """The open alerts with their summaries, and whether rounds still arrive
            (a failure names what was seen, not only which ids)."""
            have = {k: f"{a.check.status}: {a.check.summary}" for k, a in app.model.alerts.items()}
            report = app.model.report
            age = time.time() - report.snapshot.started_at if report else -1.0
            return f"(have {have}; {app.model.rounds} rounds, the last {age:.1f}s ago)"

        async with app.run_test(size=(200, 60), notifications=True) as pilot:
            await _until(
                pilot,
                lambda: set(POOLED_CHECKS) <= set(app.model.alerts),
                40,
                lambda: f"the incident's alerts {alerts()}",
            )
            # rotate first: the grace period runs while the rest is fixed
            outcome = await _confirmed(pilot, app, "r")
            assert outcome.result.value == "verified", outcome.message
            assert "JWT_SECRET_PREVIOUS" in (demo.state_dir / ".env").read_text()
            # The storm next: behind PgBouncer it holds every server connection, so
            # order-service's work waits in the pool and a drain could not finish.
            # One `f` on its alert ends payment-service's clients that hold a server
            # idle in a transaction, pass after pass as its queued ones take them.
            outcome = await _act(
                pilot,
                app,
                "#alerts-table",
                lambda r: r.get("check") == STORM and "remedy" in r,
                "f",
            )
            assert outcome.result.value == "verified", outcome.message
            assert "pooler clients idle in a transaction" in outcome.message
            assert "payment-service" in outcome.message and "within its budget" in outcome.message

            for key in (lock_key(NO_TTL_PRODUCT), lock_key(STALE_PRODUCT)):
                outcome = await _act(pilot, app, "#redis-locks", _key_is(key), "x")
                assert outcome.result.value == "verified", outcome.message
            outcome = await _act(
                pilot, app, "#svc-table", lambda r: r.get("service") == "order-service", "d"
            )
            assert outcome.result.value == "verified", outcome.message
            fixed = {"redis.locks.no_ttl", "redis.locks.stale", "service.order-service.listeners"}
            fixed.add(STORM)
            await _until(
                pilot,
                lambda: not fixed & set(app.model.alerts),
                40,
                lambda: f"fixed alerts {alerts()}",
            )

            # after the grace period the same key finishes the rotation
            def can_finish() -> bool:
                rotation = app.model.readings("secrets")[0].data.rotation
                return bool(rotation and rotation.can_finish)

            await _until(pilot, can_finish, 40, "the rotation's grace period to end")
            outcome = await _confirmed(pilot, app, "r")
            assert outcome.result.value == "verified", outcome.message
            assert "JWT_SECRET_PREVIOUS" not in (demo.state_dir / ".env").read_text()

            await _until(
                pilot,
                lambda: app.model.report.status is Status.OK and not app.model.alerts,
                60,
                lambda: f"the platform to be healthy {alerts()}",
            )
        # the invariants were judged on every round and never failed
        assert {i for i, _ in invariants} == set(INVARIANTS)
        assert all(status is Status.OK for _, status in invariants), invariants
