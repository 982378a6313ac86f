"""TUI benchmark: the app headless with 500 services and 10,000 locks per round.

    uv run python bench/tui.py [--rounds 10000] [--presses 40]

Prints, at 200x60 with every panel on screen:
- key press -> updated screen (the first frame painted after the key's effect
  was applied): median and p95 per class of key, and over all of them
  (target: p95 <= 100 ms):
  `i` hide idle and `s` sort (re-render the PostgreSQL panel), `down` (cursor
  move), `p` pause (header only), `z` snooze and `a` acknowledge (Alerts panel),
  `tab` (focus to the next panel), each character typed into the `/` filter and
  each backspace (every panel re-filtered: 10,000 locks, 500 services), and
  `down` / `i` pressed while rounds arrive (one every 0.5 s, four times the
  configured rate, so a key often lands while a round is being rendered);
- CPU of the app while idle between rounds, as % of one core (target < 5 %),
  with the same big screen on display;
- CPU of one round absorbed and rendered;
- RSS after 100 rounds and after `--rounds` rounds (target: grows < 10 MB).
Rounds arrive as RoundDone messages exactly as from the polling worker; the
reports are judged once up front (the rules are not what is measured here).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collectors.config import parse_config
from collectors.core.model import Reading, Report, Snapshot
from collectors.rules import Rules
from dashboard.tui.app import RoundDone, UltrawatchApp
from tests import tui_data as td

N_SERVICES = 500
N_LOCKS = 10_000
VARIANTS = 8  # distinct rounds, cycled with fresh times (keys churn between them)


def config():
    services = "\n".join(
        f'[[services]]\nname = "svc-{i:03d}"\nurl = "http://127.0.0.1:{20000 + i}"\n'
        for i in range(N_SERVICES)
    )
    return parse_config(
        '[dashboard]\ninterval = "2s"\n'
        '[postgres]\ndsn = "postgresql://x@127.0.0.1:1/x"\n'
        '[redis]\nurl = "redis://127.0.0.1:1/0"\n'
        f"{services}\n[actions]\naudit_log = '/tmp/ultrawatch-bench-audit.jsonl'\n",
        "bench.toml",
    )


def snapshot(v: int) -> Snapshot:
    t = td.T0 + v * 2
    readings: list[Reading] = [td.postgres(t, used=40 + v)]
    # 1 % of the lock keys change from one variant to the next: rows come and go.
    locks = [
        td.lock(
            f"lock:inventory:sku-{i}" if i % 100 else f"lock:inventory:churn-{i}-{v}",
            f"worker-{i % 64}",
            -1 if i % 997 == 0 else 25_000,
            float((i * 7 + v) % 90),
        )
        for i in range(N_LOCKS)
    ]
    readings.append(td.redis(t, locks=locks))
    for i in range(N_SERVICES):
        name = f"svc-{i:03d}"
        if (i + v) % 50 == 0:
            readings.append(td.service(t, name, down=True, i=i))
        else:
            readings.append(td.service(t, name, status="warning" if i % 40 == 0 else "ok", i=i + v))
    return Snapshot(round=v + 1, started_at=t, duration_ms=120.0, readings=tuple(readings))


def reports() -> list[Report]:
    rules = Rules(config())
    return [rules.evaluate(snapshot(v)) for v in range(VARIANTS)]


def at(report: Report, n: int) -> Report:
    snap = dataclasses.replace(report.snapshot, round=n, started_at=td.T0 + 2 * n)
    return Report(snapshot=snap, checks=report.checks)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round((len(s) - 1) * q / 100))]


class KeyTimer:
    """Key press -> updated screen: from posting the key to the first frame the
    compositor paints after the key's effect was applied (the cursor moved, the panel
    re-rendered with the new filter, ...), as the engineer sees it. `settled` is also
    kept: the last frame before the app went idle again, which includes a round's
    render that happened to start meanwhile and Pilot's 20 ms idle-detection steps."""

    def __init__(self, app: UltrawatchApp, pilot: Any) -> None:
        from dashboard.tui.widgets.base import SyncTable

        self.app, self.pilot = app, pilot
        self.frames: list[tuple[float, object]] = []
        self.probe: Callable[[], object] = lambda: None
        self.latencies: dict[str, list[float]] = {}
        self.settled: list[float] = []
        self.unseen: dict[str, int] = {}
        self.rendered = {"filter": app.model.filter, "renders": 0}
        self.moves = {"down": 0}
        screen = app.screen
        original = screen._compositor_refresh

        def timed_refresh() -> None:
            original()
            self.frames.append((time.perf_counter(), self.probe()))

        screen._compositor_refresh = timed_refresh  # type: ignore[method-assign]
        self.render_now = app.render_now
        self.cursor_down = SyncTable.action_cursor_down

        def counted_render(only: tuple[str, ...] | None = None) -> None:
            self.render_now(only)
            self.rendered["filter"] = app.model.filter
            self.rendered["renders"] += 1

        def counted_down(table: SyncTable) -> None:
            self.cursor_down(table)
            self.moves["down"] += 1

        app.render_now = counted_render  # type: ignore[method-assign]
        SyncTable.action_cursor_down = counted_down  # type: ignore[method-assign]

        def alerts_state() -> object:
            return tuple((a.acked_at, a.snoozed_until) for a in app.model.alerts.values())

        # What each key changes, read at every frame: the first frame after the
        # change shows it.
        self.probes: dict[str, Callable[[], object]] = {
            "i": lambda: app.model.hide_idle,
            "s": lambda: app.model.session_sort,
            "down": lambda: self.moves["down"],
            "p": lambda: app.paused,
            "z": alerts_state,
            "a": alerts_state,
            "tab": lambda: app.focused,
            "filter": lambda: self.rendered["filter"],
        }

    def restore(self) -> None:
        from dashboard.tui.widgets.base import SyncTable

        self.app.render_now = self.render_now  # type: ignore[method-assign]
        SyncTable.action_cursor_down = self.cursor_down  # type: ignore[method-assign]

    async def timed(self, label: str, key: str, what: str) -> None:
        self.probe = self.probes[what]
        before = self.probe()
        self.frames.clear()
        t0 = time.perf_counter()
        await self.pilot.press(key)
        await self.pilot.pause()
        shown = next((t for t, state in self.frames if state != before), None)
        if shown is None:  # the key changed nothing on screen: say so
            self.unseen[label] = self.unseen.get(label, 0) + 1
            return
        self.latencies.setdefault(label, []).append((shown - t0) * 1000)
        self.settled.append((self.frames[-1][0] - t0) * 1000)


async def press_keys(app: UltrawatchApp, pilot: Any, keys: KeyTimer, presses: int) -> None:
    app.query_one("#redis-locks").focus()
    for _ in range(presses):
        for key in ("i", "s", "down", "p"):
            await keys.timed(key, key, key)
    app.query_one("#alerts-table").focus()
    for _ in range(presses):
        for key in ("z", "a"):
            await keys.timed(key, key, key)
    for _ in range(presses):
        await keys.timed("tab", "tab", "tab")
    # Typing into the filter: each character re-filters every panel.
    app.query_one("#redis-locks").focus()
    await pilot.press("slash")
    await pilot.pause()
    for n in range(presses):
        word = ("sku-1", "svc-04", "worker-7")[n % 3]
        for ch in word:
            await keys.timed("filter char", ch, "filter")
        for _ in word:
            await keys.timed("filter backspace", "backspace", "filter")
    await pilot.press("escape")
    await pilot.pause()


async def press_keys_while_rounds_arrive(
    app: UltrawatchApp, keys: KeyTimer, presses: int, base: list[Report]
) -> None:
    """A feeder posts a round every 0.5 s while keys are pressed."""
    app.query_one("#redis-locks").focus()
    feeding = True

    async def feeder() -> None:
        n = 0
        while feeding:
            n += 1
            app.post_message(RoundDone(at(base[n % VARIANTS], 50_000 + n)))
            await asyncio.sleep(0.5)

    task = asyncio.create_task(feeder())
    for n in range(presses * 2):
        await asyncio.sleep(0.05 + (n * 0.137) % 0.4)  # land anywhere in a round
        await keys.timed("down (rounds arriving)", "down", "down")
        await keys.timed("i (rounds arriving)", "i", "i")
    feeding = False
    await task


async def idle_cpu(pilot: Any, proc: psutil.Process) -> float:
    await pilot.pause(1.0)
    c0, w0 = proc.cpu_times(), time.perf_counter()
    await asyncio.sleep(5.0)
    c1, w1 = proc.cpu_times(), time.perf_counter()
    return ((c1.user + c1.system) - (c0.user + c0.system)) / (w1 - w0) * 100


async def round_cpu(app: UltrawatchApp, pilot: Any, base: list[Report]) -> list[float]:
    """CPU time of one round: absorb, render, compositor."""
    render_ms = []
    for n in range(20):
        t0 = time.process_time()
        app.absorb(at(base[n % VARIANTS], 2 + n))
        app.render_now()
        await pilot.pause()
        render_ms.append((time.process_time() - t0) * 1000)
    return render_ms


async def rss_growth(
    app: UltrawatchApp, pilot: Any, proc: psutil.Process, rounds: int, base: list[Report]
) -> tuple[dict[int, int], float]:
    rss: dict[int, int] = {}
    checkpoints = {100, rounds, *(rounds * k // 4 for k in (1, 2, 3))}
    t_start = time.perf_counter()
    for n in range(1, rounds + 1):
        app.post_message(RoundDone(at(base[n % VARIANTS], 100 + n)))
        if n % 25 == 0:
            await pilot.pause(0.01)  # let messages, timers and renders run
        if n in checkpoints:
            await pilot.pause(0.5)
            gc.collect()
            rss[n] = proc.memory_info().rss
    return rss, time.perf_counter() - t_start


def print_keys(keys: KeyTimer) -> None:
    all_lat = [x for v in keys.latencies.values() for x in v]
    print(
        f"key press -> first frame showing it: median {statistics.median(all_lat):.1f} ms, "
        f"p95 {pct(all_lat, 95):.1f} ms over {len(all_lat)} presses (target p95 <= 100 ms)"
    )
    for key, vals in keys.latencies.items():
        print(
            f"  {key:>22}: median {statistics.median(vals):6.1f} ms, "
            f"p95 {pct(vals, 95):6.1f} ms ({len(vals)} presses)"
        )
    if keys.unseen:
        print(f"  presses that changed nothing on screen (not counted): {keys.unseen}")
    print(
        f"for reference, key press -> Pilot finds the app idle again (its last frame; "
        f"20 ms idle steps, and any round rendered meanwhile): "
        f"median {statistics.median(keys.settled):.1f} ms, p95 {pct(keys.settled, 95):.1f} ms"
    )


async def run(rounds: int, presses: int) -> None:
    base = reports()
    proc = psutil.Process()
    app = UltrawatchApp(config(), poll=False)
    async with app.run_test(size=(200, 60)) as pilot:
        app.post_message(RoundDone(at(base[0], 1)))
        await pilot.pause(0.5)
        keys = KeyTimer(app, pilot)
        await press_keys(app, pilot, keys, presses)
        await press_keys_while_rounds_arrive(app, keys, presses, base)
        keys.restore()
        idle = await idle_cpu(pilot, proc)
        render_ms = await round_cpu(app, pilot, base)
        rss, feed_s = await rss_growth(app, pilot, proc, rounds, base)
        renders = app.renders

    print(f"ultrawatch TUI bench: {N_SERVICES} services, {N_LOCKS:,} locks per round, 200x60")
    print_keys(keys)
    print(f"idle CPU between rounds: {idle:.2f} % of one core over 5 s (target < 5 %)")
    print(
        f"one round absorbed + rendered (CPU): median {statistics.median(render_ms):.1f} ms, "
        f"p95 {pct(render_ms, 95):.1f} ms"
    )
    curve = ", ".join(f"{n:,}: {v / 1e6:.1f}" for n, v in sorted(rss.items()))
    print(f"RSS (MB) by rounds fed: {curve}")
    grow = (rss[rounds] - rss[100]) / 1e6
    print(
        f"RSS after 100 rounds {rss[100] / 1e6:.1f} MB, after {rounds:,} rounds "
        f"{rss[rounds] / 1e6:.1f} MB: grew {grow:+.1f} MB (target < 10 MB); "
        f"{rounds:,} rounds fed in {feed_s:.0f} s, {renders} renders (throttled)"
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=10_000)
    p.add_argument("--presses", type=int, default=40)
    a = p.parse_args()
    asyncio.run(run(a.rounds, a.presses))


if __name__ == "__main__":
    main()
