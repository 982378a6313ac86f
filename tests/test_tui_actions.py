"""Action keys in the TUI against real targets: nothing after Cancel, the action
after confirmation, the verified result notified and in the audit log.

The app polls the real embedded PostgreSQL and Redis (and a real service
process for drain), so the rows the keys act on are the ones the engineer sees.
"""

from __future__ import annotations

import json
import os
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
from dashboard.app import UltrawatchApp
from dashboard.screens.confirm import ConfirmScreen
from dashboard.widgets.base import SyncTable
from tests.test_tui import screen_text, sync

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


async def cancel_then_confirm(pilot, app: UltrawatchApp, key: str, typed: str | None = None):
    """Press `key`, Cancel (focused), press it again and confirm; return the outcome."""
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    assert app.screen.focused is app.screen.query_one("#cancel", Button)
    await pilot.press("enter")  # Cancel is focused: enter cancels
    await until(pilot, lambda: app.last_outcome is not None)
    assert app.last_outcome.result.value == "cancelled"
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


@sync
async def test_terminate_key_ends_the_selected_real_backend(
    pg_dsn: str, victim: psycopg.Connection, tmp_path: Path
) -> None:
    pid = victim.info.backend_pid
    app = UltrawatchApp(_config(tmp_path, PG.format(dsn=pg_dsn)))
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        row = await select_row(pilot, app, "#pg-sessions", lambda r: r.get("pid") == pid)
        assert row["pid"] == pid
        outcome, modal = await cancel_then_confirm(pilot, app, "k")
        assert f"pid {pid}" in modal  # the modal names the exact target
        assert outcome.result.value == "verified", outcome.message
        assert any("verified" in (n.title or "") for n in app._notifications)
    with pytest.raises(psycopg.OperationalError):
        victim.execute("select 1")
    entries = audit(tmp_path)
    assert [e["outcome"] for e in entries] == ["cancelled", "started", "verified"]
    assert entries[-1]["action"] == "terminate"


@sync
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
            outcome, _ = await cancel_then_confirm(pilot, app, "c")
            assert outcome.result.value == "verified", outcome.message
        t.join(10)
        assert errors and isinstance(errors[0], psycopg.errors.QueryCanceled)
        assert conn.execute("select 1").fetchone() == (1,)  # the session lives on
    finally:
        conn.close()


def _redis_config(redis_url: str, prefix: str) -> str:
    return f'[redis]\nurl = "{redis_url}"\nlock_patterns = ["{prefix}*"]\n'


@pytest.mark.parametrize("production", [False, True])
@sync
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
                pilot, app, "x", typed=key if production else None
            )
            assert key in modal
            assert outcome.result.value == "verified", outcome.message
            assert app.is_running
        assert r.exists(key) == 0
        assert r.exists(other) == 1  # only the selected lock
    finally:
        r.delete(key, other)


@sync
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
        [sys.executable, SERVICE, "--log", str(tmp_path / "svc.log"), "--op-time", "0.3", "--stay"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "JWT_SECRET": secret},
    )
    assert p.stdout is not None
    port = int(p.stdout.readline())
    yield f"http://127.0.0.1:{port}", secret, p.pid
    p.kill()
    p.wait()


@sync
async def test_drain_and_undrain_keys_on_a_real_service(service, tmp_path: Path) -> None:
    url, secret, _pid = service
    env = tmp_path / ".env"
    env.write_text(f"JWT_SECRET={secret}\nJWT_REFRESH_SECRET={secrets.token_urlsafe(48)}\n")
    body = (
        f'[[services]]\nname = "orders"\nurl = "{url}"\n'
        'drain = { path = "/admin/drain", timeout = "1s" }\n'
        f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\n'
    )
    app = UltrawatchApp(_config(tmp_path, body))
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await select_row(pilot, app, "#svc-table", lambda rec: rec.get("service") == "orders")
        outcome, modal = await cancel_then_confirm(pilot, app, "d")
        assert "orders" in modal
        # --stay: it drains and stays up waiting for undrain, so the exit is not
        # seen within drain.timeout; the engineer is told it is still draining.
        assert outcome.result.value == "not_verified", outcome.message
        assert "draining" in outcome.message
        app.last_outcome = None
        await until(
            pilot, lambda: (app.query_one("#svc-table", SyncTable).selected() or {}).get("draining")
        )
        outcome, _ = await cancel_then_confirm(pilot, app, "u")
        assert outcome.result.value == "verified", outcome.message
    actions = [(e["action"], e["outcome"]) for e in audit(tmp_path)]
    assert ("drain", "not_verified") in actions and ("undrain", "verified") in actions
    assert ("drain", "cancelled") in actions and ("undrain", "cancelled") in actions


@sync
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
            outcome, modal = await cancel_then_confirm(pilot, app, "r")
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
