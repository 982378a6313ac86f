"""PostgreSQL: one connection for the whole tool, never a pool.

Every monitoring query runs under `statement_timeout`; the tool's own backend
is excluded from every count. A round is one prepared query returning one row
per client backend (filtered on the server), from which Python derives the
counts by service, state, database and user, the stuck and blocked sessions and
the ranked session list; then one read-only transaction per configured
invariant. When only judges read the rounds (`check`, `detail` False) the query
is JUDGE_SQL instead: the server counts, and only the rows a judge names come
back. Capacity settings and role/database names are read at connect.
`pg_blocking_pids` and `pg_locks` are only consulted for sessions actually
waiting on a lock, and query texts only travel when the query is new since the
last round, so a round costs about three bare `count(*)`s of `pg_stat_activity`
(bench/postgres_collector.py).

Without `pg_read_all_stats` (part of `pg_monitor`) PostgreSQL hides most
columns of other users' sessions, including `backend_type`. Such sessions are
counted (a slot is a slot) but never guessed at: the reading lists the
`hidden_fields` and how many sessions they concern. With `backend_type` hidden,
such rows may also be parallel workers (which hold no connection slot), so every
count that includes them is an upper bound, and the reading says so.

Actions may borrow the monitoring connection between rounds (`lend`): when every
slot is taken it is the one connection already in.

A reading's data is a PostgresData (data.py): raw facts only; the judge
(rules.py) applies every threshold and budget. The SQL is in queries.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import decimal
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, NamedTuple

import psycopg
from msgspec.structs import replace
from psycopg import sql

from collectors.core.model import ErrorKind, Reading
from collectors.core.pgconn import close_quietly, drop
from collectors.core.redact import dsn_secrets, scrub
from collectors.postgres.config import PostgresConfig, ServiceRef, service_app_names
from collectors.postgres.data import (
    OTHER,
    Blocked,
    InvariantResult,
    Longest,
    PostgresData,
    ServiceCount,
    Session,
)
from collectors.postgres.queries import (
    APP,
    BLOCKERS,
    CAPACITY_SQL,
    COUNT,
    DATID,
    HIDDEN,
    NAMES_SQL,
    NOW,
    PID,
    QUERY,
    QUERY_START,
    SLOT,
    START,
    STATE,
    STATE_CHANGE,
    USESYSID,
    WAIT_EVENT,
    WAIT_TYPE,
    WAITING,
    XACT_START,
    XMIN_AGE,
    judge_query,
    round_query,
)

APPLICATION_NAME = "ultrawatch"
SESSIONS_MAX = 500  # sessions listed per reading (the most interesting first)
BLOCKED_MAX = 100
OTHER_APPS_MAX = 50  # application names listed under "other"

# What PostgreSQL hides in other users' rows without pg_read_all_stats.
HIDDEN_FIELDS = [
    "backend_type",  # so a hidden row may be a parallel worker, not a client session
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

_IDLE_IN_XACT = frozenset({"idle in transaction", "idle in transaction (aborted)"})
_BUSY = _IDLE_IN_XACT | {"active"}


# What PostgreSQL's own DSN reaching a pooler looks like (see BehindPooler).
POOLER_NOTE = (
    "postgres.dsn points at a PgBouncer: point it at the server, "
    "and pgbouncer.dsn at the admin console"
)
_STARTUP_REFUSED = "unsupported startup parameter"


class BehindPooler(Exception):
    """postgres.dsn reaches a pooler, not the server: PgBouncer refuses the `options`
    startup parameter that carries statement_timeout, or (told to ignore it) drops it
    silently; either way pg_stat_activity through it would be the pooler's view and
    the monitoring queries would run without their timeout, queued in its pool."""


class PostgresCollector:
    component = "postgres"

    def __init__(self, settings: PostgresConfig, services: Sequence[ServiceRef] = ()) -> None:
        """`services`: the configured services' application names and budgets
        (collectors.registry.postgres_services builds them from the config)."""
        self.settings = settings
        self.service_refs = tuple(services)
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.pid: int | None = None  # our backend, for tests and the actions' refusal
        self.services = service_app_names(self.service_refs)  # application_name -> service
        self._query: sql.Composed | None = None
        self._judge_query: sql.Composed | None = None
        self._capacity: tuple[Any, ...] = ()
        self._users: dict[int, str] = {}  # oid -> role name
        self._dbs: dict[int, str] = {}  # oid -> database name
        # Query texts are sent only for queries started since the previous
        # round (the server's now then); the others are known from before.
        self._texts: dict[int, tuple[float | None, str | None]] = {}
        self._since = 0.0
        # pid -> (row without ages, the Session built from it), last round's
        self._session_cache: dict[int, tuple[tuple[Any, ...], Session]] = {}
        # Held by a round and by a lent connection's user: their statements never
        # interleave (a lent statement must not land inside an invariant's transaction).
        self._busy = asyncio.Lock()
        # False when only judges read the rounds (`check`): no session list, which
        # only screens and recordings show; it was over half a 500-session round's
        # Python time. Every count, the longest waits and the blocked stay.
        self.detail = True

    def targets(self) -> list[str]:
        return [self.settings.name]

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self.conn is not None and not self.conn.closed and not self.conn.broken:
            return self.conn
        await self.close()
        s = self.settings
        try:
            # libpq waits at least 2 s; `check --timeout 2` caps connect_timeout below
            # that, and a silent server must still read unreachable, not cut off.
            async with asyncio.timeout(float(s.connect_timeout)):
                conn = await psycopg.AsyncConnection.connect(
                    s.dsn,
                    application_name=APPLICATION_NAME,
                    autocommit=True,
                    connect_timeout=max(1, round(s.connect_timeout)),
                    options=f"-c statement_timeout={int(s.statement_timeout * 1000)}",
                )
        except TimeoutError:
            raise psycopg.OperationalError(
                f"connection timeout expired (no answer within {s.connect_timeout})"
            ) from None
        try:
            async with conn.cursor() as cur:
                await cur.execute(CAPACITY_SQL)
                self._capacity = tuple(await cur.fetchone() or ())
                await cur.execute("select current_setting('statement_timeout')")
                timeout = await cur.fetchone()
            if timeout is not None and timeout[0] == "0":
                raise BehindPooler(
                    f"{POOLER_NOTE} (statement_timeout {s.statement_timeout} did not arrive: "
                    "a pooler in between dropped the `options` startup parameter)"
                )
            await self._load_names(conn)
        except BaseException:
            await conn.close()
            raise
        self.conn = conn
        self.pid = conn.info.backend_pid
        self._query = round_query(self.settings, conn.info.server_version)
        self._judge_query = judge_query(self.settings, conn.info.server_version)
        self._texts, self._since = {}, 0.0
        self._session_cache = {}
        return conn

    async def _load_names(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async with conn.cursor() as cur:
            await cur.execute(NAMES_SQL)
            found = await cur.fetchall()
        self._users = {oid: name for kind, oid, name in found if kind == "u"}
        self._dbs = {oid: name for kind, oid, name in found if kind == "d"}

    @contextlib.asynccontextmanager
    async def lend(self) -> AsyncIterator[psycopg.AsyncConnection[Any] | None]:
        """The live monitoring connection, between rounds, for an action's few
        statements (autocommit, under statement_timeout); None when not connected.
        The borrower must not close it nor change its session settings."""
        async with self._busy:
            conn = self.conn
            if conn is None or conn.closed or conn.broken:
                yield None
                return
            try:
                yield conn
            except asyncio.CancelledError:
                self._drop()  # cancelled mid-statement: the connection's state is unknown
                raise

    async def collect(self) -> list[Reading]:
        # Waiting here is not inside a query: a deadline hit while an action holds
        # the connection must not drop it.
        async with self._busy:
            return await self._collect()

    async def _collect(self) -> list[Reading]:
        started = time.time()
        t0 = time.perf_counter()
        try:
            conn = await self._connect()
        except psycopg.errors.QueryCanceled:  # connected, but the setup query was too slow
            await self.close()
            return [self._timed_out(started, t0)]
        except BehindPooler as e:
            await self.close()
            return [self._error(started, t0, str(e), "internal")]
        except psycopg.Error as e:
            await self.close()
            if _STARTUP_REFUSED in str(e):
                note = f"{POOLER_NOTE} (it refused: {_one_line(e).split('FATAL:')[-1].strip()})"
                return [self._error(started, t0, note, "internal")]
            return [self._error(started, t0, f"cannot connect: {_one_line(e)}", "unreachable")]
        try:
            t1 = time.perf_counter()
            rows, groups = await self._read(conn)
            latency_ms = (time.perf_counter() - t1) * 1000
            # the judges' named rows carry their query text every round
            texts = self._query_texts(rows) if groups is None else {r[PID]: r[QUERY] for r in rows}
            data = self._shape(rows, texts, latency_ms, groups)
            if "?" in data.by_database or "?" in data.by_user:
                await self._load_names(conn)  # a database or role created since we looked
                self._session_cache = {}  # they hold the names not found
                data = self._shape(rows, texts, latency_ms, groups)
            if self.settings.invariants:
                data = replace(data, invariants=await self._invariants(conn))
        except psycopg.errors.QueryCanceled:
            return [self._timed_out(started, t0)]
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

    async def _read(
        self, conn: psycopg.AsyncConnection[Any]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]] | None]:
        """The round's rows. With every detail: one row per client backend, and no
        groups (None). For judges alone: the rows a judge names, in backend slot
        order, and the group rows counted on the server (JUDGE_SQL)."""
        async with conn.cursor(binary=True) as cur:
            # prepared: planned once per connection, not every round
            if self.detail:
                assert self._query is not None
                since = datetime.fromtimestamp(self._since, UTC)
                await cur.execute(self._query, {"since": since}, prepare=True)
                return await cur.fetchall(), None
            assert self._judge_query is not None
            await cur.execute(self._judge_query, prepare=True)
            found = await cur.fetchall()
        named = {r[PID]: r for r in found if r[COUNT] is None}  # once each
        return sorted(named.values(), key=itemgetter(SLOT)), [
            r for r in found if r[COUNT] is not None
        ]

    def _timed_out(self, started: float, t0: float) -> Reading:
        """The server is there but too slow for our statement_timeout: we cannot see."""
        limit = self.settings.statement_timeout
        message = (
            f"monitoring query cancelled by statement_timeout ({limit}): the server is "
            "overloaded or the query waits on a lock"
        )
        return self._error(started, t0, message, "timeout")

    def _error(self, started: float, t0: float, message: str, kind: ErrorKind) -> Reading:
        return Reading(
            "postgres",
            self.settings.name,
            started,
            # libpq quotes the malformed part of a DSN, which may be the password
            error=scrub(message, dsn_secrets(self.settings.dsn)),
            error_kind=kind,
            duration_ms=(time.perf_counter() - t0) * 1000,
        )

    def _query_texts(self, rows: list[tuple[Any, ...]]) -> dict[int, str | None]:
        """pid -> query text: sent this round, or kept from a round that saw the
        same query start (so the same query)."""
        old = self._texts
        new: dict[int, tuple[float | None, str | None]] = {}
        for r in rows:
            text = r[QUERY]
            if text is None:
                prev = old.get(r[PID])
                if prev is not None and prev[0] == r[QUERY_START]:
                    text = prev[1]
            new[r[PID]] = (r[QUERY_START], text)
        self._texts = new  # bounded: one entry per backend seen this round
        if rows:
            self._since = rows[0][NOW]
        return {pid: text for pid, (_, text) in new.items()}

    def _shape(
        self,
        rows: list[tuple[Any, ...]],
        texts: dict[int, str | None],
        latency_ms: float,
        groups: list[tuple[Any, ...]] | None = None,
    ) -> PostgresData:
        """Counts, the stuck and the blocked, and the session list, from the rows
        (every client backend), or from the server's `groups` and the rows a judge
        names (JUDGE_SQL). Counting goes through Counter (C) and only the listed
        sessions become Structs: the monitor's own cost stays small next to the
        server's."""
        version, max_conn, su_reserved, reserved = self._capacity
        users, dbs = self._users, self._dbs
        c = _count(rows) if groups is None else _count_groups(groups)
        hidden = c.per_hidden.total()
        visible = [r for r in rows if not r[HIDDEN]] if hidden else rows
        idle = [r for r in visible if r[STATE] in _IDLE_IN_XACT]
        idle = [r for r in idle if r[STATE_CHANGE] is not None]
        idlest = min(idle, key=itemgetter(STATE_CHANGE)) if idle else None
        in_xact = [r for r in visible if r[XACT_START] is not None]
        oldest = min(in_xact, key=itemgetter(XACT_START)) if in_xact else None
        now = (groups or rows)[0][NOW] if (groups or rows) else 0.0
        with_xmin = [r for r in visible if r[XMIN_AGE] is not None]
        xmin = max(with_xmin, key=lambda r: r[XMIN_AGE]) if with_xmin else None
        waiting = [r for r in rows if r[BLOCKERS]]
        blocked = self._blocked(waiting, texts, now)
        listed = _most_interesting(rows, waiting, visible) if groups is None and self.detail else []
        return PostgresData(
            server_version=version,
            latency_ms=round(latency_ms, 2),
            max_connections=max_conn,
            superuser_reserved=su_reserved,
            reserved=reserved,
            usable=max_conn - su_reserved - reserved,
            connections_used=c.per_app.total(),
            connection_budget=self.settings.connection_budget,
            by_service=self._by_service(c.per_app, c.per_hidden),
            by_state=dict(c.per_state),
            by_database=_named(c.per_db, dbs),
            by_user=_named(c.per_user, users),
            sessions=self._sessions(listed, texts, now),
            oldest_xact=self._who(oldest, XACT_START, now),
            longest_idle_in_xact=self._who(idlest, STATE_CHANGE, now),
            xmin_age=xmin[XMIN_AGE] if xmin else None,
            xmin_pid=xmin[PID] if xmin else None,
            blocked=blocked[:BLOCKED_MAX],
            blocked_total=len(blocked),
            hidden_sessions=hidden,
            hidden_fields=list(HIDDEN_FIELDS) if hidden else [],
            hidden_note=_hidden_note(hidden),
        )

    def _blocked(
        self, waiting: list[tuple[Any, ...]], texts: dict[int, str | None], now: float
    ) -> list[Blocked]:
        """The sessions waiting on a lock, longest waiting first."""
        services = self.services
        blocked = [
            Blocked(
                pid=r[PID],
                service=services.get(r[APP], OTHER),
                waiting_s=_r(r[WAITING] if r[WAITING] is not None else _age(now, r[STATE_CHANGE])),
                blocked_by=sorted(set(r[BLOCKERS])),  # 0: a prepared transaction
                query=texts.get(r[PID]),
            )
            for r in waiting
        ]
        blocked.sort(key=lambda b: -(b.waiting_s or 0.0))
        return blocked

    def _sessions(
        self, listed: list[tuple[Any, ...]], texts: dict[int, str | None], now: float
    ) -> list[Session]:
        """The listed rows as Sessions with ages against the server's `now`.
        A session whose row has not changed since the last round (pooled idle
        connections, mostly) is the one built then with fresh ages."""
        before: dict[int, tuple[tuple[Any, ...], Session]] = self._session_cache
        cache: dict[int, tuple[tuple[Any, ...], Session]] = {}
        sessions = []
        for r in listed:
            key = r[:WAITING]  # everything but the lock wait's age and the server's now
            pid = r[PID]
            hit = before.get(pid)
            base = hit[1] if hit is not None and hit[0] == key else self._session(r, texts)
            s = replace(
                base,
                xact_age_s=None if r[XACT_START] is None else now - r[XACT_START],
                state_age_s=None if r[STATE_CHANGE] is None else now - r[STATE_CHANGE],
                query_age_s=None if r[QUERY_START] is None else now - r[QUERY_START],
            )
            cache[pid] = (key, s)
            sessions.append(s)
        self._session_cache = cache
        return sessions

    def _session(self, r: tuple[Any, ...], texts: dict[int, str | None]) -> Session:
        """A row as a Session, without its ages."""
        return Session(
            pid=r[PID],
            backend_start=r[START],
            service=self.services.get(r[APP], OTHER),
            application_name=r[APP],
            user=self._users.get(r[USESYSID]) or "?",
            database=self._dbs.get(r[DATID]) or "?",
            state=r[STATE],
            wait_event_type=r[WAIT_TYPE],
            wait_event=r[WAIT_EVENT],
            # PostgreSQL says "<insufficient privilege>"; hidden_fields says so
            query=None if r[HIDDEN] else texts.get(r[PID]),
            blocked_by=sorted(set(r[BLOCKERS])) if r[BLOCKERS] else [],
        )

    def _who(self, row: tuple[Any, ...] | None, since: int, now: float) -> Longest | None:
        if row is None:
            return None
        service = self.services.get(row[APP], OTHER)
        return Longest(pid=row[PID], age_s=_age(now, row[since]), service=service)

    def _by_service(
        self, per_app: dict[str, int], hidden_per_app: dict[str, int]
    ) -> dict[str, ServiceCount]:
        """Counts per service; `hidden` is how many of them are rows this role cannot
        see (upper bounds: they may be parallel workers of the service's queries)."""
        out: dict[str, ServiceCount] = {}
        for svc in self.service_refs:
            if svc.pg_application_name and svc.name not in out:
                apps = [a for a, name in self.services.items() if name == svc.name]
                out[svc.name] = ServiceCount(
                    count=sum(per_app.get(a, 0) for a in apps),
                    hidden=sum(hidden_per_app.get(a, 0) for a in apps),
                    budget=svc.connection_budget,
                    application_names=apps,
                )
        other = {a: n for a, n in per_app.items() if a not in self.services}
        if other:
            ranked = sorted(other.items(), key=lambda kv: (-kv[1], kv[0]))[:OTHER_APPS_MAX]
            out[OTHER] = ServiceCount(
                count=sum(other.values()),
                hidden=sum(n for a, n in hidden_per_app.items() if a not in self.services),
                budget=None,
                application_names=[a for a, _ in ranked],
                application_counts=dict(ranked),
            )
        return out

    async def _invariants(self, conn: psycopg.AsyncConnection[Any]) -> dict[str, InvariantResult]:
        """Each invariant in its own read-only transaction, under the statement timeout.
        One failing invariant is reported as its error; the others still run, as long
        as the invariants together have not used one statement_timeout already (so a
        few slow ones cannot push the whole round past the poller's deadline)."""
        out: dict[str, InvariantResult] = {}
        budget = float(self.settings.statement_timeout)
        t0 = time.perf_counter()
        for inv in self.settings.invariants:
            value: float | None = None
            error: str | None = None
            spent = time.perf_counter() - t0
            if spent >= budget:
                error = f"skipped: the invariants already took {spent:.1f}s this round"
                out[inv.name] = InvariantResult(value=None, error=error)
                continue
            try:
                async with conn.transaction(), conn.cursor() as cur:
                    await cur.execute("set transaction read only")
                    # The SQL is the operator's own, from the config file, sent as written.
                    await cur.execute(sql.SQL(inv.sql))
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
            out[inv.name] = InvariantResult(value=value, error=error)
        return out

    def _drop(self) -> None:
        conn, self.conn = self.conn, None
        drop(conn)

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        await close_quietly(conn)


def _most_interesting(
    rows: list[tuple[Any, ...]], waiting: list[tuple[Any, ...]], visible: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """At most SESSIONS_MAX rows, most interesting first: blocked, idle in
    transaction, active (oldest transaction first), idle (idle longest first),
    then sessions we cannot see. Buckets and C-level sort keys keep this cheap
    with hundreds of idle pooled connections."""
    blocked = {r[PID] for r in waiting}
    out = sorted(waiting, key=lambda r: -(r[WAITING] or 0.0))
    rest = [r for r in visible if r[PID] not in blocked] if blocked else visible
    for state in (_IDLE_IN_XACT, ("active",)):
        bucket = [r for r in rest if r[STATE] in state]
        bucket.sort(key=lambda r: r[XACT_START] or r[QUERY_START] or _LATEST)
        out += bucket
    if len(out) < SESSIONS_MAX:
        idle = [r for r in rest if r[STATE] not in _BUSY]
        if all(r[STATE_CHANGE] is not None for r in idle):
            idle.sort(key=itemgetter(STATE_CHANGE))
        out += idle
    if len(out) < SESSIONS_MAX and len(visible) < len(rows):
        out += [r for r in rows if r[HIDDEN]]
    return out[:SESSIONS_MAX]


class _Counts(NamedTuple):
    per_app: Counter[Any]  # every row
    per_hidden: Counter[Any]  # per application name, the rows this role cannot see
    per_state: Counter[Any]  # visible rows
    per_db: Counter[Any]
    per_user: Counter[Any]


def _count(rows: list[tuple[Any, ...]]) -> _Counts:
    """ROUND_SQL's rows counted, one per backend."""
    hidden = [r for r in rows if r[HIDDEN]]
    visible = [r for r in rows if not r[HIDDEN]] if hidden else rows
    return _Counts(
        Counter(r[APP] for r in rows),
        Counter(r[APP] for r in hidden),
        Counter(r[STATE] for r in visible),
        Counter(r[DATID] for r in rows),
        Counter(r[USESYSID] for r in rows),
    )


def _count_groups(groups: list[tuple[Any, ...]]) -> _Counts:
    """JUDGE_SQL's group rows counted, each by its COUNT."""
    c = _Counts(Counter(), Counter(), Counter(), Counter(), Counter())
    for g in groups:
        n = g[COUNT]
        c.per_app[g[APP]] += n
        if g[HIDDEN]:
            c.per_hidden[g[APP]] += n
        else:
            c.per_state[g[STATE]] += n
        c.per_db[g[DATID]] += n
        c.per_user[g[USESYSID]] += n
    return c


def _hidden_note(hidden: int) -> str:
    if not hidden:
        return ""
    return (
        f"{hidden} sessions of other roles are hidden (grant pg_monitor to see them); "
        "their backend_type is hidden too, so they may include parallel workers, and "
        "the counts that include them are upper bounds"
    )


def _named(counts: Counter[Any], names: dict[int, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for oid, n in counts.items():
        name = names.get(oid) or "?"
        out[name] = out.get(name, 0) + n
    return out


_LATEST = float("inf")


def _age(now: float, since: float | None) -> float | None:
    return None if since is None else round(now - since, 3)


def _r(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _number(row: tuple[Any, ...] | None) -> tuple[float | None, str | None]:
    if not row:
        return None, "returned no row (expected one number)"
    v = row[0]
    if isinstance(v, bool):
        return float(v), None
    if isinstance(v, int | float | decimal.Decimal):
        f = float(v)
        if not math.isfinite(f):  # 'NaN'::float, 'Infinity', a numeric beyond a double
            word = "NaN" if f != f else "Infinity" if f > 0 else "-Infinity"
            return None, f"returned {word} (expected a finite number)"
        return f, None
    if v is None:
        return None, "returned NULL (expected one number)"
    return None, f"returned a {type(v).__name__} (expected one number)"


def _one_line(e: BaseException) -> str:
    """The first line of a libpq message, without psycopg's generic prefix."""
    text = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    line = text[0] if text else type(e).__name__
    return line.removeprefix("connection failed: ")
