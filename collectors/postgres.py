"""PostgreSQL: one connection for the whole tool, never a pool.

Every monitoring query runs under `statement_timeout`; the tool's own backend
is excluded from every count. A round is one query (capacity, grouped counts,
the most interesting sessions, stuck transactions and lock waits, all built as
JSON on the server), plus one read-only transaction per configured invariant.
`pg_blocking_pids` and `pg_locks` are only consulted for sessions actually
waiting on a lock, so a quiet round costs little more than counting
`pg_stat_activity`.

Without `pg_read_all_stats` (part of `pg_monitor`) PostgreSQL hides most
columns of other users' sessions, including `backend_type`. Such sessions are
counted (a slot is a slot) but never guessed at: the reading lists the
`hidden_fields` and how many sessions they concern.
"""

from __future__ import annotations

import asyncio
import decimal
import time
from typing import Any

import psycopg
from psycopg import sql

from collectors.config import Config, PostgresConfig
from collectors.model import ErrorKind, Reading

APPLICATION_NAME = "ultrawatch"
OTHER = "other"  # the by_service bucket for application names no service claims
SESSIONS_MAX = 500  # sessions listed per reading (the most interesting first)
BLOCKED_MAX = 100
OTHER_APPS_MAX = 50  # application names listed under "other"

# What PostgreSQL hides in other users' rows without pg_read_all_stats.
HIDDEN_FIELDS = [
    "state",
    "query",
    "backend_start",
    "xact_age_s",
    "state_age_s",
    "query_age_s",
    "wait_event_type",
    "wait_event",
    "blocked_by",
    "xmin_age",
]

# Set at server start: read once per connection (a restart means a reconnect).
_CAPACITY_SQL = """
select current_setting('server_version'),
       current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int,
       coalesce(current_setting('reserved_connections', true), '0')::int
"""

# Client backends except ours, one row each; grouping and ranking happen in
# Python on these rows (cheaper than building JSON on the server). Rows hidden
# by missing privileges have a NULL backend_type; those with a database and a
# user are counted as sessions. The lock manager (pg_blocking_pids, pg_locks)
# is only asked about rows waiting on a heavyweight lock.
_ROUND_SQL = """
select s.pid, date_part('epoch', s.backend_start), s.application_name, s.usesysid, s.datid,
       s.state, s.backend_type is null,
       date_part('epoch', now() - s.xact_start),
       date_part('epoch', now() - s.state_change),
       date_part('epoch', now() - s.query_start),
       s.wait_event_type, s.wait_event, left(s.query, {query_chars}), age(s.backend_xmin),
       case when s.wait_event_type = 'Lock' then pg_blocking_pids(s.pid) end,
       case when s.wait_event_type = 'Lock' then date_part('epoch', now() - {waitstart}) end
from pg_stat_get_activity(null) as s
where s.pid <> pg_backend_pid()
  and (s.backend_type = 'client backend'
       or (s.backend_type is null and s.datid is not null and s.usesysid is not null))
"""

# Names for the oids above; asked again only when an unknown oid shows up.
_NAMES_SQL = """
select 'd', oid, datname::text from pg_database
union all
select 'u', oid, rolname::text from pg_roles
"""

# pg_locks.waitstart exists from PostgreSQL 14; before, the state change is the best guess.
_WAITSTART_14 = "(select min(l.waitstart) from pg_locks l where l.pid = s.pid and not l.granted)"
_WAITSTART_OLD = "s.state_change"


def service_app_names(config: Config) -> dict[str, str]:
    """application_name -> service, for services that declare one (first one wins)."""
    out: dict[str, str] = {}
    for svc in config.services:
        if svc.pg_application_name and svc.pg_application_name not in out:
            out[svc.pg_application_name] = svc.name
    return out


def round_query(config: Config, server_version: int) -> sql.Composed:
    """The whole round's SQL; only constants are composed in, as literals."""
    pg = config.postgres
    assert pg is not None
    waitstart = _WAITSTART_14 if server_version >= 140000 else _WAITSTART_OLD
    return sql.SQL(_ROUND_SQL).format(
        waitstart=sql.SQL(waitstart),
        query_chars=sql.Literal(max(0, pg.query_chars)),
    )


class PostgresCollector:
    component = "postgres"

    def __init__(self, config: Config) -> None:
        assert config.postgres is not None
        self.config = config
        self.settings: PostgresConfig = config.postgres
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.pid: int | None = None  # our backend, for tests and the actions' refusal
        self.services = service_app_names(config)
        self._query: sql.Composed | None = None
        self._capacity: tuple[Any, ...] = ()
        self._names: dict[tuple[str, int], str] = {}

    def targets(self) -> list[str]:
        return [self.settings.name]

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self.conn is not None and not self.conn.closed and not self.conn.broken:
            return self.conn
        await self.close()
        s = self.settings
        conn = await psycopg.AsyncConnection.connect(
            s.dsn,
            application_name=APPLICATION_NAME,
            autocommit=True,
            connect_timeout=max(1, round(s.connect_timeout)),
            options=f"-c statement_timeout={int(s.statement_timeout * 1000)}",
        )
        try:
            async with conn.cursor() as cur:
                await cur.execute(_CAPACITY_SQL)
                self._capacity = tuple(await cur.fetchone() or ())
            await self._load_names(conn)
        except BaseException:
            await conn.close()
            raise
        self.conn = conn
        self.pid = conn.info.backend_pid
        self._query = round_query(self.config, conn.info.server_version)
        return conn

    async def _load_names(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async with conn.cursor() as cur:
            await cur.execute(_NAMES_SQL)
            self._names = {(kind, oid): name for kind, oid, name in await cur.fetchall()}

    async def collect(self) -> list[Reading]:
        started = time.time()
        t0 = time.perf_counter()
        try:
            conn = await self._connect()
        except psycopg.Error as e:
            await self.close()
            return [self._error(started, t0, f"cannot connect: {_one_line(e)}", "unreachable")]
        try:
            t1 = time.perf_counter()
            assert self._query is not None
            async with conn.cursor(binary=True) as cur:
                # prepared: planned once per connection, not every round
                await cur.execute(self._query, prepare=True)
                rows = await cur.fetchall()
            latency_ms = (time.perf_counter() - t1) * 1000
            data = self._shape(rows, latency_ms)
            if data.pop("_unknown_names"):
                await self._load_names(conn)  # a database or role created since we looked
                data = self._shape(rows, latency_ms)
                data.pop("_unknown_names")
            data["invariants"] = await self._invariants(conn) if self.settings.invariants else {}
        except psycopg.errors.QueryCanceled:
            # The server is there but too slow for our statement_timeout: we cannot see.
            limit = self.settings.statement_timeout
            return [
                self._error(
                    started,
                    t0,
                    f"monitoring query cancelled by statement_timeout ({limit})",
                    "timeout",
                )
            ]
        except psycopg.Error as e:
            broken = conn.closed or conn.broken or isinstance(e, psycopg.OperationalError)
            await self.close()
            what = "connection lost" if broken else "monitoring query failed"
            kind: ErrorKind = "unreachable" if broken else "internal"
            return [self._error(started, t0, f"{what}: {_one_line(e)}", kind)]
        except asyncio.CancelledError:
            # The poller gave up on us mid-query: the connection state is unknown.
            self._drop()
            raise
        return [
            Reading(
                "postgres",
                self.settings.name,
                started,
                data=data,
                duration_ms=(time.perf_counter() - t0) * 1000,
            )
        ]

    def _error(self, started: float, t0: float, message: str, kind: ErrorKind) -> Reading:
        return Reading(
            "postgres",
            self.settings.name,
            started,
            error=message,
            error_kind=kind,
            duration_ms=(time.perf_counter() - t0) * 1000,
        )

    def _shape(self, rows: list[tuple[Any, ...]], latency_ms: float) -> dict[str, Any]:
        """One pass over the rows: counts, the stuck and the blocked, the session list."""
        version, max_conn, su_reserved, reserved = self._capacity
        names = self._names
        services = self.services
        by_state: dict[str, int] = {}
        by_database: dict[str, int] = {}
        by_user: dict[str, int] = {}
        per_app: dict[str, int] = {}
        sessions: list[tuple[tuple[int, float], dict[str, Any]]] = []
        blocked: list[dict[str, Any]] = []
        oldest: tuple[float, int, str] | None = None
        idlest: tuple[float, int, str] | None = None
        xmin: tuple[int, int, str] | None = None
        hidden = 0
        for (
            pid,
            start,
            app,
            usesysid,
            datid,
            state,
            is_hidden,
            xact_age,
            state_age,
            query_age,
            wtype,
            wevent,
            query,
            xmin_age,
            blockers,
            waiting,
        ) in rows:
            service = services.get(app, OTHER)
            db = names.get(("d", datid)) or "?"
            user = names.get(("u", usesysid)) or "?"
            per_app[app] = per_app.get(app, 0) + 1
            by_database[db] = by_database.get(db, 0) + 1
            by_user[user] = by_user.get(user, 0) + 1
            if is_hidden:
                hidden += 1
                rank = 4
                query = None  # PostgreSQL says "<insufficient privilege>"; hidden_fields says so
            else:
                by_state[state] = by_state.get(state, 0) + 1
                rank = 3
                if state == "active":
                    rank = 2
                elif state and state.startswith("idle in transaction"):
                    rank = 1
                    if idlest is None or state_age > idlest[0]:
                        idlest = (state_age, pid, service)
                if xact_age is not None and (oldest is None or xact_age > oldest[0]):
                    oldest = (xact_age, pid, service)
                if xmin_age is not None and (xmin is None or xmin_age > xmin[0]):
                    xmin = (xmin_age, pid, service)
            blocked_by = sorted(set(blockers)) if blockers else []
            if blocked_by:
                rank = 0
                blocked.append(
                    {
                        "pid": pid,
                        "service": service,
                        "waiting_s": _r(waiting if waiting is not None else state_age),
                        "blocked_by": blocked_by,  # 0 means a prepared transaction
                        "query": query,
                    }
                )
            age = xact_age if xact_age is not None else (query_age or 0.0)
            sessions.append(
                (
                    (rank, -age),
                    {
                        "pid": pid,
                        "backend_start": start,
                        "service": service,
                        "application_name": app,
                        "user": user,
                        "database": db,
                        "state": state,
                        "xact_age_s": xact_age,
                        "state_age_s": state_age,
                        "query_age_s": query_age,
                        "wait_event_type": wtype,
                        "wait_event": wevent,
                        "query": query,
                        "blocked_by": blocked_by,
                    },
                )
            )
        sessions.sort(key=lambda kv: kv[0])
        unknown = "?" in by_database or "?" in by_user
        blocked.sort(key=lambda b: -(b["waiting_s"] or 0.0))
        return {
            "server_version": version,
            "latency_ms": round(latency_ms, 2),
            "max_connections": max_conn,
            "superuser_reserved": su_reserved,
            "reserved": reserved,
            "usable": max_conn - su_reserved - reserved,
            "connections_used": len(rows),
            "connection_budget": self.settings.connection_budget,
            "by_service": self._by_service(per_app),
            "by_state": by_state,
            "by_database": by_database,
            "by_user": by_user,
            "sessions": [s for _, s in sessions[:SESSIONS_MAX]],
            "oldest_xact": _who(oldest),
            "longest_idle_in_xact": _who(idlest),
            "xmin_age": xmin[0] if xmin else None,
            "xmin_pid": xmin[1] if xmin else None,
            "blocked": blocked[:BLOCKED_MAX],
            "blocked_total": len(blocked),
            "hidden_sessions": hidden,
            "hidden_fields": list(HIDDEN_FIELDS) if hidden else [],
            "_unknown_names": unknown,
        }

    def _by_service(self, per_app: dict[str, int]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for svc in self.config.services:
            if svc.pg_application_name and svc.name not in out:
                apps = [a for a, name in self.services.items() if name == svc.name]
                out[svc.name] = {
                    "count": sum(per_app.get(a, 0) for a in apps),
                    "budget": svc.connection_budget,
                    "application_names": apps,
                }
        other = {a: n for a, n in per_app.items() if a not in self.services}
        if other:
            ranked = sorted(other.items(), key=lambda kv: (-kv[1], kv[0]))[:OTHER_APPS_MAX]
            out[OTHER] = {
                "count": sum(other.values()),
                "budget": None,
                "application_names": [a for a, _ in ranked],
                "application_counts": dict(ranked),
            }
        return out

    async def _invariants(self, conn: psycopg.AsyncConnection[Any]) -> dict[str, Any]:
        """Each invariant in its own read-only transaction, under the statement timeout.
        One failing invariant is reported as its error; the others still run."""
        out: dict[str, Any] = {}
        for inv in self.settings.invariants:
            value: float | None = None
            error: str | None = None
            try:
                async with conn.transaction(), conn.cursor() as cur:
                    await cur.execute("set transaction read only")
                    # The SQL is the operator's own, from the config file, sent as written.
                    await cur.execute(sql.SQL(inv.sql))  # type: ignore[arg-type]
                    row = await cur.fetchone() if cur.description else None
                value, error = _number(row)
            except psycopg.errors.QueryCanceled:
                error = f"cancelled by statement_timeout ({self.settings.statement_timeout})"
            except psycopg.OperationalError:
                raise  # the connection is gone: the whole reading says so
            except psycopg.Error as e:
                if conn.broken or conn.closed:
                    raise
                error = _one_line(e)
            out[inv.name] = {"value": value, "error": error}
        return out

    def _drop(self) -> None:
        """Forget a connection whose state is unknown; it is closed without waiting."""
        conn, self.conn = self.conn, None
        if conn is not None and not conn.closed:
            try:
                conn.pgconn.finish()
            except Exception:  # best effort: the socket may already be gone
                pass

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and not conn.closed:
            try:
                await conn.close()
            except psycopg.Error:
                pass


def _who(found: tuple[float, int, str] | None) -> dict[str, Any] | None:
    if found is None:
        return None
    age, pid, service = found
    return {"pid": pid, "age_s": _r(age), "service": service}


def _r(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _number(row: tuple[Any, ...] | None) -> tuple[float | None, str | None]:
    if not row:
        return None, "returned no row (expected one number)"
    v = row[0]
    if isinstance(v, bool):
        return float(v), None
    if isinstance(v, int | float | decimal.Decimal):
        return float(v), None
    if v is None:
        return None, "returned NULL (expected one number)"
    return None, f"returned a {type(v).__name__} (expected one number)"


def _one_line(e: BaseException) -> str:
    text = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    return text[0] if text else type(e).__name__
