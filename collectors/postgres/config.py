"""The [postgres] section."""

from __future__ import annotations

import msgspec

from collectors.core.settings import Name, Section
from collectors.core.units import Count, Duration, PositiveCount, PositiveDuration, Ratio


class Invariant(Section):
    name: Name
    sql: str
    warn_above: float | None = None
    crit_above: float | None = None
    warn_below: float | None = None
    crit_below: float | None = None


class PostgresConfig(Section):
    dsn: str = ""  # empty: libpq defaults and PG* environment variables
    name: Name = Name("main")
    connection_budget: PositiveCount | None = None  # the platform's pooled total
    statement_timeout: Duration = Duration(2)
    connect_timeout: PositiveDuration = Duration(3)
    connections_warn: Ratio = Ratio(0.8)
    connections_crit: Ratio = Ratio(0.95)
    idle_in_transaction_warn: Duration = Duration(30)
    idle_in_transaction_crit: Duration = Duration(300)
    blocked_warn: Duration = Duration(10)
    blocked_crit: Duration = Duration(60)
    query_chars: Count = 200  # query text is truncated to this for display
    invariants: list[Invariant] = msgspec.field(default_factory=list)
