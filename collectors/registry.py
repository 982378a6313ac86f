"""The targets ultrawatch watches, and everything the engine needs to know of each.

The poller, the rules, redaction, `--only`, `check`'s timeout caps and recordings
iterate `TARGETS`; nothing else names the targets. Adding one: a folder under
`collectors/` (config section, collector, typed data, judge), a field on `Config`,
a `TargetSpec` below, and a panel in `dashboard/tui/widgets` (see README,
"Adding a target").

Each target's modules are imported inside its spec's functions, on first use, so a
`check` pays only for the targets its config switches on (and `--only redis` never
imports psycopg or httpx).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import msgspec
from msgspec.structs import replace

from collectors.config import Config
from collectors.core.model import CheckResult, Reading
from collectors.core.redact import dsn_secrets, mask_dsn, mask_url
from collectors.core.units import Duration

if TYPE_CHECKING:
    from collectors.core.http import HttpClient
    from collectors.pgbouncer.config import BouncerService
    from collectors.pgbouncer.rules import Seen
    from collectors.poller import Collector
    from collectors.postgres.config import ServiceRef
    from collectors.processes.config import ProcessTargets
    from collectors.secrets.config import KeyService
    from collectors.services.config import ServicesRefs

Judge = Callable[[Reading, Config], list[CheckResult]]
replace_check = dataclasses.replace
T = TypeVar("T")


def _per_config(adapter: Callable[[Config], T]) -> Callable[[Config], T]:
    """`adapter`, remembering its answer for the last Config it was given: a judge's
    refs are asked for once per reading, and the Config changes only on a reload."""
    last: list[tuple[Config, T]] = []

    def cached(config: Config) -> T:
        if last and last[0][0] is config:
            return last[0][1]
        value = adapter(config)
        last[:] = [(config, value)]
        return value

    cached.__doc__ = adapter.__doc__
    return cached


def _load(module: str, name: str) -> Any:
    from importlib import import_module

    return getattr(import_module(module), name)


class Shared:
    """What collectors of one build share: the one HTTP client, made on first use."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.resources: list[Any] = []  # closed by the Poller after every collector
        self._http: HttpClient | None = None

    def http(self) -> HttpClient:
        if self._http is None:
            from collectors.core.http import HttpClient

            self._http = HttpClient(self.config.http)
            self.resources.append(self._http)
        return self._http


def _no_secrets(config: Config) -> list[str]:
    return []


def _unchanged(config: Config) -> dict[str, Any]:
    return {}


def _no_caps(config: Config, cap: Callable[[float], Duration]) -> dict[str, Any]:
    return {}


class TargetSpec(NamedTuple):
    name: str  # the component name in readings and check ids, and the --only word
    enabled: Callable[[Config], bool]  # is the target configured?
    build: Callable[[Config, Shared, bool], Collector]  # (config, shared, one_shot)
    judge: Judge
    # The secrets the target's config holds (DSN and URL passwords, tokens), to be
    # scrubbed from every error, output and recording ...
    secrets: Callable[[Config], Iterable[str]] = _no_secrets
    # ... and the config sections it changes so that a recording can keep them.
    redacted: Callable[[Config], dict[str, Any]] = _unchanged
    # Its connect/socket/statement timeouts capped below a one-shot round's deadline.
    capped: Callable[[Config, Callable[[float], Duration]], dict[str, Any]] = _no_caps
    # The typed payload of its readings (how a recording's JSON is read back).
    data: Callable[[], type[msgspec.Struct]] | None = None


# ------------------------------------------------------------------ postgres


def postgres_services(config: Config) -> list[ServiceRef]:
    """What the PostgreSQL target knows of the services: every configured service's
    name, pg_application_name and connection_budget, in config order."""
    from collectors.postgres.config import ServiceRef

    return [
        ServiceRef(
            name=svc.name,
            pg_application_name=svc.pg_application_name,
            connection_budget=svc.connection_budget,
        )
        for svc in config.services
    ]


def _build_postgres(config: Config, shared: Shared, one_shot: bool) -> Collector:
    from collectors.postgres.collector import PostgresCollector

    assert config.postgres is not None
    return PostgresCollector(config.postgres, postgres_services(config))


def _judge_postgres(reading: Reading, config: Config) -> list[CheckResult]:
    from collectors.postgres.rules import judge_postgres

    assert config.postgres is not None
    checks = judge_postgres(reading, config.postgres, postgres_services(config))
    if config.pgbouncer is None:
        return checks
    # Behind a pooler a server connection keeps the application_name of the client
    # that used it last: the per-service counts are the pooler's, not the services'.
    return [
        replace_check(c, summary=f"{c.summary}; {POOLED_NOTE}")
        if c.id.startswith("postgres.budget.") and c.id != "postgres.budget.total"
        else c
        for c in checks
    ]


POOLED_NOTE = (
    "behind PgBouncer these are its server connections, named after whichever client "
    "used them last, not the service's own (see pgbouncer.budget.*)"
)


def _postgres_secrets(config: Config) -> list[str]:
    return dsn_secrets(config.postgres.dsn) if config.postgres else []


def _postgres_redacted(config: Config) -> dict[str, Any]:
    pg = config.postgres
    return {"postgres": replace(pg, dsn=mask_dsn(pg.dsn))} if pg else {}


def _postgres_capped(config: Config, cap: Callable[[float], Duration]) -> dict[str, Any]:
    pg = config.postgres
    if pg is None:
        return {}
    return {
        "postgres": replace(
            pg, connect_timeout=cap(pg.connect_timeout), statement_timeout=cap(pg.statement_timeout)
        )
    }


POSTGRES = TargetSpec(
    name="postgres",
    enabled=lambda c: c.postgres is not None,
    build=_build_postgres,
    judge=_judge_postgres,
    secrets=_postgres_secrets,
    redacted=_postgres_redacted,
    capped=_postgres_capped,
    data=lambda: _load("collectors.postgres.data", "PostgresData"),
)

# --------------------------------------------------------------------- redis


def _build_redis(config: Config, shared: Shared, one_shot: bool) -> Collector:
    from collectors.redis.collector import RedisLocksCollector

    assert config.redis is not None
    return RedisLocksCollector(config.redis, one_shot=one_shot)


def _judge_redis(reading: Reading, config: Config) -> list[CheckResult]:
    from collectors.redis.rules import judge_redis

    assert config.redis is not None
    return judge_redis(reading, config.redis)


def _redis_secrets(config: Config) -> list[str]:
    rd = config.redis
    if rd is None:
        return []
    return [s for url in [rd.url or "", *(rd.urls or [])] for s in dsn_secrets(url)]


def _redis_redacted(config: Config) -> dict[str, Any]:
    rd = config.redis
    if rd is None:
        return {}
    return {
        "redis": replace(
            rd,
            url=mask_url(rd.url) if rd.url else rd.url,
            urls=[mask_url(u) for u in rd.urls] if rd.urls else rd.urls,
        )
    }


def _redis_capped(config: Config, cap: Callable[[float], Duration]) -> dict[str, Any]:
    rd = config.redis
    return {"redis": replace(rd, socket_timeout=cap(rd.socket_timeout))} if rd else {}


REDIS = TargetSpec(
    name="redis",
    enabled=lambda c: c.redis is not None,
    build=_build_redis,
    judge=_judge_redis,
    secrets=_redis_secrets,
    redacted=_redis_redacted,
    capped=_redis_capped,
    data=lambda: _load("collectors.redis.data", "RedisData"),
)

# ------------------------------------------------------------------ services


@_per_config
def services_refs(config: Config) -> ServicesRefs:
    """What the services collector and judge take from the whole Config."""
    from collectors.services.config import ServicesRefs

    return ServicesRefs(
        services=tuple(config.services),
        window=float(config.dashboard.history),
        deadline=float(config.dashboard.collector_timeout),
        http=config.http,
    )


def _build_services(config: Config, shared: Shared, one_shot: bool) -> Collector:
    from collectors.services.collector import ServicesCollector

    return ServicesCollector(services_refs(config), shared.http(), one_shot=one_shot)


def _judge_services(reading: Reading, config: Config) -> list[CheckResult]:
    from collectors.services.rules import judge_services

    return judge_services(reading, services_refs(config))


SERVICES = TargetSpec(
    name="services",
    enabled=lambda c: bool(c.services),
    build=_build_services,
    judge=_judge_services,
    data=lambda: _load("collectors.services.data", "ServiceData"),
)

# ----------------------------------------------------------------- processes


@_per_config
def process_targets(config: Config) -> ProcessTargets:
    """Every process target: the [[processes]] sections, then each service with a
    `process` match (named after the service, with its memory_limit; the config
    refuses a [[processes]] entry of the same name)."""
    from collectors.processes.config import ProcessConfig, ProcessTargets

    out = list(config.processes)
    for s in config.services:
        if s.process is not None:
            out.append(
                ProcessConfig(
                    name=s.name,
                    cmdline=s.process.cmdline,
                    pid=s.process.pid,
                    pidfile=s.process.pidfile,
                    memory_limit=s.memory_limit,
                )
            )
    return ProcessTargets(targets=tuple(out), window=float(config.dashboard.history))


def _build_processes(config: Config, shared: Shared, one_shot: bool) -> Collector:
    from collectors.processes.collector import ProcessesCollector

    return ProcessesCollector(process_targets(config))


def _judge_processes(reading: Reading, config: Config) -> list[CheckResult]:
    from collectors.processes.rules import judge_processes

    return judge_processes(reading, process_targets(config))


PROCESSES = TargetSpec(
    name="processes",
    # services with a `process` matcher are watched as processes too
    enabled=lambda c: bool(c.processes) or any(s.process for s in c.services),
    build=_build_processes,
    judge=_judge_processes,
    data=lambda: _load("collectors.processes.data", "ProcessData"),
)

# ------------------------------------------------------------------- secrets


def secrets_services(config: Config) -> list[KeyService]:
    """The services as the secrets target sees them: name, url, detail paths."""
    from collectors.secrets.config import KeyService

    return [
        KeyService(name=str(s.name), url=str(s.url), detail_paths=tuple(map(str, s.detail_paths)))
        for s in config.services
    ]


def secrets_collector(config: Config, http: HttpClient) -> Collector:
    """The secrets collector for `config`: its section, the services, the timeouts."""
    from collectors.secrets.collector import SecretsCollector

    assert config.secrets is not None
    return SecretsCollector(
        config.secrets,
        http,
        secrets_services(config),
        http_timeout=float(config.http.timeout),
        round_timeout=float(config.dashboard.collector_timeout),
    )


def _build_secrets(config: Config, shared: Shared, one_shot: bool) -> Collector:
    return secrets_collector(config, shared.http())


def _judge_secrets(reading: Reading, config: Config) -> list[CheckResult]:
    from collectors.secrets.rules import judge_secrets

    return judge_secrets(reading, config.secrets, secrets_services(config))


SECRETS = TargetSpec(
    name="secrets",
    enabled=lambda c: c.secrets is not None,
    build=_build_secrets,
    judge=_judge_secrets,
    data=lambda: _load("collectors.secrets.data", "SecretsData"),
)

# ----------------------------------------------------------------- pgbouncer


@_per_config
def pgbouncer_services(config: Config) -> list[BouncerService]:
    """The services as the PgBouncer target sees them: the application_name their
    clients give (pg_application_name, else the service's name) and their budget of
    client connections through the pooler (pgbouncer_budget, else connection_budget)."""
    from collectors.pgbouncer.config import BouncerService

    return [
        BouncerService(
            name=s.name,
            application_name=s.pg_application_name or s.name,
            budget=s.pgbouncer_budget if s.pgbouncer_budget is not None else s.connection_budget,
        )
        for s in config.services
    ]


def _build_pgbouncer(config: Config, shared: Shared, one_shot: bool) -> Collector:
    from collectors.pgbouncer.collector import PgBouncerCollector, PgBouncerFleet
    from collectors.pgbouncer.config import instances

    found = instances(config.pgbouncer)
    assert found
    return PgBouncerCollector(found[0]) if len(found) == 1 else PgBouncerFleet(found)


@_per_config
def pgbouncer_seen(config: Config) -> Seen:
    """The pool databases each PgBouncer showed when last read under this config:
    an unread one still reports their checks."""
    from collectors.pgbouncer.rules import Seen as Seen_

    return Seen_()


def _judge_pgbouncer(reading: Reading, config: Config) -> list[CheckResult]:
    from collectors.pgbouncer.config import check_prefix, instance
    from collectors.pgbouncer.rules import judge_pgbouncer

    pb = instance(config.pgbouncer, reading.target)
    if pb is None:  # a recorded instance the config no longer has
        return []
    prefix = check_prefix(config.pgbouncer, pb.name)
    seen = pgbouncer_seen(config)
    return judge_pgbouncer(reading, pb, pgbouncer_services(config), seen, prefix)


def _pgbouncer_secrets(config: Config) -> list[str]:
    from collectors.pgbouncer.config import instances

    return [s for pb in instances(config.pgbouncer) for s in dsn_secrets(pb.dsn)]


def _pgbouncer_redacted(config: Config) -> dict[str, Any]:
    pb = config.pgbouncer
    if pb is None:
        return {}
    if isinstance(pb, list):
        return {"pgbouncer": [replace(x, dsn=mask_dsn(x.dsn)) for x in pb]}
    return {"pgbouncer": replace(pb, dsn=mask_dsn(pb.dsn))}


def _pgbouncer_capped(config: Config, cap: Callable[[float], Duration]) -> dict[str, Any]:
    pb = config.pgbouncer
    if pb is None:
        return {}

    def capped(x: Any) -> Any:
        return replace(
            x, connect_timeout=cap(x.connect_timeout), command_timeout=cap(x.command_timeout)
        )

    return {"pgbouncer": [capped(x) for x in pb] if isinstance(pb, list) else capped(pb)}


PGBOUNCER = TargetSpec(
    name="pgbouncer",
    enabled=lambda c: c.pgbouncer is not None,
    build=_build_pgbouncer,
    judge=_judge_pgbouncer,
    secrets=_pgbouncer_secrets,
    redacted=_pgbouncer_redacted,
    capped=_pgbouncer_capped,
    data=lambda: _load("collectors.pgbouncer.data", "PgBouncerData"),
)

# ---------------------------------------------------------------------------

TARGETS: tuple[TargetSpec, ...] = (POSTGRES, REDIS, SERVICES, PROCESSES, SECRETS, PGBOUNCER)
BY_NAME: dict[str, TargetSpec] = {t.name: t for t in TARGETS}
NAMES: tuple[str, ...] = tuple(BY_NAME)


# ------------------------------------------------- sections that are not targets
# [alertmanager] is where alerts go, not something watched, but its credentials are
# secrets like a DSN's password: scrubbed from every error and output, never recorded.


def alertmanager_secrets(config: Config) -> list[str]:
    am = config.alertmanager
    return [s for s in (am.password, am.bearer_token) if s] if am else []


def _alertmanager_redacted(config: Config) -> dict[str, Any]:
    am = config.alertmanager
    if am is None:
        return {}
    hidden = {k: "***" for k in ("password", "bearer_token") if getattr(am, k)}
    return {"alertmanager": replace(am, **hidden)} if hidden else {}


class SecretSection(NamedTuple):
    name: str
    secrets: Callable[[Config], Iterable[str]]
    redacted: Callable[[Config], dict[str, Any]]


SECRET_SECTIONS: tuple[SecretSection, ...] = (
    SecretSection("alertmanager", alertmanager_secrets, _alertmanager_redacted),
)


@functools.cache  # asked once per recorded round read back
def data_types() -> dict[str, type]:
    """component -> the Struct its readings carry (reading a recording back)."""
    return {t.name: t.data() for t in TARGETS if t.data is not None}


def config_secrets(config: Config) -> list[str]:
    """Every secret the config holds, for scrubbing text that may quote one."""
    found = [s for t in TARGETS for s in t.secrets(config)]
    found += [s for h in SECRET_SECTIONS for s in h.secrets(config)]
    return [s for s in found if s]


def config_without_passwords(config: Config) -> Config:
    """The config as it may be stored with a recording: no password in it."""
    changes: dict[str, Any] = {}
    for t in TARGETS:
        changes.update(t.redacted(config))
    for h in SECRET_SECTIONS:
        changes.update(h.redacted(config))
    return replace(config, **changes)


def capped_config(config: Config, cap: Callable[[float], Duration]) -> dict[str, Any]:
    """Every target's timeouts capped with `cap` (changes for msgspec replace)."""
    changes: dict[str, Any] = {}
    for t in TARGETS:
        changes.update(t.capped(config, cap))
    return changes
