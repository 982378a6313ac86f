"""The [[services]] sections."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from msgspec.structs import force_setattr

from collectors.core.settings import HttpConfig, HttpUrl, Name, ProcessMatch, Section, UrlPath
from collectors.core.units import ByteSize, Count, Duration, PositiveCount, Timeout


class DrainConfig(Section, frozen=True):
    path: UrlPath | None = None
    signal: str | None = None
    timeout: Timeout = Timeout(60)
    undrain_path: UrlPath = UrlPath("/admin/undrain")  # `ultrawatch undrain` POSTs here


class ReloadConfig(Section, frozen=True):
    path: UrlPath | None = UrlPath("/admin/reload-secrets")
    signal: str | None = None


class ServiceConfig(Section, frozen=True):
    name: Name
    url: HttpUrl
    health_path: UrlPath = UrlPath("/health")
    detail_paths: list[UrlPath] = msgspec.field(default_factory=list)
    pg_application_name: str | None = None
    connection_budget: PositiveCount | None = None
    # client connections through PgBouncer (default: connection_budget)
    pgbouncer_budget: PositiveCount | None = None
    process: ProcessMatch | None = None
    drain: DrainConfig | None = None
    reload: ReloadConfig | None = None
    latency_warn: Duration = Duration(0.5)
    latency_crit: Duration | None = None
    max_per_event: PositiveCount = 10
    flap_warn: Count = 6  # health state changes in the history window that warn (0: never)
    memory_limit: ByteSize | None = None


class ServicesRefs(msgspec.Struct, frozen=True):
    """What the services collector and judge take: the [[services]] sections plus the
    few settings of other sections they need. Built from the whole Config by
    `collectors.registry.services_refs` (a target never reads the Config itself)."""

    services: tuple[ServiceConfig, ...]
    window: float = 900.0  # [dashboard] history: latency percentiles, flaps, listener trend
    deadline: float = 5.0  # [dashboard] collector_timeout: a round's budget per collector
    http: HttpConfig = msgspec.field(default_factory=HttpConfig)  # for a client of its own
    by_name: Mapping[str, ServiceConfig] = msgspec.field(default_factory=dict)  # from `services`

    def __post_init__(self) -> None:
        force_setattr(self, "by_name", {s.name: s for s in self.services})

    def service(self, name: str) -> ServiceConfig | None:
        return self.by_name.get(name)
