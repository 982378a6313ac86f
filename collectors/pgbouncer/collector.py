"""PgBouncer: one connection to the admin console, never a pool.

The admin console (the virtual database `pgbouncer`) speaks the simple query
protocol only: a prepared statement or a parameter makes PgBouncer close the
connection. So the connection is made with autocommit and `prepare_threshold=None`
(psycopg never prepares a query behind our back), and every command is sent as
plain text without parameters and with `prepare=False`. It has no
`statement_timeout` either (PgBouncer refuses the `options` startup parameter):
every command runs under `command_timeout`, and a command that overruns drops the
connection, whose state is then unknown.

A round reads SHOW POOLS; SHOW DATABASES (paused, disabled, pool sizes) every
DATABASES_EVERY rounds, and in every round where clients wait (paused or
saturated: the judge must tell which) or a new database shows: a second command
in a round costs 1.5 to 8 bare round trips more under load (bench/pgbouncer.py).
The round runs in one task of its own (see `collect`); its commands have no task
each (`timed`): a task per command made a round twice a bare round trip.
SHOW CLIENTS costs a row per client connection (1,000 clients: some 20 to 100
times a SHOW POOLS, and PgBouncer's one thread builds them), so it is read at most
every `clients_every`, and once when clients start or stop waiting (at most every
TRANSITION_FLOOR s): which services the waiting clients belong to is then the
question. SHOW STATS goes with it. SHOW CONFIG and SHOW VERSION are read at
connect and every CONFIG_EVERY rounds. Columns are looked up by name: they vary
between PgBouncer versions.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import psycopg

from collectors.core.model import ErrorKind, Reading
from collectors.core.pgconn import close_quietly, close_socket, drop
from collectors.core.redact import dsn_secrets, scrub
from collectors.pgbouncer.config import PgBouncerConfig
from collectors.pgbouncer.data import AppClients, Database, PgBouncerData, Pool

APPLICATION_NAME = "ultrawatch"
ADMIN_DB = "pgbouncer"  # the admin console's virtual database: not a pool to judge
# rounds between SHOW DATABASES while nobody waits: a PAUSE with traffic makes
# clients wait, which reads it that round; a quiet one shows within 5 rounds
DATABASES_EVERY = 5
TRANSITION_FLOOR = 5.0  # s: SHOW CLIENTS when the waiting starts or ends, at most this often
CONFIG_EVERY = 30  # rounds between SHOW CONFIG (a RELOAD may change max_client_conn)
APPS_MAX = 200  # application names kept per reading (the most clients first)

Row = dict[str, Any]


class CommandTimeout(Exception):
    pass


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _opt_int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _one_line(e: BaseException) -> str:
    text = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    line = text[0] if text else type(e).__name__
    return line.removeprefix("connection failed: ")


async def show(conn: psycopg.AsyncConnection[Any], command: str, timeout: float) -> list[Row]:
    """One admin console command's rows as dicts by column name (simple protocol).

    A command that overruns `timeout` closes the connection before its coroutine is
    cancelled: psycopg cancels an interrupted query with a cancel request to the
    server and waits up to 5 s for it, and a PgBouncer that hangs answers neither.
    The caller must then forget the connection (CommandTimeout)."""
    task = asyncio.ensure_future(_rows(conn, command))
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        _abandon(conn, task)
        raise
    if not done:
        _abandon(conn, task)
        raise CommandTimeout(f"{command} did not answer within {timeout:g}s")
    return task.result()


async def timed(conn: psycopg.AsyncConnection[Any], command: str, timeout: float) -> list[Row]:
    """`show` without a task of its own, for the round's commands: a command that
    overruns `timeout` has its socket closed by a timer, which makes psycopg's wait
    fail at once (OperationalError) without a cancel request; the caller must then
    forget the connection (CommandTimeout). A task per command cost a round ~2x a
    bare round trip, and more with a second command (bench/pgbouncer.py)."""
    fired: list[bool] = []

    def expire() -> None:
        fired.append(True)
        close_socket(conn)

    handle = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        return await _rows(conn, command)
    except psycopg.Error:
        if fired:
            raise CommandTimeout(f"{command} did not answer within {timeout:g}s") from None
        raise
    finally:
        handle.cancel()


async def _rows(conn: psycopg.AsyncConnection[Any], command: str) -> list[Row]:
    async with conn.cursor() as cur:
        await cur.execute(command, prepare=False)
        if cur.description is None:
            return []
        names = [d.name for d in cur.description]
        return [dict(zip(names, row, strict=False)) for row in await cur.fetchall()]


def _abandon(conn: psycopg.AsyncConnection[Any], task: asyncio.Future[Any]) -> None:
    """Close the socket, then cancel the command: no cancel request is attempted."""
    close_socket(conn)
    task.cancel()
    task.add_done_callback(_consume)


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" warning


async def connect_admin(
    settings: PgBouncerConfig, application_name: str = APPLICATION_NAME
) -> psycopg.AsyncConnection[Any]:
    """A connection to the admin console as it must be made (see the module's doc)."""
    try:
        async with asyncio.timeout(float(settings.connect_timeout)):
            return await psycopg.AsyncConnection.connect(
                settings.dsn,
                autocommit=True,
                prepare_threshold=None,
                application_name=application_name,
                connect_timeout=max(1, round(settings.connect_timeout)),
            )
    except TimeoutError:
        raise psycopg.OperationalError(
            f"connection timeout expired (no answer within {settings.connect_timeout})"
        ) from None


class PgBouncerCollector:
    component = "pgbouncer"

    def __init__(self, settings: PgBouncerConfig) -> None:
        self.settings = settings
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.rounds = 0
        self._config: dict[str, str] = {}
        self._version: str | None = None
        self._clients: dict[str, AppClients] = {}
        self._clients_total: int | None = None
        self._clients_at: float | None = None
        self._wait_time: dict[str, float] = {}
        self._waited = False  # did clients wait when SHOW CLIENTS was last read
        self._databases: list[Database] | None = None  # SHOW DATABASES, last read
        self._busy = asyncio.Lock()  # a round and a lent connection's user never interleave

    def targets(self) -> list[str]:
        return [self.settings.name]

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self.conn is not None and not self.conn.closed and not self.conn.broken:
            return self.conn
        await self.close()
        conn = await connect_admin(self.settings)
        try:
            await self._read_config(conn)
        except BaseException:
            await conn.close()
            raise
        self.conn = conn
        self.rounds = 0
        self._clients_at = None  # a new PgBouncer process: read its clients at once
        self._databases = None
        return conn

    async def _read_config(self, conn: psycopg.AsyncConnection[Any]) -> None:
        timeout = float(self.settings.command_timeout)
        rows = await timed(conn, "SHOW CONFIG", timeout)
        self._config = {str(r.get("key")): str(r.get("value")) for r in rows}
        version = await timed(conn, "SHOW VERSION", timeout)
        text = str(version[0].get("version", "")) if version else ""
        self._version = text.removeprefix("PgBouncer ").split()[0] if text else None

    async def collect(self) -> list[Reading]:
        async with self._busy:
            # The round in a task of its own: the poller cancelling us (its deadline)
            # lands here, not inside psycopg, which would first try to cancel the
            # command on the server and wait up to 5 s for one that answers nothing.
            task = asyncio.ensure_future(self._collect())
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                self._drop()  # the command in flight then fails at once, no cancel request
                task.cancel()
                task.add_done_callback(_consume)
                raise
            return task.result()

    async def _collect(self) -> list[Reading]:
        started = time.time()
        t0 = time.perf_counter()
        try:
            conn = await self._connect()
        except CommandTimeout as e:
            await self.close()
            return [self._error(started, t0, f"cannot read its config: {e}", "timeout")]
        except psycopg.Error as e:
            await self.close()
            return [self._error(started, t0, f"cannot connect: {_one_line(e)}", "unreachable")]
        try:
            data = await self._round(conn)
        except CommandTimeout as e:
            self._drop()
            return [self._error(started, t0, str(e), "timeout")]
        except psycopg.Error as e:
            broken = conn.closed or conn.broken or isinstance(e, psycopg.OperationalError)
            await self.close()
            what = "connection lost" if broken else "admin command failed"
            kind: ErrorKind = "unreachable" if broken else "internal"
            return [self._error(started, t0, f"{what}: {_one_line(e)}", kind)]
        except asyncio.CancelledError:
            self._drop()  # the poller gave up on us mid-command
            raise
        return [
            Reading(
                "pgbouncer",
                self.settings.name,
                started,
                data=data,
                duration_ms=(time.perf_counter() - t0) * 1000,
            )
        ]

    async def _round(self, conn: psycopg.AsyncConnection[Any]) -> PgBouncerData:
        timeout = float(self.settings.command_timeout)
        self.rounds += 1
        if self.rounds % CONFIG_EVERY == 0:
            await self._read_config(conn)
        t1 = time.perf_counter()
        pools_rows = await timed(conn, "SHOW POOLS", timeout)
        latency_ms = (time.perf_counter() - t1) * 1000
        rows = [r for r in pools_rows if r.get("database") != ADMIN_DB]
        waiting = any(_int(r.get("cl_waiting")) for r in rows)
        known = {d.name for d in self._databases or []}
        fresh = self._databases is None or self.rounds % DATABASES_EVERY == 0
        if fresh or waiting or any(r.get("database") not in known for r in rows):
            db_rows = await timed(conn, "SHOW DATABASES", timeout)
            self._databases = [_database(r) for r in db_rows if r.get("name") != ADMIN_DB]
        databases = self._databases or []
        sizes = {d.name: d.pool_size for d in databases}
        pools = [_pool(r, sizes) for r in rows]
        if self._clients_due(waiting):
            await self._read_clients(conn, timeout)
            self._waited = waiting
        cfg = self._config
        return PgBouncerData(
            version=self._version,
            latency_ms=round(latency_ms, 3),
            max_client_conn=_opt_int(cfg.get("max_client_conn")),
            default_pool_size=_opt_int(cfg.get("default_pool_size")),
            pool_mode=cfg.get("pool_mode"),
            clients_used=sum(_clients_of(r) for r in pools_rows),
            pools=pools,
            databases=databases,
            wait_time_s=dict(self._wait_time),
            clients=self._clients,
            clients_age_s=None
            if self._clients_at is None
            else round(time.monotonic() - self._clients_at, 3),
            clients_total=self._clients_total,
        )

    def _clients_due(self, waiting: bool) -> bool:
        if self._clients_at is None:
            return True
        age = time.monotonic() - self._clients_at
        every = float(self.settings.clients_every)
        changed = waiting != self._waited
        return age >= every or (changed and age >= min(every, TRANSITION_FLOOR))

    async def _read_clients(self, conn: psycopg.AsyncConnection[Any], timeout: float) -> None:
        rows = await timed(conn, "SHOW CLIENTS", timeout)
        counts: Counter[str] = Counter()
        waiting: dict[str, Counter[str]] = {}
        total = 0
        for r in rows:
            db = str(r.get("database") or "")
            if db == ADMIN_DB:
                continue  # admin consoles (ours among them) are no service's clients
            total += 1
            app = str(r.get("application_name") or "")
            counts[app] += 1
            if str(r.get("state") or "").startswith("waiting"):
                waiting.setdefault(app, Counter())[db] += 1
        kept = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:APPS_MAX]
        self._clients = {
            app: AppClients(
                count=n,
                waiting=sum(waiting.get(app, Counter()).values()),
                waiting_by_database=dict(waiting.get(app, Counter())),
            )
            for app, n in kept
        }
        self._clients_total = total
        self._clients_at = time.monotonic()
        stats = await timed(conn, "SHOW STATS", timeout)
        self._wait_time = {
            str(r.get("database")): _int(r.get("total_wait_time")) / 1e6
            for r in stats
            if r.get("database") != ADMIN_DB
        }

    def _error(self, started: float, t0: float, message: str, kind: ErrorKind) -> Reading:
        return Reading(
            "pgbouncer",
            self.settings.name,
            started,
            error=scrub(message, dsn_secrets(self.settings.dsn)),
            error_kind=kind,
            duration_ms=(time.perf_counter() - t0) * 1000,
        )

    def _drop(self) -> None:
        conn, self.conn = self.conn, None
        drop(conn)

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        await close_quietly(conn)


class PgBouncerFleet:
    """Several PgBouncers ([[pgbouncer]]): one connection each, read concurrently,
    one reading each; one that is down or slow leaves the others' readings whole
    (each is bounded by its own connect and command timeouts)."""

    component = "pgbouncer"

    def __init__(self, settings: list[PgBouncerConfig]) -> None:
        self.members = [PgBouncerCollector(s) for s in settings]

    def targets(self) -> list[str]:
        return [m.settings.name for m in self.members]

    async def collect(self) -> list[Reading]:
        rounds = await asyncio.gather(*(m.collect() for m in self.members))
        return [r for readings in rounds for r in readings]

    async def close(self) -> None:
        await asyncio.gather(*(m.close() for m in self.members))


def _clients_of(pool: Row) -> int:
    """A SHOW POOLS row's client connections (the admin console's pool too: every
    logged-in client is in one pool), whichever of these columns the version has."""
    return sum(
        _int(pool.get(k))
        for k in ("cl_active", "cl_waiting", "cl_active_cancel_req", "cl_waiting_cancel_req")
    )


def _pool(r: Row, sizes: dict[str, int | None]) -> Pool:
    db = str(r.get("database"))
    # maxwait is whole seconds, maxwait_us the microseconds beyond (1.8+)
    maxwait = _int(r.get("maxwait")) + _int(r.get("maxwait_us")) / 1e6
    return Pool(
        database=db,
        user=str(r.get("user") or "?"),
        cl_active=_int(r.get("cl_active")),
        cl_waiting=_int(r.get("cl_waiting")),
        sv_active=_int(r.get("sv_active")),
        sv_idle=_int(r.get("sv_idle")),
        sv_used=_int(r.get("sv_used")),
        sv_login=_int(r.get("sv_login")),
        maxwait_s=round(maxwait, 6),
        pool_mode=r.get("pool_mode"),
        pool_size=sizes.get(db),
    )


def _database(r: Row) -> Database:
    return Database(
        name=str(r.get("name")),
        pool_size=_opt_int(r.get("pool_size")),
        pool_mode=r.get("pool_mode"),
        max_connections=_opt_int(r.get("max_connections")),
        current_connections=_opt_int(r.get("current_connections")),
        paused=bool(_int(r.get("paused"))),
        disabled=bool(_int(r.get("disabled"))),
    )
