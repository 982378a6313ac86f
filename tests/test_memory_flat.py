"""Memory flat in long runs (issue 17): the histories a poll keeps cost their
full size on the first round, so `check --watch` and the TUI do not grow while
they fill (which at one round a second took 10-15 minutes). The long live run is
bench/soak.py; these are the fast, failing-if-broken halves of it."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tracemalloc
from http.server import BaseHTTPRequestHandler

import pytest

from collectors.config import parse_config
from collectors.core.history import RingBuffer
from collectors.poller import Poller, build_collectors
from collectors.rules import Rules
from tests.helpers import http_server, respond


def test_ring_buffers_never_written_hold_no_arrays() -> None:
    # A one-shot check builds every service's buffers and writes few of them.
    tracemalloc.start()
    try:
        bufs = [RingBuffer(600) for _ in range(1000)]
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert used < 200_000, used  # allocated up front: 9.6 MB
    assert bufs[0].capacity == 600 and len(bufs[0]) == 0 and bufs[0].last() is None


def test_ring_buffer_allocates_once_and_keeps_the_newest() -> None:
    tracemalloc.start()
    try:
        buf = RingBuffer(600)
        buf.append(0.0, 0)  # its arrays are allocated with the first sample
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1, 5_000):
            buf.append(float(i), i * 2)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 1024, grown  # a tuple a sample was ~130 bytes: 78 KB at 600
    assert len(buf) == 600 and buf.capacity == 600
    assert buf.first() == (4400.0, 8800.0) and buf.last() == (4999.0, 9998.0)
    assert list(buf)[:2] == [(4400.0, 8800.0), (4401.0, 8802.0)]
    assert buf.values()[-1] == 9998.0
    assert buf.window(2) == [(4997.0, 9994.0), (4998.0, 9996.0), (4999.0, 9998.0)]
    assert buf.window(1.5, now=5000.5) == [(4999.0, 9998.0)]
    partly = RingBuffer(4)
    partly.append(1, 10)
    partly.append(2, 20)
    assert list(partly) == [(1.0, 10.0), (2.0, 20.0)] and partly.last() == (2.0, 20.0)
    assert RingBuffer(3).window(10) == [] and RingBuffer(3).last() is None


def _platform(req: BaseHTTPRequestHandler) -> None:
    if req.path == "/health/memory":
        respond(req, 200, json.dumps({"listeners": {"total": 12}, "heapUsed": 1 << 20}))
    else:
        respond(req, 200, json.dumps({"status": "pass"}), "application/health+json")


def _traced_in(snapshot: tracemalloc.Snapshot, folder: str) -> int:
    return sum(
        s.size
        for s in snapshot.statistics("filename")
        if folder in s.traceback[0].filename.replace("\\", "/")
    )


async def test_services_rounds_keep_memory_flat_after_the_first() -> None:
    """Three services with /health and /health/memory: after a few rounds, 300 more
    leave what the collectors hold (latency, listeners, statuses) the same size."""
    with http_server(_platform) as base:
        text = '[dashboard]\nhistory = "15m"\n[http]\ntimeout = "2s"\n'
        for name in ("a", "b", "c"):
            text += (
                f'[[services]]\nname = "{name}"\nurl = "{base}"\n'
                'detail_paths = ["/health/memory"]\n'
            )
        config = parse_config(text)
        poller = Poller(build_collectors(config), deadline=5)
        rules = Rules(config, raise_after=2, clear_after=2)
        try:
            for _ in range(5):
                report = rules.evaluate(await poller.poll())
            tracemalloc.start()
            gc.collect()
            first = tracemalloc.take_snapshot()
            for _ in range(300):
                report = rules.evaluate(await poller.poll())
            gc.collect()
            last = tracemalloc.take_snapshot()
            tracemalloc.stop()
        finally:
            await poller.aclose()
    # The rounds really read the services (and their listener trend filled up).
    by = {c.id: c for c in report.checks}
    assert by["service.a.health"].status == "ok", by["service.a.health"]
    reading = next(r for r in report.snapshot.readings if r.target == "a")
    assert reading.data.latency_samples == 305 and reading.data.listeners_trend.samples == 305
    grown = _traced_in(last, "/collectors/") - _traced_in(first, "/collectors/")
    # Before issue 17: ~300 B a service a round (three tuples of samples), 270 KB here.
    assert grown < 16 * 1024, grown


async def test_tui_caches_hold_what_is_shown_not_every_round_seen() -> None:
    """300 rounds in which values change (an RSS growing, ages): the cell memo
    holds the last two renders' cells and each table's caches keyed by cell object
    a few times its cells, instead of growing with every value ever shown."""
    from dashboard.tui.app import UltrawatchApp
    from dashboard.tui.widgets import base
    from dashboard.tui.widgets.table import FastTable
    from tests import tui_data as td

    config = td.config()
    app = UltrawatchApp(config, poll=False)
    rules = Rules(config)
    async with app.run_test(size=(200, 50)) as pilot:
        for n in range(300):
            app.absorb(rules.evaluate(td.snapshot(n, kind="incident")))
            app.render_now()
            await pilot.pause()
        rss = next(c for c in app.model.checks("processes") if c.id.endswith("memory"))
        memo = len(base._CELLS) + len(getattr(base, "_CELLS_BEFORE", {}))
        tables = list(app.query(FastTable))
        held = {
            t.id: (
                t.row_count * len(t.columns),
                len(t._cell_render_cache),
                len(t._by_value or ()),
                len(t._line_cache),
                t.row_count,
            )
            for t in tables
        }
    assert app.model.rounds == 300 and rss is not None
    # ~15 cells change each round here: 4,500 Text objects kept before issue 17.
    assert memo < 600, memo
    for name, (cells, rendered, by_value, lines, rows) in held.items():
        # fit_caches sizes them to 3x the cells, and shrinks them only once that is
        # half or less (a table that folds or loses rows keeps its size a while)
        limit = max(64, 6 * cells)
        assert rendered <= limit and by_value <= limit, (name, cells, rendered, by_value)
        assert lines <= max(16, 2 * (rows + 1)), (name, rows, lines)


async def test_a_process_lookup_keeps_no_copy_of_the_hosts_process_table() -> None:
    """A cmdline target reads every process's command line each round; psutil's
    process_iter would keep them all (and their Process objects) for as long as
    those processes live: the monitor's memory grew with the host's process count."""
    others = [
        subprocess.Popen(["sh", "-c", "sleep 60", f"{i:03d}" + "x" * 4000]) for i in range(30)
    ]
    config = parse_config('[[processes]]\nname = "ghost"\ncmdline = "no-such-process-[0-9]{40}"\n')
    poller = Poller(build_collectors(config), deadline=10)
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        await poller.poll()
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        await poller.aclose()
        for p in others:
            p.kill()
            p.wait()
    assert kept < 60_000, f"{kept} bytes kept after one round (30 others' command lines: 120 KB)"


TRIM_SCRIPT = """
import sys, psutil
from dashboard import memory
rss = lambda: psutil.Process().memory_info().rss
memory.limit_heaps()
base = rss()
blocks = [bytes(4000) + str(i).encode() for i in range(40_000)]  # ~160 MB through malloc
kept = blocks[::64]  # a survivor every 64 blocks: the heap cannot shrink from its top
del blocks
before = rss()
trimmed = memory.trim_now_and_then(10**9) if sys.argv[1] == "trim" else False
print(trimmed, before - base, rss() - base)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc_trim")
@pytest.mark.parametrize("trim", [True, False])
def test_freed_memory_goes_back_to_the_system(trim: bool) -> None:
    """What a round frees between survivors stays in glibc's heap, counted in the
    console's RSS, until it is trimmed: the TUI trims once a minute."""
    out = subprocess.run(
        [sys.executable, "-c", TRIM_SCRIPT, "trim" if trim else "keep"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    trimmed, before, after = out[0] == "True", int(out[1]), int(out[2])
    assert before > 100 << 20  # the blocks were resident
    if trim:
        assert trimmed and after < 20 << 20, (before, after)
    else:
        assert after > 100 << 20, (before, after)  # without it, nothing goes back
