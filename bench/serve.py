"""`ultrawatch serve` benchmark: 500 services and 10,000 locks per round.

    uv run python bench/serve.py [--rounds 10000] [--scrapes 300] [--every 0.5]

Runs serve's Server (the HTTP server, judging, the alerter, as `serve` runs them) in
this process, fed synthetic rounds (bench/tui.py's: 500 services, 10,000 locks,
~1,500 checks, rows churning) instead of its poll loop, and a real Alertmanager
(Debian's `prometheus-alertmanager`) with a webhook receiver in this process.
Prints:
- /metrics scrape time while rounds run (one every `--every` s, four times the
  default interval's rate, each judged and its /metrics made as `serve` does):
  median and p95 over `--scrapes` scrapes from another process, alternating with
  scrapes of `/` (a constant page on the same server: the reference) and the ratio;
  target p95 under 50 ms;
- RSS after 100 rounds and after `--rounds` rounds (alerts observed and delivered,
  /metrics made every 10 rounds); target growth under 10 MB;
- alert delivery: a service goes down; from the end of the round that raises its
  alert (after `raise_after` rounds) to Alertmanager's webhook notification, against
  the bound of one round plus `group_wait`, five times.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tui import N_LOCKS, N_SERVICES, VARIANTS, snapshot

from collectors.config import parse_config
from collectors.core.model import Snapshot
from dashboard.demo.embedded import free_port
from dashboard.serve import Server
from tests import tui_data as td

INTERVAL = 2.0  # the config's interval: the bound of "within one round"
GROUP_WAIT = 1.0

SCRAPER = r"""
import json, sys, time, urllib.request
base, n = sys.argv[1], int(sys.argv[2])
out = {"metrics": [], "index": [], "bytes": 0}
opener = urllib.request.build_opener()
for i in range(n):
    pair = (("/metrics", "metrics"), ("/", "index"))
    for path, key in (pair if i % 2 else pair[::-1]):
        t0 = time.perf_counter()
        with opener.open(base + path, timeout=10) as r:
            body = r.read()
        out[key].append((time.perf_counter() - t0) * 1000)
        if key == "metrics":
            out["bytes"] = len(body)
    time.sleep(0.013)  # not in step with the rounds
print(json.dumps(out))
"""


def config_text(am_url: str) -> str:
    services = "\n".join(
        f'[[services]]\nname = "svc-{i:03d}"\nurl = "http://127.0.0.1:{20000 + i}"\n'
        for i in range(N_SERVICES)
    )
    return (
        f'[dashboard]\ninterval = "{INTERVAL:g}s"\nplatform = "bench"\n'
        '[postgres]\ndsn = "postgresql://x@127.0.0.1:1/x"\n'
        '[redis]\nurl = "redis://127.0.0.1:1/0"\n'
        f"{services}\n[actions]\naudit_log = '/tmp/ultrawatch-bench-audit.jsonl'\n"
        f'[alertmanager]\nurl = "{am_url}"\nresend = "1m"\n'
    )


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round((len(s) - 1) * q / 100))]


def at(snap: Snapshot, n: int) -> Snapshot:
    return dataclasses.replace(snap, round=n, started_at=time.time())


# ------------------------------------------------------------ Alertmanager


class Webhook:
    """Alertmanager's receiver: when each alert's first notification arrived."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.port = free_port()

    async def start(self) -> Any:
        from aiohttp import web

        async def hook(request: web.Request) -> web.Response:
            body = await request.json()
            now = time.time()
            for a in body.get("alerts", []):
                self.first.setdefault(a["labels"]["alertname"], now)
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner


def start_alertmanager(base: Path, hook_port: int) -> tuple[subprocess.Popen[bytes], str]:
    program = shutil.which("prometheus-alertmanager")
    if program is None:
        sys.exit("prometheus-alertmanager not found: apt-get install -y prometheus-alertmanager")
    (base / "am.yml").write_text(
        "route:\n  receiver: hook\n  group_by: [alertname, platform]\n"
        f"  group_wait: {GROUP_WAIT:g}s\n  group_interval: 1m\n"
        "receivers:\n  - name: hook\n    webhook_configs:\n"
        f"      - url: http://127.0.0.1:{hook_port}/hook\n        send_resolved: false\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            program,
            f"--config.file={base / 'am.yml'}",
            f"--storage.path={base / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(base / "am.log", "wb"),  # noqa: SIM115 (closed with the process)
    )
    import urllib.request

    for _ in range(200):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    sys.exit(f"alertmanager did not start: {(base / 'am.log').read_text()[-500:]}")


# ----------------------------------------------------------------- phases


async def feed(server: Server, base: list[Snapshot], n0: int, count: int, every: float) -> int:
    """`count` rounds, one every `every` seconds (0: as fast as they are judged)."""
    n = n0
    for _ in range(count):
        n += 1
        t0 = time.monotonic()
        await server.round_done(at(base[n % VARIANTS], n))
        await asyncio.sleep(max(0.0, every - (time.monotonic() - t0)))
    return n


async def scrape_phase(
    server: Server, url: str, base: list[Snapshot], scrapes: int, every: float
) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRAPER, url, str(scrapes), stdout=asyncio.subprocess.PIPE
    )
    rounds = asyncio.ensure_future(feed(server, base, 10, 10**9, every))
    out, _ = await proc.communicate()
    rounds.cancel()
    return json.loads(out)


async def rss_phase(
    server: Server, base: list[Snapshot], rounds: int
) -> tuple[dict[int, int], float]:
    me = psutil.Process()
    rss: dict[int, int] = {}
    checkpoints = {100, rounds, *(rounds * k // 4 for k in (1, 2, 3))}
    t0 = time.perf_counter()
    for n in range(1, rounds + 1):
        server.judged(at(base[n % VARIANTS], 1000 + n))
        if n % 10 == 0:
            # /metrics made every 10th round (a scrape every 20 s at a 2 s interval):
            # making it holds nothing across rounds, and doing it every round would
            # triple this phase's time.
            server.exposition.refresh()
            await asyncio.sleep(0)  # the alerter runs
        if n in checkpoints:
            await asyncio.sleep(0.2)
            gc.collect()
            rss[n] = me.memory_info().rss
            show(f"  {n:,} rounds: RSS {rss[n] / 1e6:.1f} MB ({time.perf_counter() - t0:.0f} s)")
    return rss, time.perf_counter() - t0


async def delivery_phase(server: Server, hook: Webhook, base: list[Snapshot]) -> list[float]:
    """Five times: a healthy service goes down; rounds every INTERVAL; from the end
    of the round that raises its alert to Alertmanager's notification."""
    lat = []
    alerter = server.state.alerter
    assert alerter is not None
    for k in range(5):
        victim = f"svc-{101 + k * 2:03d}"  # ok in every variant
        alertname = f"service.{victim}.health"
        raised_at = None
        n = 100_000 + k * 100
        for step in range(12):
            n += 1
            snap = at(base[n % VARIANTS], n)
            if step >= 1:
                readings = tuple(
                    td.service(snap.started_at, victim, down=True) if r.target == victim else r
                    for r in snap.readings
                )
                snap = dataclasses.replace(snap, readings=readings)
            server.judged(snap)  # raised here (observed by the alerter) ...
            if raised_at is None and alertname in alerter.open:
                raised_at = time.time()
            await asyncio.to_thread(server.exposition.refresh)  # ... as round_done does
            if raised_at is not None and alertname in hook.first:
                break
            await asyncio.sleep(INTERVAL)
        if raised_at is None or alertname not in hook.first:
            lat.append(float("inf"))
        else:
            lat.append(hook.first[alertname] - raised_at)
    return lat


def show(line: str) -> None:
    print(line, flush=True)  # each phase as it ends: the RSS phase takes a while


async def run(rounds: int, scrapes: int, every: float) -> None:
    state = Path(tempfile.mkdtemp(prefix="ultrawatch-bench-serve-"))
    hook = Webhook()
    hook_runner = await hook.start()
    am, am_url = start_alertmanager(state, hook.port)
    try:
        config = parse_config(config_text(am_url), "bench.toml")
        base = [snapshot(v) for v in range(VARIANTS)]
        server = Server(config)
        port = await server.start("127.0.0.1", 0)
        assert server.state.alerter is not None
        sender = asyncio.ensure_future(server.state.alerter.run())
        await feed(server, base, 0, 10, 0)
        checks = len(server.state.latest.checks) if server.state.latest else 0
        show(
            f"ultrawatch serve bench: {N_SERVICES} services, {N_LOCKS:,} locks, {checks:,} "
            f"checks per round; /metrics {len(server.exposition.body) / 1024:.0f} KiB"
        )
        show_scrapes(
            await scrape_phase(server, f"http://127.0.0.1:{port}", base, scrapes, every), every
        )
        show_delivery(await delivery_phase(server, hook, base))
        rss, took = await rss_phase(server, base, rounds)
        delivered = sum(u.delivered for u in server.state.alerter.urls)
        show_rss(rss, rounds, took, delivered)
        sender.cancel()
        await server.aclose()
    finally:
        am.terminate()
        am.wait(10)
        await hook_runner.cleanup()
        shutil.rmtree(state, ignore_errors=True)


def show_scrapes(s: dict[str, Any], every: float) -> None:
    m, i = s["metrics"], s["index"]
    show(
        f"/metrics scrape while a round is judged every {every:g} s: median "
        f"{statistics.median(m):.1f} ms, p95 {pct(m, 95):.1f} ms over {len(m)} scrapes "
        f"(target p95 < 50 ms); reference `/` median {statistics.median(i):.1f} ms, p95 "
        f"{pct(i, 95):.1f} ms: p95 ratio {pct(m, 95) / pct(i, 95):.1f}"
    )


def show_delivery(lat: list[float]) -> None:
    bound = INTERVAL + GROUP_WAIT
    shown = ", ".join(f"{x:.2f}" for x in lat)
    show(
        f"alert raised -> Alertmanager's notification: {shown} s (max {max(lat):.2f} s; "
        f"bound one round + group_wait = {bound:g} s)"
    )


def show_rss(rss: dict[int, int], rounds: int, took: float, delivered: int) -> None:
    curve = ", ".join(f"{n:,}: {v / 1e6:.1f}" for n, v in sorted(rss.items()))
    grow = (rss[rounds] - rss[100]) / 1e6
    show(f"RSS (MB) by rounds: {curve}")
    show(
        f"RSS after 100 rounds {rss[100] / 1e6:.1f} MB, after {rounds:,} {rss[rounds] / 1e6:.1f} "
        f"MB: grew {grow:+.1f} MB (target < 10 MB); {rounds:,} rounds judged in {took:.0f} s, "
        f"{delivered} deliveries to Alertmanager"
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=10_000)
    p.add_argument("--scrapes", type=int, default=300)
    p.add_argument("--every", type=float, default=0.5)
    a = p.parse_args()
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    asyncio.run(run(a.rounds, a.scrapes, a.every))


if __name__ == "__main__":
    main()
