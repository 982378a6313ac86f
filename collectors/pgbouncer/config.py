"""The [pgbouncer] section: the pooler's admin console, and what the target needs
to know of the services."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from collectors.core.settings import Name, Section
from collectors.core.units import Duration, Ratio, Timeout


class PgBouncerConfig(Section, frozen=True, kw_only=True):
    # The admin console: database `pgbouncer`; a user in `stats_users` may read,
    # one in `admin_users` may also PAUSE / RESUME / RECONNECT / KILL.
    dsn: str
    name: Name = Name("main")
    waiting_warn: Duration = Duration(1)  # maxwait: a client waiting this long warns
    waiting_crit: Duration = Duration(5)
    clients_warn: Ratio = Ratio(0.8)  # client connections of max_client_conn
    clients_crit: Ratio = Ratio(0.95)
    # The databases whose pool checks every round reports (unknown while PgBouncer
    # cannot be read); empty: every database PgBouncer serves, as it reports them.
    databases: list[Name] = msgspec.field(default_factory=list)
    # SHOW CLIENTS (a row per client connection, for the per-service counts) at most
    # this often; and once when clients start or stop waiting
    clients_every: Duration = Duration(15)
    connect_timeout: Timeout = Timeout(3)
    command_timeout: Timeout = Timeout(2)  # per SHOW command (the console has no statement_timeout)


Instances = PgBouncerConfig | list[PgBouncerConfig] | None


def instances(value: Instances) -> list[PgBouncerConfig]:
    """The configured PgBouncers: `[pgbouncer]` is one, `[[pgbouncer]]` one or more."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def check_prefix(value: Instances, name: str) -> str:
    """The start of an instance's check ids: `pgbouncer` when it is the only one,
    else `pgbouncer.<name>` (so the ids depend on the config alone)."""
    return "pgbouncer" if len(instances(value)) <= 1 else f"pgbouncer.{name}"


def instance(value: Instances, name: str | None) -> PgBouncerConfig | None:
    """The instance named `name`; with one instance `name` may be omitted."""
    found = instances(value)
    if name is None:
        return found[0] if len(found) == 1 else None
    return next((x for x in found if x.name == name), None)


class BouncerService(msgspec.Struct, frozen=True, kw_only=True):
    """A configured service as the PgBouncer target sees it: the application_name
    its clients give and its budget of client connections through the pooler.
    Built from the whole config by collectors.registry.pgbouncer_services."""

    name: str
    application_name: str
    budget: int | None = None


def app_services(services: Iterable[BouncerService]) -> dict[str, str]:
    """application_name -> service (the first service claiming a name wins)."""
    out: dict[str, str] = {}
    for svc in services:
        out.setdefault(svc.application_name, svc.name)
    return out
