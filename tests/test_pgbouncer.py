"""PgBouncer: a real pooler (Debian's pgbouncer) in front of the real PostgreSQL,
read through its admin console; saturation, per-service budgets, a paused
database, a restart and a wrong password, and PostgreSQL's DSN pointing at it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest

from collectors.config import parse_config
from collectors.core.model import CheckResult, Report, Status
from collectors.pgbouncer.collector import PgBouncerCollector
from collectors.poller import Poller, build_collectors
from collectors.rules import Rules
from tests.conftest import run_cli
from tests.pgbouncer_fixtures import USERS

SERVICES = """
[[services]]
name = "order-service"
url = "http://127.0.0.1:9"
pg_application_name = "order-service"
connection_budget = 2

[[services]]
name = "payment-service"
url = "http://127.0.0.1:9"
pg_application_name = "payment-service"
connection_budget = 5
pgbouncer_budget = 1
"""


def section(dsn: str, extra: str = "") -> str:
    return f'[pgbouncer]\ndsn = "{dsn}"\n{extra}\n'


def config_for(pgb: Any, extra: str = "", *, user: str = "monitor", services: bool = True) -> Any:
    text = section(pgb.admin_dsn(user), extra) + (SERVICES if services else "")
    return parse_config(text)


async def judged(
    config: Any, collector: PgBouncerCollector | None = None
) -> dict[str, CheckResult]:
    own = collector is None
    c = collector or PgBouncerCollector(config.pgbouncer)
    try:
        poller = Poller([c], deadline=10)
        report: Report = Rules(config).evaluate(await poller.poll())
    finally:
        if own:
            await c.close()
    return {x.id: x for x in report.checks}


@contextlib.asynccontextmanager
async def clients(
    pgb: Any, database: str, apps: list[str], sql: str
) -> AsyncIterator[list[asyncio.Task[Any]]]:
    """One client connection per application name, each running `sql` once."""
    conns = [
        await psycopg.AsyncConnection.connect(
            pgb.dsn("app", database), autocommit=True, application_name=app
        )
        for app in apps
    ]
    tasks = [asyncio.create_task(c.execute(sql)) for c in conns]
    try:
        yield tasks
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in conns:
            with contextlib.suppress(Exception):
                await c.close()


async def until(
    config: Any, collector: PgBouncerCollector, ok: Callable[[dict[str, CheckResult]], bool]
) -> dict[str, CheckResult]:
    deadline = time.monotonic() + 10
    while True:
        checks = await judged(config, collector)
        if ok(checks) or time.monotonic() > deadline:
            return checks
        await asyncio.sleep(0.05)


async def test_a_quiet_pooler_reads_ok_with_every_check(pgbouncer: Any) -> None:
    config = config_for(pgbouncer)
    checks = await judged(config)
    assert checks["pgbouncer.reachable"].status is Status.OK, checks["pgbouncer.reachable"]
    assert "PgBouncer 1." in checks["pgbouncer.reachable"].summary
    for db in ("shop", "orders", "actions"):
        assert f"pgbouncer.pool.{db}" in checks
    assert "pgbouncer.pool.pgbouncer" not in checks  # the admin console is no pool
    assert checks["pgbouncer.clients"].status is Status.OK
    assert "of max_client_conn 100" in checks["pgbouncer.clients"].summary
    assert {"pgbouncer.budget.order-service", "pgbouncer.budget.payment-service"} <= set(checks)
    assert checks["pgbouncer.paused"].status is Status.OK


async def test_saturation_names_the_waiting_services_and_budgets_count_clients(
    pgbouncer: Any,
) -> None:
    # SHOW CLIENTS every round here (the default reads it every 15 s)
    extra = 'waiting_warn = "0.2s"\nwaiting_crit = "0.6s"\nclients_every = "10ms"'
    config = config_for(pgbouncer, extra)
    collector = PgBouncerCollector(config.pgbouncer)
    # pool_size 2: two order-service clients hold both servers, three more queue
    holders = ["order-service", "order-service"]
    queued = ["payment-service", "payment-service", "order-service"]
    try:
        async with clients(pgbouncer, "orders", holders, "select pg_sleep(3)"):
            await until(
                config, collector, lambda c: "2 active" in c["pgbouncer.pool.orders"].summary
            )
            async with clients(pgbouncer, "orders", queued, "select 1"):
                checks = await until(
                    config,
                    collector,
                    lambda c: (
                        c["pgbouncer.pool.orders"].status is Status.CRITICAL
                        and "payment-service 2" in c["pgbouncer.pool.orders"].summary
                    ),
                )
                pool = checks["pgbouncer.pool.orders"]
                assert pool.status is Status.CRITICAL, pool
                assert "3 clients waiting" in pool.summary
                assert "payment-service 2, order-service 1" in pool.summary
                assert "(saturated)" in pool.summary
                assert pool.value is not None and pool.value >= 0.6
                # budgets from SHOW CLIENTS' application_name, not server connections
                order = checks["pgbouncer.budget.order-service"]
                assert order.status is Status.WARNING, order
                assert order.summary.startswith("order-service: 3 client connections")
                payment = checks["pgbouncer.budget.payment-service"]
                assert payment.status is Status.WARNING  # pgbouncer_budget = 1
                assert "over its budget of 1 (2 waiting)" in payment.summary
                # the quiet pools are unaffected
                assert checks["pgbouncer.pool.shop"].status is Status.OK
        checks = await until(
            config,
            collector,
            lambda c: (
                c["pgbouncer.pool.orders"].status is Status.OK
                and c["pgbouncer.budget.order-service"].status is Status.OK
            ),
        )
        assert checks["pgbouncer.pool.orders"].status is Status.OK
        assert checks["pgbouncer.budget.order-service"].status is Status.OK
    finally:
        await collector.close()


async def test_a_paused_database_is_a_warning_until_resumed(pgbouncer: Any) -> None:
    config = config_for(pgbouncer)
    admin = await psycopg.AsyncConnection.connect(
        pgbouncer.admin_dsn(), autocommit=True, prepare_threshold=None
    )
    try:
        await admin.execute("PAUSE shop", prepare=False)
        checks = await judged(config)
        paused = checks["pgbouncer.paused"]
        assert paused.status is Status.WARNING
        assert "paused: shop" in paused.summary
        await admin.execute("RESUME shop", prepare=False)
        assert (await judged(config))["pgbouncer.paused"].status is Status.OK
    finally:
        with contextlib.suppress(Exception):
            await admin.execute("RESUME shop", prepare=False)
        await admin.close()


async def test_a_wrong_password_is_critical_while_postgres_keeps_reading(
    pgbouncer: Any, pg_dsn: str
) -> None:
    bad = pgbouncer.dsn("monitor", "pgbouncer", password="not-the-password-5Tq")
    config = parse_config(
        section(bad, 'databases = ["shop"]') + f'[postgres]\ndsn = "{pg_dsn}"\n' + SERVICES
    )
    poller = Poller(build_collectors(config), deadline=10)
    try:
        report = Rules(config).evaluate(await poller.poll())
    finally:
        await poller.aclose()
    checks = {c.id: c for c in report.checks}
    reach = checks["pgbouncer.reachable"]
    assert reach.status is Status.CRITICAL
    assert "password authentication failed" in reach.summary
    assert "not-the-password-5Tq" not in reach.summary
    # the configured databases and the budgets stay, unknown and saying why
    for cid in ("pgbouncer.pool.shop", "pgbouncer.clients", "pgbouncer.paused"):
        assert checks[cid].status is Status.UNKNOWN
        assert "PgBouncer unreachable: not read" in checks[cid].summary
    assert checks["postgres.reachable"].status is Status.OK
    # behind a pooler, PostgreSQL's per-service counts say whose they are
    assert "behind PgBouncer these are its server connections" in (
        checks["postgres.budget.order-service"].summary
    )


async def test_a_restart_is_critical_then_read_again(own_pgbouncer: Any) -> None:
    pgb = own_pgbouncer()
    config = config_for(pgb, services=False)
    collector = PgBouncerCollector(config.pgbouncer)
    try:
        assert (await judged(config, collector))["pgbouncer.reachable"].status is Status.OK
        pgb.stop()
        down = (await judged(config, collector))["pgbouncer.reachable"]
        assert down.status is Status.CRITICAL
        assert down.summary.startswith("PgBouncer unreachable:")
        pgb.start()
        again = (await judged(config, collector))["pgbouncer.reachable"]
        assert again.status is Status.OK, again
    finally:
        await collector.close()


def test_postgres_dsn_at_the_pooler_is_explained(pgbouncer: Any, write_config: Any) -> None:
    path = write_config(f'[postgres]\ndsn = "{pgbouncer.dsn("app", "shop")}"\n')
    r = run_cli("check", "--config", str(path), "--format", "text")
    assert "postgres.dsn points at a PgBouncer: point it at the server" in r.stdout
    assert "unsupported startup parameter" in r.stdout
    assert USERS["app"] not in r.stdout + r.stderr


async def test_postgres_dsn_at_a_pooler_that_drops_options_is_explained(
    own_pgbouncer: Any,
) -> None:
    pgb = own_pgbouncer(ignore_startup_parameters="extra_float_digits,options")
    config = parse_config(f'[postgres]\ndsn = "{pgb.dsn("app", "shop")}"\n')
    poller = Poller(build_collectors(config), deadline=10)
    try:
        report = Rules(config).evaluate(await poller.poll())
    finally:
        await poller.aclose()
    reach = report.check("postgres.reachable")
    assert reach is not None and reach.status is Status.UNKNOWN
    assert "postgres.dsn points at a PgBouncer" in reach.summary
    assert "statement_timeout 2s did not arrive" in reach.summary


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ("", "pgbouncer.dsn", "expected the admin console, database 'pgbouncer'"),
        ('waiting_warn = "9s"', "pgbouncer.waiting_warn", "expected at most waiting_crit"),
        ("clients_warn = 2", "pgbouncer.clients_warn", "expected"),
    ],
)
def test_config_errors_name_the_key(write_config: Any, extra: str, key: str, words: str) -> None:
    dsn = "postgresql://monitor:pw@127.0.0.1:6432/" + ("shop" if not extra else "pgbouncer")
    path = write_config(section(dsn, extra))
    r = run_cli("config", "check", "--config", str(path))
    assert r.returncode == 3
    assert f"{key}: " in r.stderr and words in r.stderr, r.stderr
    assert ":pw@" not in r.stderr


async def test_show_clients_is_not_read_every_round(pgbouncer: Any) -> None:
    """A row per client connection: read at connect, then every clients_every (15s)."""
    config = config_for(pgbouncer)
    collector = PgBouncerCollector(config.pgbouncer)
    try:
        (first,) = await collector.collect()
        await asyncio.sleep(0.2)
        (second,) = await collector.collect()
    finally:
        await collector.close()
    assert first.data.clients_age_s is not None and first.data.clients_age_s < 0.2
    assert second.data.clients_age_s >= 0.2  # the same SHOW CLIENTS, not read again
    assert second.data.clients is first.data.clients


async def test_a_recorded_reading_reads_back_and_judges_the_same(pgbouncer: Any) -> None:
    import json

    from collectors.core.model import Reading
    from collectors.registry import data_types
    from collectors.rules import judge

    config = config_for(pgbouncer)
    collector = PgBouncerCollector(config.pgbouncer)
    try:
        (reading,) = await collector.collect()
    finally:
        await collector.close()
    back = Reading.from_dict(json.loads(json.dumps(reading.to_dict())), data_types()["pgbouncer"])
    assert back.data == reading.data
    assert judge(back, config) == judge(reading, config)


async def test_a_hung_pgbouncer_times_out_in_command_timeout_then_recovers(
    own_pgbouncer: Any,
) -> None:
    """A PgBouncer that stops answering (SIGSTOP) costs a round command_timeout, not
    psycopg's 5 s attempt to cancel the command on a server that answers nothing."""
    import signal

    pgb = own_pgbouncer()
    config = config_for(pgb, 'command_timeout = "500ms"', services=False)
    collector = PgBouncerCollector(config.pgbouncer)
    try:
        assert (await collector.collect())[0].ok
        pgb.proc.send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            (hung,) = await collector.collect()
            took = time.monotonic() - t0
        finally:
            pgb.proc.send_signal(signal.SIGCONT)
        assert hung.error_kind == "timeout"
        assert "did not answer within 0.5s" in (hung.error or "")
        assert took < 2.0
        for _ in range(50):  # the next rounds reconnect
            (again,) = await collector.collect()
            if again.ok:
                break
            await asyncio.sleep(0.1)
        assert again.ok, again.error
    finally:
        await collector.close()


async def test_a_pooler_down_keeps_the_pool_checks_of_its_last_reading(
    own_pgbouncer: Any,
) -> None:
    """Without `databases` the pool checks are those PgBouncer shows: taken down
    between rounds, the same ids stay, unknown and saying why."""
    from tests.test_stable_checks import (
        assert_same_ids_dependents_unknown,
        ids,
        rounds_before_and_after,
    )

    pgb = own_pgbouncer()
    text = section(pgb.admin_dsn("monitor"), 'connect_timeout = "1s"') + SERVICES
    reports = await rounds_before_and_after(text, pgb.stop)
    first = ids(reports[0])
    assert {"pgbouncer.pool.shop", "pgbouncer.pool.orders", "pgbouncer.pool.actions"} <= set(first)
    assert "pgbouncer.budget.order-service" in first
    assert_same_ids_dependents_unknown(
        reports, "pgbouncer.reachable", "pgbouncer.", "PgBouncer unreachable"
    )
    # and read again, the pools are judged again
    pgb.start()
    config = parse_config(text)
    checks = await judged(config)
    assert checks["pgbouncer.pool.shop"].status is Status.OK


async def test_a_round_the_poller_gives_up_on_leaves_no_stall(own_pgbouncer: Any) -> None:
    """The poller's deadline passing before command_timeout cancels the round: the
    socket is closed first, so psycopg does not spend 5 s asking a hung PgBouncer to
    cancel the command (the collector would stay "still busy"); the next round tries
    again, and once PgBouncer answers, reads it."""
    import signal

    pgb = own_pgbouncer()
    config = config_for(pgb, 'command_timeout = "5s"\nconnect_timeout = "5s"', services=False)
    collector = PgBouncerCollector(config.pgbouncer)
    poller = Poller([collector], deadline=0.3, backoff_base=0.01)
    try:
        assert (await poller.poll()).readings[0].ok
        pgb.proc.send_signal(signal.SIGSTOP)
        try:
            hung = (await poller.poll()).readings[0]
            assert hung.error_kind == "timeout", hung.error
            await asyncio.sleep(0.2)
            still = (await poller.poll()).readings[0]
            assert "still busy" not in (still.error or ""), still.error
        finally:
            pgb.proc.send_signal(signal.SIGCONT)
        t0 = time.monotonic()
        while not (again := (await poller.poll()).readings[0]).ok:
            assert time.monotonic() - t0 < 5, again.error
            await asyncio.sleep(0.05)
    finally:
        await poller.aclose()
