"""Poll 500 /health endpoints that each answer after 50 ms; compare to the floor.

One local server process (aiohttp, one port, 500 paths) answers every
`/<name>/health` after 50 ms with an UltraMarket body. ServicesCollector polls
all 500 through the shared HttpClient; a full round is compared with its floor
`ceil(500 / concurrency) * 50 ms` measured in the same run (target: ratio <= 1.3),
and the client's CPU time per endpoint polled is reported in microseconds.

    uv run python bench/services_poll.py [--rounds 7] [--concurrency 64 128]
        [--engine aiohttp httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import subprocess
import sys
import time

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoints", type=int, default=500)
    ap.add_argument("--delay", type=float, default=0.05)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--engine", nargs="+", default=["aiohttp", "httpx"], help="[http] engine")
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
        print(
            f"{'engine':>8} {'concurrency':>11} {'floor ms':>9} {'round ms':>9} {'ratio':>6} "
            f"{'client CPU us/endpoint':>23}"
        )
        for engine in args.engine:
            for conc in args.concurrency:
                r = asyncio.run(measure(port, args.endpoints, conc, args.rounds, engine))
                floor = math.ceil(args.endpoints / conc) * args.delay
                print(
                    f"{engine:>8} {conc:>11} {floor * 1000:>9.0f} {r['wall'] * 1000:>9.0f} "
                    f"{r['wall'] / floor:>6.2f} {r['cpu'] / args.endpoints * 1e6:>23.0f}",
                    flush=True,
                )
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
