"""What a PgBouncer reading carries: the admin console's facts of one round, no
verdicts (rules.py applies every threshold and budget).

Columns are read by name, so PgBouncer 1.18 to 1.24 (which add and move columns)
read alike; every field has a default, as a recording or an older PgBouncer may
lack it. Waits are in seconds.
"""

from __future__ import annotations

import msgspec


class Pool(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One row of SHOW POOLS (a database and user pair), with its pool size from
    SHOW DATABASES."""

    database: str
    user: str = "?"
    cl_active: int = 0
    cl_waiting: int = 0
    sv_active: int = 0
    sv_idle: int = 0
    sv_used: int = 0
    sv_login: int = 0
    maxwait_s: float = 0.0
    pool_mode: str | None = None
    pool_size: int | None = None


class Database(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One row of SHOW DATABASES."""

    name: str
    pool_size: int | None = None
    pool_mode: str | None = None
    max_connections: int | None = None
    current_connections: int | None = None
    paused: bool = False
    disabled: bool = False


class AppClients(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """Client connections of one application_name (SHOW CLIENTS)."""

    count: int = 0
    waiting: int = 0
    waiting_by_database: dict[str, int] = {}


class PgBouncerData(msgspec.Struct, kw_only=True, frozen=True):
    version: str | None = None
    latency_ms: float | None = None  # SHOW POOLS round trip
    max_client_conn: int | None = None
    default_pool_size: int | None = None
    pool_mode: str | None = None
    clients_used: int | None = None  # logged-in clients of every pool (ours included)
    pools: list[Pool] = []
    databases: list[Database] = []
    # database -> total_wait_time in seconds (SHOW STATS), when read this round
    wait_time_s: dict[str, float] = {}
    # application_name ("" when none given) -> its clients; from SHOW CLIENTS, read
    # every pgbouncer.clients_every and when clients start or stop waiting
    # (clients_age_s old)
    clients: dict[str, AppClients] = {}
    clients_age_s: float | None = None  # None: SHOW CLIENTS not read yet
    clients_total: int | None = None  # rows of SHOW CLIENTS (ours excluded)
