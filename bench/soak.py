"""Soak: is memory flat in long runs? `check --watch 1` and the TUI (headless)
against the demo, for `--minutes`, with RSS and open fds sampled.

Starts `ultrawatch demo --serve` (real PostgreSQL, Redis and service processes),
then, against the config it prints:
- `ultrawatch check --watch 1 --config C` as a subprocess (its JSON lines are
  counted, so the figures say how many rounds were done);
- the TUI as a separate Python process running `UltrawatchApp` under Textual's
  `run_test` (headless; its own poll loop at the config's interval, every panel
  rendered as in a terminal).
Both processes are sampled every `--every` seconds with psutil (RSS and open file
descriptors). Printed: a line per minute, then RSS growth after the warm-up
(`--warmup`, 5 minutes: the bounded histories fill, the allocator settles) and
the fd range. Target: RSS growth under 2 MB after the first 5 minutes, fds flat.

    uv run python bench/soak.py --minutes 30 [--every 5] [--warmup 5] [--config C]

With `--config` an already running platform is watched instead of a fresh demo.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent
TARGET_GROWTH = 2 * 1024 * 1024


@dataclass
class Watched:
    name: str
    proc: subprocess.Popen[bytes]
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (t, rss, fds)
    lines: int = 0  # lines it printed: one per round
    last: bytes = b""

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines += 1
            self.last = line[-300:]

    def sample(self, t: float) -> None:
        try:
            p = psutil.Process(self.proc.pid)
            self.samples.append((t, p.memory_info().rss, p.num_fds()))
        except psutil.Error:
            pass


def start_demo(state: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log = open(state / "demo.log", "wb")  # noqa: SIM115 (closed with the process)
    demo = subprocess.Popen(
        [str(BIN / "ultrawatch"), "demo", "--serve", "--state-dir", str(state / "demo")],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    config = state / "demo" / "ultrawatch.toml"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            sys.exit(f"the demo ended ({demo.returncode}): see {state / 'demo.log'}")
        if b"serving scenario" in (state / "demo.log").read_bytes():
            return demo, config
        time.sleep(0.5)
    demo.terminate()
    sys.exit("the demo did not come up within 120 s")


def start(name: str, cmd: list[str]) -> Watched:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    w = Watched(name, proc)
    threading.Thread(target=w.read, daemon=True).start()
    return w


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def mib(n: float) -> str:
    return f"{n / 1024 / 1024:.2f} MiB"


def report(w: Watched, warmup: float) -> bool:
    if not w.samples:
        print(f"{w.name}: no samples (exited {w.proc.poll()})")
        return False
    after = [s for s in w.samples if s[0] >= warmup] or w.samples[-1:]
    t0, rss0, _ = after[0]
    t1, rss1, _ = after[-1]
    fds = [s[2] for s in after]
    peak = max(s[1] for s in after)
    growth = rss1 - rss0
    minutes = max(1e-9, (t1 - t0) / 60)
    # fds flat: the same count at the end as after the warm-up (a connection being
    # re-opened during one sample is shown in the range, not a trend).
    ok = growth < TARGET_GROWTH and fds[-1] <= fds[0]
    print(
        f"{w.name}: RSS {mib(rss0)} at {t0 / 60:.1f} min -> {mib(rss1)} at {t1 / 60:.1f} min: "
        f"growth {growth / 1024:+.0f} KiB ({growth / 1024 / minutes:+.1f} KiB/min), "
        f"peak {mib(peak)}; fds {min(fds)}..{max(fds)}; {w.lines} rounds; "
        f"{'OK' if ok else 'OVER TARGET'}"
    )
    return ok


def soak(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="ultrawatch-soak-") as tmp:
        state = Path(tmp)
        demo = None
        if args.config:
            config = Path(args.config)
        else:
            demo, config = start_demo(state)
        check = [str(BIN / "ultrawatch"), "check", "--watch", "1", "--config", str(config)]
        watched = [
            start("check --watch 1", check),
            start("tui (headless)", [sys.executable, __file__, "--tui-child", str(config)]),
        ]
        print(f"config {config}; {args.minutes:g} min, sampled every {args.every:g} s", flush=True)
        print("min   " + "  ".join(f"{w.name:>28}" for w in watched), flush=True)
        began = time.monotonic()
        next_print = 0.0
        try:
            while (t := time.monotonic() - began) < args.minutes * 60:
                for w in watched:
                    w.sample(t)
                    if w.proc.poll() is not None:
                        sys.exit(f"{w.name} ended early ({w.proc.returncode}): {w.last!r}")
                if t >= next_print:
                    cols = [
                        f"{mib(w.samples[-1][1]):>12} {w.samples[-1][2]:>3} fds {w.lines:>5} rounds"
                        if w.samples
                        else f"{'-':>28}"
                        for w in watched
                    ]
                    print(f"{t / 60:5.1f} " + "  ".join(cols), flush=True)
                    next_print += 60
                time.sleep(args.every)
        finally:
            for w in watched:
                stop(w.proc)
            if demo is not None:
                stop(demo)
        print(f"\nafter the first {args.warmup:g} min (target: growth < 2 MB, fds flat):")
        ok = [report(w, args.warmup * 60) for w in watched]
        return 0 if all(ok) else 1


# ------------------------------------------------------------- the TUI process


async def run_tui(config_path: str) -> None:
    from collectors.config import load_config
    from dashboard.tui.app import UltrawatchApp, settle_gc

    app = UltrawatchApp(load_config(config_path))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with app.run_test(size=(160, 50)):
        settle_gc()  # as on_ready does in a terminal
        shown = 0
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass
            for n in range(shown + 1, app.model.rounds + 1):  # a line per round, as `check`
                print(f"round {n} renders {app.renders}", flush=True)
            shown = app.model.rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=5.0, help="minutes before growth counts")
    parser.add_argument("--config", help="watch a running platform instead of a fresh demo")
    parser.add_argument("--tui-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tui_child:
        asyncio.run(run_tui(args.tui_child))
        return 0
    if not args.minutes > args.warmup:
        parser.error("--minutes must be longer than --warmup")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return soak(args)


if __name__ == "__main__":
    sys.exit(main())
