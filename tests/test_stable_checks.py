"""A stable set of checks: every round of one config reports the same check ids.

Each target is read once for real, then taken down (a TCP proxy in front of the
real PostgreSQL or Redis closed, the HTTP server shut, the process killed, the
store file removed): the next rounds have the same ids, the target's `reachable`
check critical and every check that depends on it `unknown` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from collectors.config import parse_config
from collectors.core.model import CheckResult, Report, Status
from collectors.poller import Poller, build_collectors
from collectors.rules import Rules
from tests.helpers import http_server, respond

FP = "sha256:" + "0" * 12


class TcpProxy:
    """A real TCP forwarder on 127.0.0.1 in front of a real server; `close()` is the
    server going away: the port stops listening and every open connection drops."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection(self.host, self.port)
        self.writers += [writer, up_w]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pump(reader, up_w), pump(up_r, writer))

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            with contextlib.suppress(Exception):
                w.transport.abort()
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def proxied(url: str) -> AsyncIterator[tuple[str, TcpProxy]]:
    """`url` with its host:port replaced by a proxy's."""
    parts = urlsplit(url)
    assert parts.hostname and parts.port, f"a URL with host and port expected: {url}"
    proxy = TcpProxy(parts.hostname, parts.port)
    port = await proxy.start()
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@127.0.0.1:{port}" if auth else f"127.0.0.1:{port}"
    try:
        yield urlunsplit(parts._replace(netloc=netloc)), proxy
    finally:
        with contextlib.suppress(Exception):
            await proxy.close()


async def rounds_before_and_after(text: str, take_down, after: int = 2) -> list[Report]:
    """One good round, `take_down()`, then `after` rounds, judged by one Rules with
    hysteresis (as the TUI judges them)."""
    config = parse_config(text)
    poller = Poller(build_collectors(config), deadline=5, backoff_base=0.01)
    rules = Rules(config, raise_after=2, clear_after=2)
    try:
        reports = [rules.evaluate(await poller.poll())]
        result = take_down()
        if asyncio.iscoroutine(result):
            await result
        for _ in range(after):
            await asyncio.sleep(0.05)
            reports.append(rules.evaluate(await poller.poll()))
    finally:
        await poller.aclose()
    return reports


def ids(report: Report) -> list[str]:
    return sorted(c.id for c in report.checks)


def by_id(report: Report) -> dict[str, CheckResult]:
    return {c.id: c for c in report.checks}


def assert_same_ids_dependents_unknown(
    reports: list[Report], reachable: str, prefix: str, why: str
) -> None:
    first = reports[0]
    assert by_id(first)[reachable].status is Status.OK, by_id(first)[reachable].summary
    # raise_after = 2: the reachable check is critical from the second failed round
    assert by_id(reports[-1])[reachable].status is Status.CRITICAL
    for later in reports[1:]:
        assert ids(later) == ids(first)
        assert later.status is not Status.OK  # never reads OK while the target is down
        dependents = [c for c in later.checks if c.id.startswith(prefix) and c.id != reachable]
        assert dependents
        for c in dependents:
            assert c.status is Status.UNKNOWN, (c.id, c.status, c.summary)
            assert c.summary == f"{why}: not read", (c.id, c.summary)


async def test_postgres_down_keeps_its_checks_unknown(pg_dsn: str) -> None:
    async with proxied(pg_dsn) as (dsn, proxy):
        text = f"""
[postgres]
dsn = "{dsn}"
connection_budget = 20
[[postgres.invariants]]
name = "negative_stock"
sql = "select 0"
crit_above = 0
[[services]]
name = "order-service"
url = "http://127.0.0.1:9"
pg_application_name = "order-service"
connection_budget = 5
"""
        reports = await rounds_before_and_after(text, proxy.close)
    first = ids(reports[0])
    for cid in (
        "postgres.connections",
        "postgres.budget.order-service",
        "postgres.budget.total",
        "postgres.idle_in_transaction",
        "postgres.blocked",
        "postgres.invariant.negative_stock",
    ):
        assert cid in first
    assert_same_ids_dependents_unknown(
        reports, "postgres.reachable", "postgres.", "PostgreSQL unreachable"
    )


async def test_redis_down_keeps_its_checks_unknown(redis_url: str) -> None:
    async with proxied(redis_url) as (url, proxy):
        text = f"""
[redis]
url = "{url}"
socket_timeout = "1s"
keyspace_events = "off"
lock_patterns = ["stable-{uuid.uuid4().hex}:*"]
"""
        reports = await rounds_before_and_after(text, proxy.close)
    first = ids(reports[0])
    assert first == [
        "redis.evictions",
        "redis.locks.no_ttl",
        "redis.locks.stale",
        "redis.memory",
        "redis.reachable",
    ]
    assert_same_ids_dependents_unknown(reports, "redis.reachable", "redis.", "Redis unreachable")
    # Unknown outranks ok: the round does not read OK while Redis is down.
    assert reports[-1].status is Status.CRITICAL
    assert reports[-1].counts["unknown"] == 4


def _um_service(state: dict[str, object]):
    def handle(req) -> None:  # type: ignore[no-untyped-def]
        if req.path == "/health":
            respond(req, 200, '{"status":"pass","draining":false,"activeOperations":0}')
        elif req.path == "/health/memory":
            respond(req, 200, '{"rss":1,"heapUsed":1,"listeners":{"total":3,"byEvent":{"a":3}}}')
        elif req.path == "/health/security":
            respond(req, 200, f'{{"jwt":{{"accessKeyFingerprint":"{FP}"}}}}')
        else:
            respond(req, 404, "{}")

    return handle


async def test_service_down_keeps_latency_and_listeners_unknown() -> None:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(http_server(_um_service({})))
        text = f"""
[[services]]
name = "order-service"
url = "{url}"
detail_paths = ["/health/memory"]
"""
        reports = await rounds_before_and_after(text, stack.close)
    first = ids(reports[0])
    assert first == [
        "service.order-service.health",
        "service.order-service.heap",
        "service.order-service.latency",
        "service.order-service.listeners",
    ]
    for later in reports[1:]:
        assert ids(later) == first
        checks = by_id(later)
        assert "connection refused" in checks["service.order-service.health"].summary
        for cid in (
            "service.order-service.latency",
            "service.order-service.listeners",
            "service.order-service.heap",
        ):
            assert checks[cid].status is Status.UNKNOWN
            assert checks[cid].summary == "order-service unreachable: not read"


async def test_a_service_without_its_memory_answer_still_has_a_listeners_check() -> None:
    def handle(req) -> None:  # type: ignore[no-untyped-def]
        if req.path == "/health":
            respond(req, 200, '{"status":"pass"}')
        else:
            respond(req, 500, "boom")

    with http_server(handle) as url:
        text = f"""
[[services]]
name = "cart"
url = "{url}"
detail_paths = ["/health/memory"]
"""
        config = parse_config(text)
        poller = Poller(build_collectors(config), deadline=5)
        try:
            report = Rules(config).evaluate(await poller.poll())
        finally:
            await poller.aclose()
    lis = by_id(report)["service.cart.listeners"]
    assert lis.status is Status.UNKNOWN
    assert lis.summary.startswith("listener counts not read: /health/memory: ")


async def test_process_gone_keeps_its_growth_check_unknown() -> None:
    tag = f"stable-{uuid.uuid4().hex}"
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time, sys; time.sleep(60)", tag],
        stdout=subprocess.DEVNULL,
    )
    try:
        text = f"""
[[processes]]
name = "worker"
cmdline = "{tag}"
"""

        def kill() -> None:
            proc.kill()
            proc.wait(5)

        reports = await rounds_before_and_after(text, kill)
    finally:
        proc.kill()
        proc.wait(5)
    assert ids(reports[0]) == ["process.worker.memory", "process.worker.memory_growth"]
    assert by_id(reports[-1])["process.worker.memory"].status is Status.CRITICAL
    for later in reports[1:]:
        assert ids(later) == ids(reports[0])
        checks = by_id(later)
        growth = checks["process.worker.memory_growth"]
        assert growth.status is Status.UNKNOWN
        assert growth.summary == "process not found: not read"


async def test_secret_store_gone_keeps_every_secrets_check_unknown(tmp_path: Path) -> None:
    env = tmp_path / "platform.env"
    env.write_text("JWT_SECRET=" + "a1B2" * 16 + "\nJWT_REFRESH_SECRET=" + "z9Y8" * 16 + "\n")
    words = tmp_path / "words.txt"
    words.write_text("hunter2\n")
    with http_server(_um_service({})) as url:
        text = f"""
[[services]]
name = "user-service"
url = "{url}"
detail_paths = ["/health/security"]
[secrets]
store = {{ kind = "dotenv", path = "{env}" }}
wordlist = "{words}"
"""
        reports = await rounds_before_and_after(text, env.unlink)
    first = ids(reports[0])
    for cid in (
        "secrets.store",
        "secrets.JWT_SECRET.strength",
        "secrets.JWT_REFRESH_SECRET.strength",
        "secrets.wordlist",
        "secrets.distinct",
        "secrets.age",
        "service.user-service.secret_fingerprint",
    ):
        assert cid in first
    for later in reports[1:]:
        assert ids(later) == first
        checks = by_id(later)
        assert "file not found" in checks["secrets.store"].summary
        for cid in first:
            secrets_check = cid.startswith("secrets.") or cid.endswith(".secret_fingerprint")
            if secrets_check and cid != "secrets.store":
                assert checks[cid].status is Status.UNKNOWN, cid
                assert checks[cid].summary == "secret store unreachable: not read", cid
        fp = checks["service.user-service.secret_fingerprint"]
        assert (fp.component, fp.target) == ("services", "user-service")


async def test_hysteresis_keeps_what_was_raised_while_a_target_is_not_read(redis_url: str) -> None:
    """A check raised before the outage is unknown while Redis cannot be read, and is
    back as it was (not re-raised from scratch, not cleared) once Redis answers."""
    import redis.asyncio as aioredis

    prefix = f"stable-{uuid.uuid4().hex}"
    client = aioredis.from_url(redis_url)
    await client.set(f"{prefix}:sku-1", "owner")  # no TTL: redis.locks.no_ttl critical
    try:
        async with proxied(redis_url) as (url, proxy):
            text = f"""
[redis]
url = "{url}"
socket_timeout = "1s"
keyspace_events = "off"
lock_patterns = ["{prefix}:*"]
"""
            config = parse_config(text)
            poller = Poller(build_collectors(config), deadline=5, backoff_base=0.01)
            rules = Rules(config, raise_after=2, clear_after=2)
            try:
                seen = [by_id(rules.evaluate(await poller.poll()))["redis.locks.no_ttl"]]
                await proxy.close()
                await asyncio.sleep(0.05)
                seen.append(by_id(rules.evaluate(await poller.poll()))["redis.locks.no_ttl"])
                # Redis answers again (straight, the proxy is gone): same Rules
                fresh = Poller(build_collectors(parse_config(text.replace(url, redis_url))))
                try:
                    seen.append(by_id(rules.evaluate(await fresh.poll()))["redis.locks.no_ttl"])
                finally:
                    await fresh.aclose()
            finally:
                await poller.aclose()
    finally:
        await client.delete(f"{prefix}:sku-1")
        await client.aclose()
    assert [c.status for c in seen] == [Status.CRITICAL, Status.UNKNOWN, Status.CRITICAL]
    assert "raising" not in seen[2].summary and "clearing" not in seen[2].summary
