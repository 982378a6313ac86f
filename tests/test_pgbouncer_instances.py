"""Several PgBouncers ([[pgbouncer]], each its own name) against real ones: every
check id carries the instance, each is read on its own connection, one taken down
leaves the other read and the ids unchanged; actions name the instance; the panel
shows both."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from collectors.config import ConfigError, parse_config
from collectors.core.model import Status
from dashboard.tui.app import UltrawatchApp
from dashboard.tui.widgets.base import Line, SyncTable
from tests.conftest import run_cli
from tests.test_pgbouncer_actions import DB, admin_rows, paused
from tests.test_stable_checks import by_id, ids, rounds_before_and_after
from tests.test_tui_actions import WIDE, _config, until


def two(a: Any, b: Any) -> str:
    return f"""
[[pgbouncer]]
name = "east"
dsn = "{a.admin_dsn()}"
[[pgbouncer]]
name = "west"
dsn = "{b.admin_dsn()}"
connect_timeout = "1s"
[[services]]
name = "order-service"
url = "http://127.0.0.1:9"
connection_budget = 2
"""


@pytest.fixture
def resume(pgbouncer: Any) -> Any:
    yield
    if paused(pgbouncer):
        with psycopg.connect(pgbouncer.admin_dsn(), autocommit=True) as c:
            c.execute(f"RESUME {DB}", prepare=False)


async def test_each_instance_has_its_ids_and_one_down_leaves_the_other_read(
    pgbouncer: Any, own_pgbouncer: Any
) -> None:
    west = own_pgbouncer()
    reports = await rounds_before_and_after(two(pgbouncer, west), west.stop)
    first = by_id(reports[0])
    for name in ("east", "west"):
        assert first[f"pgbouncer.{name}.reachable"].status is Status.OK
        assert first[f"pgbouncer.{name}.reachable"].target == name
        for cid in ("pool.shop", "clients", "budget.order-service", "paused"):
            assert f"pgbouncer.{name}.{cid}" in first
    assert not any(c.startswith("pgbouncer.pool.") for c in first)
    for later in reports[1:]:
        assert ids(later) == ids(reports[0])
        checks = by_id(later)
        assert checks["pgbouncer.east.reachable"].status is Status.OK
        assert checks["pgbouncer.east.pool.shop"].status is Status.OK
        assert checks["pgbouncer.west.pool.shop"].status is Status.UNKNOWN
        assert checks["pgbouncer.west.pool.shop"].summary == "PgBouncer unreachable: not read"
    assert by_id(reports[-1])["pgbouncer.west.reachable"].status is Status.CRITICAL


@pytest.mark.parametrize(
    ("body", "key", "words"),
    [
        (
            '[[pgbouncer]]\ndsn = "host=a dbname=pgbouncer"\n'
            '[[pgbouncer]]\ndsn = "host=b dbname=pgbouncer"\n',
            "pgbouncer[1].name",
            "a name of its own",
        ),
        (
            '[[pgbouncer]]\nname = "a"\ndsn = "host=a dbname=pgbouncer"\n'
            '[[pgbouncer]]\nname = "b"\ndsn = "host=b dbname=shop"\n',
            "pgbouncer[1].dsn",
            "admin console",
        ),
    ],
)
def test_instance_config_errors_name_the_key(body: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(body)
    assert f"{key}:" in str(e.value) and words in str(e.value)


def test_actions_need_and_take_the_instance(
    pgbouncer: Any, own_pgbouncer: Any, write_config: Any, resume: Any
) -> None:
    west = own_pgbouncer()
    path: Path = write_config(two(west, pgbouncer))  # the session's PgBouncer is "west"
    r = run_cli("pgbouncer", "pause", DB, "--yes", "--config", str(path), timeout=60)
    assert r.returncode == 1
    assert "several PgBouncers are configured: --instance NAME, one of east, west" in r.stderr
    r = run_cli("pgbouncer", "pause", DB, "--instance", "north", "--yes", "--config", str(path))
    assert r.returncode == 1 and "no PgBouncer instance 'north'" in r.stderr
    r = run_cli(
        "pgbouncer", "pause", DB, "--instance", "west", "--yes", "--config", str(path), timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert paused(pgbouncer)
    assert not any(x["paused"] for x in admin_rows(west, "SHOW DATABASES") if x["name"] == DB)
    lines = [json.loads(x) for x in (path.parent / "audit.jsonl").read_text().splitlines()]
    done = [x for x in lines if x["outcome"] == "verified"]
    assert done and "pgbouncer west database actions" in json.dumps(done[-1])


async def test_the_panel_shows_each_instance(
    pgbouncer: Any, own_pgbouncer: Any, tmp_path: Path
) -> None:
    west = own_pgbouncer()
    with (
        psycopg.connect(pgbouncer.dsn("app", "shop"), autocommit=True) as a,
        psycopg.connect(west.dsn("app", "orders"), autocommit=True) as b,
    ):
        a.execute("select 1")
        b.execute("select 1")
        app = UltrawatchApp(_config(tmp_path, two(pgbouncer, west)))
        async with app.run_test(size=WIDE) as pilot:
            pools = app.query_one("#pgb-pools", SyncTable)
            await until(
                pilot,
                lambda: (
                    any(k.startswith("east:shop/") for k in pools.records)
                    and any(k.startswith("west:orders/") for k in pools.records)
                ),
            )
            key = next(k for k in pools.records if k.startswith("west:orders/"))
            assert pools.records[key]["instance"] == "west"
            assert pools.get_row(key)[0].plain == "west:orders"
            summary = str(app.query_one("#pgb-summary", Line).render())
            assert "east: PgBouncer 1." in summary and "west: PgBouncer 1." in summary
            west.stop()
            await until(
                pilot,
                lambda: "west unreachable" in str(app.query_one("#pgb-summary", Line).render()),
            )
            # east's rows stay, west's go
            assert any(k.startswith("east:") for k in pools.records)
            assert not any(k.startswith("west:") for k in pools.records)


def test_every_instance_s_password_is_kept_out_of_output(write_config: Any) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on: the errors are where it leaks
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secrets = ("east-pw-Hq83v", "west-pw-Zm27k")
    body = "".join(
        f'[[pgbouncer]]\nname = "{n}"\ndsn = "postgresql://monitor:{pw}@127.0.0.1:{port}'
        f'/pgbouncer"\nconnect_timeout = "1s"\n'
        for n, pw in zip(("east", "west"), secrets, strict=True)
    )
    path: Path = write_config(body)
    r = run_cli("check", "--config", str(path), "--format", "json", timeout=60)
    assert r.returncode == 2, r.stderr
    checks = {c["id"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["pgbouncer.east.reachable"]["status"] == "critical"
    assert checks["pgbouncer.west.reachable"]["status"] == "critical"
    for pw in secrets:
        assert pw not in r.stdout + r.stderr
