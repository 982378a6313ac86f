"""PAUSE, RESUME, RECONNECT or KILL one database of PgBouncer:
`ultrawatch pgbouncer pause|resume|reconnect|kill DATABASE [--instance NAME]`
(`--instance` is required when the config has several [[pgbouncer]]).

The action opens its own short connection to the admin console with
`pgbouncer.dsn` (application_name `ultrawatch-action`); its user must be in
PgBouncer's `admin_users` (a `stats_users` user may only read, and is told so).
The database must be one PgBouncer serves now (SHOW DATABASES), never the admin
console itself, and the command names it exactly (quoted when it is not a plain
identifier). The effect is verified from SHOW DATABASES / SHOW POOLS / SHOW SERVERS:
paused (and no server still busy), resumed, every server connection seen at
planning replaced, every connection dropped.

Everything PgBouncer says is data: escaped to one printable line before it reaches
a plan, a message or the audit log; the DSN's password is scrubbed from errors.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from typing import Any, Literal, get_args

import psycopg

from collectors.config import Config
from collectors.core.redact import dsn_secrets, printable, scrub
from collectors.pgbouncer.collector import ADMIN_DB, CommandTimeout, connect_admin, show
from collectors.pgbouncer.config import instance as pick_instance
from collectors.pgbouncer.config import instances
from dashboard.actions.base import ActionRefused, Outcome, Plan, Progress, Result

Command = Literal["pause", "resume", "reconnect", "kill"]
COMMANDS: tuple[str, ...] = get_args(Command)
APPLICATION_NAME = "ultrawatch-action"
EXECUTE_TIMEOUT = 15.0  # PAUSE returns only once the running transactions are done
VERIFY_FOR = 10.0  # seconds to wait for the effect to show

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_SUMMARY = {
    "pause": (
        "PAUSE {db}: PgBouncer lets the running transactions finish, then closes its "
        "server connections; clients stay connected and their queries wait until RESUME"
    ),
    "resume": "RESUME {db}: the clients held since PAUSE or KILL go on",
    "reconnect": (
        "RECONNECT {db}: every server connection is closed once released and new ones "
        "are opened (after a failover or a change of the server's address)"
    ),
    "kill": (
        "KILL {db}: every client and server connection of {db} is dropped now (their "
        "transactions are lost); {db} then stays paused until RESUME"
    ),
}


class PgBouncerError(Exception):
    """A PgBouncer failure while acting, already escaped and without secrets."""


def quoted(database: str) -> str:
    """The database as the admin console's command line names it."""
    if _PLAIN.fullmatch(database):
        return database
    return '"' + database.replace('"', '""') + '"'


class PgBouncerAction:
    def __init__(
        self, config: Config, database: str, command: str, instance: str | None = None
    ) -> None:
        if command not in COMMANDS:
            raise ValueError(f"command must be one of {', '.join(COMMANDS)}, got {command!r}")
        self.config = config
        self.database = database
        self.command: Command = command  # type: ignore[assignment]
        self.name = f"pgbouncer-{command}"
        self.problem: str | None = None
        found = instances(config.pgbouncer)
        self.settings = pick_instance(config.pgbouncer, instance)
        # With several PgBouncers the target names the instance too.
        self.instance = self.settings.name if self.settings and len(found) > 1 else None
        if not found:
            self.problem = "no [pgbouncer] section in the configuration"
        elif self.settings is None:
            names = ", ".join(x.name for x in found)
            self.problem = (
                f"several PgBouncers are configured: --instance NAME, one of {names}"
                if instance is None
                else f"no PgBouncer instance {printable(instance)!r} (configured: {names})"
            )
        elif database == ADMIN_DB:
            self.problem = "'pgbouncer' is the admin console, not a pooled database"
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self._secrets = [s for pb in found for s in dsn_secrets(pb.dsn)]

    @property
    def _where(self) -> str:
        return f"pgbouncer {self.instance} " if self.instance else "pgbouncer "

    @property
    def audit_target(self) -> str:
        return f"{self._where}database {printable(self.database)}"

    @property
    def audit_params(self) -> dict[str, Any]:
        params = {"database": printable(self.database), "command": self.command.upper()}
        return {**params, "instance": self.instance} if self.instance else params

    def _text(self, value: Any) -> Any:
        return printable(scrub(value, self._secrets)) if isinstance(value, str) else value

    def _error(self, e: BaseException) -> str:
        lines = [x.strip() for x in str(e).strip().splitlines() if x.strip()]
        return self._text(
            (lines[0] if lines else type(e).__name__).removeprefix("connection failed: ")
        )

    @property
    def _timeout(self) -> float:
        assert self.settings is not None
        return float(self.settings.command_timeout)

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self.conn is None or self.conn.closed or self.conn.broken:
            assert self.settings is not None
            self.conn = await connect_admin(self.settings, APPLICATION_NAME)
        return self.conn

    async def _show(self, command: str) -> list[dict[str, Any]]:
        return await show(await self._connect(), command, self._timeout)

    async def _state(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The database's SHOW DATABASES row (None: not served) and its pools."""
        dbs = await self._show("SHOW DATABASES")
        row = next((r for r in dbs if r.get("name") == self.database), None)
        pools = [r for r in await self._show("SHOW POOLS") if r.get("database") == self.database]
        return row, pools

    async def _servers(self) -> set[tuple[Any, ...]]:
        """The database's server connections, each as (backend pid, connect time, ptr)."""
        rows = await self._show("SHOW SERVERS")
        return {
            (r.get("remote_pid"), r.get("connect_time"), r.get("ptr"))
            for r in rows
            if r.get("database") == self.database
        }

    async def plan(self) -> Plan:
        if self.problem:
            raise ActionRefused(self.problem)
        try:
            row, pools = await self._state()
            servers = await self._servers() if self.command == "reconnect" else set()
        except (psycopg.Error, CommandTimeout) as e:
            raise ActionRefused(f"cannot read PgBouncer: {self._error(e)}") from None
        db = self._text(self.database)
        if row is None:
            raise ActionRefused(f"PgBouncer serves no database {db!r} (SHOW DATABASES)")
        paused = bool(int(row.get("paused") or 0))
        if self.command == "pause" and paused:
            raise ActionRefused(f"{db} is already paused: nothing to do")
        if self.command == "resume" and not paused:
            raise ActionRefused(f"{db} is not paused: nothing to resume")
        total = {k: sum(int(p.get(k) or 0) for p in pools) for k in _POOL_COUNTS}
        details = [
            ("database", db),
            ("server", f"{self._text(str(row.get('host')))}:{row.get('port')}"),
            ("paused", "yes" if paused else "no"),
            ("disabled", "yes" if int(row.get("disabled") or 0) else "no"),
            ("pool_size", str(row.get("pool_size"))),
            ("clients", f"{total['cl_active']} active, {total['cl_waiting']} waiting"),
            (
                "servers",
                f"{total['sv_active']} active, {total['sv_idle']} idle, {total['sv_used']} used",
            ),
        ]
        return Plan(
            action=self.name,
            target=f"{self._where}database {db}",
            summary=_SUMMARY[self.command].format(db=db),
            details=details,
            params={
                "database": db,
                "command": self.command.upper(),
                "paused": paused,
                **total,
                # RECONNECT is verified against the server connections seen now
                "servers": sorted(map(list, servers), key=str),
            },
            confirm_name=db,
            dangerous=self.command != "resume",
        )

    async def execute(self, plan: Plan, progress: Progress) -> None:
        command = f"{self.command.upper()} {quoted(self.database)}"
        progress(command)
        try:
            await show(await self._connect(), command, EXECUTE_TIMEOUT)
        except CommandTimeout:
            # PAUSE waits for the running transactions; PgBouncer goes on pausing
            # without us (the connection is dropped), and verify says how far it got.
            await self.close()
            progress(f"{command}: no answer within {EXECUTE_TIMEOUT:g}s; checking its effect")
        except psycopg.Error as e:
            text = self._error(e)
            if "admin access needed" in text or "not allowed" in text:
                raise ActionRefused(
                    f"PgBouncer refused {command}: {text}; pgbouncer.dsn's user must be in "
                    "PgBouncer's admin_users to act (stats_users may only read)"
                ) from None
            raise PgBouncerError(f"{command} failed: {text}") from None

    async def verify(self, plan: Plan, progress: Progress) -> Outcome:
        deadline = time.monotonic() + VERIFY_FOR
        pause = 0.02
        db = plan.params["database"]
        while True:
            try:
                done, last = await self._effect(plan)
            except (psycopg.Error, CommandTimeout) as e:
                return Outcome(
                    Result.NOT_VERIFIED,
                    f"{plan.params['command']} {db} was sent, but its effect could not be "
                    f"checked: {self._error(e)}",
                )
            if done:
                return Outcome(Result.VERIFIED, last)
            if time.monotonic() >= deadline:
                return Outcome(Result.NOT_VERIFIED, f"after {VERIFY_FOR:g}s {last}")
            progress(f"waiting: {last}")
            await asyncio.sleep(pause)
            pause = min(0.2, pause * 2)

    async def _effect(self, plan: Plan) -> tuple[bool, str]:
        """(has the effect shown, what is seen)."""
        db = plan.params["database"]
        row, pools = await self._state()
        if row is None:
            return False, f"{db} is no longer in SHOW DATABASES"
        paused = bool(int(row.get("paused") or 0))
        busy = sum(int(p.get("sv_active") or 0) for p in pools)
        servers = sum(
            int(p.get(k) or 0) for p in pools for k in ("sv_active", "sv_idle", "sv_used")
        )
        if self.command == "resume":
            return (not paused, f"{db} is resumed" if not paused else f"{db} is still paused")
        if self.command == "pause":
            if paused and not busy:
                return True, f"{db} is paused; no server connection is busy"
            return False, f"{db} is pausing: {busy} server connections still busy"
        if self.command == "kill":
            if servers == 0 and paused:
                return True, (
                    f"every connection of {db} was dropped; {db} is paused until "
                    f"`ultrawatch pgbouncer resume {db}`"
                )
            return False, f"{db} still has {servers} server connections"
        before = {tuple(s) for s in plan.params["servers"]}
        left = before & await self._servers()
        if not before:
            return True, f"{db} had no server connection; new ones will be fresh"
        if not left:
            return True, f"all {len(before)} server connections of {db} were replaced"
        return False, f"{len(left)} of {len(before)} server connections of {db} not yet replaced"

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and not conn.closed:
            try:
                await conn.close()
            except psycopg.Error:
                pass


_POOL_COUNTS = ("cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used")


def from_cli(config: Config, args: argparse.Namespace) -> PgBouncerAction:
    return PgBouncerAction(config, args.database, args.verb, getattr(args, "instance", None))
