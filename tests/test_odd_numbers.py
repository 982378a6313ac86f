"""NaN, infinities and absurd numbers in a target's answer are `unknown` with the
reason, never read as zero: real HTTP services and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from collectors.config import parse_config
from collectors.core.model import Report, Status
from collectors.poller import Poller, build_collectors
from collectors.rules import Rules
from tests.helpers import http_server, respond
from tests.test_stable_checks import TcpProxy


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


class InfoRewriter(TcpProxy):
    """A real Redis behind a proxy that rewrites one INFO field of each answer:
    what a broken proxy or a Redis-speaking impostor can send, a real Redis cannot."""

    def __init__(self, host: str, port: int, field: bytes, value: bytes) -> None:
        super().__init__(host, port)
        self.field, self.value = field, value

    def rewrite(self, data: bytes) -> bytes:
        # INFO is one bulk string `$<len>\r\n<body>\r\n`; the rewrite keeps it well framed.
        head, _, rest = data.partition(b"\r\n")
        if not (head.startswith(b"$") and b"\r\n" + self.field + b":" in rest):
            return data
        body = rest[: int(head[1:])]
        tail = rest[int(head[1:]) :]
        body = re.sub(rb"(\r\n" + self.field + rb":)[^\r]*", rb"\g<1>" + self.value, body)
        return b"$%d\r\n" % len(body) + body + tail

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection(self.host, self.port)
        self.writers += [writer, up_w]

        async def pump(src, dst, change) -> None:  # type: ignore[no-untyped-def]
            with contextlib.suppress(Exception):
                while data := await src.read(1 << 20):
                    dst.write(change(data))
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pump(reader, up_w, bytes), pump(up_r, writer, self.rewrite))


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        (b"used_memory", b"nan", "INFO used_memory is 'nan' (expected a whole number)"),
        (b"evicted_keys", b"-3", "INFO evicted_keys is '-3' (expected a whole number)"),
        (
            b"maxmemory",
            b"99999999999999999999999",
            "INFO maxmemory is '99999999999999999999999' (expected a whole number)",
        ),
    ],
)
async def test_odd_redis_info_numbers_are_unknown_with_the_reason(
    redis_url: str, field: bytes, value: bytes, why: str
) -> None:
    parts = urlsplit(redis_url)
    assert parts.hostname and parts.port
    proxy = InfoRewriter(parts.hostname, parts.port, field, value)
    port = await proxy.start()
    try:
        report = await judged(
            f"""
[redis]
url = "redis://127.0.0.1:{port}/0"
keyspace_events = "off"
lock_patterns = ["odd-{uuid.uuid4().hex}:*"]
"""
        )
    finally:
        await proxy.close()
    checks = {c.id: c for c in report.checks}
    reach = checks["redis.reachable"]
    assert reach.status is Status.UNKNOWN, reach
    assert why in reach.summary
    # Its dependents are unknown too, with the reason: none reads "0 evictions", ok.
    for cid in ("redis.memory", "redis.evictions", "redis.locks.no_ttl", "redis.locks.stale"):
        assert checks[cid].status is Status.UNKNOWN, checks[cid]
        assert "Redis gave an invalid answer" in checks[cid].summary


async def test_a_rotation_stamp_in_the_future_leaves_the_age_unknown(tmp_path: Path) -> None:
    strong = "k" * 20 + "Zq8#vT2!mW9$rB4^xL7&nP3*"
    env = tmp_path / "secrets.env"
    env.write_text(f"JWT_SECRET={strong}\nJWT_SECRET_ROTATED_AT=2096-01-01T00:00:00Z\n")
    report = await judged(
        f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\nkeys = ["JWT_SECRET"]\n'
    )
    age = next(c for c in report.checks if c.id == "secrets.age")
    assert age.status is Status.UNKNOWN, age
    assert "JWT_SECRET_ROTATED_AT (2096-01-01T00:00:00Z) is" in age.summary
    assert "in the future" in age.summary
    # A stamp a few seconds ahead (clocks differ) is "just now", not unknown.
    env.write_text(f"JWT_SECRET={strong}\nJWT_SECRET_ROTATED_AT={iso_after(5)}\n")
    report = await judged(
        f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\nkeys = ["JWT_SECRET"]\n'
    )
    age = next(c for c in report.checks if c.id == "secrets.age")
    assert age.status is Status.OK, age
    assert "ago" in age.summary and "-" not in age.summary.split("rotated")[1]


def iso_after(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat()
