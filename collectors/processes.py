"""Local processes: RSS, open fds, threads, CPU % and the RSS trend.

Targets are the configured [[processes]] and every service with a `process`
match (named after the service). A target is matched by pid, pidfile or a
command-line regex; psutil is blocking, so each round runs in a thread. The RSS
trend is a least-squares fit over the dashboard history window; a restart (new
pids or create times) starts a new trend. The limit for time-to-limit is the
configured one, else the process's cgroup v2 `memory.max`, else physical memory.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from collectors.config import Config, ProcessConfig
from collectors.history import RingBuffer, linear_trend
from collectors.model import Reading

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


def process_targets(config: Config) -> list[ProcessConfig]:
    """Every process target as a ProcessConfig (services' `process` included)."""
    out = list(config.processes)
    names = {p.name for p in out}
    for s in config.services:
        if s.process is not None and s.name not in names:
            out.append(
                ProcessConfig(
                    name=s.name,
                    cmdline=s.process.cmdline,
                    pid=s.process.pid,
                    pidfile=s.process.pidfile,
                    memory_limit=s.memory_limit,
                )
            )
    return out


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
    skip = ourselves()
    pids = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info.get("cmdline") or []
        if p.pid not in skip and cmd and rx.search(" ".join(cmd)):
            pids.append(p.pid)
    return pids, (None if pids else f"no process matches cmdline /{cmdline}/")


class ProcessesCollector:
    component = "processes"
    backoff = False  # a lookup is cheap: retried every round, so a restart shows at once

    def __init__(self, config: Config) -> None:
        self.config = config
        self.window = float(config.dashboard.history)
        self._targets = [
            _Target(
                p.name,
                re.compile(p.cmdline) if p.cmdline else None,
                p.pid,
                p.pidfile,
                p.memory_limit,
            )
            for p in process_targets(config)
        ]
        self._physical = psutil.virtual_memory().total

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
            cmdlines = []
            for p in psutil.process_iter(["cmdline"]):
                cmd = p.info.get("cmdline")
                if cmd and p.pid not in skip:
                    cmdlines.append((p.pid, " ".join(cmd)))
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
        rss = fds = threads = 0
        cpu = 0.0
        identity: set[tuple[int, float]] = set()
        procs: dict[int, psutil.Process] = {}
        for pid in pids:
            try:
                proc = t.procs.get(pid)
                if proc is None or not proc.is_running():  # is_running: pid not reused
                    proc = psutil.Process(pid)
                with proc.oneshot():
                    if proc.status() == psutil.STATUS_ZOMBIE:
                        continue  # exited, not yet reaped
                    created = proc.create_time()
                    mem = proc.memory_info().rss
                    nthreads = proc.num_threads()
                    try:
                        nfds = proc.num_fds()
                    except (psutil.AccessDenied, AttributeError):
                        nfds = 0
                    pct = proc.cpu_percent(None)  # since the previous round
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            identity.add((pid, created))
            procs[pid] = proc
            rss += mem
            fds += nfds
            threads += nthreads
            cpu += pct
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
                data={
                    "pids": [],
                    "rss_bytes": None,
                    "cpu_percent": None,
                    "fds": None,
                    "threads": None,
                    "growth_bytes_per_s": None,
                    "growth_r2": None,
                    "time_to_limit_s": None,
                    "gone": gone,
                    "last_pids": t.seen_pids[:20],
                    "match": t.how(),
                    "memory_limit": limit,
                    "memory_limit_source": source,
                    "rss_history": [int(v) for v in t.rss.values()[-HISTORY_POINTS:]],
                },
                error=msg,
                error_kind="unreachable",
            )
        now = time.time()
        frozen = frozenset(identity)
        if frozen != t.identity and t.identity:
            t.rss = RingBuffer(t.rss.capacity)  # a restart resets the trend
        t.identity = frozen
        t.seen_pids = sorted(procs)
        t.rss.append(now, rss)
        samples = t.rss.window(self.window, now)
        trend = linear_trend(samples)
        ttl = None
        if trend is not None and limit:
            ttl = trend.time_to(limit, now)
        data: dict[str, Any] = {
            "pids": sorted(procs),
            "match": t.how(),
            "rss_bytes": rss,
            "rss_history": [int(v) for _, v in samples[-HISTORY_POINTS:]],
            "cpu_percent": round(cpu, 1),
            "fds": fds,
            "threads": threads,
            "growth_bytes_per_s": round(trend.slope, 2) if trend else None,
            "growth_r2": round(trend.r2, 4) if trend else None,
            "growth_span_s": round(trend.span, 1) if trend else 0.0,
            "samples": len(samples),
            "time_to_limit_s": None if ttl is None else round(ttl, 1),
            "memory_limit": limit,
            "memory_limit_source": source,
        }
        return Reading(self.component, t.name, started, data=data)

    def _limit(self, t: _Target, pids: list[int]) -> tuple[int | None, str | None]:
        if t.memory_limit:
            return int(t.memory_limit), "config"
        for pid in pids[:1]:
            limit = cgroup_memory_max(pid)
            if limit:
                return limit, "cgroup"
        return self._physical, "physical"


def cgroup_memory_max(pid: int) -> int | None:
    """The cgroup v2 `memory.max` of a process, None when unlimited or unknown."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            rel = line[3:].strip().lstrip("/")
            try:
                text = (Path("/sys/fs/cgroup") / rel / "memory.max").read_text().strip()
            except OSError:
                return None
            return int(text) if text.isdigit() else None
    return None
