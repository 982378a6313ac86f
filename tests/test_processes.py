"""ProcessesCollector against real child processes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.config import Config, parse_config
from collectors.core.model import Reading, Snapshot
from collectors.processes.collector import ProcessesCollector
from collectors.registry import process_targets
from collectors.rules import Rules

GROW = """
import sys, time
rate = int(sys.argv[1])          # bytes per second
step = 0.05
chunk = int(rate * step)
keep = []
print("ready", flush=True)
t0 = time.monotonic()
for i in range(1, int(8 / step)):  # at most 8 s of growth
    keep.append(b"\\x01" * chunk)   # written bytes: the pages count in RSS
    time.sleep(max(0.0, t0 + i * step - time.monotonic()))
time.sleep(60)
"""

HOLD = """
import sys, time
keep = b"\\x01" * int(sys.argv[1])
files = [open(sys.executable, "rb") for _ in range(20)]
print("ready", flush=True)
time.sleep(60)
"""


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        p.kill()
        p.wait()


def cfg(body: str, history: str = "15m") -> Config:
    return parse_config(f'[dashboard]\nhistory = "{history}"\n{body}')


async def collect(c: ProcessesCollector) -> dict[str, Reading]:
    return {r.target: r for r in await c.collect()}


def judged(config: Config, readings: list[Reading]) -> dict[str, object]:
    report = Rules(config).evaluate(Snapshot(1, time.time(), 0.0, tuple(readings)))
    return {c.id: c for c in report.checks}


async def test_rss_growth_slope_within_20_percent(procs: list[subprocess.Popen[str]]) -> None:
    rate = 16 * 1024 * 1024
    p = spawn(GROW, str(rate))
    procs.append(p)
    config = cfg(
        f'[[processes]]\nname = "grower"\npid = {p.pid}\nmemory_limit = "1TiB"\n'
        'growth_min_span = "2s"\n'
    )
    c = ProcessesCollector(process_targets(config))
    readings = []
    for _ in range(13):
        readings.append((await collect(c))["grower"])
        time.sleep(0.25)
    d = readings[-1].data
    assert d.pids == [p.pid]
    slope = d.growth_bytes_per_s
    assert abs(slope - rate) <= 0.2 * rate, (slope, rate)
    assert d.growth_r2 >= 0.8
    assert len(d.rss_history) == 13 and d.rss_history[-1] > d.rss_history[0]
    assert d.memory_limit == 1024**4 and d.memory_limit_source == "config"
    ttl = d.time_to_limit_s
    assert 0.8 * 1024**4 / rate < ttl < 1.25 * 1024**4 / rate  # about 18 hours

    checks = judged(config, [readings[-1]])
    growth = checks["process.grower.memory_growth"]
    assert growth.status == "warning"  # steady growth; limit 18 h away (> 1 h)
    assert "MiB/min" in growth.summary and "limit in" in growth.summary
    assert checks["process.grower.memory"].status == "ok"
    # The same readings with a 1-day horizon: the limit is nearer than that.
    strict = cfg(
        f'[[processes]]\nname = "grower"\npid = {p.pid}\nmemory_limit = "1TiB"\n'
        'growth_min_span = "2s"\ngrowth_crit_ttl = "1d"\n'
    )
    assert judged(strict, [readings[-1]])["process.grower.memory_growth"].status == "critical"
    # Too short a span for a verdict with the default 5 minutes.
    default = cfg(f'[[processes]]\nname = "grower"\npid = {p.pid}\n')
    early = judged(default, [readings[-1]])["process.grower.memory_growth"]
    assert early.status == "ok" and "collecting samples" in early.summary


async def test_memory_level_fds_threads(procs: list[subprocess.Popen[str]]) -> None:
    p = spawn(HOLD, str(80 * 1024 * 1024))
    procs.append(p)
    first = (
        await collect(
            ProcessesCollector(process_targets(cfg(f'[[processes]]\nname = "h"\npid = {p.pid}\n')))
        )
    )["h"]
    rss = first.data.rss_bytes
    assert rss > 80 * 1024 * 1024
    assert first.data.fds >= 20 and first.data.threads >= 1
    assert first.data.memory_limit_source in ("cgroup", "physical")
    body = "".join(
        f'[[processes]]\nname = "{n}"\npid = {p.pid}\nmemory_limit = {int(rss / f)}\n'
        for n, f in (("fine", 0.5), ("high", 0.9), ("full", 0.97))
    )
    config = cfg(body)
    readings = list((await collect(ProcessesCollector(process_targets(config)))).values())
    checks = judged(config, readings)
    assert checks["process.fine.memory"].status == "ok"
    assert checks["process.high.memory"].status == "warning"
    full = checks["process.full.memory"]
    assert full.status == "critical" and full.unit == "ratio" and full.value >= 0.95
    assert f"pid {p.pid}" in full.summary and "MiB" in full.summary


async def test_matching_by_cmdline_pidfile_and_service(
    procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    marker = f"uw-marker-{uuid.uuid4().hex[:8]}"
    a = spawn(HOLD, "1000", marker)
    b = spawn(HOLD, "1000", marker)
    procs += [a, b]
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(f"{a.pid}\n")
    config = cfg(
        f'[[processes]]\nname = "by-regex"\ncmdline = "{marker}"\n'
        f'[[processes]]\nname = "by-pidfile"\npidfile = "{pidfile}"\n'
        f'[[processes]]\nname = "nothing"\ncmdline = "no-such-{marker}-x"\n'
        f'[[processes]]\nname = "no-pidfile"\npidfile = "{tmp_path / "none.pid"}"\n'
        f'[[services]]\nname = "order-service"\nurl = "http://127.0.0.1:1"\n'
        f"process = {{ pid = {b.pid} }}\n"
    )
    c = ProcessesCollector(process_targets(config))
    r = await collect(c)
    assert r["by-regex"].data.pids == sorted([a.pid, b.pid])
    assert r["by-pidfile"].data.pids == [a.pid]
    assert r["order-service"].data.pids == [b.pid]
    assert r["nothing"].error == f"no process matches cmdline /no-such-{marker}-x/"
    assert r["no-pidfile"].error and "does not exist" in r["no-pidfile"].error
    checks = judged(config, list(r.values()))
    assert checks["process.nothing.memory"].status == "critical"
    assert "no process matches" in checks["process.nothing.memory"].summary

    # A matched process that is gone is critical and says which pid it was.
    a.kill()
    a.wait()
    r = await collect(c)
    assert r["by-pidfile"].error_kind == "unreachable"
    assert f"was pid {a.pid}" in (r["by-pidfile"].error or "")
    assert r["by-pidfile"].data.gone is True
    assert r["by-regex"].data.pids == [b.pid]  # one left: the trend starts over
    assert r["by-regex"].data.samples == 1
    assert judged(config, list(r.values()))["process.by-pidfile.memory"].status == "critical"


async def test_restart_resets_the_trend(procs: list[subprocess.Popen[str]], tmp_path: Path) -> None:
    pidfile = tmp_path / "w.pid"
    a = spawn(HOLD, "1000")
    procs.append(a)
    pidfile.write_text(str(a.pid))
    c = ProcessesCollector(
        process_targets(cfg(f'[[processes]]\nname = "w"\npidfile = "{pidfile}"\n'))
    )
    for _ in range(3):
        r = (await collect(c))["w"]
    assert r.data.samples == 3
    b = spawn(HOLD, "1000")
    procs.append(b)
    pidfile.write_text(str(b.pid))
    r = (await collect(c))["w"]
    assert r.data.pids == [b.pid] and r.data.samples == 1


def test_never_matches_itself_or_its_ancestors() -> None:
    """`sh -c 'ultrawatch drain order-service'` must not find itself as order-service."""
    marker = f"uw-self-{uuid.uuid4().hex[:8]}"
    code = (
        "import sys; from collectors.processes.collector import find_pids; "
        f"print(find_pids(cmdline={marker!r}))"
    )
    # The shell (our parent) and we both carry the marker on our command lines.
    out = subprocess.run(
        ["sh", "-c", f'"{sys.executable}" -c "{code}" {marker}; true'],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert out.stdout.strip() == f"([], 'no process matches cmdline /{marker}/')", out.stderr


BUSY = """
import time
print("ready", flush=True)
while True:
    pass
"""


async def test_cpu_is_unknown_on_the_first_sample_then_measured(
    procs: list[subprocess.Popen[str]],
) -> None:
    p = spawn(BUSY)
    procs.append(p)
    config = cfg(f'[[processes]]\nname = "busy"\npid = {p.pid}\n')
    c = ProcessesCollector(process_targets(config))
    first = (await collect(c))["busy"]
    # Nothing to measure against yet: n/a, not a false "idle" 0.0.
    assert first.ok and first.data.cpu_percent is None
    time.sleep(0.5)
    second = (await collect(c))["busy"]
    assert second.data.cpu_percent > 20, second.data  # a spinning loop: near 100 %


MiB = 1024 * 1024
V1_UNLIMITED = "9223372036854771712"


def fake_host(root: Path, pid: int, cgroup: str, mountinfo: str, files: dict[str, str]) -> Path:
    """A real file tree shaped like /proc and /sys/fs/cgroup, under `root`."""
    (root / f"proc/{pid}").mkdir(parents=True, exist_ok=True)
    (root / f"proc/{pid}/cgroup").write_text(cgroup)
    (root / "proc/self").mkdir(parents=True, exist_ok=True)
    (root / "proc/self/mountinfo").write_text(mountinfo)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text + "\n")
    return root


HYBRID_MOUNTS = (
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
)


def test_cgroup_limit_is_the_lowest_up_the_tree(tmp_path: Path) -> None:
    from collectors.processes.collector import cgroup_memory_max

    # Hybrid host (like this one): cgroup2 at /sys/fs/cgroup/unified; the parent's
    # memory.max caps the child whose own is "max"; v1's "unlimited" is ignored.
    root = fake_host(
        tmp_path / "hybrid",
        42,
        "9:name=systemd:/\n4:memory:/app\n0::/kube/pod/app\n",
        HYBRID_MOUNTS,
        {
            "sys/fs/cgroup/unified/kube/pod/app/memory.max": "max",
            "sys/fs/cgroup/unified/kube/pod/memory.max": str(512 * MiB),
            "sys/fs/cgroup/unified/kube/memory.max": str(1024 * MiB),
            "sys/fs/cgroup/memory/app/memory.limit_in_bytes": V1_UNLIMITED,
            "sys/fs/cgroup/memory/memory.limit_in_bytes": V1_UNLIMITED,
        },
    )
    assert cgroup_memory_max(42, root) == 512 * MiB
    # cgroup v1 only: memory.limit_in_bytes, the lowest along the path.
    root = fake_host(
        tmp_path / "v1",
        7,
        "4:memory:/svc/worker\n1:cpu:/\n",
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n",
        {
            "sys/fs/cgroup/memory/svc/worker/memory.limit_in_bytes": V1_UNLIMITED,
            "sys/fs/cgroup/memory/svc/memory.limit_in_bytes": str(256 * MiB),
            "sys/fs/cgroup/memory/memory.limit_in_bytes": V1_UNLIMITED,
        },
    )
    assert cgroup_memory_max(7, root) == 256 * MiB
    # Pure cgroup v2 at /sys/fs/cgroup, unlimited everywhere: no limit.
    root = fake_host(
        tmp_path / "v2",
        9,
        "0::/user.slice/app.scope\n",
        "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        {
            "sys/fs/cgroup/user.slice/app.scope/memory.max": "max",
            "sys/fs/cgroup/user.slice/memory.max": "max",
        },
    )
    assert cgroup_memory_max(9, root) is None
    assert cgroup_memory_max(12345, root) is None  # no such process in the tree


async def test_collector_reports_the_cgroup_limit(
    procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    p = spawn(HOLD, str(10 * MiB))
    procs.append(p)
    root = fake_host(
        tmp_path,
        p.pid,
        "4:memory:/x\n0::/svc\n",
        HYBRID_MOUNTS,
        {"sys/fs/cgroup/unified/svc/memory.max": str(2 * 1024 * MiB)},
    )
    config = cfg(f'[[processes]]\nname = "h"\npid = {p.pid}\n')
    c = ProcessesCollector(process_targets(config))
    c.root = root
    r = (await collect(c))["h"]
    assert (r.data.memory_limit, r.data.memory_limit_source) == (2 * 1024 * MiB, "cgroup")
    mem = judged(config, [r])["process.h.memory"]
    assert mem.status == "ok" and "of 2048.0 MiB (cgroup limit" in mem.summary


async def test_memory_growth_is_a_rate_in_every_format(
    procs: list[subprocess.Popen[str]],
) -> None:
    from dashboard.headless import format_nagios, format_prometheus
    from tests import nagios

    p = spawn(GROW, str(4 * MiB))
    procs.append(p)
    config = cfg(f'[[processes]]\nname = "g"\npid = {p.pid}\ngrowth_min_span = "1s"\n')
    c = ProcessesCollector(process_targets(config))
    for _ in range(6):
        r = (await collect(c))["g"]
        time.sleep(0.3)
    report = Rules(config).evaluate(Snapshot(1, time.time(), 0.0, (r,)))
    growth = {x.id: x for x in report.checks}["process.g.memory_growth"]
    assert growth.unit == "bytes_per_s"
    assert growth.value == r.data.growth_bytes_per_s  # per second, as the unit says
    assert growth.warn == round(1 * MiB / 60, 2)  # growth_warn 1 MiB per minute
    prom = format_prometheus(report)
    growth_labels = '{platform="ultrawatch",id="process.g.memory_growth"}'
    assert "ultrawatch_check_value_bytes_per_second" + growth_labels in prom
    assert "ultrawatch_check_value_bytes" + growth_labels not in prom
    value, uom, _ = nagios.parse(format_nagios(report)).perf["process.g.memory_growth"]
    assert uom == ""  # a rate, not a size in bytes
    assert float(value) == pytest.approx(growth.value, rel=1e-5)  # 6 significant digits


# ------------------------------------------------------------ the panel follows


async def test_the_panel_colours_what_the_judge_says_under_each_config() -> None:
    """Same reading (RSS ~286 MiB of 1 GiB, +244 KiB/s, R^2 0.97, time to the limit
    ~52 min), judged under different configs: the Processes panel's colours follow the
    judged checks, never thresholds of its own."""
    from dashboard.tui.widgets.base import SyncTable
    from tests import tui_data as td
    from tests.test_tui import WIDE, judged, make_app

    snap = td.snapshot(0, kind="incident")
    leaking = 'growth_min_span = "0s"'  # the hand-made reading has no span
    columns = ("name", "pids", "rss", "spark", "growth", "ttl", "cpu", "note")

    def with_target(extra: str) -> Config:
        return td.config(f'[[processes]]\nname = "order-service"\npid = 1\n{extra}')

    async def styles(app, pilot, config: Config) -> dict[str, str]:  # type: ignore[no-untyped-def]
        app.absorb(judged(dataclasses.replace(snap, round=snap.round + 1), config))
        app.render_now()
        await pilot.pause()
        row = app.query_one("#proc-table", SyncTable).get_row("order-service")
        return {c: str(t.style) for c, t in zip(columns, row, strict=True)}

    async def run() -> list[dict[str, str]]:
        app = make_app()
        async with app.run_test(size=WIDE) as pilot:
            return [
                # Default growth_min_span (5 min), a reading without a span: collecting.
                await styles(app, pilot, td.config()),
                # No minimum span: steady growth (warning), the limit within
                # growth_crit_ttl (critical).
                await styles(app, pilot, with_target(leaking)),
                # growth_warn above the slope: not a leak under this config.
                await styles(app, pilot, with_target(f'{leaking}\ngrowth_warn = "1GiB"')),
                # A configured limit just above the RSS: memory critical.
                await styles(app, pilot, with_target('memory_limit = "300MiB"')),
                # The limit 52 min away is not near under growth_crit_ttl = 2 min ...
                await styles(app, pilot, with_target(f'{leaking}\ngrowth_crit_ttl = "2m"')),
                # ... the configured 300 MiB, 58 s away at this slope, is.
                await styles(
                    app,
                    pilot,
                    with_target(f'{leaking}\ngrowth_crit_ttl = "2m"\nmemory_limit = "300MiB"'),
                ),
            ]

    quiet, leak, fine, tight, slow, near = await run()
    assert (quiet["rss"], quiet["growth"], quiet["ttl"]) == ("", "", "")
    assert (leak["rss"], leak["growth"], leak["ttl"]) == ("", "yellow", "red")
    assert (fine["rss"], fine["growth"], fine["ttl"]) == ("", "", "")
    assert (tight["rss"], tight["growth"], tight["ttl"]) == ("bold red", "", "")
    assert (slow["rss"], slow["growth"], slow["ttl"]) == ("", "yellow", "")
    assert (near["rss"], near["growth"], near["ttl"]) == ("bold red", "yellow", "red")
