"""What a PostgreSQL reading carries: raw facts of one round, no verdicts.

The field names are the JSON keys recordings have always had, and every field
a recording might lack has a default, so old recordings read back into these
Structs. Numbers and strings only (JSON-compatible): epoch seconds, ages in
seconds, counts. Thresholds and budgets are applied by the judge (rules.py)
with the config it is given, so a replay under another config judges anew.
"""

from __future__ import annotations

import msgspec

OTHER = "other"  # the by_service bucket for application names no service claims


class Session(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One client backend (up to SESSIONS_MAX per reading, most interesting first).
    Without pg_read_all_stats the fields PostgreSQL hides are None."""

    pid: int
    backend_start: float | None = None  # epoch seconds: with pid, the session's identity
    service: str = OTHER
    application_name: str | None = None
    user: str = "?"
    database: str = "?"
    state: str | None = None
    xact_age_s: float | None = None
    state_age_s: float | None = None
    query_age_s: float | None = None
    wait_event_type: str | None = None
    wait_event: str | None = None
    query: str | None = None  # truncated to postgres.query_chars
    blocked_by: list[int] = []  # pids holding the lock it waits on (0: a prepared xact)


class Blocked(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """A session waiting on a heavyweight lock."""

    pid: int
    service: str = OTHER
    waiting_s: float | None = None
    blocked_by: list[int] = []
    query: str | None = None


class Longest(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """The session with the oldest transaction, or idle in transaction longest."""

    pid: int
    age_s: float | None = None
    service: str = OTHER


class ServiceCount(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """Client connections of one service (or of the `other` bucket)."""

    count: int = 0
    hidden: int = 0  # of them, rows this role cannot see (maybe parallel workers)
    budget: int | None = None  # the service's connection_budget when collected
    application_names: list[str] = []
    application_counts: dict[str, int] | None = None  # `other` only: per application name


class InvariantResult(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    value: float | None = None
    error: str | None = None


class PostgresData(msgspec.Struct, kw_only=True, frozen=True):
    """One round of `pg_stat_activity` and the invariants."""

    server_version: str | None = None
    latency_ms: float | None = None
    max_connections: int | None = None
    superuser_reserved: int | None = None
    reserved: int | None = None
    usable: int | None = None  # max_connections less the reserved slots
    connections_used: int | None = None  # client backends but ours (hidden rows too)
    connection_budget: int | None = None  # postgres.connection_budget when collected
    by_service: dict[str, ServiceCount] = {}
    by_state: dict[str, int] = {}  # visible rows only
    by_database: dict[str, int] = {}
    by_user: dict[str, int] = {}
    sessions: list[Session] = []
    oldest_xact: Longest | None = None
    longest_idle_in_xact: Longest | None = None
    xmin_age: int | None = None
    xmin_pid: int | None = None
    blocked: list[Blocked] = []  # longest waiting first, at most BLOCKED_MAX
    blocked_total: int | None = None  # all the waiting ones (None: as many as listed)
    hidden_sessions: int = 0
    hidden_fields: list[str] = []
    hidden_note: str = ""
    invariants: dict[str, InvariantResult] = {}
