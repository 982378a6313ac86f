"""Cancel/terminate when PostgreSQL is out of connection slots, on a private
server (max_connections 8) this module fills to the last slot: the command
line, which needs a connection of its own, refuses and says why and what to
do; the TUI's way, borrowing the monitoring connection already in, works."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from collectors.config import Config, parse_config
from collectors.postgres.collector import PostgresCollector
from collectors.registry import postgres_services
from dashboard.actions.backend import TerminateBackend
from dashboard.actions.base import ActionRunner, Plan, Result
from tests.conftest import run_cli

MAX_CONNECTIONS = 8  # superuser_reserved_connections (3) of them for superusers


@pytest.fixture(scope="module")
def tiny_pg() -> Iterator[object]:
    from dashboard.demo.embedded import EmbeddedPostgres

    base = tempfile.mkdtemp(prefix="ultrawatch-test-pg-slots-")
    try:
        server = EmbeddedPostgres(base, settings={"max_connections": MAX_CONNECTIONS}).start()
    except Exception:
        shutil.rmtree(base, ignore_errors=True)
        raise
    # uw_ops: what an on-call role needs to see and signal other roles' sessions
    server.psql(
        "create role uw_ops login in role pg_monitor, pg_signal_backend;create role uw_app login;"
    )
    yield server
    server.cleanup()


def _config_text(dsn: str, audit: Path) -> str:
    return f"""
[postgres]
dsn = "{dsn}"

[[services]]
name = "order-service"
url = "http://127.0.0.1:9"
pg_application_name = "order-service"

[actions]
audit_log = "{audit}"
"""


def _fill(stack: contextlib.ExitStack, dsn: str) -> str:
    """Open sessions until PostgreSQL refuses one; its message."""
    for _ in range(MAX_CONNECTIONS + 1):
        try:
            stack.enter_context(psycopg.connect(dsn, application_name="filler"))
        except psycopg.OperationalError as e:
            return str(e)
    raise AssertionError("PostgreSQL never refused a connection")


async def _yes(_plan: Plan) -> bool:
    return True


def _alive(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("select 1")
        return True
    except psycopg.OperationalError:
        return False


async def test_out_of_slots_cli_refuses_clearly_and_lent_connection_acts(
    tiny_pg, tmp_path: Path
) -> None:
    ops_dsn = tiny_pg.dsn("uw_ops")
    path = tmp_path / "ultrawatch.toml"
    path.write_text(_config_text(ops_dsn, tmp_path / "audit.jsonl"))
    config: Config = parse_config(path.read_text())

    async def scenario() -> None:
        monitor = PostgresCollector(config.postgres, postgres_services(config))
        try:
            (reading,) = await monitor.collect()
            assert reading.ok, reading.error
            with contextlib.ExitStack() as stack:
                victims = [
                    stack.enter_context(
                        psycopg.connect(tiny_pg.dsn("uw_app"), application_name="order-service")
                    )
                    for _ in range(2)
                ]
                for v in victims:
                    v.execute("select 1")  # idle in transaction: the session to end
                # every slot a non-superuser may use is taken
                refused = _fill(stack, tiny_pg.dsn("uw_app"))
                assert "remaining connection slots are reserved" in refused
                pid = victims[0].info.backend_pid
                proc = await asyncio.to_thread(
                    run_cli, "terminate", str(pid), "--yes", "--config", str(path)
                )
                assert proc.returncode == 1
                assert proc.stderr.startswith(
                    "refused: cannot connect to PostgreSQL: no connection slot for this action "
                    '(connection to server at "127.0.0.1"'
                )
                assert "FATAL:  remaining connection slots are reserved" in proc.stderr
                assert "only reserved slots are left: put a superuser role in postgres.dsn" in (
                    proc.stderr
                )
                assert "pg_use_reserved_connections" in proc.stderr
                assert "or act from the TUI (`ultrawatch`)" in proc.stderr
                assert "nothing was done" in proc.stderr
                assert _alive(victims[0])

                # the superuser slots taken too: no reserved slot left either
                su_refused = _fill(stack, tiny_pg.dsn())
                assert "too many clients" in su_refused
                proc = await asyncio.to_thread(
                    run_cli, "terminate", str(pid), "--yes", "--config", str(path)
                )
                assert proc.returncode == 1
                assert "even the reserved slots are taken" in proc.stderr
                assert "or act from the TUI (`ultrawatch`)" in proc.stderr
                assert _alive(victims[0])

                # The TUI's way: borrow the monitor's connection, between its rounds
                # (a round runs at the same time and is not disturbed).
                runner = ActionRunner(config)
                action = TerminateBackend(config, pid, lender=monitor)
                outcome, (during,) = await asyncio.gather(
                    runner.run(action, _yes), monitor.collect()
                )
                assert outcome.result is Result.VERIFIED, outcome.message
                assert outcome.message == f"pid {pid}'s session has ended"
                assert during.ok, during.error
                assert not _alive(victims[0])

                # a given connection is used as is (and never closed by the action)
                other = victims[1].info.backend_pid
                assert monitor.conn is not None
                given = TerminateBackend(config, other, conn=monitor.conn)
                plan = await given.plan()
                await given.close()
                assert plan.target == f"pid {other}" and plan.params["backend_start"]
                assert not monitor.conn.closed
                (after,) = await monitor.collect()
                assert after.ok, after.error
        finally:
            await monitor.close()

    await scenario()
    entries = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [e["outcome"] for e in entries] == ["refused", "refused", "started", "verified"]
    assert "no connection slot" in entries[0]["message"]
