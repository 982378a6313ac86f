"""NaN, infinities and absurd numbers in a target's answer are `unknown` with the
reason, never read as zero: real HTTP services and the real PostgreSQL."""

from __future__ import annotations

import pytest

from collectors.config import parse_config
from collectors.core.model import Report, Status
from collectors.poller import Poller, build_collectors
from collectors.rules import Rules
from tests.helpers import http_server, respond


async def judged(text: str) -> Report:
    config = parse_config(text)
    poller = Poller(build_collectors(config), deadline=5)
    try:
        return Rules(config).evaluate(await poller.poll())
    finally:
        await poller.aclose()


def service(health: str, memory: str):
    def handle(req) -> None:  # type: ignore[no-untyped-def]
        if req.path == "/health":
            respond(req, 200, health)
        elif req.path == "/health/memory":
            respond(req, 200, memory)
        else:
            respond(req, 404, "{}")

    return handle


OK_HEALTH = '{"status":"pass","draining":false,"activeOperations":2}'


@pytest.mark.parametrize(
    ("memory", "why"),
    [
        ('{"listeners":{"total":NaN}}', "listeners.total is NaN in /health/memory"),
        ('{"listeners":{"total":Infinity}}', "listeners.total is Infinity in /health/memory"),
        (
            '{"listeners":{"total":3,"byEvent":{"order.created":-Infinity}}}',
            "listeners.byEvent.order.created is -Infinity in /health/memory",
        ),
        ('{"listeners":{"total":-4}}', "listeners.total is -4 (negative) in /health/memory"),
        (
            '{"listeners":{"total":1e300}}',
            "listeners.total is 1e+300 (absurdly large) in /health/memory",
        ),
        (
            '{"listeners":{"total":2,"maxPerEvent":NaN}}',
            "listeners.maxPerEvent is NaN in /health/memory",
        ),
    ],
)
async def test_odd_listener_counts_are_unknown_with_the_reason(memory: str, why: str) -> None:
    with http_server(service(OK_HEALTH, memory)) as url:
        report = await judged(
            f'[[services]]\nname = "order-service"\nurl = "{url}"\n'
            'detail_paths = ["/health/memory"]\n'
        )
    lis = report.check("service.order-service.listeners")
    assert lis is not None
    assert lis.status is Status.UNKNOWN
    assert lis.summary == f"listener counts unusable: {why}"
    assert lis.value is None
    assert "0 listeners" not in lis.summary


async def test_sane_listener_counts_still_judged() -> None:
    memory = '{"listeners":{"total":12,"maxPerEvent":10,"byEvent":{"order.created":12}}}'
    with http_server(service(OK_HEALTH, memory)) as url:
        report = await judged(
            f'[[services]]\nname = "order-service"\nurl = "{url}"\n'
            'detail_paths = ["/health/memory"]\n'
        )
    lis = report.check("service.order-service.listeners")
    assert lis is not None and lis.status is Status.WARNING
    assert lis.summary.startswith("12 listeners")


async def test_odd_pool_memory_and_active_operations_are_said_not_shown() -> None:
    health = '{"status":"pass","draining":false,"activeOperations":NaN}'
    memory = '{"rss":-1,"heapUsed":Infinity,"pool":{"max":5,"active":NaN}}'
    with http_server(service(health, memory)) as url:
        config = parse_config(
            f'[[services]]\nname = "cart"\nurl = "{url}"\ndetail_paths = ["/health/memory"]\n'
        )
        poller = Poller(build_collectors(config), deadline=5)
        try:
            snapshot = await poller.poll()
        finally:
            await poller.aclose()
    report = Rules(config).evaluate(snapshot)
    data = snapshot.readings[0].data
    assert data.active_operations is None
    assert data.memory.rss is None and data.memory.heapUsed is None
    assert data.pool.max == 5 and data.pool.active is None
    health = report.check("service.cart.health")
    assert health is not None
    assert "activeOperations NaN in /health" in health.summary
    assert "rss -1 (negative) in /health/memory" in health.summary
    assert "active operations" not in health.summary  # no "nan active operations"


async def test_invariant_returning_nan_or_infinity_is_unknown(pg_dsn: str) -> None:
    text = f"""
[postgres]
dsn = "{pg_dsn}"
[[postgres.invariants]]
name = "nan"
sql = "select 'NaN'::float8"
crit_above = 0
[[postgres.invariants]]
name = "inf"
sql = "select 'Infinity'::numeric"
crit_above = 0
[[postgres.invariants]]
name = "fine"
sql = "select 0"
crit_above = 0
"""
    report = await judged(text)
    for name, shown in (("nan", "NaN"), ("inf", "Infinity")):
        check = report.check(f"postgres.invariant.{name}")
        assert check is not None
        assert check.status is Status.UNKNOWN
        assert check.summary == (
            f"{name}: not checked: returned {shown} (expected a finite number)"
        )
    fine = report.check("postgres.invariant.fine")
    assert fine is not None and fine.status is Status.OK
