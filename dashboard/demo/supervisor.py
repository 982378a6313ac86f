"""Runs the demo services as OS processes and restarts one that exits, as an orchestrator would.

Each service runs in its own session (its own process group), so a Ctrl+C in
the terminal reaches only the demo's main process, which then stops every
group itself: SIGTERM (the service drains), then SIGKILL for what remains.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("ultrawatch.demo")

RESTART_DELAY_S = 0.3
CRASH_BACKOFF_MAX_S = 5.0
STOP_GRACE_S = 8.0


@dataclass
class ServiceProcess:
    name: str
    port: int
    args: list[str]  # after `python -m dashboard.demo.service`
    faults: list[str]  # first generation only
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    generation: int = 0
    started_at: float = 0.0
    failures: int = 0
    exits: list[int] = field(default_factory=list)  # exit codes seen, for the log and tests

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "dashboard.demo.service", "--name", self.name]
        argv += ["--port", str(self.port), *self.args, "--parent-pid", str(os.getpid())]
        return argv + (self.faults if self.generation == 0 else [])

    def spawn(self) -> None:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: we signal the group
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.started_at = time.monotonic()
        log.info("%s started (pid %d, generation %d)", self.name, self.proc.pid, self.generation)

    def signal_group(self, sig: int) -> None:
        # Only while it runs: the group id of a reaped leader may be reused.
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


class Supervisor:
    """Watches the services from a thread; restarts the ones that exit until stopped."""

    def __init__(
        self, services: list[ServiceProcess], on_event: Callable[[str], None] | None = None
    ) -> None:
        self.services = services
        self.on_event = on_event or (lambda _m: None)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        for svc in self.services:
            svc.spawn()
        self._thread = threading.Thread(target=self._watch, name="demo-supervisor", daemon=True)
        self._thread.start()

    def pids(self) -> list[int]:
        return [s.proc.pid for s in self.services if s.proc and s.proc.poll() is None]

    def _watch(self) -> None:
        pending: dict[str, float] = {}  # name -> when to restart
        while not self._stopping.wait(0.1):
            now = time.monotonic()
            with self._lock:
                for svc in self.services:
                    if svc.proc is None or self._stopping.is_set():
                        continue
                    code = svc.proc.poll()
                    if code is None:
                        continue
                    if svc.name not in pending:
                        svc.exits.append(code)
                        quick = now - svc.started_at < 2.0 and code != 0
                        svc.failures = svc.failures + 1 if quick else 0
                        delay = min(CRASH_BACKOFF_MAX_S, RESTART_DELAY_S * 2**svc.failures)
                        pending[svc.name] = now + delay
                        self.on_event(
                            f"{svc.name} exited with code {code}; restarting in {delay:.1f}s"
                        )
                    elif now >= pending[svc.name]:
                        del pending[svc.name]
                        svc.generation += 1
                        svc.spawn()

    def stop(self) -> None:
        """SIGTERM every group, wait for them to drain, SIGKILL what is left."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            for svc in self.services:
                svc.signal_group(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S
            for svc in self.services:
                if svc.proc is None:
                    continue
                with contextlib.suppress(subprocess.TimeoutExpired):
                    svc.proc.wait(max(0.1, deadline - time.monotonic()))
            for svc in self.services:
                if svc.proc is not None and svc.proc.poll() is None:
                    svc.signal_group(signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        svc.proc.wait(5)
