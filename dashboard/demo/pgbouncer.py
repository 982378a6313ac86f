"""A real PgBouncer (Debian's `pgbouncer` binary) on 127.0.0.1 in front of a
PostgreSQL, for the demo and the tests.

PgBouncer has no wheel: the program comes from the system (`apt-get install -y
pgbouncer`). It refuses to run as root, so as root it runs with `-u` an
unprivileged user, and its directory is made readable by that user.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dashboard.demo.embedded import EmbeddedUnavailable, free_port, wait_for_port

RUN_AS = "nobody"  # as root: who PgBouncer runs as (-u)
INSTALL = "apt-get install -y pgbouncer"


def pgbouncer_binary() -> str | None:
    """The pgbouncer program: on PATH, or in Debian's /usr/sbin (not on every PATH)."""
    found = shutil.which("pgbouncer")
    if found:
        return found
    for folder in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        path = os.path.join(folder, "pgbouncer")
        if os.access(path, os.X_OK):
            return path
    return None


class EmbeddedPgBouncer:
    """PgBouncer in `base_dir`, on 127.0.0.1:`port`, pooling `databases` (name ->
    libpq connection string of the server). Users and passwords in `users` (the
    auth file; md5 authentication); `admin_users` may PAUSE/RESUME/KILL,
    `stats_users` may only SHOW."""

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        databases: Mapping[str, str],
        users: Mapping[str, str],
        *,
        admin_users: tuple[str, ...] = ("admin",),
        stats_users: tuple[str, ...] = ("monitor",),
        port: int | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        binary = pgbouncer_binary()
        if binary is None:
            raise EmbeddedUnavailable(f"pgbouncer not found: {INSTALL}")
        self.binary = binary
        self.base_dir = Path(base_dir).resolve()
        self.databases = dict(databases)
        self.users = dict(users)
        self.admin_users = admin_users
        self.stats_users = stats_users
        self.port = port or free_port()
        self.settings: dict[str, Any] = {
            "pool_mode": "transaction",
            "default_pool_size": 5,
            "max_client_conn": 200,
            "ignore_startup_parameters": "extra_float_digits",
            **(settings or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def ini(self) -> Path:
        return self.base_dir / "pgbouncer.ini"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "pgbouncer.log"

    def dsn(self, user: str, dbname: str, password: str | None = None) -> str:
        pw = self.users.get(user, "") if password is None else password
        auth = f"{user}:{pw}" if pw else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def admin_dsn(self, user: str = "admin") -> str:
        return self.dsn(user, "pgbouncer")

    def _write(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        users = "".join(f'"{u}" "{p}"\n' for u, p in self.users.items())
        (self.base_dir / "userlist.txt").write_text(users)
        dbs = "".join(f"{name} = {conn}\n" for name, conn in self.databases.items())
        opts = {
            "listen_addr": "127.0.0.1",
            "listen_port": self.port,
            "unix_socket_dir": "",
            "auth_type": "md5",
            "auth_file": self.base_dir / "userlist.txt",
            "admin_users": ", ".join(self.admin_users),
            "stats_users": ", ".join(self.stats_users),
            "logfile": self.log_file,
            "pidfile": self.base_dir / "pgbouncer.pid",
            **self.settings,
        }
        pgb = "".join(f"{k} = {v}\n" for k, v in opts.items())
        self.ini.write_text(f"[databases]\n{dbs}\n[pgbouncer]\n{pgb}")

    def _run_as(self) -> list[str]:
        """As root, PgBouncer must be told whom to run as, and that user must be
        able to read its files and write its log."""
        if os.geteuid() != 0:
            return []
        entry = pwd.getpwnam(RUN_AS)
        for p in [self.base_dir, *self.base_dir.parents]:
            mode = p.stat().st_mode
            if mode & stat.S_IXOTH == 0:
                p.chmod(mode | stat.S_IXOTH)
        os.chown(self.base_dir, entry.pw_uid, entry.pw_gid)
        for f in self.base_dir.iterdir():
            os.chown(f, entry.pw_uid, entry.pw_gid)
        return ["-u", RUN_AS]

    def start(self, timeout: float = 20) -> EmbeddedPgBouncer:
        self._write()
        cmd = [self.binary, *self._run_as(), str(self.ini)]
        # Its own session, like the demo's Redis: a Ctrl+C in the terminal must not
        # reach it before the services behind it have stopped.
        # What it says before its log file is open (a bad ini) goes to stderr.
        with open(self.base_dir / "pgbouncer.stderr", "wb") as stderr:
            self.proc = subprocess.Popen(
                cmd,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            wait_for_port("127.0.0.1", self.port, timeout)
        except OSError:
            self.stop()
            tail = "".join(
                f.read_text(errors="replace")[-2000:]
                for f in (self.log_file, self.base_dir / "pgbouncer.stderr")
                if f.exists()
            )
            raise EmbeddedUnavailable(f"pgbouncer did not start on {self.port}: {tail}") from None
        atexit.register(self.stop)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # PgBouncer's immediate shutdown
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def restart(self) -> None:
        self.stop()
        # The port is reused at once (SO_REUSEADDR); a short wait covers a slow exit.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                self.start()
                return
            except EmbeddedUnavailable:
                time.sleep(0.1)
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)
