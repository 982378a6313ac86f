"""The on-call flow in the TUI: `f` fixes the selected alert with every exact target
listed first, space marks sessions and locks, and a table's order stays put while
the engineer works in it. Real PostgreSQL, Redis and JWT services for the actions;
recorded-shape rounds (tests/tui_data.py) for the table behaviour."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from collectors.secrets.store import parse_dotenv
from dashboard.actions.fix import remedy_kind
from dashboard.tui.app import UltrawatchApp
from dashboard.tui.screens.confirm import ConfirmScreen
from dashboard.tui.widgets.base import SyncTable
from tests import tui_data as td
from tests.jwt_service import JwtService, running
from tests.test_fix import Storm, _pids
from tests.test_rotate_secret import strong, write_store
from tests.test_tui import judged, make_app, screen_text, with_locks
from tests.test_tui_actions import _config, audit, cancel_then_confirm, select_row, until

WIDE = (200, 60)


@pytest.fixture
def storm(pg_dsn: str) -> Iterator[Storm]:
    s = Storm(pg_dsn, idle=4)
    yield s
    s.close()


def _alert(check: str):
    return lambda r: r.get("check") == check and "remedy" in r


async def test_f_on_a_budget_alert_terminates_the_idle_beyond_budget(
    pg_dsn: str, storm: Storm, tmp_path: Path
) -> None:
    cfg = _config(
        tmp_path,
        f'[postgres]\ndsn = "{pg_dsn}"\n[[services]]\nname = "{storm.app}"\n'
        f'url = "http://127.0.0.1:9"\npg_application_name = "{storm.app}"\n'
        "connection_budget = 3\n",
    )
    check = f"postgres.budget.{storm.app}"
    oldest = [c.info.backend_pid for c in storm.idle[:3]]
    app = UltrawatchApp(cfg)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await select_row(pilot, app, "#alerts-table", _alert(check))
        # the hint says what f will do, in words, for the selected alert
        assert f"f {check}: terminate the 3 idle sessions of {storm.app}" in screen_text(app)
        outcome, plan = await cancel_then_confirm(
            pilot, app, "f", untouched=lambda: len(_pids(pg_dsn, storm.app)) == 6
        )
        for pid in oldest:
            assert f"pid {pid}: idle" in plan
        assert f"pid {storm.idle[3].info.backend_pid}" not in plan
        assert outcome.result.value == "verified", outcome.message
        assert outcome.message.startswith("3 of 3 sessions terminated and verified")
    left = _pids(pg_dsn, storm.app)
    assert sorted(left.values()) == ["active", "idle", "idle in transaction"]
    assert not any(pid in left for pid in oldest)
    entries = audit(tmp_path)
    assert {e["params"]["pid"] for e in entries if e["target"].startswith("pid ")} == set(oldest)


async def test_marked_sessions_are_terminated_and_only_they(
    pg_dsn: str, storm: Storm, tmp_path: Path
) -> None:
    cfg = _config(
        tmp_path,
        f'[postgres]\ndsn = "{pg_dsn}"\n[[services]]\nname = "{storm.app}"\n'
        f'url = "http://127.0.0.1:9"\npg_application_name = "{storm.app}"\n',
    )
    chosen = [storm.idle[0].info.backend_pid, storm.idle[2].info.backend_pid]
    app = UltrawatchApp(cfg)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        table = app.query_one("#pg-sessions", SyncTable)
        for pid in chosen:
            await select_row(pilot, app, "#pg-sessions", lambda r, pid=pid: r.get("pid") == pid)
            await pilot.press("space")
        assert sorted(r["pid"] for r in table.marked()) == sorted(chosen)
        assert "2 marked" in screen_text(app)
        outcome, plan = await cancel_then_confirm(
            pilot, app, "k", untouched=lambda: len(_pids(pg_dsn, storm.app)) == 6
        )
        assert "2 marked sessions" in plan
        assert outcome.result.value == "verified", outcome.message
        await until(pilot, lambda: not table.marks)  # spent, and their rows are gone
    left = _pids(pg_dsn, storm.app)
    assert len(left) == 4 and not any(pid in left for pid in chosen)


@pytest.fixture
def locks(redis_url: str) -> Iterator[tuple[redis.Redis, str]]:
    prefix = f"lock:tuifix{uuid.uuid4().hex[:6]}"
    r = redis.Redis.from_url(redis_url)
    yield r, prefix
    for key in r.scan_iter(f"{prefix}:*"):
        r.delete(key)
    r.close()


async def test_f_on_a_no_ttl_alert_releases_those_locks(
    redis_url: str, locks: tuple[redis.Redis, str], tmp_path: Path
) -> None:
    r, prefix = locks
    r.set(f"{prefix}:1", "owner-a")
    r.set(f"{prefix}:2", "owner-b", px=60_000)
    cfg = _config(tmp_path, f'[redis]\nurl = "{redis_url}"\nlock_patterns = ["{prefix}:*"]\n')
    app = UltrawatchApp(cfg)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await select_row(pilot, app, "#alerts-table", _alert("redis.locks.no_ttl"))
        outcome, plan = await cancel_then_confirm(
            pilot, app, "f", untouched=lambda: r.get(f"{prefix}:1") == b"owner-a"
        )
        assert f"{prefix}:1: owner owner-a, no TTL" in plan
        assert f"{prefix}:2: owner" not in plan
        assert outcome.result.value == "verified", outcome.message
    assert r.get(f"{prefix}:1") is None and r.get(f"{prefix}:2") == b"owner-b"


async def test_f_on_a_weak_secret_rotates_then_finishes_after_the_grace(
    tmp_path: Path,
) -> None:
    env = tmp_path / "ultramarket.env"
    write_store(env, "your-secret-key", strong())
    with running(JwtService(env)) as url:
        cfg = _config(
            tmp_path,
            f'[[services]]\nname = "svc"\nurl = "{url}"\ndetail_paths = ["/health/security"]\n'
            f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\ngrace_period = "8s"\n',
        )
        check = "secrets.JWT_SECRET.strength"
        app = UltrawatchApp(cfg)
        async with app.run_test(size=WIDE, notifications=True) as pilot:
            await select_row(pilot, app, "#alerts-table", _alert(check))
            outcome, plan = await cancel_then_confirm(
                pilot,
                app,
                "f",
                untouched=lambda: parse_dotenv(env.read_text())["JWT_SECRET"] == "your-secret-key",
            )
            assert "rotate-secret" in plan and "your-secret-key" not in plan
            assert outcome.result.value == "verified", outcome.message
            assert "JWT_SECRET_PREVIOUS" in parse_dotenv(env.read_text())
            # the same alert now waits for the grace period, and says how long
            table = app.query_one("#alerts-table", SyncTable)
            await until(
                pilot, lambda: "finish" in (table.records.get(check) or {}).get("remedy", "")
            )
            await until(pilot, lambda: not app._action_busy)  # the rotation has ended
            app.last_outcome = None
            await pilot.press("f")
            await until(pilot, lambda: app.last_outcome is not None)
            assert app.last_outcome.result.value == "refused"
            assert "from now" in app.last_outcome.message
            assert not isinstance(app.screen, ConfirmScreen)
            deadline = time.time() + 30
            while "JWT_SECRET_PREVIOUS" in parse_dotenv(env.read_text()):
                assert time.time() < deadline
                await pilot.pause(0.5)
                await until(pilot, lambda: not app._action_busy)
                app.last_outcome = None
                await pilot.press("f")
                await until(pilot, lambda: app.last_outcome is not None or _confirming(app))
                if _confirming(app):
                    await pilot.click("#confirm")
                    await until(pilot, lambda: app.last_outcome is not None, tries=200)
                    assert app.last_outcome.result.value == "verified", app.last_outcome.message
                    assert "dropped" in app.last_outcome.message


def _confirming(app: UltrawatchApp) -> bool:
    return isinstance(app.screen, ConfirmScreen)


def test_drain_remedies_are_the_services_with_a_drain() -> None:
    from collectors.config import parse_config

    cfg = parse_config(
        '[[services]]\nname = "orders"\nurl = "http://127.0.0.1:9"\n'
        'drain = { path = "/admin/drain" }\nprocess = { cmdline = "orders" }\n'
        '[[services]]\nname = "users"\nurl = "http://127.0.0.1:9"\n',
        "drain.toml",
    )
    assert remedy_kind("service.orders.listeners", cfg) == ("drain", "orders")
    assert remedy_kind("service.orders.heap", cfg) == ("drain", "orders")
    assert remedy_kind("process.orders.memory_growth", cfg) == ("drain", "orders")
    assert remedy_kind("process.orders.memory", cfg) == ("drain", "orders")
    assert remedy_kind("service.users.listeners", cfg) is None  # no drain configured
    assert remedy_kind("service.orders.latency", cfg) is None
    assert remedy_kind("postgres.reachable", cfg) is None


# ------------------------------------------------ marks and a frozen order


def _locks(ages: list[tuple[str, float]]) -> list:
    return [td.lock(f"lock:inventory:{k}", f"w-{k}", 20_000, age) for k, age in ages]


def _keys(table: SyncTable) -> list[str]:
    return [str(table.get_row_at(i)[2].plain) for i in range(table.row_count)]


async def test_marks_survive_a_re_sorting_round_and_go_with_their_row() -> None:
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        app.absorb(judged(with_locks(0, _locks([("a", 9), ("b", 8), ("c", 7), ("d", 6)]))))
        app.render_now()
        await pilot.pause()
        table = app.query_one("#redis-locks", SyncTable)
        table.focus()
        await pilot.press("space", "down", "space")  # marks a, skips b, marks c
        assert table.marks == {"lock:inventory:a", "lock:inventory:c"}
        assert "2 marked" in screen_text(app)
        await pilot.press("escape")  # unfrozen: the next round re-sorts
        resorted = _locks([("d", 20), ("c", 19), ("b", 8), ("a", 7)])
        app.absorb(judged(with_locks(1, resorted)))
        app.render_now()
        await pilot.pause()
        assert _keys(table)[:2] == ["lock:inventory:d", "lock:inventory:c"]
        marked = [_keys(table)[i] for i in range(4) if table.get_row_at(i)[0].plain == "●"]
        assert sorted(marked) == ["lock:inventory:a", "lock:inventory:c"]
        # a marked lock that goes away takes its mark with it
        app.absorb(judged(with_locks(2, _locks([("d", 21), ("b", 9), ("a", 8)]))))
        app.render_now()
        await pilot.pause()
        assert table.marks == {"lock:inventory:a"}
        assert "1 marked" in screen_text(app)


async def test_the_order_is_frozen_under_the_cursor_and_an_action_never_lands_on_a_moved_row(
    tmp_path: Path,
) -> None:
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        app.absorb(judged(with_locks(0, _locks([("a", 9), ("b", 8), ("c", 7), ("d", 6)]))))
        app.render_now()
        await pilot.pause()
        table = app.query_one("#redis-locks", SyncTable)
        table.focus()
        await pilot.press("down")  # on b: the engineer works in the table
        assert table.selected()["key"] == "lock:inventory:b"
        assert "frozen" not in screen_text(app).split("Redis locks")[0]
        assert "Redis locks · ● OK · ❄ frozen (esc)" in screen_text(app)
        # a round where d is now the oldest and a new no-TTL lock arrives: rows stay
        # where they are (the new one comes last), the cursor stays on b
        newer = [
            td.lock("lock:inventory:new", "w-new", -1, 1.0),
            *_locks([("d", 30), ("c", 29), ("b", 8), ("a", 7)]),
        ]
        app.absorb(judged(with_locks(1, newer)))
        app.render_now()
        await pilot.pause()
        assert _keys(table) == [f"lock:inventory:{k}" for k in ("a", "b", "c", "d", "new")]
        assert table.cursor_row == 1 and table.selected()["key"] == "lock:inventory:b"
        # b goes away: nothing is selected, and x does not act on the row now there
        app.absorb(judged(with_locks(2, [n for n in newer if not n.key.endswith(":b")])))
        app.render_now()
        await pilot.pause()
        assert table.selected() is None
        await pilot.press("x")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        # down takes the row after the one that went, not the one after that
        await pilot.press("down")
        assert table.selected()["key"] == "lock:inventory:c"
        # escape: the table re-sorts again (no-TTL first, then the oldest)
        await pilot.press("escape")
        assert "frozen" not in screen_text(app)
        assert _keys(table)[0] == "lock:inventory:new"
        assert table.selected()["key"] == "lock:inventory:c"


async def test_read_only_hides_fix_and_marking() -> None:
    app = make_app(read_only=True)
    async with app.run_test(size=WIDE) as pilot:
        app.absorb(judged(td.snapshot(0, kind="incident")))
        app.render_now()
        await pilot.pause()
        for action in ("fix", "toggle_mark"):
            assert app.check_action(action, ()) is False
        sessions = app.query_one("#pg-sessions", SyncTable)
        sessions.focus()
        await pilot.pause()
        assert app.check_action("toggle_mark", ()) is False
        rounds = app.model.rounds
        await pilot.press("space")  # no marking: space is "poll now" (nothing to poll)
        assert not sessions.marks and app.model.rounds == rounds
        assert "mark" not in [c.key for c in sessions.ordered_columns]
        alerts = app.query_one("#alerts-table", SyncTable)
        assert "fix" not in [c.key for c in alerts.ordered_columns]
        footer = screen_text(app).splitlines()[-1]
        assert "Fix" not in footer and "Mark" not in footer
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert not any("Fix alert" in t or "Mark row" in t for t in titles)


async def test_space_marks_in_sessions_and_polls_elsewhere() -> None:
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        app.absorb(judged(td.snapshot(0, kind="incident")))
        app.render_now()
        await pilot.pause()
        sessions = app.query_one("#pg-sessions", SyncTable)
        sessions.focus()
        await pilot.pause()
        assert app.check_action("toggle_mark", ()) is True
        first = sessions.selected()
        await pilot.press("space")
        assert sessions.marks == {f"{first['pid']}:{first['backend_start']}"}
        assert sessions.selected() != first  # moved on to the next row, as htop does
        app.query_one("#svc-table", SyncTable).focus()
        await pilot.pause()
        assert app.check_action("toggle_mark", ()) is False  # space polls here
        footer = screen_text(app).splitlines()[-1]
        assert "space Poll now" in footer


def test_fix_key_is_in_the_help_and_palette() -> None:
    from dashboard.tui.keys import BY_ACTION

    assert BY_ACTION["fix"].key == "f" and BY_ACTION["fix"].needs == "actions"
    assert BY_ACTION["toggle_mark"].key == "space"


async def test_a_plan_with_many_targets_keeps_its_title_and_buttons_in_view() -> None:
    from textual.app import App

    from dashboard.actions.base import Plan

    targets = [
        (f"pid {4000 + i}", "idle 31.5s, backend_start 2026-12-06T14:44:09Z") for i in range(15)
    ]
    plan = Plan("terminate", "15 idle sessions of pay", "terminate the 15 idle sessions", targets)

    class Host(App[None]):
        def on_mount(self) -> None:
            self.push_screen(ConfirmScreen(plan))

    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        for wid in ("#confirm-title", "#confirm-summary", "#cancel", "#confirm"):
            region = screen.query_one(wid).region
            assert region.height and region.y + region.height <= 24, (wid, region)


def test_idle_in_transaction_behind_pgbouncer_points_at_the_pooler_alert() -> None:
    """Its backends are the pooler's server connections: the detail view and `fix`
    say which alert's `f` ends the clients holding them."""
    from collectors.config import parse_config
    from collectors.core.model import CheckResult, Status
    from dashboard.actions.fix import why_no_remedy

    check = CheckResult(
        "postgres.idle_in_transaction", "postgres", "main", Status.WARNING, "5 idle in tx"
    )
    base = '[postgres]\ndsn = "postgresql://u@127.0.0.1:9/db"\n'
    pooled = parse_config(
        base + '[pgbouncer]\ndsn = "postgresql://a@127.0.0.1:9/pgbouncer"\n', "p.toml"
    )
    why = why_no_remedy(check, [], pooled)
    assert why is not None and "f on the pgbouncer.budget.<service>" in why
    assert why_no_remedy(check, [], parse_config(base, "d.toml")) is None
