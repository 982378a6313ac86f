"""The targets ultrawatch watches, and everything the engine needs to know of each.

The poller, the rules, redaction, `--only`, `check`'s timeout caps and recordings
iterate `TARGETS`; nothing else names the targets. Adding one: a folder under
`collectors/` (config section, collector, typed data, judge), a field on `Config`,
a `TargetSpec` below, and a panel in `dashboard/tui/widgets` (see README,
"Adding a target").

Collectors are imported inside `build` so `check --only redis` never imports
psycopg or httpx; judges and data types are light and imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec.structs import replace

from collectors.config import Config
from collectors.core.model import CheckResult, Reading
from collectors.core.redact import dsn_secrets, mask_dsn, mask_url
from collectors.core.units import Duration
from collectors.postgres.rules import judge_postgres
from collectors.processes.rules import judge_processes
from collectors.redis.data import RedisData
from collectors.redis.rules import judge_redis
from collectors.secrets.rules import judge_secrets
from collectors.services.rules import judge_services

if TYPE_CHECKING:
    from collectors.core.http import HttpClient
    from collectors.poller import Collector

Judge = Callable[[Reading, Config], list[CheckResult]]


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


@dataclass(frozen=True)
class TargetSpec:
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
    data: type[msgspec.Struct] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ postgres


def _build_postgres(config: Config, shared: Shared, one_shot: bool) -> Collector:
    from collectors.postgres.collector import PostgresCollector

    return PostgresCollector(config)


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
    judge=judge_postgres,
    secrets=_postgres_secrets,
    redacted=_postgres_redacted,
    capped=_postgres_capped,
)

# --------------------------------------------------------------------- redis


def _build_redis(config: Config, shared: Shared, one_shot: bool) -> Collector:
    from collectors.redis.collector import RedisLocksCollector

    assert config.redis is not None
    return RedisLocksCollector(config.redis, one_shot=one_shot)


def _judge_redis(reading: Reading, config: Config) -> list[CheckResult]:
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
    data=RedisData,
)

# ------------------------------------------------------------------ services


def _build_services(config: Config, shared: Shared, one_shot: bool) -> Collector:
    from collectors.services.collector import ServicesCollector

    return ServicesCollector(config, shared.http())


SERVICES = TargetSpec(
    name="services",
    enabled=lambda c: bool(c.services),
    build=_build_services,
    judge=judge_services,
)

# ----------------------------------------------------------------- processes


def _build_processes(config: Config, shared: Shared, one_shot: bool) -> Collector:
    from collectors.processes.collector import ProcessesCollector

    return ProcessesCollector(config)


PROCESSES = TargetSpec(
    name="processes",
    # services with a `process` matcher are watched as processes too
    enabled=lambda c: bool(c.processes) or any(s.process for s in c.services),
    build=_build_processes,
    judge=judge_processes,
)

# ------------------------------------------------------------------- secrets


def _build_secrets(config: Config, shared: Shared, one_shot: bool) -> Collector:
    from collectors.secrets.collector import SecretsCollector

    return SecretsCollector(config, shared.http())


SECRETS = TargetSpec(
    name="secrets",
    enabled=lambda c: c.secrets is not None,
    build=_build_secrets,
    judge=judge_secrets,
)

# ---------------------------------------------------------------------------

TARGETS: tuple[TargetSpec, ...] = (POSTGRES, REDIS, SERVICES, PROCESSES, SECRETS)
BY_NAME: dict[str, TargetSpec] = {t.name: t for t in TARGETS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
# component -> the Struct its readings carry (reading a recording back)
DATA_TYPES: dict[str, type] = {t.name: t.data for t in TARGETS if t.data is not None}


def config_secrets(config: Config) -> list[str]:
    """Every secret the config holds, for scrubbing text that may quote one."""
    return [s for t in TARGETS for s in t.secrets(config) if s]


def config_without_passwords(config: Config) -> Config:
    """The config as it may be stored with a recording: no password in it."""
    changes: dict[str, Any] = {}
    for t in TARGETS:
        changes.update(t.redacted(config))
    return replace(config, **changes)


def capped_config(config: Config, cap: Callable[[float], Duration]) -> dict[str, Any]:
    """Every target's timeouts capped with `cap` (changes for msgspec replace)."""
    changes: dict[str, Any] = {}
    for t in TARGETS:
        changes.update(t.capped(config, cap))
    return changes
