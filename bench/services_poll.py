"""Poll 500 /health endpoints that each answer after 50 ms; compare to the floor.

One local server process (aiohttp, one port, 500 paths) answers every
`/<name>/health` after 50 ms with an UltraMarket body.

1. In process: ServicesCollector polls all 500 through the shared HttpClient; a full
   round is compared with its floor `ceil(500 / concurrency) * 50 ms` (target: ratio
   <= 1.3), and the client's CPU time per endpoint polled is reported in microseconds.
2. As the user runs it (`--user`, the default; `--no-user` skips it): a cold one-shot
   `ultrawatch check --only services` process (its JSON `duration_ms` is the round),
   alternating with a cold bare-aiohttp process doing the same 500 GETs at the same
   concurrency (the best a Python client does cold, on the same loaded machine); then
   the warm rounds of `ultrawatch check --watch 1 --only services`; then the peer,
   Prometheus's blackbox_exporter, probing the same 500 through its `/probe` endpoint,
   64 probes in flight: wall time of the 500 probes and the exporter's CPU per probe
   (Debian: `apt-get install prometheus-blackbox-exporter`; skipped with that command
   when absent); and a cProfile summary of one cold run.

    uv run python bench/services_poll.py [--rounds 7] [--concurrency 64 128]
        [--engine aiohttp httpx] [--no-user] [--cold 7] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import userrun

SERVER = r"""
import asyncio, sys
from aiohttp import web

DELAY = float(sys.argv[1])
BODY = b'{"status":"pass","serviceId":"bench","draining":false,"activeOperations":1}'

async def health(request):
    await asyncio.sleep(DELAY)
    return web.Response(body=BODY, content_type="application/json")

async def main():
    app = web.Application()
    app.router.add_get("/{name}/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def config_text(port: int, endpoints: int, concurrency: int, engine: str) -> str:
    text = '[dashboard]\ncollector_timeout = "60s"\n'  # measure, do not cut the slow engine
    text += f'[http]\nconcurrency = {concurrency}\ntimeout = "30s"\nengine = "{engine}"\n'
    for i in range(endpoints):
        text += f'[[services]]\nname = "s{i}"\nurl = "http://127.0.0.1:{port}/s{i}"\n'
    return text


async def measure(
    port: int, endpoints: int, concurrency: int, rounds: int, engine: str
) -> dict[str, float]:
    from collectors.config import parse_config
    from collectors.poller import build_collectors

    config = parse_config(config_text(port, endpoints, concurrency, engine))
    built = build_collectors(config, ["services"])  # as the engine builds it
    (collector,) = built
    try:
        await collector.collect()  # warm-up: connections opened
        walls, cpus = [], []
        for _ in range(rounds):
            c0, w0 = time.process_time(), time.perf_counter()
            readings = await collector.collect()
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
            bad = [r for r in readings if not r.ok or r.data.status != "ok"]
            if bad:
                raise SystemExit(f"{len(bad)} endpoints failed, e.g. {bad[0].error}")
    finally:
        await collector.close()
        for resource in built.shared:  # the one HttpClient
            await resource.aclose()
    return {"wall": statistics.median(walls), "cpu": statistics.median(cpus)}


# The reference for a cold one-shot: a process that imports aiohttp and does the same
# GETs at the same concurrency, nothing else; it prints its round in seconds.
BARE = r"""
import asyncio, sys, time
import aiohttp

async def main(port, n, conc):
    sem = asyncio.Semaphore(conc)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as s:
        async def one(i):
            async with sem, s.get(f"http://127.0.0.1:{port}/s{i}/health") as r:
                await r.read()
                assert r.status == 200
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        print(time.perf_counter() - t0)

asyncio.run(main(*map(int, sys.argv[1:])))
"""

BLACKBOX = "prometheus-blackbox-exporter"
BLACKBOX_CONFIG = """modules:
  http_2xx:
    prober: http
    timeout: 10s
    http:
      preferred_ip_protocol: ip4
"""


def user_figures(port: int, args: argparse.Namespace, floor: float) -> None:
    """The figures a user meets: cold one-shot and warm --watch, and the peer."""
    with tempfile.TemporaryDirectory(prefix="uw-bench-svc-") as tmp:
        config = Path(tmp, "ultrawatch.toml")
        config.write_text(config_text(port, args.endpoints, 64, "aiohttp"))
        check = ["--only", "services", "--config", str(config), "--timeout", "30"]
        bare = [sys.executable, "-c", BARE, str(port), str(args.endpoints), "64"]
        userrun.cold_check(check), userrun.timed(bare)  # fill the caches
        ours, refs = [], []
        for _ in range(args.cold):
            ours.append(userrun.cold_check(check))
            out, wall, cpu = userrun.timed(bare)
            refs.append((float(out), wall, cpu))
        # every /health answered (latency may warn on a loaded machine)
        bad = [c for c in ours[-1]["checks"] if c["id"].endswith(".health") and c["status"] != "ok"]
        if bad:
            raise SystemExit(f"{len(bad)} checks not ok, e.g. {bad[0]}")
        rnd = statistics.median(r["duration_ms"] for r in ours) / 1000
        ref = statistics.median(r[0] for r in refs)
        print(f"\ncold one-shot, {args.cold} alternating runs (medians):")
        print(
            f"  ultrawatch check --only services: round {rnd * 1000:.0f} ms "
            f"(floor {floor * 1000:.0f}: {rnd / floor:.2f}x; bare aiohttp {ref * 1000:.0f} ms: "
            f"{rnd / ref:.2f}x), process wall "
            f"{statistics.median(r['wall'] for r in ours) * 1000:.0f} ms, CPU "
            f"{statistics.median(r['cpu'] for r in ours) * 1000:.0f} ms "
            f"({statistics.median(r['cpu'] for r in ours) / args.endpoints * 1e6:.0f} us/endpoint)"
        )
        print(
            f"  bare aiohttp process: round {ref * 1000:.0f} ms ({ref / floor:.2f}x the floor), "
            f"wall {statistics.median(r[1] for r in refs) * 1000:.0f} ms, CPU "
            f"{statistics.median(r[2] for r in refs) * 1000:.0f} ms"
        )
        with userrun.Watch(check) as watch:
            rounds, cpu = watch.rounds(args.rounds)
        warm = statistics.median(r["duration_ms"] for r in rounds) / 1000
        print(
            f"warm: check --watch 1, {args.rounds} rounds: median round {warm * 1000:.0f} ms "
            f"({warm / floor:.2f}x the floor), CPU {cpu / args.rounds / args.endpoints * 1e6:.0f} "
            "us/endpoint"
        )
        blackbox(port, args, floor, Path(tmp))
        if args.profile:
            print("\nprofile of one cold `ultrawatch check --only services`:")
            print(userrun.profile_cold(check))


def blackbox(port: int, args: argparse.Namespace, floor: float, tmp: Path) -> None:
    exe = shutil.which(BLACKBOX)
    if exe is None:
        print(f"peer: {BLACKBOX} not installed (apt-get install -y {BLACKBOX}): skipped")
        return
    (tmp / "blackbox.yml").write_text(BLACKBOX_CONFIG)
    from dashboard.demo.embedded import free_port, wait_for_port

    listen = free_port()
    proc = subprocess.Popen(
        [exe, f"--config.file={tmp / 'blackbox.yml'}", f"--web.listen-address=127.0.0.1:{listen}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", listen, 10)
        walls, cpus = [], []
        asyncio.run(_probe_all(listen, port, args.endpoints))  # warm-up
        for _ in range(args.rounds):
            c0 = userrun.proc_cpu(proc.pid)
            walls.append(asyncio.run(_probe_all(listen, port, args.endpoints)))
            cpus.append(userrun.proc_cpu(proc.pid) - c0)
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        print(
            f"peer: blackbox_exporter /probe (http_2xx), 64 in flight, {args.rounds} rounds: "
            f"median {wall * 1000:.0f} ms ({wall / floor:.2f}x the floor), exporter CPU "
            f"{cpu / args.endpoints * 1e6:.0f} us/probe (the driver's, i.e. Prometheus's, not "
            "counted)"
        )
    finally:
        proc.terminate()
        proc.wait()


async def _probe_all(listen: int, port: int, n: int) -> float:
    import aiohttp

    sem = asyncio.Semaphore(64)
    base = f"http://127.0.0.1:{listen}/probe?module=http_2xx&target="
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as s:

        async def one(i: int) -> None:
            url = f"{base}http://127.0.0.1:{port}/s{i}/health"
            async with sem, s.get(url) as r:
                text = await r.text()
                if "probe_success 1" not in text:
                    raise SystemExit(f"blackbox probe failed: {text[-300:]}")

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoints", type=int, default=500)
    ap.add_argument("--delay", type=float, default=0.05)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--engine", nargs="+", default=["aiohttp", "httpx"], help="[http] engine")
    ap.add_argument("--user", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--in-process", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--cold", type=int, default=7, help="cold one-shot runs")
    ap.add_argument("--profile", action="store_true", help="cProfile of one cold check")
    args = ap.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(args.delay)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        print(
            f"{args.endpoints} endpoints answering after {args.delay * 1000:.0f} ms, "
            f"median of {args.rounds} rounds"
        )
        print(f"machine: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        if args.in_process:
            print(
                f"{'engine':>8} {'concurrency':>11} {'floor ms':>9} {'round ms':>9} {'ratio':>6} "
                f"{'client CPU us/endpoint':>23}"
            )
        for engine in args.engine if args.in_process else []:
            for conc in args.concurrency:
                r = asyncio.run(measure(port, args.endpoints, conc, args.rounds, engine))
                floor = math.ceil(args.endpoints / conc) * args.delay
                print(
                    f"{engine:>8} {conc:>11} {floor * 1000:>9.0f} {r['wall'] * 1000:>9.0f} "
                    f"{r['wall'] / floor:>6.2f} {r['cpu'] / args.endpoints * 1e6:>23.0f}",
                    flush=True,
                )
        if args.user:
            user_figures(port, args, math.ceil(args.endpoints / 64) * args.delay)
        print(f"machine: load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
