"""`ultrawatch cancel PID` / `ultrawatch terminate PID` against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from collectors.config import parse_config
from collectors.postgres.collector import PostgresCollector
from collectors.registry import postgres_services
from dashboard.actions.backend import BackendAction, TerminateBackend
from dashboard.actions.base import ActionRefused
from tests.conftest import run_cli


def _config(pg_dsn: str) -> str:
    return f"""
[postgres]
dsn = "{pg_dsn}"

[[services]]
name = "order-service"
url = "http://127.0.0.1:9"
pg_application_name = "order-service"
connection_budget = 5
"""


@pytest.fixture
def config_path(pg_dsn: str, write_config) -> Path:
    return write_config(_config(pg_dsn))


@pytest.fixture
def victim(pg_dsn: str) -> Iterator[psycopg.Connection]:
    conn = psycopg.connect(pg_dsn, application_name="order-service", autocommit=True)
    yield conn
    conn.close()


def _session(pg_dsn: str, pid: int) -> tuple | None:
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        return c.execute(
            "select state, date_part('epoch', backend_start), query from pg_stat_activity "
            "where pid = %s",
            (pid,),
        ).fetchone()


def _wait_state(pg_dsn: str, pid: int, state: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = _session(pg_dsn, pid)
        if row and row[0] == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} never became {state}")


def _alive(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("select 1")
        return True
    except psycopg.OperationalError:
        return False


def _audit(config_path: Path) -> list[dict]:
    path = config_path.parent / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_terminate_via_cli_ends_the_session_and_is_audited(
    pg_dsn: str, config_path: Path, victim: psycopg.Connection
) -> None:
    pid = victim.info.backend_pid
    victim.execute("begin")
    victim.execute("select 1")  # idle in transaction, the classic thing to end
    proc = run_cli("terminate", str(pid), "--yes", "--config", str(config_path))
    assert proc.returncode == 0, proc.stderr
    assert "verified" in proc.stdout
    # the plan named the session before acting
    assert f"pid {pid}" in proc.stderr and "order-service" in proc.stderr
    assert "idle in transaction" in proc.stderr
    assert _session(pg_dsn, pid) is None
    assert not _alive(victim)
    started, entry = _audit(config_path)
    assert (started["outcome"], started["params"]["pid"]) == ("started", pid)
    assert entry["action"] == "terminate"
    assert entry["target"] == f"pid {pid}"
    assert entry["outcome"] == "verified"
    assert entry["params"]["pid"] == pid
    assert entry["params"]["function"] == "pg_terminate_backend"
    assert "query" not in entry["params"]  # query text is never logged


def test_cancel_via_cli_stops_the_query_but_keeps_the_session(
    pg_dsn: str, config_path: Path, victim: psycopg.Connection
) -> None:
    pid = victim.info.backend_pid
    seen: list[BaseException] = []

    def sleep() -> None:
        try:
            victim.execute("select pg_sleep(30)")
        except psycopg.Error as e:
            seen.append(e)

    t = threading.Thread(target=sleep)
    t.start()
    _wait_state(pg_dsn, pid, "active")
    proc = run_cli("cancel", str(pid), "--yes", "--config", str(config_path))
    t.join(10)
    assert proc.returncode == 0, proc.stderr
    assert "cancelled" in proc.stdout
    assert "pg_sleep(30)" in proc.stderr  # the plan showed the start of the query
    assert seen and isinstance(seen[0], psycopg.errors.QueryCanceled)
    assert _alive(victim)  # the session stays
    _started, entry = _audit(config_path)
    assert (entry["action"], entry["outcome"]) == ("cancel", "verified")
    assert entry["params"]["function"] == "pg_cancel_backend"


def test_cancel_refuses_an_idle_session(config_path: Path, victim: psycopg.Connection) -> None:
    pid = victim.info.backend_pid
    proc = run_cli("cancel", str(pid), "--yes", "--config", str(config_path))
    assert proc.returncode == 1
    assert "no running query to cancel" in proc.stderr
    assert _alive(victim)


def test_pid_reuse_is_refused_at_plan_time(
    pg_dsn: str, config_path: Path, victim: psycopg.Connection
) -> None:
    pid = victim.info.backend_pid
    row = _session(pg_dsn, pid)
    assert row is not None
    seen_start = row[1] - 60  # the engineer saw an earlier session with this pid
    proc = run_cli(
        "terminate",
        str(pid),
        "--backend-start",
        str(seen_start),
        "--yes",
        "--config",
        str(config_path),
    )
    assert proc.returncode == 1
    assert "another session" in proc.stderr
    assert _alive(victim)
    # the right start time, as the ISO time a plan shows, is accepted
    seen_iso = datetime.fromtimestamp(row[1], UTC).isoformat().replace("+00:00", "Z")
    proc = run_cli(
        "terminate", str(pid), "--backend-start", seen_iso, "--yes", "--config", str(config_path)
    )
    assert proc.returncode == 0, proc.stderr
    assert not _alive(victim)


async def test_pid_reuse_guard_is_in_the_signalling_statement(
    pg_dsn: str, victim: psycopg.Connection
) -> None:
    """Between plan and execute the pid changed hands: execute does nothing."""
    config = parse_config(_config(pg_dsn))
    pid = victim.info.backend_pid

    async def go() -> None:
        action = BackendAction(config, pid, "terminate")
        try:
            plan = await action.plan()
            assert plan.params["backend_start"] is not None
            moved = dataclasses.replace(
                plan, params={**plan.params, "backend_start": plan.params["backend_start"] - 5}
            )
            with pytest.raises(ActionRefused, match="another session"):
                await action.execute(moved, lambda _m: None)
        finally:
            await action.close()

    await go()
    assert _alive(victim)


async def test_refuses_ultrawatch_own_backends(pg_dsn: str, config_path: Path) -> None:
    config = parse_config(_config(pg_dsn))

    async def go() -> None:
        monitor = PostgresCollector(config.postgres, postgres_services(config))
        try:
            (reading,) = await monitor.collect()
            assert reading.ok
            assert monitor.pid is not None
            proc = await asyncio.to_thread(
                run_cli, "terminate", str(monitor.pid), "--yes", "--config", str(config_path)
            )
            assert proc.returncode == 1
            assert "ultrawatch's own backend" in proc.stderr
            (again,) = await monitor.collect()  # the monitor is untouched
            assert again.ok
            # the action's own connection is refused too
            action = TerminateBackend(config, 0)
            conn = await action._connect()
            action.pid = conn.info.backend_pid
            with pytest.raises(ActionRefused, match="own backend"):
                await action.plan()
            await action.close()
        finally:
            await monitor.close()

    await go()
    (entry,) = _audit(config_path)
    assert entry["outcome"] == "refused"


def test_read_only_refuses_and_touches_nothing(
    config_path: Path, victim: psycopg.Connection
) -> None:
    pid = victim.info.backend_pid
    proc = run_cli("terminate", str(pid), "--yes", "--read-only", "--config", str(config_path))
    assert proc.returncode == 1
    assert "read-only" in proc.stderr
    assert _alive(victim)


def test_unknown_pid_and_bad_backend_start_are_refused(config_path: Path) -> None:
    proc = run_cli("terminate", "999999", "--yes", "--config", str(config_path))
    assert proc.returncode == 1
    assert "no backend with pid 999999" in proc.stderr
    proc = run_cli(
        "terminate", "1", "--backend-start", "yesterday", "--yes", "--config", str(config_path)
    )
    assert proc.returncode == 1
    assert "--backend-start" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_cancel_refuses_when_the_planned_query_was_replaced(
    pg_dsn: str, victim: psycopg.Connection
) -> None:
    """Between plan and execute the planned query ended and the same session started
    another one: the cancel must not hit the new query."""
    config = parse_config(_config(pg_dsn))
    pid = victim.info.backend_pid
    errors: list[BaseException] = []

    def run(sql: str) -> None:
        try:
            victim.execute(sql)
        except psycopg.Error as e:
            errors.append(e)

    first = threading.Thread(target=run, args=("select pg_sleep(30)",))
    first.start()
    _wait_state(pg_dsn, pid, "active")

    async def plan_it() -> tuple[BackendAction, object]:
        action = BackendAction(config, pid, "cancel")
        return action, await action.plan()

    async def execute_it(action: BackendAction, plan) -> None:
        try:
            with pytest.raises(ActionRefused, match="query changed since the plan"):
                await action.execute(plan, lambda _m: None)
        finally:
            await action.close()

    action, plan = await plan_it()
    # the planned query ends (someone else cancelled it) ...
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute("select pg_cancel_backend(%s)", (pid,))
    first.join(10)
    assert len(errors) == 1
    # ... and the session starts another one
    second = threading.Thread(target=run, args=("select pg_sleep(30) as second",))
    second.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = _session(pg_dsn, pid)
        if row and row[0] == "active" and "second" in row[2]:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the second query never started")
    try:
        await execute_it(action, plan)
        row = _session(pg_dsn, pid)
        assert row is not None and row[0] == "active" and "second" in row[2]
        assert len(errors) == 1  # the new query was not cancelled
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as c:
            c.execute("select pg_cancel_backend(%s)", (pid,))
        second.join(10)


def test_server_text_is_shown_escaped_on_one_line(
    pg_dsn: str, config_path: Path, victim: psycopg.Connection
) -> None:
    """A query carrying a terminal escape sequence and a line break: the plan, the
    outcome and the audit log show it escaped, on one line, never interpreted."""
    pid = victim.info.backend_pid
    victim.execute("begin")
    victim.execute("select '\x1b]0;pwned\x07 evil query'\n  as second_line")
    proc = run_cli("terminate", str(pid), "--yes", "--config", str(config_path))
    assert proc.returncode == 0, proc.stderr
    for out in (proc.stdout, proc.stderr):
        assert "\x1b" not in out and "\x07" not in out
    (query_line,) = [line for line in proc.stderr.splitlines() if "pwned" in line]
    assert query_line == "  query: select '\\x1b]0;pwned\\x07 evil query'   as second_line"
    audit = (config_path.parent / "audit.jsonl").read_text()
    assert "pwned" not in audit  # query text is never audited
    assert not _alive(victim)


def test_dsn_password_never_reaches_the_output_or_the_audit_log(pg_server, write_config) -> None:
    """libpq quotes the malformed part of a DSN, which here is the password: the
    config refuses it (exit 3) with that part masked, and nothing is audited."""
    port = pg_server.dsn().rsplit(":", 1)[1].split("/")[0]
    path = write_config(
        _config(f"postgresql://postgres:hunter2%ZZsecret@127.0.0.1:{port}/postgres")
    )
    proc = run_cli("terminate", "12345", "--yes", "--config", str(path))
    assert proc.returncode == 3
    assert "postgres.dsn" in proc.stderr and "***" in proc.stderr
    audit_file = path.parent / "audit.jsonl"
    audit = audit_file.read_text() if audit_file.exists() else ""
    for text in (proc.stdout, proc.stderr, audit):
        assert "hunter2" not in text and "ZZsecret" not in text
