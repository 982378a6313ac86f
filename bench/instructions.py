"""Instruction counts of warm rounds (valgrind's callgrind): what a round costs the
client, whatever else the machine is doing. Timings on a shared 2-core machine swing
with the load; instruction counts do not.

    uv run python bench/instructions.py services [--rounds 3]
    uv run python bench/instructions.py postgres [--rounds 3]

Each target is measured twice under `valgrind --tool=callgrind`: set-up plus one
warm-up round, and set-up plus 1 + N rounds; the difference over N is the count per
warm round. services: 500 /health endpoints answering after 50 ms (the server of
bench/services_poll.py, outside valgrind); postgres: the poll round with 500 client
connections (the server and clients of bench/postgres_collector.py), as the TUI and
recordings poll it and as `check` does (judging only).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# One process: build the collectors as the engine does, poll ROUNDS rounds.
ROUNDS = r"""
import asyncio, sys
from collectors.config import parse_config
from collectors.poller import Poller, build_collectors

async def main(text, rounds, lean):
    config = parse_config(text)
    built = build_collectors(config)
    if lean:  # as `check` builds them (judging_only); absent before it existed
        from collectors import poller
        getattr(poller, "judging_only", lambda c: None)(built)
    poller = Poller(built, deadline=900)  # valgrind is ~50x slower
    try:
        for _ in range(rounds):
            snap = await poller.poll()
            bad = [r for r in snap.readings if r.error]
            assert not bad, bad[0].error
    finally:
        await poller.aclose()

asyncio.run(main(open(sys.argv[1]).read(), int(sys.argv[2]), sys.argv[3] == "1"))
"""


def instructions(config: Path, rounds: int, tmp: Path, lean: bool = False) -> int:
    out = tmp / f"cg.{rounds}.out"
    proc = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-c",
            ROUNDS,
            str(config),
            str(rounds),
            "1" if lean else "0",
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the measured process failed: {proc.stderr[-1500:]}")
    m = re.search(r"^summary:\s+(\d+)", out.read_text(), re.M)
    assert m, "no summary in the callgrind output"
    return int(m.group(1))


def per_round(config: Path, n: int, lean: bool = False) -> float:
    with tempfile.TemporaryDirectory(prefix="uw-bench-cg-") as tmp:
        base = instructions(config, 1, Path(tmp), lean)
        more = instructions(config, 1 + n, Path(tmp), lean)
    return (more - base) / n


def services(args: argparse.Namespace) -> None:
    from services_poll import SERVER, config_text

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, "0.05"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp, "ultrawatch.toml")
            text = config_text(port, 500, 64, "aiohttp")
            # valgrind runs ~50x slower: no timeout may cut a round short
            text = text.replace('"60s"', '"900s"').replace('"30s"', '"600s"')
            config.write_text(text)
            ir = per_round(config, args.rounds)
        print(
            f"services, 500 endpoints: {ir / 1e6:.1f} M instructions per warm round, "
            f"{ir / 500 / 1e3:.0f} k per endpoint"
        )
    finally:
        server.kill()


def postgres(args: argparse.Namespace) -> None:
    from postgres_collector import config_text, open_clients

    from dashboard.demo.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="uw-bench-cg-pg-") as tmp:
        pg = EmbeddedPostgres(tmp, settings={"max_connections": 600}).start()
        try:

            async def run() -> tuple[float, float]:
                conns = await open_clients(pg.dsn(), 500)
                try:
                    config = Path(tmp, "ultrawatch.toml")
                    # the services are only there to name application_names: not polled
                    config.write_text(config_text(pg.dsn()) + "\n")
                    text = config.read_text().split("\n[[services]]")[0]
                    config.write_text(text)
                    full = await asyncio.to_thread(per_round, config, args.rounds)
                    lean = await asyncio.to_thread(per_round, config, args.rounds, True)
                    return full, lean
                finally:
                    for c in conns:
                        await c.close()

            full, lean = asyncio.run(run())
        finally:
            pg.stop("immediate")
    print(
        f"postgres, 500 connections: {full / 1e6:.2f} M instructions per warm poll round "
        f"(the TUI's and recordings'), {lean / 1e6:.2f} M as check polls (judging only)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", choices=("services", "postgres"))
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not installed (apt-get install -y valgrind)")
    {"services": services, "postgres": postgres}[args.target](args)


if __name__ == "__main__":
    main()
