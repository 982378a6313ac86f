"""`check` reads only what the judges need (no session list): its checks are the
ones a round with every detail gives, and the TUI's and recordings' rounds keep
the detail."""

from __future__ import annotations

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
