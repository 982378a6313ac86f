"""Run `ultrawatch` for the tests in a fresh process that skips the interpreter's
start-up and the third-party imports.

Most of a CLI test's time went into importing psycopg, redis, aiohttp and
friends again for each of ~190 runs (~0.3 s each). A warm server process
imports those libraries once (never our own modules, and never starts a thread
or an event loop), then forks a child per run. The child takes the caller's
stdin/stdout/stderr file descriptors, environment, working directory and
arguments, and runs the console script's entry point: a real process with its
own exit code, killed by a real SIGKILL at a fault point, exactly as
`subprocess.run([ultrawatch, ...])` would be, minus the imports.

`ULTRAWATCH_TEST_EXEC=1` runs every command with exec instead.

Protocol (one Unix-socket connection per run): the client sends a JSON request
with three file descriptors (SCM_RIGHTS); the server answers `{"pid": N}` once
the child runs and `{"status": S}` (as subprocess's returncode) when it ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# What the CLI imports that costs: loaded once in the server.
WARM = (
    "asyncio",
    "psycopg",
    "redis",
    "redis.asyncio",
    "hiredis",
    "aiohttp",
    "httpx",
    "msgspec",
    "platformdirs",
    "psutil",
    "jwt",
    "tomllib",
    "ssl",
)


# ---------------------------------------------------------------- the server


def _child(request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: become the CLI process the test asked for."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        os.close(fd)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = request["argv"]
    code: Any = 1
    try:
        from dashboard.cli import entry

        entry()
        code = 0
    except SystemExit as e:
        code = e.code
    except BaseException:  # as the interpreter would: traceback, exit 1
        import traceback

        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    with contextlib.suppress(Exception):
        import atexit

        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _handle(conn: socket.socket) -> None:
    """In a forked helper: start the child, report its pid, wait, report its status."""
    try:
        data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
        request = json.loads(data)
        pid = os.fork()
        if pid == 0:
            conn.close()
            _child(request, fds)
        for fd in fds:
            os.close(fd)
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        _, status = os.waitpid(pid, 0)
        conn.sendall(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
    finally:
        os._exit(0)


def serve(path: str) -> None:
    import importlib

    for name in WARM:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    # Helpers are reaped by the kernel: the server never waits for them.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    server.settimeout(2.0)
    parent = os.getppid()
    print("ready", flush=True)
    while True:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            if os.getppid() != parent:  # the test session died without closing us
                os._exit(0)
            continue
        conn.setblocking(True)
        if os.fork() == 0:
            server.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # this one waits for its child
            _handle(conn)
        conn.close()


# ---------------------------------------------------------------- the client


def _feed(fd: int, data: bytes) -> None:
    """Write a run's input into its stdin pipe (a thread: it may exceed the pipe's buffer)."""
    view = memoryview(data)
    try:
        with contextlib.suppress(BrokenPipeError):
            while view:
                view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


class WarmRunner:
    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="ultrawatch-cli-")
        self.path = str(Path(self._dir) / "sock")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.cli_runner", self.path],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=str(Path(__file__).resolve().parent.parent),
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the warm CLI runner did not start")
        self.last_pid: int | None = None  # the last run's process

    def run(
        self,
        argv: list[str],
        *,
        env: dict[str, str],
        input: str | None,
        timeout: float,
    ) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            writer = None
            if input is not None:  # a pipe, as subprocess.run(input=...) gives
                in_fd, w = os.pipe()
                writer = threading.Thread(target=_feed, args=(w, input.encode()), daemon=True)
                writer.start()
            else:
                in_fd = os.open(os.devnull, os.O_RDONLY)
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.connect(self.path)
                    request = {"argv": argv, "env": env, "cwd": os.getcwd()}
                    socket.send_fds(
                        sock, [json.dumps(request).encode()], [in_fd, out.fileno(), err.fileno()]
                    )
                    status = self._wait(sock, argv, timeout)
            finally:
                os.close(in_fd)
                if writer is not None:
                    writer.join(5)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(
                argv,
                status,
                out.read().decode(errors="replace"),
                err.read().decode(errors="replace"),
            )

    def _wait(self, sock: socket.socket, argv: list[str], timeout: float) -> int:
        deadline = time.monotonic() + timeout
        reader = sock.makefile("rb")
        pid: int | None = None
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                line = reader.readline()
            except TimeoutError:
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(argv, timeout) from None
            if not line:
                raise RuntimeError("the warm CLI runner went away")
            message = json.loads(line)
            if "pid" in message:
                pid = self.last_pid = message["pid"]
            else:
                return int(message["status"])

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)


if __name__ == "__main__":
    serve(sys.argv[1])
