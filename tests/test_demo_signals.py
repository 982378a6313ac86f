"""`ultrawatch demo` ends cleanly however it is stopped: the TUI in a real
terminal (a pty) quit with `q`, SIGTERM or SIGHUP, and `demo --serve` hit by a
Ctrl+C that reaches its whole process group, as a terminal sends it.

Every process the demo started (services, Redis, the daemonized PostgreSQL) is
gone afterwards, a temporary state directory is removed, and the demo's own
ordered shutdown holds: the services drain while Redis still runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import threading
from pathlib import Path

import psutil
import pytest

from tests.conftest import ULTRAWATCH
from tests.test_demo import SERVICES, _gone, _read_config, _wait

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]  # the whole platform, end to end

_ESCAPES = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


class Terminal:
    """The demo's TUI on a pty, as in a terminal window; its screen is drained
    continuously (a full pty buffer would stall the app)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: its window size, then straight to exec
            # Set here, not by the parent after the fork: the console reads its size
            # at start, and a parent that came second left it at 80x24 (tabs, no
            # services on the first screen) whenever the child was quicker.
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 180, 0, 0))
            os.execve(argv[0], argv, env)
        self.screen = bytearray()
        self.status: int | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: every process holding the pty's other end is gone
                return
            if not chunk:
                return
            self.screen += chunk

    def text(self) -> str:
        return _ESCAPES.sub(b"", bytes(self.screen)).decode(errors="replace")

    def exited(self) -> bool:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status is not None

    def close(self) -> None:
        if not self.exited():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _demo_processes(root_pid: int, state_dir: Path) -> list[psutil.Process]:
    """The demo and everything it started, including the daemonized postmaster."""
    root = psutil.Process(root_pid)
    procs = [root, *root.children(recursive=True)]
    pidfile = state_dir / "pg" / "pgdata" / "postmaster.pid"
    procs.append(psutil.Process(int(pidfile.read_text().split()[0])))
    return procs


@pytest.mark.parametrize("how", ["q", "SIGTERM", "SIGHUP"])
def test_tui_demo_in_a_terminal_stops_on_q_sigterm_and_sighup(tmp_path: Path, how: str) -> None:
    # SIGHUP runs on a temporary state directory (the dropped SSH session), the
    # others on an explicit one; TMPDIR shows whether anything is left behind.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    argv = [ULTRAWATCH, "demo", "--scenario", "healthy"]
    state = tmp_path / "state"
    if how != "SIGHUP":
        argv += ["--state-dir", str(state)]
    env = {**os.environ, "TERM": "xterm-256color", "TMPDIR": str(tmp)}
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg-state")  # a temporary demo's audit log
    term = Terminal(argv, env)
    try:
        if how == "SIGHUP":
            found = _wait(lambda: list(tmp.glob("ultrawatch-demo-*")), 30, "the temp state dir")
            state = found[0]
        # the console is up and has shown the platform's services
        _wait(
            lambda: (state / "ultrawatch.toml").is_file() or term.exited(), 90, "the demo's config"
        )
        assert not term.exited(), term.text()[-2000:]
        _wait(
            lambda: all(s in term.text() for s in SERVICES) or term.exited(),
            60,
            "the services on screen",
        )
        assert not term.exited(), term.text()[-2000:]
        procs = _demo_processes(term.pid, state)
        names = " ".join(" ".join(p.cmdline()) for p in procs)
        assert names.count("dashboard.demo.service") == 4 and "redis-server" in names

        if how == "q":
            os.write(term.fd, b"q")
        else:
            os.kill(term.pid, getattr(signal, how))
        _wait(term.exited, 60, f"the demo to exit after {how}", every=0.1)
        assert term.status == 0, term.text()[-2000:]
        # The terminal is not left blank while the platform stops.
        tail = term.text()[-3000:]
        assert "stopping: draining services, stopping Redis, PostgreSQL" in tail, tail
        assert re.search(r"stopped in \d+\.\ds", tail), tail
        _wait(lambda: not _gone(procs), 10, f"every demo process to end: {_gone(procs)}")
        if how == "SIGHUP":
            assert not state.exists()  # the temporary state directory is removed
        else:
            assert (state / "ultrawatch.toml").is_file()  # an explicit one is kept
        assert list(tmp.iterdir()) == []
        log = (state / "logs" / "demo.log").read_text() if state.exists() else ""
        if how != "q" and log:
            assert f"{how} received: stopping" in log
    finally:
        term.close()


def test_ctrl_c_to_the_process_group_keeps_the_demo_s_shutdown_order(tmp_path: Path) -> None:
    """A terminal's Ctrl+C signals the whole foreground process group. The demo's
    servers must not take it themselves: the services drain (and release their
    locks) while Redis still runs, then Redis stops, then PostgreSQL."""
    state = tmp_path / "state"
    argv = [ULTRAWATCH, "demo", "--serve", "--scenario", "incident", "--state-dir", str(state)]
    with open(tmp_path / "demo.stderr", "wb") as err:
        # its own process group, as a shell gives a foreground job
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        _read_config(proc, timeout=90)
        procs = _demo_processes(proc.pid, state)
        redis_server = next(p for p in procs if "redis-server" in p.name())
        # order-service holds inventory locks most of the time (slow operations,
        # orders): wait until its log shows it serving, then stop everything
        _wait(
            lambda: "listening" in (state / "logs" / "order-service.log").read_text(),
            30,
            "order-service",
        )
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0
        _wait(lambda: not _gone(procs), 10, f"every demo process to end: {_gone(procs)}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert not redis_server.is_running()
    # Redis was stopped by the demo (SIGTERM), not by the terminal's SIGINT
    redis_log = (state / "redis" / "redis.log").read_text()
    assert "Received SIGTERM" in redis_log and "Received SIGINT" not in redis_log
    demo_log = (state / "logs" / "demo.log").read_text()
    steps = ["SIGINT received: stopping", "stopping the services", "stopping Redis"]
    steps.append("stopping PostgreSQL")
    at = [demo_log.find(s) for s in steps]
    assert -1 not in at and at == sorted(at), demo_log[-3000:]
    # every service drained with Redis still up: no Redis error while releasing locks
    for service in SERVICES:
        text = (state / "logs" / f"{service}.log").read_text()
        assert "drained: exiting" in text, text[-2000:]
        assert "lock release failed" not in text, text[-2000:]


def test_a_stop_signal_during_a_busy_tui_callback_exits_the_app() -> None:
    """The race the pty test can only hit by chance: the signal lands while the
    event loop runs a callback (a render, say). An exception raised there would be
    swallowed by the loop, and the demo would run on, deaf to further signals."""
    import asyncio
    import time

    from textual.app import App

    from dashboard.demo.cli import _STOP_SIGNALS, _Stopper

    def busy() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        t = time.perf_counter()
        while time.perf_counter() - t < 0.05:  # the handler runs in here
            pass

    class Console(App[int]):
        def on_mount(self) -> None:
            asyncio.get_running_loop().call_soon(busy)
            # had the stop been lost, this ends the test instead of hanging it
            self.set_timer(10, lambda: self.exit(return_code=99))

    stopper = _Stopper()
    previous = {sig: signal.signal(sig, stopper) for sig in _STOP_SIGNALS}
    try:
        app = Console()
        stopper.app = app
        app.run(headless=True)
        assert stopper.received == signal.SIGTERM
        assert app.return_code == 0  # ended by the signal, not by the fallback timer
        # and no signal is left ignored: a second stop would still be heard
        assert all(signal.getsignal(sig) is stopper for sig in _STOP_SIGNALS)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
