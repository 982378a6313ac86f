"""The remedy of a connection storm behind PgBouncer: end a service's pooler
clients that hold a server connection idle in a transaction.

`ultrawatch fix pgbouncer.budget.<service>` (or `pgbouncer.pool.<database>` when
the clients waiting there belong to services over their budget), and `f` in the TUI.

PgBouncer 1.18 has no KILL_CLIENT, and a client in a transaction cannot be told
apart from a busy one by PgBouncer alone. So each of the service's clients that
holds a server (SHOW CLIENTS `link` = SHOW SERVERS `ptr`) is followed to its
backend (`remote_pid`), and PostgreSQL, through the `[postgres]` connection, ends
that backend only when it is `idle in transaction` since more than
IDLE_IN_TX_AFTER seconds, checked by the very statement that signals it: the
service's own short transactions are never hit. PgBouncer then drops the linked
client ("server conn crashed?"). The storm's queued clients take the freed
servers and hold them in turn, so this repeats in bounded passes until the
service is within its budget and none of it holds a server idle in a
transaction. The effect is verified from SHOW CLIENTS / SHOW POOLS, and each
ended backend is audited on its own line.

The same path works on every PgBouncer that reports `remote_pid` (1.8 and
later); KILL_CLIENT (1.24) is not used: it could not check the server's state in
the same step. Everything PgBouncer and PostgreSQL say is data: made printable
before it reaches a plan, a message or the audit log. Never imports textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from collectors.config import Config
from collectors.core.redact import dsn_secrets, printable, scrub
from collectors.core.units import format_elapsed, iso_time
from collectors.pgbouncer.collector import CommandTimeout, connect_admin, show
from collectors.pgbouncer.config import BouncerService, PgBouncerConfig, instances
from dashboard.actions.audit import AuditLog
from dashboard.actions.base import ActionRefused, Outcome, Plan, Progress, Result

if TYPE_CHECKING:
    from collectors.pgbouncer.data import PgBouncerData
    from dashboard.actions.backend import ConnectionLender

IDLE_IN_TX_AFTER = 3.0  # s idle in a transaction before a holder is a storm's, never sooner
PASSES = 8  # at most this many rounds of "end the holders, let the queue move up"
PASS_WAIT = IDLE_IN_TX_AFTER + 3.0  # s a pass waits for the next holders to qualify
BATCH_WAIT = 1.5  # s a pass waits for holders that are this close to qualifying
VERIFY_FOR = 5.0  # s to wait for the effect to show in SHOW CLIENTS / SHOW POOLS
MIN_VERSION = (1, 8)  # SHOW SERVERS reports remote_pid (the backend behind a server)
APPLICATION_NAME = "ultrawatch-action"

_LOOK_SQL = """
select a.pid, a.state, date_part('epoch', now() - a.state_change),
       date_part('epoch', a.backend_start), a.application_name
from pg_stat_activity a
where a.pid = any(%(pids)s)
"""

# Check and signal in one statement: the backend must still be the one planned
# (pid and start), and idle in a transaction for long enough, when it is signalled.
_END_SQL = """
select pg_terminate_backend(a.pid) from pg_stat_activity a
where a.pid = %(pid)s and abs(date_part('epoch', a.backend_start) - %(start)s) < 0.0005
  and a.state in ('idle in transaction', 'idle in transaction (aborted)')
  and now() - a.state_change > make_interval(secs => %(after)s)
"""

_GONE_SQL = "select count(*) from pg_stat_activity where pid = any(%(pids)s)"


def version_tuple(text: str | None) -> tuple[int, ...] | None:
    found = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def unable(config: Config, version: str | None) -> str | None:
    """Why this remedy cannot run with this config and PgBouncer version; None: it can."""
    if config.postgres is None:
        return (
            "no remedy: ending a pooler client that holds a server needs the server's "
            "backend ended on PostgreSQL, and there is no [postgres] section"
        )
    found = version_tuple(version)
    if found is not None and found < MIN_VERSION:
        return (
            f"no remedy: PgBouncer {printable(version or '?')} does not report the backend "
            "behind a server connection (SHOW SERVERS remote_pid, PgBouncer 1.8 or later)"
        )
    return None


def parse_check(check_id: str, config: Config) -> tuple[PgBouncerConfig, str, str] | None:
    """(the PgBouncer instance, "budget" or "pool", the service or database) of a
    pgbouncer.budget.* / pgbouncer.pool.* check id (`pgbouncer.<name>.budget.*` with
    several instances); None for any other id."""
    found = instances(config.pgbouncer)
    if not found or not check_id.startswith("pgbouncer."):
        return None
    rest = check_id.removeprefix("pgbouncer.")
    pb = found[0]
    if len(found) > 1:
        pb_named = next((x for x in found if rest.startswith(x.name + ".")), None)
        if pb_named is None:
            return None
        pb, rest = pb_named, rest.removeprefix(pb_named.name + ".")
    kind, _, name = rest.partition(".")
    return (pb, kind, name) if kind in ("budget", "pool") and name else None


def over_budget(d: PgBouncerData, services: Sequence[BouncerService]) -> dict[str, int]:
    """service -> its client connections, for the services over their pooler budget."""
    out: dict[str, int] = {}
    for svc in services:
        c = d.clients.get(svc.application_name)
        if svc.budget is not None and c is not None and c.count > svc.budget:
            out[svc.name] = c.count
    return out


def description(services: Sequence[str], database: str | None) -> str:
    who = ", ".join(services)
    where = f" on {database}" if database else ""
    return (
        f"end the pooler clients of {who}{where} that hold a server connection idle in a "
        f"transaction for more than {IDLE_IN_TX_AFTER:g}s (their backend ended on PostgreSQL, "
        f"PgBouncer then drops the client), in up to {PASSES} passes while its queued "
        "clients take the freed servers; never a client in a short transaction"
    )


class StormError(Exception):
    """A failure while ending the storm, already escaped and without secrets."""


@dataclass(frozen=True)
class Holder:
    """A client of a service holding a server connection, and the backend behind it."""

    service: str
    client: str  # PgBouncer's ptr of the client
    addr: str  # the client's address:port, as PgBouncer shows it
    database: str
    pid: int
    start: float  # backend_start, epoch seconds
    state: str
    idle_s: float  # in that state for this long


class PooledStorm:
    """End the pooler clients of `services` that hold a server idle in a transaction."""

    name = "end-pooled-clients"

    def __init__(
        self,
        config: Config,
        services: Sequence[BouncerService],
        settings: PgBouncerConfig,
        *,
        database: str | None = None,
        lender: ConnectionLender | None = None,
        confirm_name: str = "",
    ) -> None:
        self.config = config
        self.services = list(services)
        self.by_app = {s.application_name: s for s in self.services}
        self.settings = settings
        self.database = database
        self.lender = lender
        self.confirm_name = confirm_name or ", ".join(s.name for s in self.services)
        self.admin: psycopg.AsyncConnection[Any] | None = None
        self.pg: psycopg.AsyncConnection[Any] | None = None
        self.ended: list[Holder] = []
        self.passes = 0
        self.audit = AuditLog(config.audit_log_path)
        self._secrets = [s for pb in instances(config.pgbouncer) for s in dsn_secrets(pb.dsn)]
        if config.postgres is not None:
            self._secrets += dsn_secrets(config.postgres.dsn)

    @property
    def audit_target(self) -> str:
        return self.target

    @property
    def audit_params(self) -> dict[str, Any]:
        return {"services": [s.name for s in self.services], "database": self.database}

    @property
    def target(self) -> str:
        who = ", ".join(s.name for s in self.services)
        return f"pooler clients of {who}" + (f" on {self.database}" if self.database else "")

    def _text(self, value: Any) -> str:
        return printable(scrub(str(value), self._secrets))

    def _error(self, e: BaseException) -> str:
        lines = [x.strip() for x in str(e).strip().splitlines() if x.strip()]
        return self._text(lines[0] if lines else type(e).__name__)

    # ------------------------------------------------------------ reading

    async def _show(self, command: str) -> list[dict[str, Any]]:
        if self.admin is None or self.admin.closed or self.admin.broken:
            self.admin = await connect_admin(self.settings, APPLICATION_NAME)
        return await show(self.admin, command, float(self.settings.command_timeout))

    @contextlib.asynccontextmanager
    async def _pg(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The TUI's monitoring connection when it lends one (it is already in when
        every slot is taken), else our own."""
        if self.lender is not None:
            async with self.lender.lend() as lent:
                if lent is not None:
                    yield lent
                    return
        if self.pg is None or self.pg.closed:
            from dashboard.actions.backend import action_connection

            assert self.config.postgres is not None
            self.pg = await action_connection(self.config.postgres)
        yield self.pg

    def _mine(self, row: dict[str, Any]) -> BouncerService | None:
        if self.database is not None and row.get("database") != self.database:
            return None
        return self.by_app.get(str(row.get("application_name") or ""))

    async def _clients(self) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """SHOW CLIENTS rows of our services; service -> client count (any database)."""
        rows = await self._show("SHOW CLIENTS")
        counts = {s.name: 0 for s in self.services}
        mine = []
        for r in rows:
            svc = self.by_app.get(str(r.get("application_name") or ""))
            if svc is not None:
                counts[svc.name] += 1
            if self._mine(r) is not None:
                mine.append(r)
        return mine, counts

    async def _holders(self) -> tuple[list[Holder], list[dict[str, Any]], dict[str, int]]:
        """Our services' clients that hold a server, each with its backend on PostgreSQL;
        their SHOW CLIENTS rows; the client counts per service."""
        mine, counts = await self._clients()
        servers = await self._show("SHOW SERVERS")
        if servers and not {"ptr", "link", "remote_pid"} <= servers[0].keys():
            raise ActionRefused(
                "this PgBouncer's SHOW SERVERS has no ptr/link/remote_pid: the backend "
                "behind a client cannot be found (PgBouncer 1.8 or later)"
            )
        pid_of = {s.get("ptr"): int(s.get("remote_pid") or 0) for s in servers}
        linked = [(r, pid_of.get(r.get("link"), 0)) for r in mine if r.get("link")]
        pids = [pid for _, pid in linked if pid]
        seen: dict[int, tuple[Any, ...]] = {}
        if pids:
            async with self._pg() as conn, conn.cursor() as cur:
                await cur.execute(_LOOK_SQL, {"pids": pids})
                seen = {int(row[0]): row for row in await cur.fetchall()}
        holders = []
        for r, pid in linked:
            row = seen.get(pid)
            svc = self._mine(r)
            if row is None or svc is None or row[3] is None:
                continue
            holders.append(
                Holder(
                    service=svc.name,
                    client=str(r.get("ptr")),
                    addr=f"{self._text(r.get('addr'))}:{r.get('port')}",
                    database=self._text(r.get("database")),
                    pid=pid,
                    start=float(row[3]),
                    state=self._text(row[1]),
                    idle_s=float(row[2] or 0.0),
                )
            )
        return holders, mine, counts

    @staticmethod
    def stuck(holders: Sequence[Holder]) -> list[Holder]:
        """The holders idle in a transaction for longer than IDLE_IN_TX_AFTER, longest first."""
        found = [
            h
            for h in holders
            if h.state.startswith("idle in transaction") and h.idle_s > IDLE_IN_TX_AFTER
        ]
        return sorted(found, key=lambda h: -h.idle_s)

    # -------------------------------------------------------------- plan

    async def plan(self) -> Plan:
        why = unable(self.config, None)
        if why is not None:
            raise ActionRefused(why)
        try:
            holders, mine, counts = await self._holders()
        except (psycopg.Error, CommandTimeout) as e:
            raise ActionRefused(f"cannot read PgBouncer or PostgreSQL: {self._error(e)}") from None
        stuck = self.stuck(holders)
        waiting = sum(1 for r in mine if r.get("state") == "waiting")
        head: list[tuple[str, str]] = []
        for svc in self.services:
            n = counts[svc.name]
            held = sum(1 for h in holders if h.service == svc.name)
            queued = sum(1 for r in mine if self._mine(r) is svc and r.get("state") == "waiting")
            head.append(
                (
                    svc.name,
                    f"{n} client connections through PgBouncer, budget {svc.budget}; "
                    f"{held} hold a server, {queued} waiting",
                )
            )
        young = [h for h in holders if h.state.startswith("idle in transaction") and h not in stuck]
        if not stuck and not young:
            raise ActionRefused(
                f"no client of {', '.join(s.name for s in self.services)} holds a server "
                "connection idle in a transaction: nothing to end"
            )
        rows = [
            (
                f"pid {h.pid}",
                f"{h.service} client {h.addr} on {h.database}: {h.state} "
                f"{format_elapsed(h.idle_s)}"
                + ("" if h in stuck else f" (ended once past {IDLE_IN_TX_AFTER:g}s)")
                + f", backend_start {iso_time(h.start, 'microseconds')}",
            )
            for h in [*stuck, *young]
        ]
        if waiting:
            rows.append(
                (
                    "then",
                    f"{waiting} of their clients wait in the pool: those that take the freed "
                    f"servers and hold them idle in a transaction are ended the same way, up to "
                    f"{PASSES} passes",
                )
            )
        return Plan(
            action=self.name,
            target=self.target,
            summary=description([s.name for s in self.services], self.database),
            details=[*head, *rows],
            params={
                **self.audit_params,
                "first_pass": [{"pid": h.pid, "backend_start": h.start} for h in [*stuck, *young]],
                "idle_in_transaction_after_s": IDLE_IN_TX_AFTER,
            },
            confirm_name=self.confirm_name,
            title=f"End pooled clients: {len(stuck) + len(young)} idle in a transaction, "
            "then the queue",
        )

    # ----------------------------------------------------------- execute

    async def execute(self, plan: Plan, progress: Progress) -> None:
        try:
            for n in range(1, PASSES + 1):
                stuck = await self._next_stuck(progress)
                if not stuck:
                    return
                self.passes = n
                progress(f"pass {n}: ending {len(stuck)} backends idle in a transaction")
                ended = await self._end(stuck)
                await self._gone(ended)
                self.ended += ended
        except (psycopg.Error, CommandTimeout) as e:
            # Said without the DSNs' secrets; the backends ended so far are audited.
            raise StormError(
                f"{self._said()}, then PgBouncer or PostgreSQL failed: {self._error(e)}"
            ) from None

    async def _next_stuck(self, progress: Progress) -> list[Holder]:
        """The holders to end in this pass, once they have been idle in a transaction
        long enough (the clients that took the freed servers have just begun); none
        when the service is done, or nothing qualifies within PASS_WAIT."""
        deadline = time.monotonic() + PASS_WAIT
        said = ""
        while True:
            holders, mine, _counts = await self._holders()
            stuck = self.stuck(holders)
            idle_tx = [h for h in holders if h.state.startswith("idle in transaction")]
            # One pass for the holders that took the servers together: those about to
            # qualify are waited for (a split batch cost a pass; 5 passes ended 14 of a
            # 15-client storm on a loaded machine).
            soon = [h for h in idle_tx if h.idle_s > IDLE_IN_TX_AFTER - BATCH_WAIT]
            if stuck and (len(soon) == len(stuck) or time.monotonic() >= deadline):
                return stuck
            waiting = any(r.get("state") == "waiting" for r in mine)
            if not (idle_tx or waiting):
                return []  # nothing of the storm left that a pass could end
            # Else wait, also when within budget: a storm's client holds on idle in a
            # transaction, a short transaction ends by itself before IDLE_IN_TX_AFTER.
            if time.monotonic() >= deadline:
                return []
            line = f"waiting for {len(idle_tx)} new holders to pass {IDLE_IN_TX_AFTER:g}s"
            if line != said:  # once, not every poll
                progress(line)
                said = line
            await asyncio.sleep(0.25)

    async def _end(self, stuck: Sequence[Holder]) -> list[Holder]:
        ended = []
        async with self._pg() as conn:
            for h in stuck:
                params = {"pid": h.pid, "start": h.start, "after": IDLE_IN_TX_AFTER}
                async with conn.cursor() as cur:
                    await cur.execute(_END_SQL, params)
                    row = await cur.fetchone()
                if row is not None and row[0]:
                    ended.append(h)
        return ended

    async def _gone(self, ended: Sequence[Holder]) -> None:
        """Wait (bounded) until the ended backends and their clients are gone, then
        audit each on its own line: verified when both are gone."""
        if not ended:
            return
        pids = [h.pid for h in ended]
        deadline = time.monotonic() + VERIFY_FOR
        left_pids, left_clients = set(pids), {h.client for h in ended}
        while (left_pids or left_clients) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            async with self._pg() as conn, conn.cursor() as cur:
                await cur.execute(
                    "select pid from pg_stat_activity where pid = any(%(pids)s)", {"pids": pids}
                )
                left_pids = {int(r[0]) for r in await cur.fetchall()}
            rows = await self._show("SHOW CLIENTS")
            left_clients = {h.client for h in ended} & {str(r.get("ptr")) for r in rows}
        for h in ended:
            ok = h.pid not in left_pids and h.client not in left_clients
            await asyncio.to_thread(
                self.audit.append,
                action="terminate",
                target=f"pid {h.pid}",
                params={
                    "pid": h.pid,
                    "backend_start": h.start,
                    "function": "pg_terminate_backend",
                    "service": h.service,
                    "pgbouncer_client": h.addr,
                    "database": h.database,
                    "idle_in_transaction_s": round(h.idle_s, 1),
                },
                outcome=Result.VERIFIED.value if ok else Result.NOT_VERIFIED.value,
                message=(
                    f"backend {h.pid} ended; PgBouncer dropped {h.service}'s client {h.addr}"
                    if ok
                    else f"backend {h.pid} signalled; still seen after {VERIFY_FOR:g}s"
                ),
            )

    # ------------------------------------------------------------ verify

    async def verify(self, plan: Plan, progress: Progress) -> Outcome:
        deadline = time.monotonic() + VERIFY_FOR
        while True:
            try:
                done, seen = await self._effect()
            except (psycopg.Error, CommandTimeout) as e:
                return Outcome(
                    Result.NOT_VERIFIED,
                    f"{self._said()}; the effect could not be checked: {self._error(e)}",
                )
            if done or time.monotonic() >= deadline:
                break
            progress(f"waiting: {seen}")
            await asyncio.sleep(0.2)
        details = [(f"pid {h.pid}", f"{h.service} client {h.addr}: ended") for h in self.ended]
        result = Result.VERIFIED if done else Result.NOT_VERIFIED
        return Outcome(result, f"{self._said()}; {seen}", details)

    def _said(self) -> str:
        n = len(self.ended)
        return (
            f"ended {n} pooler client{'' if n == 1 else 's'} idle in a transaction in "
            f"{self.passes} pass{'' if self.passes == 1 else 'es'}"
        )

    async def _effect(self) -> tuple[bool, str]:
        _mine, counts = await self._clients()
        dbs = {self.database} if self.database else {h.database for h in self.ended}
        pools = [r for r in await self._show("SHOW POOLS") if r.get("database") in dbs]
        waiting = sum(int(r.get("cl_waiting") or 0) for r in pools)
        holders, _, _ = await self._holders()
        stuck = self.stuck(holders)
        parts = [
            f"{s.name} {counts[s.name]} client{'' if counts[s.name] == 1 else 's'}, "
            + ("within" if counts[s.name] <= (s.budget or 0) else "over")
            + f" its budget of {s.budget}"
            for s in self.services
        ]
        within = all(counts[s.name] <= (s.budget or 0) for s in self.services)
        where = ", ".join(sorted(dbs)) or "its pools"
        parts.append(f"{where}: {waiting} waiting")
        if stuck:
            parts.append(f"{len(stuck)} still hold a server idle in a transaction")
        return within and waiting == 0 and not stuck, "; ".join(parts)

    async def close(self) -> None:
        for conn in (self.admin, self.pg):
            if conn is not None and not conn.closed:
                with contextlib.suppress(psycopg.Error):
                    await asyncio.shield(conn.close())
        self.admin = self.pg = None
