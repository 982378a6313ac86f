"""Benchmark: the PgBouncer collector's round against a bare `SHOW POOLS` round
trip on the same admin-console connection, with 1,000 client connections through a
real PgBouncer (Debian's package) in front of an embedded PostgreSQL. Rounds and
bare round trips alternate; prints medians and their ratio (target: at most 3).

A round reads SHOW POOLS, and SHOW DATABASES every fifth round; SHOW CLIENTS (a row per client) and
SHOW STATS are read every `clients_every` (15 s by default) and when clients start
or stop waiting. Their cost is measured too (alternating with the bare round trip),
and the amortised cost of a round at the default interval (2 s) is printed.

    uv run python bench/pgbouncer.py [--clients 1000] [--rounds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from collectors.config import parse_config
from collectors.pgbouncer.collector import DATABASES_EVERY, show
from collectors.pgbouncer.config import instances
from collectors.poller import build_collectors
from dashboard.demo.embedded import EmbeddedPostgres
from dashboard.demo.pgbouncer import EmbeddedPgBouncer, pgbouncer_binary

SERVICES = ["order-service", "user-service", "product-service", "payment-service"]
USERS = {"admin": "bench-admin", "app": "bench-app"}


def config_text(dsn: str) -> str:
    services = "".join(
        f'\n[[services]]\nname = "{s}"\nurl = "http://127.0.0.1:1"\n'
        f'pg_application_name = "{s}"\nconnection_budget = 300\n'
        for s in SERVICES
    )
    return f'[pgbouncer]\ndsn = "{dsn}"\n{services}'


async def open_clients(pgb: EmbeddedPgBouncer, n: int) -> list[psycopg.AsyncConnection]:
    """n client connections through the pooler, each after one query (idle in it)."""
    sem = asyncio.Semaphore(32)
    conns: list[psycopg.AsyncConnection] = []

    async def one(i: int) -> None:
        async with sem:
            app = SERVICES[i % len(SERVICES)] if i % 5 else f"script-{i % 7}"
            c = await psycopg.AsyncConnection.connect(
                pgb.dsn("app", "shop"), application_name=app, autocommit=True
            )
            await c.execute("select 1")
            conns.append(c)

    await asyncio.gather(*(one(i) for i in range(n)))
    return conns


async def bench(pgb: EmbeddedPgBouncer, clients: int, rounds: int) -> None:
    config = parse_config(config_text(pgb.admin_dsn()))
    t = time.perf_counter()
    conns = await open_clients(pgb, clients)
    print(f"opened {len(conns)} client connections in {time.perf_counter() - t:.1f}s")

    built = build_collectors(config, ["pgbouncer"])
    (collector,) = built
    first = (await collector.collect())[0]
    assert first.ok, first.error
    print(
        f"collector sees {first.data.clients_used} clients, "
        f"{first.data.clients_total} in SHOW CLIENTS, {len(first.data.pools)} pools"
    )
    conn = collector.conn  # type: ignore[attr-defined]
    assert conn is not None

    async def bare() -> float:
        t0 = time.perf_counter()
        async with conn.cursor() as cur:
            await cur.execute("SHOW POOLS", prepare=False)
            await cur.fetchall()
        return time.perf_counter() - t0

    async def full() -> float:
        t0 = time.perf_counter()
        (r,) = await collector.collect()
        elapsed = time.perf_counter() - t0
        assert r.ok, r.error
        return elapsed

    async def clients_read() -> float:
        t0 = time.perf_counter()
        await show(conn, "SHOW CLIENTS", 10)
        await show(conn, "SHOW STATS", 10)
        return time.perf_counter() - t0

    for _ in range(10):  # warm up both paths
        await bare()
        await full()
    b: list[float] = []
    f: list[float] = []
    for _ in range(rounds):
        x, y = await bare(), await full()
        b.append(x)
        f.append(y)
    bc: list[float] = []
    c: list[float] = []
    for _ in range(max(10, rounds // 10)):
        bc.append(await bare())
        c.append(await clients_read())
    mb = statistics.median(b)
    # A cycle of DATABASES_EVERY rounds has one SHOW DATABASES: the median round at
    # each place of the cycle, averaged over the cycle, against the median bare one.
    n = DATABASES_EVERY
    offset = collector.rounds % n  # type: ignore[attr-defined]
    places = [statistics.median(f[k::n]) for k in range(n)]
    ratio = statistics.mean(places) / mb
    shown = ", ".join(f"{x * 1000:.3f}" for x in places[-offset:] + places[:-offset])
    clients = statistics.median(x / y for x, y in zip(c, bc, strict=True))
    every = float(instances(config.pgbouncer)[0].clients_every)
    print(f"bare SHOW POOLS round trip       : median {mb * 1000:7.3f} ms over {rounds}")
    print(f"collector round                  : median {statistics.median(f) * 1000:7.3f} ms")
    print(f"median round by place in the cycle: {shown} ms")
    print(f"ratio, cycle mean / bare         : {ratio:5.2f}  (target <= 3)")
    print(f"SHOW CLIENTS + SHOW STATS        : {clients:.0f}x bare (paired median)")
    print(
        f"amortised at interval 2s, clients_every {every:g}s: "
        f"{ratio + clients * 2.0 / every:5.2f}x bare"
    )

    await collector.close()
    for resource in built.shared:
        await resource.aclose()
    for c in conns:
        try:
            await c.close()
        except Exception:
            pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    if pgbouncer_binary() is None:
        sys.exit("pgbouncer not found: apt-get install -y pgbouncer")
    with tempfile.TemporaryDirectory(prefix="uw-bench-pgb-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg").start()
        srv = f"host=127.0.0.1 port={server.port} dbname=postgres user=postgres"
        pgb = EmbeddedPgBouncer(
            Path(tmp) / "pgbouncer",
            {"shop": f"{srv} pool_size=20"},
            USERS,
            settings={"max_client_conn": args.clients + 100},
        ).start()
        try:
            print(f"PgBouncer on port {pgb.port}, max_client_conn {args.clients + 100}")
            asyncio.run(bench(pgb, args.clients, args.rounds))
        finally:
            pgb.stop()
            server.stop("immediate")


if __name__ == "__main__":
    main()
