"""The PostgreSQL collector and its checks against real servers: the shared
session server (pg_dsn) and, for restarts, filling every slot and roles, a
private one this module owns. Each check is seen to go ok -> warning/critical
-> ok as the situation is made and undone, and the tool holds exactly one
backend throughout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from collectors.config import Config, parse_config
from collectors.core.model import CheckResult, Reading, Status
from collectors.core.settings import ConfigError
from collectors.poller import Poller
from collectors.postgres.collector import PostgresCollector
from collectors.registry import postgres_services
from collectors.rules import judge
from tests.conftest import run_cli

OK, WARNING, CRITICAL, UNKNOWN = Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN


@pytest.fixture(scope="module")
def own_pg() -> Iterator[object]:
    """A private server: restarted, filled to the last slot, given roles. Its
    directory is outside pytest's basetemp, which concurrent pytest runs prune."""
    from dashboard.demo.embedded import EmbeddedPostgres

    base = tempfile.mkdtemp(prefix="ultrawatch-test-pg-")
    try:
        # No skip: a server that will not start is a failure, as for the shared one.
        server = EmbeddedPostgres(base, settings={"max_connections": 20}).start()
    except Exception:
        shutil.rmtree(base, ignore_errors=True)
        raise
    yield server
    server.cleanup()


def make_config(dsn: str, extra: str = "", **pg: str) -> Config:
    keys = "".join(f"{k} = {v}\n" for k, v in pg.items())
    return parse_config(
        f"""
[postgres]
dsn = "{dsn}"
{keys}
[[services]]
name = "order-service"
url = "http://127.0.0.1:9"
pg_application_name = "order-service"
connection_budget = 2

[[services]]
name = "user-service"
url = "http://127.0.0.1:9"
pg_application_name = "user-service"
connection_budget = 3
{extra}
"""
    )


def collector_for(config: Config) -> PostgresCollector:
    assert config.postgres is not None
    return PostgresCollector(config.postgres, postgres_services(config))


def checks(reading: Reading, config: Config) -> dict[str, CheckResult]:
    return {c.id: c for c in judge(reading, config)}


def ultrawatch_backends(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute(
            "select count(*) from pg_stat_activity where application_name = 'ultrawatch'"
        ).fetchone()
        assert row is not None
        return int(row[0])


@contextlib.contextmanager
def sessions(dsn: str, *apps: str) -> Iterator[list[psycopg.Connection]]:
    conns = [psycopg.connect(dsn, application_name=a, autocommit=True) for a in apps]
    try:
        yield conns
    finally:
        for c in conns:
            c.close()


async def run(scenario: Callable[[PostgresCollector], object], config: Config) -> None:
    """Run an async scenario with one collector, closed at the end."""

    async def main() -> None:
        collector = collector_for(config)
        try:
            await scenario(collector)  # type: ignore[misc]
        finally:
            await collector.close()

    await main()


async def one(collector: PostgresCollector) -> Reading:
    (reading,) = await collector.collect()
    return reading


async def until(
    collector: PostgresCollector,
    config: Config,
    check_id: str,
    want: Status,
    seen: list[Status],
    timeout: float = 15,
) -> Reading:
    """Collect until `check_id` has status `want`, recording every status seen."""
    deadline = time.monotonic() + timeout
    while True:
        reading = await one(collector)
        status = checks(reading, config)[check_id].status
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == want:
            return reading
        assert time.monotonic() < deadline, f"{check_id} never became {want}: {seen}"
        await asyncio.sleep(0.1)


# ------------------------------------------------------------ reading and budgets


async def test_groups_by_service_state_database_user_and_budgets(pg_dsn: str, pg_server) -> None:
    admin = psycopg.connect(pg_dsn, autocommit=True)
    if not admin.execute("select 1 from pg_roles where rolname = 'uw_shopper'").fetchone():
        admin.execute("create role uw_shopper login")
    if not admin.execute("select 1 from pg_database where datname = 'uw_shop'").fetchone():
        admin.execute("create database uw_shop")
    # Sessions of these services left by other tests on this server (a session
    # scoped PgBouncer's server connections keep their last client's
    # application_name for minutes) would count here: end them first.
    names = ["order-service", "user-service", "adhoc-report"]
    leftover = (
        "select pid from pg_stat_activity where pid <> pg_backend_pid()"
        " and (application_name = any(%s) or usename = 'uw_shopper' or datname = 'uw_shop')"
    )
    deadline = time.monotonic() + 10
    while admin.execute(leftover, (names,)).fetchall() and time.monotonic() < deadline:
        admin.execute(f"select pg_terminate_backend(pid) from ({leftover}) s", (names,))
        time.sleep(0.05)
    admin.close()
    shop_dsn = pg_dsn.rsplit("/", 1)[0] + "/uw_shop"
    shopper_dsn = pg_dsn.replace("postgres@", "uw_shopper@", 1)
    config = make_config(pg_dsn, connection_budget="3")

    async def scenario(c: PostgresCollector) -> None:
        before = await one(c)
        assert before.ok, before.error
        base = checks(before, config)
        assert base["postgres.budget.order-service"].status == OK
        assert base["postgres.budget.total"].status == OK

        with (
            sessions(pg_dsn, "order-service", "order-service", "order-service") as orders,
            sessions(shopper_dsn, "user-service") as users,
            sessions(shop_dsn, "adhoc-report"),
        ):
            orders[0].execute("begin")
            orders[0].execute("select 42 as secret_looking_but_just_a_query")
            r = await one(c)
            d = r.data
            assert d.by_service["order-service"].count == 3
            assert d.by_service["order-service"].budget == 2
            assert d.by_service["user-service"].count == 1
            assert "adhoc-report" in d.by_service["other"].application_names
            assert d.by_user["uw_shopper"] == 1
            assert d.by_database["uw_shop"] == 1
            assert d.by_state["idle in transaction"] >= 1
            # ours is in no count and in no list
            assert c.pid not in [s.pid for s in d.sessions]
            assert d.connections_used == before.data.connections_used + 5
            # the most interesting session comes first, with its query truncated
            first = d.sessions[0]
            assert first.pid == orders[0].info.backend_pid
            assert first.state == "idle in transaction"
            assert first.service == "order-service"
            assert first.query.startswith("select 42")
            assert first.backend_start > 0
            assert d.oldest_xact.pid == orders[0].info.backend_pid
            # texts are sent once per query and kept while the query is the same
            first_age = first.xact_age_s
            again = await one(c)
            assert again.data.sessions[0].query == first.query
            # unchanged sessions are reused for speed, but earlier readings stay as they were
            assert again.data.sessions[0].xact_age_s >= first_age
            assert first.xact_age_s == first_age
            orders[0].execute("select 'second query'")
            again = await one(c)
            assert again.data.sessions[0].query == "select 'second query'"
            by_user = next(s for s in d.sessions if s.pid == users[0].info.backend_pid)
            assert (by_user.user, by_user.service) == ("uw_shopper", "user-service")

            got = checks(r, config)
            budget = got["postgres.budget.order-service"]
            assert budget.status == WARNING
            assert budget.summary == "order-service: 3 connections, over its budget of 2"
            assert got["postgres.budget.user-service"].status == OK
            total = got["postgres.budget.total"]
            assert (total.status, total.value) == (WARNING, 4)
            assert "order-service 3 over its budget of 2" in got["postgres.connections"].summary

            orders[0].execute("rollback")
            orders[1].close()
            r = await until(c, config, "postgres.budget.order-service", OK, [])
            got = checks(r, config)
            assert got["postgres.budget.total"].status == OK
            assert "over its budget" not in got["postgres.connections"].summary
            assert ultrawatch_backends(pg_dsn) == 1

    await run(scenario, config)


async def test_pgbench_load_goes_over_a_budget_and_back(pg_dsn: str, pg_server) -> None:
    if not hasattr(pg_server, "bin"):
        pytest.skip("pgbench comes with the embedded server")
    admin = psycopg.connect(pg_dsn, autocommit=True)
    if not admin.execute("select 1 from pg_database where datname = 'uw_bench'").fetchone():
        admin.execute("create database uw_bench")
    admin.close()
    bench_dsn = pg_dsn.rsplit("/", 1)[0] + "/uw_bench"
    init = subprocess.run(
        [pg_server.bin("pgbench"), "-i", "-s", "1", "-q", bench_dsn],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    extra = """
[[services]]
name = "bench"
url = "http://127.0.0.1:9"
pg_application_name = "pgbench"
connection_budget = 2
"""
    config = make_config(pg_dsn, extra)

    async def scenario(c: PostgresCollector) -> None:
        assert checks(await one(c), config)["postgres.budget.bench"].status == OK
        load = subprocess.Popen(
            [pg_server.bin("pgbench"), "-c", "4", "-j", "2", "-T", "3", "-n", bench_dsn],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            seen: list[Status] = []
            r = await until(c, config, "postgres.budget.bench", WARNING, seen)
            assert r.data.by_service["bench"].count >= 4
            states = {s.state for s in r.data.sessions if s.service == "bench"}
            assert states & {"active", "idle", "idle in transaction"}
            assert ultrawatch_backends(pg_dsn) == 1
        finally:
            _, err = load.communicate(timeout=30)
        assert load.returncode == 0, err
        r = await until(c, config, "postgres.budget.bench", OK, [])
        assert r.data.by_service["bench"].count <= 2

    await run(scenario, config)


# ------------------------------------------------------- stuck and blocked sessions


async def test_idle_in_transaction_warns_then_goes_critical_then_clears(own_pg) -> None:
    dsn = own_pg.dsn()
    config = make_config(dsn, idle_in_transaction_warn='"1s"', idle_in_transaction_crit='"2s"')

    async def scenario(c: PostgresCollector) -> None:
        seen: list[Status] = []
        await until(c, config, "postgres.idle_in_transaction", OK, seen)
        with sessions(dsn, "order-service") as (stuck,):
            stuck.execute("begin")
            stuck.execute("update pg_class set relname = relname where false")
            r = await until(c, config, "postgres.idle_in_transaction", CRITICAL, seen)
            check = checks(r, config)["postgres.idle_in_transaction"]
            assert f"pid {stuck.info.backend_pid} (order-service)" in check.summary
            assert r.data.longest_idle_in_xact.pid == stuck.info.backend_pid
            stuck.execute("commit")
            await until(c, config, "postgres.idle_in_transaction", OK, seen)
        assert seen == [OK, WARNING, CRITICAL, OK]
        assert ultrawatch_backends(dsn) == 1

    await run(scenario, config)


async def test_lock_wait_is_seen_with_its_blocker_and_clears(own_pg) -> None:
    dsn = own_pg.dsn()
    own_pg.psql(
        "drop table if exists uw_stock; create table uw_stock (sku int primary key, qty int);"
        "insert into uw_stock values (1, 10);"
    )
    config = make_config(dsn, blocked_warn='"1s"', blocked_crit='"2s"')

    async def scenario(c: PostgresCollector) -> None:
        seen: list[Status] = []
        await until(c, config, "postgres.blocked", OK, seen)
        with sessions(dsn, "user-service", "order-service") as (holder, waiter):
            holder.execute("begin")
            holder.execute("update uw_stock set qty = qty - 1 where sku = 1")
            done = threading.Event()

            def second_buyer() -> None:
                waiter.execute("update uw_stock set qty = qty - 1 where sku = 1")
                done.set()

            t = threading.Thread(target=second_buyer)
            t.start()
            r = await until(c, config, "postgres.blocked", CRITICAL, seen)
            (b,) = r.data.blocked
            assert b.pid == waiter.info.backend_pid
            assert b.blocked_by == [holder.info.backend_pid]
            assert b.service == "order-service"
            assert b.waiting_s >= 2
            assert b.query.startswith("update uw_stock")
            first = r.data.sessions[0]
            assert (first.pid, first.blocked_by) == (b.pid, b.blocked_by)
            summary = checks(r, config)["postgres.blocked"].summary
            assert f"blocked by pid {holder.info.backend_pid}" in summary
            holder.execute("rollback")
            t.join(10)
            assert done.is_set()
            await until(c, config, "postgres.blocked", OK, seen)
        assert seen == [OK, WARNING, CRITICAL, OK]
        assert ultrawatch_backends(dsn) == 1

    await run(scenario, config)


# ---------------------------------------------------------------- invariants


async def test_invariants_run_read_only_under_the_timeout(own_pg) -> None:
    dsn = own_pg.dsn()
    own_pg.psql("drop table if exists inventory; create table inventory (sku int, quantity int);")
    extra = """
[[postgres.invariants]]
name = "negative_stock"
sql = "select count(*) from inventory where quantity < 0"
crit_above = 0

[[postgres.invariants]]
name = "stock_rows"
sql = "select count(*) from inventory"
warn_below = 1

[[postgres.invariants]]
name = "sneaky"
sql = "delete from inventory returning 1"

[[postgres.invariants]]
name = "slow"
sql = "select pg_sleep(3)"

[[postgres.invariants]]
name = "after_slow"
sql = "select 1"
"""
    config = make_config(dsn, extra, statement_timeout='"300ms"')

    async def scenario(c: PostgresCollector) -> None:
        got = checks(await one(c), config)
        assert got["postgres.invariant.negative_stock"].status == OK
        assert got["postgres.invariant.stock_rows"].status == WARNING
        assert got["postgres.invariant.stock_rows"].summary == "stock_rows = 0 (warn below 1)"
        own_pg.psql("insert into inventory values (1, 5), (2, -1)")
        r = await one(c)
        assert r.ok  # failing invariants do not fail the reading
        got = checks(r, config)
        neg = got["postgres.invariant.negative_stock"]
        assert (neg.status, neg.value) == (CRITICAL, 1.0)
        assert got["postgres.invariant.stock_rows"].status == OK
        sneaky = got["postgres.invariant.sneaky"]
        assert sneaky.status == UNKNOWN and "read-only transaction" in sneaky.summary
        slow = got["postgres.invariant.slow"]
        assert slow.status == UNKNOWN and "statement_timeout" in slow.summary
        # the invariants' time budget (one statement_timeout) is spent: the rest wait
        after = got["postgres.invariant.after_slow"]
        assert after.status == UNKNOWN and "skipped" in after.summary
        assert got["postgres.reachable"].status == OK
        own_pg.psql("update inventory set quantity = 0 where quantity < 0")
        got = checks(await one(c), config)
        assert got["postgres.invariant.negative_stock"].status == OK
        # the read-only transaction kept the data
        assert own_pg.psql("select count(*) from inventory").strip() == "2"
        assert ultrawatch_backends(dsn) == 1

    await run(scenario, config)


# ------------------------------------------------- connection pressure, failures


async def test_connection_pressure_and_too_many_clients(own_pg) -> None:
    dsn = own_pg.dsn()
    config = make_config(dsn, connections_warn="0.8", connections_crit="0.9")
    usable = 20 - 3  # max_connections - superuser_reserved_connections

    async def scenario(c: PostgresCollector) -> None:
        seen: list[Status] = []
        r = await until(c, config, "postgres.connections", OK, seen)
        base = r.data.connections_used
        assert r.data.usable == usable
        with sessions(dsn, *["order-service"] * (14 - base)):
            r = await until(c, config, "postgres.connections", WARNING, seen)
            assert checks(r, config)["postgres.connections"].summary.startswith(
                f"14 of {usable} usable connections in use (82%)"
            )
            with sessions(dsn, "order-service", "order-service"):
                r = await until(c, config, "postgres.connections", CRITICAL, seen)
                assert r.data.connections_used == 16
        await until(c, config, "postgres.connections", OK, seen)
        # closed backends leave over a moment, so the way down may pass through warning
        assert seen[:3] == [OK, WARNING, CRITICAL] and seen[-1] == OK

        # every slot taken, ours included: our own connect is refused, clearly
        await c.close()
        with contextlib.ExitStack() as stack:
            fillers = []
            with pytest.raises(psycopg.OperationalError, match="too many clients"):
                for _ in range(25):
                    fillers.append(stack.enter_context(psycopg.connect(dsn, autocommit=True)))
            r = await one(c)
            assert r.error_kind == "unreachable"
            assert "too many clients" in (r.error or "")
            got = checks(r, config)["postgres.reachable"]
            assert got.status == CRITICAL and "too many clients" in got.summary
            fillers[0].close()
            deadline = time.monotonic() + 10
            while not (r := await one(c)).ok:  # the slot frees once that backend has exited
                assert time.monotonic() < deadline, r.error
                await asyncio.sleep(0.1)
        assert ultrawatch_backends(dsn) == 1

    await run(scenario, config)


async def test_backend_killed_mid_session_then_reconnects(own_pg) -> None:
    dsn = own_pg.dsn()
    config = make_config(dsn)

    async def scenario(c: PostgresCollector) -> None:
        assert (await one(c)).ok
        old = c.pid
        own_pg.psql(f"select pg_terminate_backend({int(old)})")
        r = await one(c)
        assert r.error_kind == "unreachable"
        assert r.error and r.error.startswith("connection lost")
        assert "Traceback" not in r.error and "\n" not in r.error
        assert checks(r, config)["postgres.reachable"].status == CRITICAL
        r = await one(c)
        assert r.ok and c.pid != old
        assert ultrawatch_backends(dsn) == 1

    await run(scenario, config)


async def test_server_restart_is_critical_then_reconnects(own_pg) -> None:
    dsn = own_pg.dsn()
    config = make_config(dsn)

    async def scenario(c: PostgresCollector) -> None:
        poller = Poller([c], deadline=5, backoff_base=0.1, backoff_cap=0.5)
        snap = await poller.poll()
        assert checks(snap.readings[0], config)["postgres.reachable"].status == OK
        own_pg.stop()
        try:
            for _ in range(3):  # connection lost, then refused while it is down
                snap = await poller.poll()
                (r,) = snap.readings
                reach = checks(r, config)["postgres.reachable"]
                assert reach.status == CRITICAL, reach.summary
                assert r.stale_since is not None
                await asyncio.sleep(0.2)
        finally:
            own_pg.start()
        deadline = time.monotonic() + 15
        while True:
            (r,) = (await poller.poll()).readings
            if r.ok:
                break
            assert time.monotonic() < deadline, r.error
            await asyncio.sleep(0.2)
        assert checks(r, config)["postgres.reachable"].status == OK
        assert ultrawatch_backends(dsn) == 1

    await run(scenario, config)


async def test_round_hitting_statement_timeout_is_a_timeout_reading_then_recovers(own_pg) -> None:
    """A round that waits on a catalog lock past statement_timeout: a clear
    'timeout' reading (not 'unreachable', not a traceback), then back to ok."""
    dsn = own_pg.dsn()
    config = make_config(dsn, statement_timeout='"200ms"')
    own_pg.psql("drop role if exists uw_newcomer; create role uw_newcomer login")

    async def scenario(c: PostgresCollector) -> None:
        assert (await one(c)).ok  # connected, role names loaded
        # a role the collector has not seen yet: its next round reads pg_roles ...
        own_pg.psql("drop role if exists uw_latecomer; create role uw_latecomer login")
        with contextlib.ExitStack() as stack:
            stack.enter_context(psycopg.connect(own_pg.dsn("uw_latecomer")))
            # ... which waits on this lock until statement_timeout cancels it
            locker = stack.enter_context(psycopg.connect(dsn))
            locker.execute("lock table pg_catalog.pg_authid in access exclusive mode")
            r = await one(c)
            assert not r.ok
            assert r.error_kind == "timeout"
            assert r.error == (
                "monitoring query cancelled by statement_timeout (200ms): the server is "
                "overloaded or the query waits on a lock"
            )
            got = checks(r, config)["postgres.reachable"]
            assert got.status == UNKNOWN
            assert got.summary == f"PostgreSQL not checked: {r.error}"
            locker.rollback()
            r = await one(c)
            assert r.ok, r.error
            assert r.data.by_user["uw_latecomer"] == 1
            assert checks(r, config)["postgres.reachable"].status == OK
        assert ultrawatch_backends(dsn) == 1

    await run(scenario, config)


@pytest.mark.parametrize("value", ["0", '"0s"', '"0.5ms"'])
def test_statement_timeout_below_1ms_is_refused(value: str, write_config) -> None:
    """0 would switch PostgreSQL's statement_timeout off: refused, with the key path."""
    with pytest.raises(ConfigError) as info:
        parse_config(f"[postgres]\nstatement_timeout = {value}\n")
    assert info.value.path == "postgres.statement_timeout"
    assert "expected a duration of at least 1ms" in info.value.message
    path = write_config(f"[postgres]\nstatement_timeout = {value}\n")
    proc = run_cli("config", "check", "--config", str(path))
    assert proc.returncode == 3
    assert proc.stderr.strip() == (
        f"ultrawatch: {path}: postgres.statement_timeout: expected a duration of at least 1ms "
        f"(0 would switch the timeout off), got {'0.5' if '0.5' in value else '0'}ms"
    )
    assert parse_config('[postgres]\nstatement_timeout = "1ms"\n').postgres is not None


# ------------------------------------------------------------------------ roles


async def test_plain_role_says_what_it_cannot_see_and_pg_monitor_sees_all(own_pg) -> None:
    own_pg.psql(
        "drop role if exists uw_plain; drop role if exists uw_mon;"
        "create role uw_plain login; create role uw_mon login in role pg_monitor;"
    )
    dsn = own_pg.dsn()
    plain = make_config(
        own_pg.dsn("uw_plain"), idle_in_transaction_warn='"1h"', connection_budget="10"
    )
    monitor = make_config(
        own_pg.dsn("uw_mon"), idle_in_transaction_warn='"1h"', connection_budget="10"
    )

    async def look(config: Config) -> Reading:
        c = collector_for(config)
        try:
            return await one(c)
        finally:
            await c.close()

    async def scenario(_: PostgresCollector) -> None:
        with sessions(dsn, "order-service") as (stuck,):
            stuck.execute("begin")
            stuck.execute("select 1")
            pid = stuck.info.backend_pid

            r = await look(plain)
            assert r.ok, r.error
            d = r.data
            assert d.hidden_sessions >= 1
            assert {"state", "query", "xact_age_s", "blocked_by"} <= set(d.hidden_fields)
            # still counted (a slot is a slot) and grouped by its visible application name
            assert d.by_service["order-service"].count == 1
            mine = next(s for s in d.sessions if s.pid == pid)
            assert mine.state is None and mine.query is None
            assert "idle in transaction" not in d.by_state  # not guessed
            got = checks(r, plain)["postgres.idle_in_transaction"]
            assert got.status == UNKNOWN and "pg_monitor" in got.summary
            # A hidden row may be a parallel worker (backend_type is hidden too): every
            # count that includes hidden rows is said to be an upper bound.
            assert "backend_type" in d.hidden_fields
            assert "parallel workers" in d.hidden_note
            hidden = d.hidden_sessions
            got = checks(r, plain)
            conn_summary = got["postgres.connections"].summary
            assert conn_summary.startswith(f"at most {d.connections_used} of ")
            assert f"{hidden} of them hidden sessions of other roles" in conn_summary
            assert "parallel workers" in conn_summary
            assert d.by_service["order-service"].hidden == 1
            assert got["postgres.budget.order-service"].summary == (
                "order-service: at most 1 connections, within its budget of 2 "
                "(1 of them hidden, maybe parallel workers)"
            )
            assert got["postgres.budget.user-service"].summary == (
                "user-service: 0 connections, within its budget of 3"
            )
            total = got["postgres.budget.total"].summary
            assert total.startswith("the services hold at most 1 connections; platform budget 10")
            assert "parallel workers" in total

            r = await look(monitor)
            d = r.data
            assert d.hidden_sessions == 0 and d.hidden_fields == []
            assert d.hidden_note == ""
            got = checks(r, monitor)
            assert got["postgres.connections"].summary.startswith(f"{d.connections_used} of ")
            assert "hidden" not in got["postgres.connections"].summary
            assert got["postgres.budget.order-service"].summary == (
                "order-service: 1 connections, within its budget of 2"
            )
            assert d.by_state["idle in transaction"] == 1
            assert d.longest_idle_in_xact.pid == pid
            assert checks(r, monitor)["postgres.idle_in_transaction"].status == OK

    await run(scenario, plain)


# ------------------------------------------------------------------ end to end


def test_check_cli_reports_the_postgres_checks(pg_dsn: str, write_config) -> None:
    path: Path = write_config(
        f"""
[postgres]
dsn = "{pg_dsn}"
connection_budget = 20

[[services]]
name = "order-service"
url = "http://127.0.0.1:9"
pg_application_name = "order-service"
connection_budget = 1
"""
    )
    with sessions(pg_dsn, "order-service", "order-service"):
        proc = run_cli("check", "--only", "postgres", "--format", "json", "--config", str(path))
    out = json.loads(proc.stdout)
    got = {c["id"]: c for c in out["checks"]}
    assert {
        "postgres.reachable",
        "postgres.connections",
        "postgres.budget.order-service",
        "postgres.budget.total",
        "postgres.idle_in_transaction",
        "postgres.blocked",
    } <= set(got)
    assert got["postgres.budget.order-service"]["status"] == "warning"
    assert proc.returncode >= 1  # a warning at least


# ------------------------------------------------------------- judged anew


def test_a_recorded_reading_is_judged_with_the_config_given_now() -> None:
    """Budgets and thresholds come from the config the judge is given, not from
    what the reading recorded (a replay with --config judges everything anew)."""
    from collectors.postgres.data import PostgresData, ServiceCount
    from collectors.postgres.rules import judge_postgres
    from collectors.registry import postgres_services

    data = PostgresData(
        server_version="16.4",
        latency_ms=1.0,
        usable=97,
        connections_used=12,
        connection_budget=20,
        by_service={
            "order-service": ServiceCount(count=3, budget=5, application_names=["order-service"])
        },
    )
    reading = Reading("postgres", "main", 0.0, data=data)
    config = make_config("postgresql://x@127.0.0.1:1/x", connections_warn="0.1")
    assert config.postgres is not None
    got = {c.id: c for c in judge_postgres(reading, config.postgres, postgres_services(config))}
    assert got["postgres.connections"].status == WARNING  # 12% against 10%, not 80%
    # order-service's budget is 2 in this config: over it, whatever was recorded
    assert "order-service 3 over its budget of 2" in got["postgres.connections"].summary
    assert got["postgres.budget.order-service"].status == WARNING
    assert "postgres.budget.total" not in got  # no platform budget in this config
