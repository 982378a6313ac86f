"""Redis lock ages from redis-py's uuid1 tokens: a stuck lock whose idle time other
clients' SET NX retries keep at zero is still seen as old, by `check` (one-shot,
Redis 6.2: no CLIENT NO-TOUCH) and by the continuous collector; against the real
embedded Redis with real redis-py Locks contending for it."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from collectors.config import Config, parse_config
from collectors.core.model import Reading, Status
from collectors.redis.collector import RedisLocksCollector
from collectors.redis.node import token_time
from collectors.redis.rules import is_stale
from collectors.rules import judge
from dashboard.demo.embedded import EmbeddedRedis
from tests.conftest import run_cli

KEY = "lock:inventory:42"
_UUID_EPOCH = 0x01B21DD213814000


def uuid1_at(t: float, clock_seq: int = 0x1234, node: int = 0x0242AC110002) -> uuid.UUID:
    """A version-1 UUID made at unix time `t` (uuid.uuid1 has no clock argument)."""
    ts = int(t * 1e7) + _UUID_EPOCH
    return uuid.UUID(
        fields=(
            ts & 0xFFFFFFFF,
            (ts >> 32) & 0xFFFF,
            ((ts >> 48) & 0x0FFF) | 0x1000,
            ((clock_seq >> 8) & 0x3F) | 0x80,
            clock_seq & 0xFF,
            node,
        )
    )


def config(url: str, **extra: object) -> Config:
    lines = ["[redis]", f'url = "{url}"'] + [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return parse_config("\n".join(lines) + "\n")


def stale_keys(reading: Reading, cfg: Config) -> list[str]:
    """The locks the judge counts as stale under `cfg` (the reading holds ages only)."""
    assert cfg.redis is not None
    return [x.key for x in reading.data.locks if is_stale(x, float(cfg.redis.stale_after))]


def restore_idle(r: redis.Redis, key: str, value: bytes, idle_s: int) -> None:
    """A lock untouched for `idle_s` seconds, without waiting for it."""
    r.set("tmp:dump", value)
    dumped = r.dump("tmp:dump")
    r.delete("tmp:dump")
    r.execute_command("RESTORE", key, 3_600_000, dumped, "IDLETIME", idle_s)


class Contender:
    """Another service's redis-py blocking acquire on a held lock: SET NX every 20 ms
    (each try touches the key, so its idle time stays near zero)."""

    def __init__(self, url: str, key: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.lock = self.client.lock(key, timeout=3600, sleep=0.02)
        self.stop = threading.Event()
        self.tries = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            got = self.lock.acquire(blocking=True, blocking_timeout=0.5)
            assert not got, "the stuck lock was taken: the test setup is wrong"
            self.tries += 1

    def __enter__(self) -> Contender:
        self.thread.start()
        while self.tries == 0:  # it has tried (and waited) at least once
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.client.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    s = EmbeddedRedis(tmp_path / "redis").start()
    yield s
    s.stop()


def hold_stuck_lock(r: redis.Redis, age_s: float) -> bytes:
    """A real redis-py Lock taken `age_s` ago by a holder that died since."""
    token = uuid1_at(time.time() - age_s).hex
    assert r.lock(KEY, timeout=3600).acquire(blocking=False, token=token)
    return token.encode()


def test_check_sees_a_contended_stuck_redis_py_lock_by_its_token(
    server: EmbeddedRedis, write_config
) -> None:
    r = redis.Redis.from_url(server.url)
    try:
        hold_stuck_lock(r, 600)
        # An idle stale lock with a plain owner: its idle time is the age, and the
        # checks must leave it alone (no GET on Redis 6.2).
        restore_idle(r, "lock:plain", b"worker-1", 300)
        path = write_config(f'[redis]\nurl = "{server.url}"\n')
        with Contender(server.url, KEY):
            assert r.object("idletime", KEY) <= 1  # what idle time alone would say
            for _ in range(3):  # a cron job: every check sees it
                # On 6.2 the owner is read only while the lock's idle time is 0: a
                # check that lands as the server's 1 s idle clock ticks past the
                # contender's last try reads it 1 s idle, and is run again (the
                # documented limit; the next try comes within 20 ms).
                for _attempt in range(2):
                    proc = run_cli(
                        "check", "--config", str(path), "--only", "redis", "--format", "json"
                    )
                    assert proc.returncode == 2, proc.stderr
                    checks = {c["id"]: c for c in json.loads(proc.stdout)["checks"]}
                    stale = checks["redis.locks.stale"]
                    if "2 of 2 locks" in stale["summary"]:
                        break
                assert stale["status"] == "critical", stale["summary"]
                assert "2 of 2 locks held longer than 30s" in stale["summary"]
                assert f"oldest {KEY} for 10m (from its redis-py token's time)" in stale["summary"]
                # Redis 6.2: the owner of a lock idle for 5 minutes is not read.
                assert (
                    "owners are read only of locks touched within the same second"
                    in (stale["summary"])
                )
        assert r.object("idletime", "lock:plain") >= 300  # never read
    finally:
        r.close()


async def test_collector_sees_a_contended_stuck_redis_py_lock_by_its_token(
    server: EmbeddedRedis,
) -> None:
    r = redis.Redis.from_url(server.url)
    try:
        token = hold_stuck_lock(r, 600)
        # A busy lock whose token is not a uuid1 (a uuid4): no time in it, so it
        # stays as young as its idle time says: no false alarm.
        r.set("lock:inventory:7", uuid.uuid4().hex, px=600_000)
        cfg = config(server.url)
        with Contender(server.url, KEY), Contender(server.url, "lock:inventory:7"):
            for one_shot in (False, True):

                async def rounds(one_shot: bool = one_shot) -> list[Reading]:
                    col = RedisLocksCollector(cfg.redis, one_shot=one_shot)
                    try:
                        return [(await col.collect())[0] for _ in range(1 if one_shot else 3)]
                    finally:
                        await col.close()

                for reading in await rounds():
                    rows = {x.key: x for x in reading.data.locks}
                    stuck, busy = rows[KEY], rows["lock:inventory:7"]
                    assert stuck.owner == token.decode() and stuck.kind == "redis-py"
                    assert stuck.age_source == "token" and stuck.age_known is True
                    assert stuck.age_s >= 600
                    assert busy.age_source == "idle" and busy.age_s < 30
                    assert stale_keys(reading, cfg) == [KEY]
                    assert reading.data.oldest_age_source == "token"
                    stale = {c.id: c for c in judge(reading, cfg)}["redis.locks.stale"]
                    assert stale.status is Status.CRITICAL, stale.summary
                    assert "(from its redis-py token's time)" in stale.summary
    finally:
        r.close()


async def test_a_token_older_than_the_last_sight_of_the_lock_free_is_a_wait_not_an_age(
    server: EmbeddedRedis,
) -> None:
    """A client that waited 10 minutes in a blocking acquire holds a token 10 minutes
    old; the collector saw the lock held by someone else a moment ago (or, for a new
    key, the last full SCAN did not find it), so the new holder is young."""
    r = redis.Redis.from_url(server.url)
    cfg = config(server.url)
    try:
        r.set(KEY, uuid.uuid1().hex, px=600_000)
        r.set("lock:held", uuid1_at(time.time() - 600).hex, px=600_000)

        async def scenario() -> list[Reading]:
            col = RedisLocksCollector(cfg.redis)
            try:
                first = (await col.collect())[0]
                r.delete(KEY)  # the first holder releases; the waiter gets it
                waited = uuid1_at(time.time() - 600).hex
                # Its TTL (15 minutes) tells the collector the lock changed hands.
                assert r.lock(KEY, timeout=900).acquire(blocking=False, token=waited)
                r.set("lock:new", uuid1_at(time.time() - 600).hex, px=600_000)
                return [first, (await col.collect())[0]]
            finally:
                await col.close()

        first, second = await scenario()
        assert stale_keys(first, cfg) == ["lock:held"]
        rows = {x.key: x for x in second.data.locks}
        assert rows[KEY].age_source == "idle" and rows[KEY].age_s < 30
        assert rows["lock:new"].age_source == "idle" and rows["lock:new"].age_s < 30
        # Held since before we first looked: its token is all there is to go by.
        assert rows["lock:held"].age_source == "token" and rows["lock:held"].age_s >= 600
        assert stale_keys(second, cfg) == ["lock:held"]
    finally:
        r.close()


def test_only_plausible_version_1_tokens_give_a_time() -> None:
    now = time.time()
    made = uuid1_at(now - 600)
    assert token_time(made.hex.encode(), now) == pytest.approx(now - 600, abs=0.001)
    assert token_time(str(made).encode(), now) == pytest.approx(now - 600, abs=0.001)
    assert token_time(uuid.uuid1().hex.encode(), time.time()) is not None
    assert token_time(uuid1_at(now + 3).hex.encode(), now) == now  # small clock skew
    for value in (
        uuid1_at(now + 60).hex,  # the future
        uuid1_at(now - 40 * 86400).hex,  # older than 30 days
        uuid.uuid4().hex,  # no time in it
        f"{42:032x}",
        made.hex[:31],
        made.hex + "0",
        f"-{made.hex[:31]}----",
        "worker-1",
    ):
        assert token_time(value.encode(), now) is None, value
    assert token_time(None, now) is None
    assert token_time(b"\xff" * 32, now) is None
