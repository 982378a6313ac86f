"""Benchmark: the first round of a cold process, alone: ultrawatch's services round
(collectors built as `check` builds them, one poll) against a cold bare-aiohttp
process doing the same 500 GETs at the same concurrency; wall and CPU of the round
only (not the interpreter, imports or output), fresh processes alternating, medians.
With `--before DIR`, a checkout of an earlier commit is run alternately too (e.g.
`git archive REV | tar -x -C DIR`), so a change to the cold round is measured
against what it replaced in the same run. The server is bench/services_poll.py's.

    uv run python bench/cold_round.py [--runs 9] [--before DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

import services_poll
import userrun

ROOT = Path(__file__).resolve().parent.parent

OURS = r"""
import asyncio, sys, time
from collectors.config import parse_config
from collectors.poller import Poller, build_collectors, judging_only

async def main(text):
    config = parse_config(text)
    built = build_collectors(config, ["services"], one_shot=True)
    judging_only(built)
    poller = Poller(built, deadline=30)
    c0, w0 = time.process_time(), time.perf_counter()
    await poller.poll()
    print(time.perf_counter() - w0, time.process_time() - c0)
    await poller.aclose()

asyncio.run(main(sys.stdin.read()))
"""

_ROUND = "print(time.perf_counter() - t0)"
BARE = services_poll.BARE.replace(
    "t0 = time.perf_counter()", "t0, c0 = time.perf_counter(), time.process_time()"
).replace(_ROUND, "print(time.perf_counter() - t0, time.process_time() - c0)")


def run(code: str, args: list[str], cwd: Path, stdin: str = "") -> tuple[float, float]:
    # cwd first on sys.path (`-c`): the checkout in `cwd` is the one imported
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=userrun.env(),
        cwd=cwd,
    )
    if out.returncode:
        sys.exit(out.stderr)
    wall, cpu = map(float, out.stdout.split())
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--endpoints", type=int, default=500)
    ap.add_argument("--before", type=Path, help="a checkout of an earlier commit")
    args = ap.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", services_poll.SERVER, "0.05"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        text = services_poll.config_text(port, args.endpoints, 64, "aiohttp")
        kinds: dict[str, tuple[str, list[str], Path, str]] = {
            "ultrawatch": (OURS, [], ROOT, text),
            "bare aiohttp": (BARE, [str(port), str(args.endpoints), "64"], ROOT, ""),
        }
        if args.before:
            kinds["before"] = (OURS, [], args.before.resolve(), text)
        got: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
        print(f"machine: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for i in range(args.runs + 1):  # the first of each fills the bytecode cache
            for k, (code, argv, cwd, stdin) in kinds.items():
                r = run(code, argv, cwd, stdin)
                if i:
                    got[k].append(r)
        floor = -(-args.endpoints // 64) * 0.05
        for k, v in got.items():
            wall = statistics.median(x[0] for x in v)
            cpu = statistics.median(x[1] for x in v)
            print(
                f"{k:13s} first round {wall * 1000:5.0f} ms ({wall / floor:.2f}x the floor), "
                f"CPU {cpu * 1000:4.0f} ms"
            )
        for a, b in (("ultrawatch", "bare aiohttp"), ("ultrawatch", "before")):
            if b in got:
                pairs = list(zip(got[a], got[b], strict=True))
                w = statistics.median(x[0] / y[0] for x, y in pairs)
                c = statistics.median(x[1] / y[1] for x, y in pairs)
                print(f"{a} / {b}: wall {w:.2f}, CPU {c:.2f} (medians of {len(pairs)} pairs)")
        print(f"machine: load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
