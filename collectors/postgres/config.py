"""The [postgres] section, and what the target needs to know of the services."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from collectors.core.settings import Name, Section
from collectors.core.units import Count, Duration, Number, PositiveCount, Ratio, Timeout


class Invariant(Section, frozen=True, kw_only=True):
    name: Name
    sql: str
    warn_above: Number | None = None
    crit_above: Number | None = None
    warn_below: Number | None = None
    crit_below: Number | None = None


class PostgresConfig(Section, frozen=True, kw_only=True):
    dsn: str = ""  # empty: libpq defaults and PG* environment variables
    name: Name = Name("main")
    connection_budget: PositiveCount | None = None  # the platform's pooled total
    statement_timeout: Duration = Duration(2)  # 1ms to 24h: collectors.config checks it
    connect_timeout: Timeout = Timeout(3)
    connections_warn: Ratio = Ratio(0.8)
    connections_crit: Ratio = Ratio(0.95)
    idle_in_transaction_warn: Duration = Duration(30)
    idle_in_transaction_crit: Duration = Duration(300)
    blocked_warn: Duration = Duration(10)
    blocked_crit: Duration = Duration(60)
    query_chars: Count = 200  # query text is truncated to this for display
    invariants: list[Invariant] = msgspec.field(default_factory=list)


class ServiceRef(msgspec.Struct, frozen=True, kw_only=True):
    """A configured service as the PostgreSQL target sees it: how its sessions are
    recognised and its connection budget. Built from the whole config by the
    registry (collectors.registry.postgres_services); this package never reads
    another target's section."""

    name: str
    pg_application_name: str | None = None
    connection_budget: int | None = None


def service_app_names(services: Iterable[ServiceRef]) -> dict[str, str]:
    """application_name -> service, for services that declare one (first one wins)."""
    out: dict[str, str] = {}
    for svc in services:
        if svc.pg_application_name and svc.pg_application_name not in out:
            # plain str: readings are JSON-encoded every round, and a str subclass
            # (the config's Name) takes msgspec's slow hook path there
            out[str(svc.pg_application_name)] = str(svc.name)
    return out
