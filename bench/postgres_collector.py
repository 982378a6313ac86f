"""Benchmark: the PostgreSQL round against a bare
`select count(*) from pg_stat_activity` round trip, with 500 client connections
open on an embedded server. Prints medians and their ratios (target: at most 3).

1. In process: the collector alone, and the whole poll round (`Poller.poll`, the
   `duration_ms` a round reports), each alternating with the bare query on the same
   connection; with a cProfile summary of the rounds (`--profile`). Twice: with the
   session list, as the TUI and recordings poll (ROUND_SQL), then for judges alone,
   as `check` polls (JUDGE_SQL, counted on the server).
2. As the user runs it: the warm rounds of `ultrawatch check --watch 1 --only
   postgres` (their `duration_ms`), each followed by the bare query on the bench's
   own connection; and cold one-shot `check --only postgres` processes alternating
   with a cold process that connects and runs the bare query.
3. The peer, pg_activity (PyPI `pg_activity`, a bench-only dependency: run this
   script with `uv run --with pg_activity python bench/postgres_collector.py`;
   skipped with that command when absent): its refresh's query set as its UI runs it
   (server information and activities; not its curses drawing nor its local-process
   scan), against ultrawatch's warm round: server time per refresh/round from
   `pg_stat_statements` (each tool on its own role), and client CPU per refresh/round.

    uv run [--with pg_activity] python bench/postgres_collector.py [--clients 500]
        [--rounds 200] [--watch-rounds 30] [--cold 7] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import userrun

from collectors.config import parse_config
from collectors.poller import Poller, build_collectors
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


async def poll_rounds(
    collector: Any, bare: Callable[[], Awaitable[float]], rounds: int, profile: bool
) -> None:
    # The whole round as `check --watch` reports it: the poller around the collector
    # (its tasks, and the escaping of every string in the reading).
    poller = Poller([collector], deadline=5.0)
    b, p = [], []
    for _ in range(rounds):
        b.append(await bare())
        p.append((await poller.poll()).duration_ms / 1000)
    mb, mp = statistics.median(b), statistics.median(p)
    print(f"poll round (duration_ms) : median {mp * 1000:7.2f} ms, bare {mb * 1000:.2f} ms")
    print(f"ratio of medians         : {mp / mb:5.2f}  (target <= 3)")
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(rounds):
            await poller.poll()
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
        print(f"profile of {rounds} poll rounds (own time):")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


async def bench(
    dsn: str, clients: int, rounds: int, profile: bool, user: argparse.Namespace
) -> None:
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

    # As the TUI and recordings poll (every row, the session list), then as `check`
    # and `check --watch` poll (judging_only: JUDGE_SQL counts on the server).
    for detail, label in ((True, "with the session list (TUI)"), (False, "judges only (check)")):
        collector.detail = detail  # type: ignore[attr-defined]
        print(f"\n-- rounds {label}")
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
        print(f"collector alone          : median {mf * 1000:7.2f} ms over {rounds}")
        print(f"ratio of medians         : {mf / mb:5.2f}  (target <= 3)")
        print(f"median of paired ratios  : {statistics.median(ratios):5.2f}")
        await poll_rounds(collector, bare, rounds, profile)

    await collector.close()
    for resource in built.shared:
        await resource.aclose()
    if user.user:
        # its own autocommit connection: inside a transaction pg_stat_activity is read once
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as own:
            await user_figures(dsn, own, user)
    for task in active:
        task.cancel()
    for c in conns:
        try:
            await c.close()
        except Exception:
            pass


BARE_QUERY = "select count(*) from pg_stat_activity"

# A cold reference: a process that connects and runs the bare query; prints seconds.
COLD_BARE = r"""
import sys, time
import psycopg
t0 = time.perf_counter()
with psycopg.connect(sys.argv[1], autocommit=True) as c:
    c.execute("select count(*) from pg_stat_activity").fetchone()
print(time.perf_counter() - t0)
"""

# pg_activity's refresh, as its UI loop runs it (ui.py: server information, then the
# activities), N times; prints JSON with the wall and CPU seconds per refresh.
PGA = r"""
import json, sys, time
from pgactivity import data as pga

dsn, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
d = pga.Data.pg_connect(host=host, port=port, user="pga", database="postgres")
info = None
walls, cpus = [], []
for i in range(n + 1):
    c0, w0 = time.process_time(), time.perf_counter()
    info = d.pg_get_server_information(prev_server_info=info)
    procs = d.pg_get_activities(1)
    if i:  # the first refresh is the warm-up
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    time.sleep(float(sys.argv[5]))
print(json.dumps({"walls": walls, "cpus": cpus, "procs": len(procs),
                  "version": __import__("pgactivity").__version__}))
"""


def _config_file(dsn: str, tmp: str) -> Path:
    path = Path(tmp, "ultrawatch.toml")
    path.write_text(config_text(dsn))
    return path


async def user_figures(dsn: str, conn: psycopg.AsyncConnection, args: argparse.Namespace) -> None:
    """`check --watch` and one-shot `check` processes, and pg_activity beside them."""

    async def bare() -> float:
        t0 = time.perf_counter()
        await (await conn.execute(BARE_QUERY)).fetchone()
        return time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="uw-bench-pg-user-") as tmp:
        uw_dsn = dsn.replace("//postgres@", "//uw@")
        config = _config_file(uw_dsn, tmp)
        check = ["--only", "postgres", "--config", str(config)]
        rounds, bares = [], []
        with userrun.Watch(check) as watch:
            watch.rounds(3)  # warm-up
            cpu = 0.0
            for _ in range(args.watch_rounds):
                got, used = await asyncio.to_thread(watch.rounds, 1)
                rounds.append(got[0]["duration_ms"] / 1000)
                cpu += used  # the round read after the one `rounds` skips
                bares.append(await bare())
        mr, mb = statistics.median(rounds), statistics.median(bares)
        print(
            f"\nwarm: check --watch 1 --only postgres, {args.watch_rounds} rounds, each "
            f"followed by the bare query: round {mr * 1000:.2f} ms vs bare {mb * 1000:.2f} ms: "
            f"**{mr / mb:.2f}x** (target <= 3); client CPU "
            f"{cpu / args.watch_rounds * 1000:.1f} ms per round (round, judging, JSON out)"
        )
        userrun.cold_check(check), userrun.timed([sys.executable, "-c", COLD_BARE, dsn])
        ours, refs = [], []
        for _ in range(args.cold):
            ours.append(userrun.cold_check(check))
            out, _wall, _cpu = userrun.timed([sys.executable, "-c", COLD_BARE, dsn])
            refs.append(float(out))
        mo = statistics.median(r["duration_ms"] for r in ours) / 1000
        mr = statistics.median(refs)
        print(
            f"cold: check --only postgres, {args.cold} alternating runs: round (connect "
            f"included) {mo * 1000:.1f} ms vs a cold connect + bare query {mr * 1000:.1f} ms: "
            f"{mo / mr:.2f}x; process wall "
            f"{statistics.median(r['wall'] for r in ours) * 1000:.0f} ms, CPU "
            f"{statistics.median(r['cpu'] for r in ours) * 1000:.0f} ms"
        )
        await peer(dsn, conn, check, args)


async def peer(
    dsn: str, conn: psycopg.AsyncConnection, check: list[str], args: argparse.Namespace
) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", "import pgactivity"], capture_output=True, env=userrun.env()
    )
    if probe.returncode != 0:
        print(
            "peer: pg_activity not installed: run `uv run --with pg_activity python "
            "bench/postgres_collector.py` (bench only, never a product dependency)"
        )
        return
    host, port = "127.0.0.1", dsn.rsplit(":", 1)[1].split("/")[0]
    n = args.watch_rounds

    async def server_ms(role: str) -> tuple[float, int]:
        cur = await conn.execute(
            "select coalesce(sum(total_exec_time), 0), coalesce(sum(calls), 0) "
            "from pg_stat_statements s join pg_roles r on r.oid = s.userid where r.rolname = %s",
            (role,),
        )
        row = await cur.fetchone()
        assert row is not None
        return float(row[0]), int(row[1])

    await conn.execute("select pg_stat_statements_reset()")
    pga_out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", PGA, dsn, host, port, str(n), "1"],
        capture_output=True,
        text=True,
        env=userrun.env(),
    )
    if pga_out.returncode != 0:
        print(f"peer: pg_activity failed: {pga_out.stderr[-500:]}")
        return
    pga = json.loads(pga_out.stdout)
    pga_ms, pga_calls = await server_ms("pga")
    with userrun.Watch(check) as watch:
        await asyncio.to_thread(watch.rounds, 2)  # connected, statements prepared
        await conn.execute("select pg_stat_statements_reset()")
        got, cpu = await asyncio.to_thread(watch.rounds, n)
        uw_ms, uw_calls = await server_ms("uw")
    # `rounds` reads one line before it starts counting: n + 1 rounds reached the server
    uw_per = uw_ms / (n + 1)
    pga_per = pga_ms / (n + 1)
    print(
        f"peer: pg_activity {pga['version']} refresh (server information + activities, "
        f"{pga['procs']} sessions listed), {n} refreshes 1 s apart:"
    )
    print(
        f"  server time per refresh {pga_per:.2f} ms ({pga_calls / (n + 1):.0f} statements), "
        f"client CPU {statistics.median(pga['cpus']) * 1000:.1f} ms, wall "
        f"{statistics.median(pga['walls']) * 1000:.1f} ms"
    )
    print(
        f"  ultrawatch round: server time {uw_per:.2f} ms ({uw_calls / (n + 1):.0f} statements), "
        f"client CPU {cpu / n * 1000:.1f} ms (round, judging, JSON out), round "
        f"{statistics.median(r['duration_ms'] for r in got):.2f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--watch-rounds", type=int, default=30)
    ap.add_argument("--cold", type=int, default=7)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--user", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="uw-bench-pg-") as tmp:
        server = EmbeddedPostgres(
            tmp,
            settings={
                "max_connections": args.clients + 100,
                "shared_buffers": "64MB",
                "shared_preload_libraries": "pg_stat_statements",
            },
        ).start()
        try:
            server.psql(
                "create extension pg_stat_statements;"
                "create role uw login superuser; create role pga login superuser;"
            )
            print(f"PostgreSQL on port {server.port}, max_connections {args.clients + 100}")
            print(f"machine: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
            asyncio.run(bench(server.dsn(), args.clients, args.rounds, args.profile, args))
            print(f"machine: load average {os.getloadavg()[0]:.1f} at the end")
        finally:
            server.stop("immediate")


if __name__ == "__main__":
    main()
