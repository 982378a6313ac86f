"""`check` reads only what the judges need (no session list): its checks are the
ones a round with every detail gives, and the TUI's and recordings' rounds keep
the detail."""

from __future__ import annotations

import asyncio

import psycopg

from collectors.config import parse_config
from collectors.poller import Poller, build_collectors, judging_only
from collectors.rules import Rules


def _config(pg_dsn: str):
    return parse_config(
        f'[postgres]\ndsn = "{pg_dsn}"\nconnection_budget = 20\n'
        '[[services]]\nname = "order-service"\nurl = "http://127.0.0.1:1"\n'
        'pg_application_name = "uw-detail-test"\nconnection_budget = 1\n'
    )


async def test_judging_only_rounds_give_the_same_checks_without_the_session_list(
    pg_dsn: str,
) -> None:
    config = _config(pg_dsn)
    # Two sessions of the service (over its budget of 1), one idle in transaction.
    clients = [
        await psycopg.AsyncConnection.connect(
            pg_dsn, application_name="uw-detail-test", autocommit=True
        )
        for _ in range(2)
    ]
    full = Poller(build_collectors(config, ["postgres"]), deadline=5)
    lean_collectors = build_collectors(config, ["postgres"])
    judging_only(lean_collectors)
    lean = Poller(lean_collectors, deadline=5)
    try:
        await clients[0].execute("begin")
        await clients[0].execute("select 1")
        (a,) = (await full.poll()).readings
        (b,) = (await lean.poll()).readings
        assert a.ok and b.ok, (a.error, b.error)
        assert {s.application_name for s in a.data.sessions} >= {"uw-detail-test"}
        assert b.data.sessions == []
        assert b.data.by_service["order-service"].count == 2
        ja = {c.id: (c.status, c.summary) for c in Rules(config).evaluate(await full.poll()).checks}
        jb = {c.id: (c.status, c.summary) for c in Rules(config).evaluate(await lean.poll()).checks}
        assert ja.keys() == jb.keys()
        assert jb["postgres.budget.order-service"][0].value != "ok"  # 2 over a budget of 1
        for check_id in ja:
            if check_id not in ("postgres.reachable", "postgres.idle_in_transaction"):
                assert ja[check_id] == jb[check_id], check_id  # the same verdict and words
        assert ja["postgres.idle_in_transaction"][0] == jb["postgres.idle_in_transaction"][0]
    finally:
        await full.aclose()
        await lean.aclose()
        for c in clients:
            await c.close()


async def _rounds(config, wait_for_blocked: bool = False):  # type: ignore[no-untyped-def]
    """One round with every detail and one for judges alone, on two collectors."""
    full = Poller(build_collectors(config, ["postgres"]), deadline=5)
    lean_collectors = build_collectors(config, ["postgres"])
    judging_only(lean_collectors)
    lean = Poller(lean_collectors, deadline=5)
    try:
        await full.poll()  # both connected: each counts the other's backend
        await lean.poll()
        for _ in range(100):  # the waiter reaches its lock wait
            sa, sb = await full.poll(), await lean.poll()
            (a,), (b,) = sa.readings, sb.readings
            assert a.ok and b.ok, (a.error, b.error)
            if not wait_for_blocked or (a.data.blocked and b.data.blocked):
                return sa, sb
            await asyncio.sleep(0.02)
        raise AssertionError("no blocked session seen")
    finally:
        await full.aclose()
        await lean.aclose()


def _facts(d):  # type: ignore[no-untyped-def]
    """What the judges read of a reading, less the ages (taken a moment apart)."""
    pick = lambda w: None if w is None else (w.pid, w.service)  # noqa: E731
    return {
        "connections_used": d.connections_used,
        "by_service": d.by_service,
        "by_state": d.by_state,
        "by_database": d.by_database,
        "by_user": d.by_user,
        "hidden_sessions": d.hidden_sessions,
        "hidden_fields": d.hidden_fields,
        "blocked": [(b.pid, b.service, b.blocked_by, b.query) for b in d.blocked],
        "blocked_total": d.blocked_total,
        "oldest_xact": pick(d.oldest_xact),
        "longest_idle_in_xact": pick(d.longest_idle_in_xact),
        "xmin_pid": d.xmin_pid,
    }


async def test_server_side_counts_read_what_every_row_reads(pg_dsn: str) -> None:
    """The judges' round counts on the server (JUDGE_SQL) and fetches only the rows
    a judge names: the same counts, blocked sessions and oldest ones as one row per
    backend gives, seen by a superuser and by a role that sees others' rows hidden."""
    admin = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
    if not await (
        await admin.execute("select 1 from pg_roles where rolname = 'uw_detail_plain'")
    ).fetchone():
        await admin.execute("create role uw_detail_plain login")
    plain_dsn = pg_dsn.replace("postgres@", "uw_detail_plain@", 1)

    async def connect(app: str, dsn: str = pg_dsn) -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(dsn, application_name=app, autocommit=True)

    holder = await connect("uw-detail-test")
    waiter = await connect("uw-detail-waiter")
    reader = await connect("uw-detail-reader")
    plain = await connect("uw-detail-plain", plain_dsn)
    wait = None
    try:
        await holder.execute("begin")
        await holder.execute("select pg_advisory_xact_lock(918273)")
        await reader.execute("begin isolation level repeatable read")
        await reader.execute("select count(*) from pg_class")  # holds an xmin
        await plain.execute("begin")
        await plain.execute("select 1")
        wait = asyncio.create_task(waiter.execute("select pg_advisory_lock(918273)"))
        for config in (_config(pg_dsn), _config(plain_dsn)):
            sa, sb = await _rounds(config, wait_for_blocked=config.postgres.dsn == pg_dsn)
            (a,), (b,) = sa.readings, sb.readings
            assert b.data.sessions == [] and a.data.sessions
            assert _facts(a.data) == _facts(b.data)
            ja = {c.id: c.status for c in Rules(config).evaluate(sa).checks}
            jb = {c.id: c.status for c in Rules(config).evaluate(sb).checks}
            assert ja == jb
        # what the superuser's rounds saw, so the comparison above compared something
        _, sb = await _rounds(_config(pg_dsn), wait_for_blocked=True)
        (b,) = sb.readings
        assert b.data.blocked[0].pid == waiter.info.backend_pid
        assert b.data.blocked[0].blocked_by == [holder.info.backend_pid]
        assert b.data.blocked[0].query == "select pg_advisory_lock(918273)"
        # both hold the same xmin (no transaction id assigned since): the tie is
        # broken by backend slot on both paths, compared above
        assert b.data.xmin_pid in (reader.info.backend_pid, waiter.info.backend_pid)
        assert b.data.by_service["order-service"].count == 1
        assert b.data.by_state["idle in transaction"] >= 3
        _, sb = await _rounds(_config(plain_dsn))
        (b,) = sb.readings
        assert b.data.hidden_sessions >= 4 and b.data.by_service["order-service"].hidden == 1
    finally:
        await holder.execute("rollback")
        if wait is not None:
            await wait
        for c in (holder, waiter, reader, plain, admin):
            await c.close()
