"""Local processes: RSS, open fds, threads, CPU % and the RSS trend.

Targets are the configured [[processes]] and every service with a `process`
match (named after the service). A target is matched by pid, pidfile or a
command-line regex; psutil is blocking, so each round runs in a thread. The RSS
trend is a least-squares fit over the dashboard history window; a restart (new
pids or create times) starts a new trend. The limit for time-to-limit is the
configured one, else the process's cgroup limit (the lowest v2 `memory.max` up its
cgroup tree, or v1 `memory.limit_in_bytes`), else physical memory. CPU % is None on a
process's first sample: there is nothing yet to measure it against.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from collectors.core.history import RingBuffer, linear_trend
from collectors.core.model import Reading
from collectors.processes.config import ProcessTargets
from collectors.processes.data import ProcessData

HISTORY_POINTS = 60


@dataclass
class _Target:
    name: str
    cmdline: re.Pattern[str] | None
    pid: int | None
    pidfile: str | None
    memory_limit: int | None
    procs: dict[int, psutil.Process] = field(default_factory=dict)
    identity: frozenset[tuple[int, float]] = frozenset()
    rss: RingBuffer = field(default_factory=lambda: RingBuffer(900))
    seen_pids: list[int] = field(default_factory=list)

    def how(self) -> str:
        if self.pid is not None:
            return f"pid {self.pid}"
        if self.pidfile is not None:
            return f"pidfile {self.pidfile}"
        return f"cmdline /{self.cmdline.pattern if self.cmdline else ''}/"


@dataclass
class _Seen:
    """One round's sums over a target's matched processes."""

    rss: int = 0
    fds: int = 0
    threads: int = 0
    cpu: float | None = None  # None until some process has a previous sample
    identity: set[tuple[int, float]] = field(default_factory=set)  # (pid, create time)
    procs: dict[int, psutil.Process] = field(default_factory=dict)

    def add(self, pid: int, known: psutil.Process | None) -> None:
        """Sample one process (`known`: the same pid's Process from the last round)."""
        try:
            # is_running: the pid was not reused by another process since.
            proc = known if known is not None and known.is_running() else psutil.Process(pid)
            with proc.oneshot():
                if proc.status() == psutil.STATUS_ZOMBIE:
                    return  # exited, not yet reaped
                created = proc.create_time()
                mem = proc.memory_info().rss
                nthreads = proc.num_threads()
                try:
                    nfds = proc.num_fds()
                except (psutil.AccessDenied, AttributeError):
                    nfds = 0
                # Since the previous round; psutil's first call has nothing to
                # compare with and says 0.0, which would read as "idle".
                pct = proc.cpu_percent(None)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return
        self.identity.add((pid, created))
        self.procs[pid] = proc
        self.rss += mem
        self.fds += nfds
        self.threads += nthreads
        if proc is known:
            self.cpu = (self.cpu or 0.0) + pct


def ourselves() -> set[int]:
    """Our pid and our ancestors': `uv run ultrawatch drain order-service` must never
    match a cmdline regex for order-service."""
    me = psutil.Process()
    out = {me.pid}
    try:
        out.update(p.pid for p in me.parents())
    except psutil.Error:
        pass
    return out


def find_pids(
    cmdline: str | None = None, pid: int | None = None, pidfile: str | None = None
) -> tuple[list[int], str | None]:
    """Pids matching one way of naming a process, or ([], why not). Blocking."""
    if pid is not None:
        return ([pid], None) if psutil.pid_exists(pid) else ([], f"pid {pid} does not exist")
    if pidfile is not None:
        try:
            text = Path(os.path.expanduser(pidfile)).read_text().strip()
            n = int(text.split()[0])
        except FileNotFoundError:
            return [], f"pidfile {pidfile} does not exist"
        except (OSError, ValueError, IndexError) as e:
            return [], f"pidfile {pidfile} unreadable: {type(e).__name__}"
        return ([n], None) if psutil.pid_exists(n) else ([], f"pid {n} from {pidfile} is gone")
    assert cmdline is not None
    rx = re.compile(cmdline)
    pids = [pid for pid, cmd in _cmdlines(ourselves()) if rx.search(cmd)]
    return pids, (None if pids else f"no process matches cmdline /{cmdline}/")


class ProcessesCollector:
    component = "processes"
    backoff = False  # a lookup is cheap: retried every round, so a restart shows at once

    def __init__(self, targets: ProcessTargets) -> None:
        self.window = float(targets.window)
        self._targets = [
            _Target(
                p.name,
                re.compile(p.cmdline) if p.cmdline else None,
                p.pid,
                p.pidfile,
                p.memory_limit,
            )
            for p in targets.targets
        ]
        self._physical = psutil.virtual_memory().total
        self.root = Path("/")  # where /proc and /sys are: a test points it at a fake tree

    def targets(self) -> list[str]:
        return [t.name for t in self._targets]

    async def collect(self) -> list[Reading]:
        return await asyncio.to_thread(self._collect)

    async def close(self) -> None:
        pass

    # -------------------------------------------------------- in the thread

    def _collect(self) -> list[Reading]:
        cmdlines: list[tuple[int, str]] | None = None
        if any(t.cmdline is not None for t in self._targets):
            # One pass over the process table serves every regex target.
            skip = ourselves()
            cmdlines = list(_cmdlines(skip))
        out = []
        for t in self._targets:
            started = time.time()
            try:
                out.append(self._one(t, cmdlines, started))
            except Exception as e:  # one target's trouble must not hide the others
                out.append(
                    Reading(
                        self.component,
                        t.name,
                        started,
                        error=f"internal error: {type(e).__name__}: {e}",
                        error_kind="internal",
                    )
                )
        return out

    def _pids(self, t: _Target, cmdlines: list[tuple[int, str]] | None) -> tuple[list[int], str]:
        if t.cmdline is not None:
            pids = [pid for pid, cmd in cmdlines or [] if t.cmdline.search(cmd)]
            return pids, f"no process matches cmdline /{t.cmdline.pattern}/"
        pids, why = find_pids(pid=t.pid, pidfile=t.pidfile)
        return pids, why or ""

    def _one(self, t: _Target, cmdlines: list[tuple[int, str]] | None, started: float) -> Reading:
        pids, why = self._pids(t, cmdlines)
        seen = _Seen()
        for pid in pids:
            seen.add(pid, t.procs.get(pid))
        procs = seen.procs
        t.procs = procs
        limit, source = self._limit(t, sorted(procs))
        if not procs:
            gone = bool(t.seen_pids)
            msg = why or "matched processes have exited"
            if gone:
                msg = f"process gone (was pid {', '.join(map(str, t.seen_pids[:5]))}): {msg}"
            return Reading(
                self.component,
                t.name,
                started,
                data=ProcessData(
                    gone=gone,
                    last_pids=t.seen_pids[:20],
                    match=t.how(),
                    memory_limit=limit,
                    memory_limit_source=source,
                    rss_history=[int(v) for v in t.rss.values()[-HISTORY_POINTS:]],
                ),
                error=msg,
                error_kind="unreachable",
            )
        now = time.time()
        frozen = frozenset(seen.identity)
        if frozen != t.identity and t.identity:
            t.rss = RingBuffer(t.rss.capacity)  # a restart resets the trend
        t.identity = frozen
        t.seen_pids = sorted(procs)
        t.rss.append(now, seen.rss)
        samples = t.rss.window(self.window, now)
        trend = linear_trend(samples)
        ttl = None
        if trend is not None and limit:
            ttl = trend.time_to(limit, now)
        data = ProcessData(
            pids=sorted(procs),
            match=t.how(),
            rss_bytes=seen.rss,
            rss_history=[int(v) for _, v in samples[-HISTORY_POINTS:]],
            cpu_percent=None if seen.cpu is None else round(seen.cpu, 1),
            fds=seen.fds,
            threads=seen.threads,
            growth_bytes_per_s=round(trend.slope, 2) if trend else None,
            growth_r2=round(trend.r2, 4) if trend else None,
            growth_span_s=round(trend.span, 1) if trend else 0.0,
            samples=len(samples),
            time_to_limit_s=None if ttl is None else round(ttl, 1),
            memory_limit=limit,
            memory_limit_source=source,
        )
        return Reading(self.component, t.name, started, data=data)

    def _limit(self, t: _Target, pids: list[int]) -> tuple[int | None, str | None]:
        if t.memory_limit:
            return int(t.memory_limit), "config"
        for pid in pids[:1]:
            limit = cgroup_memory_max(pid, self.root)
            if limit:
                return limit, "cgroup"
        return self._physical, "physical"


# cgroup v1 says "unlimited" with a huge page-rounded number (2**63 - 4096 and the like).
V1_UNLIMITED = 1 << 60


def _mounts(root: Path) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """(cgroup2 mounts, cgroup v1 memory mounts) from /proc/self/mountinfo, each as
    (the mount's root inside the hierarchy, where it is mounted)."""
    v2: list[tuple[str, Path]] = []
    v1: list[tuple[str, Path]] = []
    try:
        lines = (root / "proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return v2, v1
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        # Mount points escape spaces and the like as octal (\040).
        where = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        point = root / where.lstrip("/")
        if tail[0] == "cgroup2":
            v2.append((fields[3], point))
        elif tail[0] == "cgroup" and "memory" in tail[2].split(","):
            v1.append((fields[3], point))
    return v2, v1


def _lowest_along(mount_root: str, point: Path, group: str, name: str) -> int | None:
    """The lowest limit in `name` from the process's cgroup up to the mount's root:
    a parent's limit caps every child below it."""
    rel = group.strip()
    if mount_root not in ("", "/") and (rel == mount_root or rel.startswith(mount_root + "/")):
        rel = rel[len(mount_root) :]
    parts = [p for p in rel.split("/") if p and p not in (".", "..")]
    lowest: int | None = None
    for depth in range(len(parts), -1, -1):
        try:
            text = (point.joinpath(*parts[:depth]) / name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < V1_UNLIMITED:
            lowest = int(text) if lowest is None else min(lowest, int(text))
    return lowest


def cgroup_memory_max(pid: int, root: Path = Path("/")) -> int | None:
    """The memory limit a process's cgroups put on it, None when unlimited or unknown.

    cgroup v2: the lowest `memory.max` from its cgroup up the tree, under wherever
    cgroup2 is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts);
    else cgroup v1's `memory.limit_in_bytes`, the "unlimited" huge values ignored.
    `root` stands for "/" (tests point it at a fake tree).
    """
    try:
        lines = (root / f"proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    v2_group = v1_group = None
    for line in lines:
        hid, _, rest = line.partition(":")
        controllers, _, group = rest.partition(":")
        if hid == "0" and controllers == "":
            v2_group = group
        elif "memory" in controllers.split(","):
            v1_group = group
    v2_mounts, v1_mounts = _mounts(root)
    found: list[int] = []
    if v2_group is not None:
        for mount_root, point in v2_mounts or [("/", root / "sys/fs/cgroup")]:
            limit = _lowest_along(mount_root, point, v2_group, "memory.max")
            if limit is not None:
                found.append(limit)
    if v1_group is not None:
        for mount_root, point in v1_mounts or [("/", root / "sys/fs/cgroup/memory")]:
            limit = _lowest_along(mount_root, point, v1_group, "memory.limit_in_bytes")
            if limit is not None:
                found.append(limit)
    return min(found) if found else None


def _cmdlines(skip: set[int]) -> Iterator[tuple[int, str]]:
    """(pid, command line) of every process but `skip`. Not process_iter: it keeps
    every process's Process object, and with attrs its answers, in a module-wide
    cache for as long as the process lives, so the monitor's memory grew with
    the host's process count (a soak on a busy host: +1.3 MB of command lines)."""
    for pid in psutil.pids():
        if pid in skip:
            continue
        try:
            cmd = psutil.Process(pid).cmdline()
        except psutil.Error:  # gone, or not ours to read
            continue
        if cmd:
            yield pid, " ".join(cmd)
