"""Running `ultrawatch` as a user does, for the benches: a cold one-shot `check`
process, the rounds of a warm `check --watch`, the CPU a process used, and a
profile of a cold run (where its time goes).

Child processes get `PYTHONPYCACHEPREFIX` (a temporary directory) instead of
`PYTHONDONTWRITEBYTECODE`: an installed ultrawatch has its bytecode compiled at
install (pip and uv do that), while a checkout run with PYTHONDONTWRITEBYTECODE=1
recompiles every project module on every start (~0.3 s). The first run of each
command fills that cache and is not counted.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXE = str(Path(sys.executable).with_name("ultrawatch"))
_PYCACHE = tempfile.mkdtemp(prefix="uw-bench-pyc-")


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ, PYTHONPYCACHEPREFIX=_PYCACHE, **extra)
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    return out


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: Sequence[str], *, ok: Sequence[int] = (0, 1, 2)) -> tuple[str, float, float]:
    """(stdout, wall s, CPU s of the process) of one run."""
    c0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(list(cmd), capture_output=True, text=True, env=env())
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if proc.returncode not in ok:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return proc.stdout, wall, cpu


def cold_check(args: Sequence[str]) -> dict[str, Any]:
    """One `ultrawatch check ARGS --format json` process: its report plus `wall`
    and `cpu` (seconds, the whole process: start-up, round, output)."""
    out, wall, cpu = timed([EXE, "check", *args, "--format", "json"])
    report = json.loads(out)
    report["wall"], report["cpu"] = wall, cpu
    return report


def proc_cpu(pid: int) -> float:
    """CPU seconds a running process has used so far, to the nanosecond: the sum of
    its live threads' run time (/proc/PID/task/*/schedstat). /proc/PID/stat counts
    whole clock ticks (10 ms), coarser than a round of a millisecond or two; a thread
    that has ended is not counted, and ultrawatch keeps its threads for the run."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue  # the thread ended meanwhile
    except OSError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total / 1e9


class Watch:
    """A `check --watch S` process; `rounds(n)` reads its next n JSON lines, with the
    CPU it used for them. The rounds before the first read are its warm-up."""

    def __init__(self, args: Sequence[str], interval: float = 1.0) -> None:
        self.proc = subprocess.Popen(
            [EXE, "check", *args, "--watch", str(interval), "--format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env(),
        )

    def next(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            sys.exit(f"check --watch ended ({self.proc.wait()})")
        return json.loads(line)

    def rounds(self, n: int) -> tuple[list[dict[str, Any]], float]:
        self.next()  # the CPU from here on belongs to the n rounds read below
        c0 = proc_cpu(self.proc.pid)
        got = [self.next() for _ in range(n)]
        return got, proc_cpu(self.proc.pid) - c0

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_PROFILE = r"""
import cProfile, io, pstats, sys
pr = cProfile.Profile()
pr.enable()
from dashboard.cli import main
sys.argv = ["ultrawatch", *sys.argv[1:]]
try:
    main()  # not entry(): it ends the process with os._exit, before the profile is written
except SystemExit:
    pass
pr.disable()
out = io.StringIO()
stats = pstats.Stats(pr, stream=out)
stats.sort_stats("cumulative").print_stats(int(os.environ["UW_TOP"]))
stats.sort_stats("tottime").print_stats(int(os.environ["UW_TOP"]))
sys.stderr.write(out.getvalue())
"""


def profile_cold(args: Sequence[str], top: int = 25) -> str:
    """cProfile of one cold `ultrawatch check ARGS` (imports included), its two
    summaries (cumulative, then own time), as text."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os\n" + _PROFILE, "check", *args, "--format", "json"],
        capture_output=True,
        text=True,
        env=env(UW_TOP=str(top)),
    )
    text = proc.stderr
    keep = io.StringIO()
    for line in text.splitlines():
        # the profile's own lines and the table, without pstats' blank padding
        if line.strip():
            keep.write(line.replace(str(Path.cwd()) + "/", "").replace(sys.prefix, "<venv>"))
            keep.write("\n")
    return keep.getvalue()
