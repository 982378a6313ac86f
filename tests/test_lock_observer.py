"""Zero observer effect: watching locks (the collector the TUI, `check --watch` and
`record` run) never changes the idle time, TTL or value another observer reads, on
Redis 6.2 (no CLIENT NO-TOUCH: values are read only where that leaves no trace) and
on Valkey 8.1 (CLIENT NO-TOUCH). The wall time is shortened: many rounds back to
back, then the idle times are compared with the time that passed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import redis

from collectors.config import parse_config
from collectors.redis.collector import RedisLocksCollector
from collectors.redis.node import PEEK
from tests.conftest import ULTRAWATCH, run_cli

ROUNDS = 60  # at the default 2 s interval, two minutes of watching


def restore_idle(r: redis.Redis, key: str, value: bytes, idle_s: int, ttl_ms: int = 0) -> None:
    """A lock untouched for `idle_s` seconds (ttl_ms 0: never expires), without waiting."""
    r.set("tmp:dump", value)
    dumped = r.dump("tmp:dump")
    r.delete("tmp:dump")
    r.execute_command("RESTORE", key, ttl_ms, dumped, "IDLETIME", idle_s, "REPLACE")


def state(r: redis.Redis, keys: list[str]) -> dict[str, tuple[int, int]]:
    """(idle, pttl) per key: OBJECT and PTTL leave the idle time alone."""
    return {k: (r.object("idletime", k), r.pttl(k)) for k in keys}


def one_shot_oldest(path: Path) -> tuple[float, str]:
    proc = run_cli("check", "--config", str(path), "--only", "redis", "--format", "json")
    assert proc.returncode == 2, proc.stderr  # the lock without TTL is critical
    checks = {c["id"]: c for c in json.loads(proc.stdout)["checks"]}
    stale = checks["redis.locks.stale"]
    return float(stale["value"]), stale["summary"]


async def test_watching_leaves_every_lock_as_a_one_shot_check_sees_it(
    lock_url: str, lock_prefix: str, write_config, tmp_path: Path
) -> None:
    p = lock_prefix
    r = redis.Redis.from_url(lock_url)
    stuck, stale, young = f"{p}stuck", f"{p}stale", f"{p}young"
    keys = [stuck, stale, young]
    try:
        restore_idle(r, stuck, b"worker-1", 1200)  # stuck for 20 minutes, no TTL
        restore_idle(r, stale, b"c0ffee", 300, ttl_ms=3_600_000)
        r.set(young, "fresh-holder", px=3_600_000)  # just taken: its idle time is 0
        path = write_config(
            f'[dashboard]\ninterval = "100ms"\n[redis]\nurl = "{lock_url}"\n'
            f'lock_patterns = ["{p}*"]\nstale_after = "30s"\n'
        )
        t0 = time.monotonic()
        before = state(r, keys)
        oldest0, summary0 = one_shot_oldest(path)
        t0b = time.monotonic()
        assert oldest0 >= 1200 and stuck in summary0

        # The collector as the TUI runs it: ROUNDS rounds, every lock read each round.
        cfg = parse_config(path.read_text())
        assert cfg.redis is not None
        col = RedisLocksCollector(cfg.redis)
        try:
            for _ in range(ROUNDS):
                (reading,) = await col.collect()
                assert reading.ok, reading.error
        finally:
            await col.close()
        rows = {x.key: x for x in reading.data.locks}
        assert rows[stuck].age_s >= 1200 and rows[stale].age_s >= 300
        # `record` and `check --watch`, each for a few rounds.
        rec = run_cli(
            "record", str(tmp_path / "rec.sqlite"), "--config", str(path), "--rounds", "10"
        )
        assert rec.returncode == 0, rec.stderr
        watch = subprocess.Popen(
            [ULTRAWATCH, "check", "--config", str(path), "--only", "redis", "--watch", "0.1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=os.environ.copy(),
            text=True,
        )
        try:
            assert watch.stdout is not None
            lines = [watch.stdout.readline() for _ in range(10)]
            assert all(json.loads(x)["schema"] == "ultrawatch.check/v1" for x in lines)
        finally:
            watch.send_signal(signal.SIGINT)
            watch.wait(10)
            if watch.stdout is not None:
                watch.stdout.close()

        after = state(r, keys)
        elapsed = time.monotonic() - t0
        for k in keys:
            idle0, pttl0 = before[k]
            idle1, pttl1 = after[k]
            # Idle times kept growing with the clock (1 s resolution): never reset.
            assert idle0 + int(elapsed) - 1 <= idle1 <= idle0 + elapsed + 1, (k, idle0, idle1)
            assert pttl0 == -1 if k == stuck else pttl1 <= pttl0
        t1 = time.monotonic()
        oldest1, summary1 = one_shot_oldest(path)
        t1b = time.monotonic()
        # The one-shot check after the watching sees the same age, older by the time
        # passed between the two checks (ages in whole seconds: +-1).
        grown = oldest1 - oldest0
        assert t1 - t0b - 1 <= grown <= t1b - t0 + 1, (oldest0, oldest1, t1b - t0)
        assert stuck in summary1
        # Values untouched (read last: on Redis 6.2 this GET resets the idle time).
        assert r.get(stuck) == b"worker-1" and r.get(young) == b"fresh-holder"
    finally:
        r.delete(*keys)
        r.close()


def test_the_commands_ultrawatch_reads_with_never_touch_a_key(
    lock_url: str, lock_prefix: str
) -> None:
    """The facts the rule rests on, checked on each server: TYPE, PTTL, EXISTS, SCAN,
    OBJECT and PEEK leave the idle time alone; GET (without CLIENT NO-TOUCH) does not."""
    key = f"{lock_prefix}k"
    r = redis.Redis.from_url(lock_url)
    try:
        reads = {
            "TYPE": lambda: r.type(key),
            "PTTL": lambda: r.pttl(key),
            "EXISTS": lambda: r.exists(key),
            "SCAN": lambda: list(r.scan_iter(f"{lock_prefix}*")),
            "OBJECT": lambda: r.object("encoding", key),
            "PEEK": lambda: r.eval(PEEK, 1, key),
        }
        for name, read in reads.items():
            restore_idle(r, key, b"holder", 100)
            answer = read()
            assert r.object("idletime", key) >= 100, name
            if name == "PEEK":
                assert answer == [b"string"]  # idle: the value is not read
        restore_idle(r, key, b"holder", 100)
        r.get(key)  # what every read of a value did before: the age is gone
        assert r.object("idletime", key) <= 1
        # A lock touched this second: PEEK reads its value (within a few tries, as a
        # second may turn between the SET and the script).
        for _ in range(5):
            r.set(key, "just-taken")
            if r.eval(PEEK, 1, key) == [b"string", b"just-taken"]:
                break
        else:
            raise AssertionError("PEEK never read a lock touched this second")
    finally:
        r.delete(key)
        r.close()
