"""The [[services]] sections."""

from __future__ import annotations

import msgspec

from collectors.core.settings import HttpUrl, Name, ProcessMatch, Section, UrlPath
from collectors.core.units import ByteSize, Count, Duration, PositiveCount, PositiveDuration


class DrainConfig(Section):
    path: UrlPath | None = None
    signal: str | None = None
    timeout: PositiveDuration = Duration(60)
    undrain_path: UrlPath = UrlPath("/admin/undrain")  # `ultrawatch undrain` POSTs here


class ReloadConfig(Section):
    path: UrlPath | None = UrlPath("/admin/reload-secrets")
    signal: str | None = None


class ServiceConfig(Section):
    name: Name
    url: HttpUrl
    health_path: UrlPath = UrlPath("/health")
    detail_paths: list[UrlPath] = msgspec.field(default_factory=list)
    pg_application_name: str | None = None
    connection_budget: PositiveCount | None = None
    process: ProcessMatch | None = None
    drain: DrainConfig | None = None
    reload: ReloadConfig | None = None
    latency_warn: Duration = Duration(0.5)
    latency_crit: Duration | None = None
    max_per_event: PositiveCount = 10
    flap_warn: Count = 6  # health state changes in the history window that warn (0: never)
    memory_limit: ByteSize | None = None
