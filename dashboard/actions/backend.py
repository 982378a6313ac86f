"""Cancel a backend's query (`pg_cancel_backend`) or end its session
(`pg_terminate_backend`): `ultrawatch cancel PID` / `ultrawatch terminate PID`.

From the command line an action opens its own short-lived connection
(application_name `ultrawatch-action`). In the TUI it borrows the monitor's
connection between rounds (`lender`, PostgresCollector.lend): when every slot
is taken, which is when an engineer most needs to end a session, that
connection is the one already in. PID reuse is
guarded by `backend_start`: the plan captures it (or checks the one the
engineer saw) and the signal is sent by the same SQL statement that checks the
pid still has that start time (and, for a cancel, is still active in the
query that started at the planned `query_start`). The tool's own backends are never signalled.

Everything the server says (query text, names, states, errors) is data: escaped
to one printable line before it reaches a plan, a message or the audit log, and
the DSN's password is scrubbed from every error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol

import psycopg

from collectors.config import Config
from collectors.core.redact import dsn_secrets, printable, scrub
from collectors.core.units import format_elapsed, iso_time, parse_iso
from collectors.postgres.collector import APPLICATION_NAME
from collectors.postgres.config import PostgresConfig, service_app_names
from collectors.postgres.data import OTHER
from collectors.registry import postgres_services
from dashboard.actions.base import ActionRefused, Outcome, Plan, Progress, Result

Mode = Literal["cancel", "terminate"]
ACTION_APPLICATION_NAME = f"{APPLICATION_NAME}-action"
SAME_START = 0.0005  # seconds: backend_start equality tolerance (float epoch round trip)
VERIFY_FOR = 5.0  # seconds to wait for the effect to show

_LOOK_SQL = """
select a.pid, date_part('epoch', a.backend_start), a.backend_type,
       a.application_name, a.usename, a.datname, a.state,
       date_part('epoch', now() - a.backend_start),
       date_part('epoch', a.query_start), left(a.query, %(chars)s)
from pg_stat_activity a
where a.pid = %(pid)s
"""

# Check and signal in one statement: the function runs only for the row that
# still has the start time the plan saw.
_SIGNAL_SQL = {
    # A cancel must also hit the very query the plan showed, not the next one.
    "cancel": """
        select pg_cancel_backend(a.pid) from pg_stat_activity a
        where a.pid = %(pid)s and abs(date_part('epoch', a.backend_start) - %(start)s) < %(tol)s
          and a.state = 'active'
          and abs(date_part('epoch', a.query_start) - %(qstart)s) < %(tol)s
    """,
    # `idle`: a remedy ends only sessions still idle (never one that began a query
    # or a transaction since the plan), checked by the same statement.
    "terminate": """
        select pg_terminate_backend(a.pid) from pg_stat_activity a
        where a.pid = %(pid)s and abs(date_part('epoch', a.backend_start) - %(start)s) < %(tol)s
          and (not %(idle)s or a.state = 'idle')
    """,
}

_SIGNAL_FUNCTION = {"cancel": "pg_cancel_backend", "terminate": "pg_terminate_backend"}

# What PostgreSQL says when a new connection finds no slot (sqlstate 53300):
# "sorry, too many clients already" (none left at all) or "remaining connection
# slots are reserved for ..." (only superusers / pg_use_reserved_connections may).
_NO_SLOT_RE = re.compile(r"too many clients|remaining connection slots are reserved", re.I)


class ConnectionLender(Protocol):
    """Lends its live connection (or None) for a few statements (PostgresCollector)."""

    def lend(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any] | None]: ...


class PostgreSQLError(Exception):
    """A PostgreSQL failure while acting, already escaped and without secrets."""


class BackendAction:
    """Cancel or terminate one PostgreSQL backend. `backend_start` (epoch seconds),
    when given, is the start time the engineer saw: the action refuses if the
    pid now belongs to another session."""

    def __init__(
        self,
        config: Config,
        pid: int,
        mode: Mode,
        backend_start: float | None = None,
        *,
        conn: psycopg.AsyncConnection[Any] | None = None,
        lender: ConnectionLender | None = None,
        only_idle: bool = False,
    ) -> None:
        """`conn`: an open connection to use instead of opening one (autocommit,
        under statement_timeout; never closed here). `lender`: borrow its
        connection per statement (the TUI's collector), opening one only when it
        has none. `only_idle` (terminate): refuse unless the session is idle, at
        the plan and in the statement that signals it."""
        if mode not in _SIGNAL_SQL:
            raise ValueError(f"mode must be 'cancel' or 'terminate', got {mode!r}")
        # Problems found before planning are reported by plan(), through the runner.
        self.problem: str | None = None
        if config.postgres is None:
            self.problem = "no [postgres] section in the configuration"
        self.config = config
        self.pid = pid
        self.mode: Mode = mode
        self.name = mode
        self.backend_start = backend_start
        self.conn: psycopg.AsyncConnection[Any] | None = None  # our own, if we opened one
        self.given = conn
        self.lender = lender
        self.only_idle = only_idle
        self._secrets = dsn_secrets(config.postgres.dsn) if config.postgres else []

    @property
    def audit_target(self) -> str:
        """What a run refused before its plan is audited under (as a plan names it)."""
        return f"pid {self.pid}"

    @property
    def audit_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"pid": self.pid, "function": _SIGNAL_FUNCTION[self.mode]}
        if self.backend_start is not None:
            params["backend_start"] = self.backend_start
        return params

    def _text(self, value: Any) -> Any:
        """A value from the server as it may be shown: one escaped line, no DSN secret."""
        return printable(scrub(value, self._secrets)) if isinstance(value, str) else value

    def _error(self, e: BaseException) -> str:
        return self._text(_one_line(e))

    def _cannot_reach(self, e: psycopg.Error) -> str:
        text = self._error(e)
        if e.sqlstate == "53300" or _NO_SLOT_RE.search(str(e)):
            if "reserved" in str(e):
                how = (
                    "only reserved slots are left: put a superuser role in postgres.dsn, or "
                    "a role granted pg_use_reserved_connections (PostgreSQL 16+, when "
                    "reserved_connections > 0)"
                )
            else:
                how = "even the reserved slots are taken: free a slot (stop a client's pool)"
            return (
                f"cannot connect to PostgreSQL: no connection slot for this action ({text}); "
                f"{how}; or act from the TUI (`ultrawatch`), whose monitoring connection "
                "is already in: nothing was done"
            )
        return f"cannot reach PostgreSQL: {text}"

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The connection for one short exchange: the given one, the lender's
        (held for the exchange only, so its rounds go on between), or our own."""
        if self.given is not None and not self.given.closed:
            yield self.given
            return
        if self.lender is not None:
            async with self.lender.lend() as lent:
                if lent is not None:
                    yield lent
                    return
        yield await self._connect()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self.conn is None or self.conn.closed:
            pg = self.config.postgres
            assert pg is not None
            self.conn = await action_connection(pg)
        return self.conn

    async def _look(self) -> tuple[tuple[Any, ...] | None, int]:
        """The target's row (server text made printable) and the pid of the
        backend that asked."""
        pg = self.config.postgres
        assert pg is not None
        async with self._session() as conn, conn.cursor() as cur:
            await cur.execute(_LOOK_SQL, {"pid": self.pid, "chars": max(0, pg.query_chars)})
            row = await cur.fetchone()
            own = conn.info.backend_pid
        return (None if row is None else tuple(self._text(v) for v in row)), own

    async def plan(self) -> Plan:
        if self.problem:
            raise ActionRefused(self.problem)
        try:
            row, own = await self._look()
        except psycopg.Error as e:
            raise ActionRefused(self._cannot_reach(e)) from None
        pid = self.pid
        if row is None:
            raise ActionRefused(f"no backend with pid {pid}: nothing to {self.mode}")
        (_, start, btype, app, user, db, state, age, q_epoch, query) = row
        if pid == own or (app or "").startswith(APPLICATION_NAME):
            raise ActionRefused(f"pid {pid} is ultrawatch's own backend; refusing to signal it")
        if start is None:
            raise ActionRefused(
                f"cannot see pid {pid}'s details (this role lacks pg_monitor or membership "
                "of its role); refusing without its backend_start to guard against pid reuse"
            )
        if btype != "client backend":
            raise ActionRefused(f"pid {pid} is a {btype}, not a client session")
        if self.backend_start is not None and abs(start - self.backend_start) >= SAME_START:
            raise ActionRefused(
                f"pid {pid} now belongs to another session (started {_iso(start)}, "
                f"expected {_iso(self.backend_start)}): nothing was done"
            )
        if self.only_idle and state != "idle":
            raise ActionRefused(
                f"pid {pid} is {state or 'in an unknown state'} now, not idle: left alone"
            )
        if self.mode == "cancel" and state != "active":
            raise ActionRefused(
                f"pid {pid} is {state or 'not running a query'}: there is no running query "
                "to cancel (terminate ends the session)"
            )
        service = service_app_names(postgres_services(self.config)).get(app or "", OTHER)
        details = [
            ("pid", str(pid)),
            ("service", service),
            ("application", app or ""),
            ("user", user or "?"),
            ("database", db or "?"),
            ("state", state or "?"),
            ("session age", _duration(age)),
            ("backend started", _iso(start)),
            ("query started", _iso(q_epoch) if q_epoch is not None else "-"),
            ("query", query or ""),
        ]
        if self.mode == "cancel":
            summary = f"cancel the running query of pid {pid} ({service}); the session stays"
        else:
            summary = f"terminate the session of pid {pid} ({service}, {user}@{db})"
        return Plan(
            action=self.mode,
            target=f"pid {pid}",
            summary=summary,
            details=details,
            # audited: no query text (it may carry data), only who and what
            params={
                "pid": pid,
                "backend_start": start,
                "service": service,
                "application_name": app,
                "user": user,
                "database": db,
                "state": state,
                "query_start": q_epoch,
                "function": _SIGNAL_FUNCTION[self.mode],
                **({"only_idle": True} if self.only_idle else {}),
            },
            confirm_name=str(pid),
            dangerous=self.mode == "terminate",
        )

    async def execute(self, plan: Plan, progress: Progress) -> None:
        pid, start = plan.params["pid"], plan.params["backend_start"]
        q_start = plan.params.get("query_start")
        if self.mode == "cancel" and q_start is None:
            raise ActionRefused(f"the plan saw no query start for pid {pid}: nothing was done")
        progress(f"{_SIGNAL_FUNCTION[self.mode]}({pid})")
        try:
            async with self._session() as conn:
                if pid == conn.info.backend_pid:
                    raise ActionRefused(f"pid {pid} is this action's own connection")
                async with conn.cursor() as cur:
                    await cur.execute(
                        _SIGNAL_SQL[self.mode],
                        {
                            "pid": pid,
                            "start": start,
                            "qstart": q_start,
                            "tol": SAME_START,
                            "idle": self.only_idle,
                        },
                    )
                    row = await cur.fetchone()
            if row is None and self.mode == "cancel":
                now, _ = await self._look()  # outside the session above: the lender's lock
            else:
                now = None
        except psycopg.errors.InsufficientPrivilege as e:
            raise ActionRefused(f"PostgreSQL refused: {self._error(e)}") from None
        except psycopg.Error as e:
            # The signal may or may not have gone out: an error, not a refusal.
            raise PostgreSQLError(
                f"{_SIGNAL_FUNCTION[self.mode]}({pid}) failed: {self._error(e)}"
            ) from None
        # `now` is only looked up for a cancel that matched no row
        if now is not None and now[1] is not None and abs(now[1] - start) < SAME_START:
            state = now[6] or "not running a query"
            raise ActionRefused(
                f"pid {pid}'s query changed since the plan (the planned query has "
                f"finished; the session is {state}"
                + (f", running a query started {_iso(now[8])}" if now[8] else "")
                + "): nothing was cancelled"
            )
        if row is None:
            busy = " or is no longer idle" if self.only_idle else ""
            raise ActionRefused(
                f"pid {pid} is gone or belongs to another session now{busy}: nothing was done"
            )
        if not row[0]:
            raise ActionRefused(f"PostgreSQL could not signal pid {pid}: nothing was done")

    async def verify(self, plan: Plan, progress: Progress) -> Outcome:
        pid, start = plan.params["pid"], plan.params["backend_start"]
        q_start = plan.params.get("query_start")
        deadline = time.monotonic() + VERIFY_FOR
        last = "unchanged"
        pause = 0.02  # a signalled backend usually ends within milliseconds: look soon
        while True:
            try:
                row, _ = await self._look()
            except psycopg.Error as e:
                return Outcome(
                    Result.NOT_VERIFIED,
                    f"{_SIGNAL_FUNCTION[self.mode]}({pid}) was sent, but its effect could "
                    f"not be checked: {self._error(e)}",
                )
            gone = row is None or row[1] is None or abs(row[1] - start) >= SAME_START
            if self.mode == "terminate":
                if gone:
                    return Outcome(Result.VERIFIED, f"pid {pid}'s session has ended")
                last = f"pid {pid} is still there ({row[6] if row else '?'})"
            else:
                if gone:
                    return Outcome(Result.VERIFIED, f"pid {pid}'s session has ended altogether")
                assert row is not None
                state, now_q = row[6], row[8]
                if state != "active" or now_q is None or q_start is None or now_q != q_start:
                    return Outcome(
                        Result.VERIFIED,
                        f"pid {pid}'s query was cancelled; the session is {state}",
                    )
                last = f"pid {pid} is still running the same query"
            if time.monotonic() >= deadline:
                return Outcome(Result.NOT_VERIFIED, f"after {VERIFY_FOR:g}s {last}")
            progress(f"waiting: {last}")
            await asyncio.sleep(pause)
            pause = min(0.2, pause * 2)

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and not conn.closed:
            await conn.close()


async def action_connection(pg: PostgresConfig) -> psycopg.AsyncConnection[Any]:
    """An action's own short-lived connection (`ultrawatch-action`, autocommit,
    under statement_timeout); the caller closes it."""
    return await psycopg.AsyncConnection.connect(
        pg.dsn,
        application_name=ACTION_APPLICATION_NAME,
        autocommit=True,
        connect_timeout=max(1, round(pg.connect_timeout)),
        options=f"-c statement_timeout={int(pg.statement_timeout * 1000)}",
    )


class CancelBackend(BackendAction):
    """`pg_cancel_backend`: stop the running query, keep the session."""

    def __init__(
        self,
        config: Config,
        pid: int,
        backend_start: float | None = None,
        **via: Any,  # conn= / lender=, as for BackendAction
    ) -> None:
        super().__init__(config, pid, "cancel", backend_start, **via)


class TerminateBackend(BackendAction):
    """`pg_terminate_backend`: end the whole session."""

    def __init__(
        self,
        config: Config,
        pid: int,
        backend_start: float | None = None,
        **via: Any,  # conn= / lender=, as for BackendAction
    ) -> None:
        super().__init__(config, pid, "terminate", backend_start, **via)


def parse_backend_start(text: str) -> float | None:
    """Epoch seconds, or an ISO time (as shown in plans and the TUI); None if neither."""
    try:
        return float(text)
    except ValueError:
        return parse_iso(text)


def from_cli(config: Config, args: argparse.Namespace) -> BackendAction:
    text = getattr(args, "backend_start", None)
    start = parse_backend_start(text) if text else None
    cls = CancelBackend if args.command == "cancel" else TerminateBackend
    action = cls(config, args.pid, start)
    if text and start is None:
        action.problem = f"--backend-start: expected epoch seconds or an ISO time, got {text!r}"
    return action


def _iso(epoch: float) -> str:
    # microseconds: the backend_start a pid-reuse guard compares
    return iso_time(epoch, "microseconds")


def _duration(seconds: float | None) -> str:
    return format_elapsed(seconds)


def _one_line(e: BaseException) -> str:
    """The first line of a libpq message, without psycopg's generic prefix."""
    text = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    line = text[0] if text else type(e).__name__
    return line.removeprefix("connection failed: ")
