"""`ultrawatch pgbouncer pause|resume|reconnect|kill DATABASE` against a real PgBouncer:
each verified from the admin console, refused without admin rights, in read-only
mode, without --yes off a terminal, and for a database PgBouncer does not serve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import run_cli
from tests.pgbouncer_fixtures import USERS

DB = "actions"


def admin_rows(pgb: Any, command: str) -> list[dict[str, Any]]:
    with psycopg.connect(pgb.admin_dsn(), autocommit=True, prepare_threshold=None) as c:
        cur = c.execute(command, prepare=False)
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, r, strict=False)) for r in cur.fetchall()]


def paused(pgb: Any) -> bool:
    row = next(r for r in admin_rows(pgb, "SHOW DATABASES") if r["name"] == DB)
    return bool(row["paused"])


@pytest.fixture
def config(pgbouncer: Any, write_config: Any) -> Path:
    path: Path = write_config(f'[pgbouncer]\ndsn = "{pgbouncer.admin_dsn()}"\n')
    return path


@pytest.fixture(autouse=True)
def resumed(pgbouncer: Any) -> Any:
    yield
    if paused(pgbouncer):
        with psycopg.connect(pgbouncer.admin_dsn(), autocommit=True) as c:
            c.execute(f"RESUME {DB}", prepare=False)


def act(config: Path, *args: str) -> Any:
    return run_cli("pgbouncer", *args, "--config", str(config), timeout=60)


def audit(config: Path) -> list[dict[str, Any]]:
    log = config.parent / "audit.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_pause_then_resume_are_verified_and_audited(pgbouncer: Any, config: Path) -> None:
    r = act(config, "pause", DB, "--yes")
    assert r.returncode == 0, r.stderr
    assert f"verified: {DB} is paused" in r.stdout
    assert "PAUSE actions: PgBouncer lets the running transactions finish" in r.stderr
    assert paused(pgbouncer)
    again = act(config, "pause", DB, "--yes")
    assert again.returncode == 1 and "already paused" in again.stderr
    r = act(config, "resume", DB, "--yes")
    assert r.returncode == 0, r.stderr
    assert f"verified: {DB} is resumed" in r.stdout
    assert not paused(pgbouncer)
    lines = audit(config)
    assert [(x["action"], x["outcome"]) for x in lines if x["outcome"] != "started"] == [
        ("pgbouncer-pause", "verified"),
        ("pgbouncer-pause", "refused"),
        ("pgbouncer-resume", "verified"),
    ]
    assert all(USERS["admin"] not in json.dumps(x) for x in lines)


def test_reconnect_replaces_the_server_connections(pgbouncer: Any, config: Path) -> None:
    with psycopg.connect(pgbouncer.dsn("app", DB), autocommit=True) as c:
        c.execute("select 1")  # the pool now holds a server connection
        before = {r["remote_pid"] for r in admin_rows(pgbouncer, "SHOW SERVERS")}
        r = act(config, "reconnect", DB, "--yes")
        assert r.returncode == 0, r.stderr
        assert "server connections of actions were replaced" in r.stdout
        c.execute("select 1")  # served by a fresh server connection
    servers = [r for r in admin_rows(pgbouncer, "SHOW SERVERS") if r["database"] == DB]
    assert servers and not ({s["remote_pid"] for s in servers} & before)


def test_kill_drops_the_clients_and_leaves_the_database_paused(
    pgbouncer: Any, config: Path
) -> None:
    client = psycopg.connect(pgbouncer.dsn("app", DB), autocommit=True, application_name="victim")
    client.execute("select 1")
    r = act(config, "kill", DB, "--yes")
    assert r.returncode == 0, r.stderr
    assert "every connection of actions was dropped" in r.stdout
    assert "ultrawatch pgbouncer resume actions" in r.stdout
    apps = [x["application_name"] for x in admin_rows(pgbouncer, "SHOW CLIENTS")]
    assert "victim" not in apps
    with pytest.raises(psycopg.OperationalError):
        client.execute("select 1")
    client.close()
    assert paused(pgbouncer)


def test_a_stats_user_is_told_it_needs_admin_users(pgbouncer: Any, write_config: Any) -> None:
    path = write_config(f'[pgbouncer]\ndsn = "{pgbouncer.admin_dsn("monitor")}"\n')
    r = act(path, "pause", DB, "--yes")
    assert r.returncode == 1
    assert "must be in PgBouncer's admin_users" in r.stderr
    assert not paused(pgbouncer)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("pause", DB, "--yes", "--read-only"), "read-only mode"),
        (("pause", DB), "needs --yes when stdin is not a terminal"),
        (("pause", "nosuchdb", "--yes"), "PgBouncer serves no database 'nosuchdb'"),
        (("kill", "pgbouncer", "--yes"), "the admin console, not a pooled database"),
    ],
)
def test_refusals_change_nothing(
    pgbouncer: Any, config: Path, args: tuple[str, ...], words: str
) -> None:
    r = act(config, *args)
    assert r.returncode == 1
    assert words in r.stderr
    assert not paused(pgbouncer)


def test_an_unknown_command_is_a_usage_error(config: Path) -> None:
    r = act(config, "drop", DB, "--yes")
    assert r.returncode == 3
    assert "invalid choice: 'drop'" in r.stderr
