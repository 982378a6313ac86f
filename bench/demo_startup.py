"""Time from `ultrawatch demo --serve` to its config on stdout, every service answering /health.

    uv run python bench/demo_startup.py [--runs 3] [--scenario incident]

Each run starts the demo from nothing (a fresh temporary state directory: initdb,
Redis, schema, four service processes), reads the config it prints, confirms that
every service in it answers /health, then stops it with SIGTERM. Reference in the
same run: the embedded PostgreSQL alone (initdb + start), the largest fixed part.
Prints every run and the medians; target: median under 10 s.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.config import parse_config  # noqa: E402
from dashboard.demo.embedded import EmbeddedPostgres  # noqa: E402

ULTRAWATCH = str(Path(sys.executable).with_name("ultrawatch"))
TARGET_S = 10.0


def one_run(scenario: str) -> tuple[float, float]:
    """(seconds to config, seconds to stop)"""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [ULTRAWATCH, "demo", "--serve", "--scenario", scenario],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    out = b""
    try:
        while b"\naudit_log = " not in out or not out.endswith(b"\n"):
            if proc.poll() is not None:
                raise SystemExit(f"the demo exited with {proc.returncode}")
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            if not ready:
                raise SystemExit("no config after 60 s")
            out += os.read(proc.stdout.fileno(), 65536)
        elapsed = time.perf_counter() - t0
        config = parse_config(out.decode())
        for svc in config.services:
            r = httpx.get(f"{str(svc.url).rstrip('/')}{svc.health_path}", timeout=5)
            if r.status_code != 200:
                raise SystemExit(f"{svc.name} answered {r.status_code} after the config")
    finally:
        t1 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        proc.stdout.close()
    return elapsed, time.perf_counter() - t1


def postgres_alone() -> float:
    with tempfile.TemporaryDirectory(prefix="uw-bench-pg-") as d:
        t0 = time.perf_counter()
        pg = EmbeddedPostgres(d).start()
        elapsed = time.perf_counter() - t0
        pg.stop()
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--scenario", default="incident")
    args = p.parse_args()
    starts, stops, refs = [], [], []
    for i in range(args.runs):
        ref = postgres_alone()
        start, stop = one_run(args.scenario)
        refs.append(ref)
        starts.append(start)
        stops.append(stop)
        print(
            f"run {i + 1}: config after {start:.2f} s, stopped in {stop:.2f} s "
            f"(embedded PostgreSQL alone: {ref:.2f} s)"
        )
    med, ref = statistics.median(starts), statistics.median(refs)
    print(
        f"demo --serve --scenario {args.scenario}: median {med:.2f} s to config with every "
        f"service healthy (target < {TARGET_S:.0f} s: {'met' if med < TARGET_S else 'NOT met'}); "
        f"median stop {statistics.median(stops):.2f} s; "
        f"{med / ref:.1f}x the embedded PostgreSQL's own start ({ref:.2f} s)"
    )


if __name__ == "__main__":
    main()
