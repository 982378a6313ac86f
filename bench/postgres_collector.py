"""Benchmark: the PostgreSQL collector's round against a bare
`select count(*) from pg_stat_activity` round trip on the same connection,
with 500 client connections open on an embedded server. Prints medians and
their ratio (target: at most 3).

    uv run python bench/postgres_collector.py [--clients 500] [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

import psycopg

from collectors.config import parse_config
from collectors.poller import build_collectors
from dashboard.demo.embedded import EmbeddedPostgres

SERVICES = ["order-service", "user-service", "product-service", "payment-service"]


def config_text(dsn: str) -> str:
    services = "".join(
        f'\n[[services]]\nname = "{s}"\nurl = "http://127.0.0.1:1"\n'
        f'pg_application_name = "{s}"\nconnection_budget = 5\n'
        for s in SERVICES
    )
    return f'[postgres]\ndsn = "{dsn}"\nconnection_budget = 20\n{services}'


async def open_clients(dsn: str, n: int) -> list[psycopg.AsyncConnection]:
    """n sessions: mostly idle after a query, some idle in transaction, a few active."""
    sem = asyncio.Semaphore(32)
    conns: list[psycopg.AsyncConnection] = []

    async def one(i: int) -> None:
        async with sem:
            app = SERVICES[i % len(SERVICES)] if i % 5 else f"script-{i % 7}"
            c = await psycopg.AsyncConnection.connect(dsn, application_name=app, autocommit=True)
            await c.execute(
                "select count(*) from pg_class where relname like %s", (f"bench_{i}_%",)
            )
            if i % 50 == 0:
                await c.execute("begin")
                await c.execute("select txid_current()")
            conns.append(c)

    await asyncio.gather(*(one(i) for i in range(n)))
    return conns


async def bench(dsn: str, clients: int, rounds: int) -> None:
    config = parse_config(config_text(dsn))
    t = time.perf_counter()
    conns = await open_clients(dsn, clients)
    active = [asyncio.create_task(c.execute("select pg_sleep(600)")) for c in conns[1:6]]
    print(f"opened {len(conns)} client connections in {time.perf_counter() - t:.1f}s")

    # built as the engine builds it (collectors.registry), not by its constructor
    built = build_collectors(config, ["postgres"])
    (collector,) = built
    first = (await collector.collect())[0]
    assert first.ok, first.error
    print(
        f"collector sees {first.data.connections_used} connections, "
        f"{len(first.data.sessions)} sessions listed"
    )
    conn = collector.conn  # type: ignore[attr-defined]
    assert conn is not None

    async def bare() -> float:
        t0 = time.perf_counter()
        async with conn.cursor() as cur:
            await cur.execute("select count(*) from pg_stat_activity")
            await cur.fetchone()
        return time.perf_counter() - t0

    async def full() -> float:
        t0 = time.perf_counter()
        (r,) = await collector.collect()
        elapsed = time.perf_counter() - t0
        assert r.ok, r.error
        return elapsed

    for _ in range(5):  # warm up both paths
        await bare()
        await full()
    b: list[float] = []
    f: list[float] = []
    ratios: list[float] = []
    for _ in range(rounds):
        x, y = await bare(), await full()
        b.append(x)
        f.append(y)
        ratios.append(y / x)
    mb, mf = statistics.median(b), statistics.median(f)
    print(f"bare count(*) round trip : median {mb * 1000:7.2f} ms over {rounds}")
    print(f"collector round          : median {mf * 1000:7.2f} ms over {rounds}")
    print(f"ratio of medians         : {mf / mb:5.2f}  (target <= 3)")
    print(f"median of paired ratios  : {statistics.median(ratios):5.2f}")

    await collector.close()
    for resource in built.shared:
        await resource.aclose()
    for task in active:
        task.cancel()
    for c in conns:
        try:
            await c.close()
        except Exception:
            pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="uw-bench-pg-") as tmp:
        server = EmbeddedPostgres(
            tmp, settings={"max_connections": args.clients + 100, "shared_buffers": "64MB"}
        ).start()
        try:
            print(f"PostgreSQL on port {server.port}, max_connections {args.clients + 100}")
            asyncio.run(bench(server.dsn(), args.clients, args.rounds))
        finally:
            server.stop("immediate")


if __name__ == "__main__":
    main()
