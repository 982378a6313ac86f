"""The [redis] section."""

from __future__ import annotations

import os
from typing import Literal

import msgspec

from collectors.core.settings import Section
from collectors.core.units import Duration, Interval, PositiveCount, Ratio, ScanCount, Timeout


class RedisConfig(Section, frozen=True):
    url: str | None = None  # default: $REDIS_URL, else redis://localhost:6379/0
    urls: list[str] | None = None  # several independent masters (Redlock)
    cluster: bool = False
    lock_patterns: list[str] = msgspec.field(default_factory=lambda: ["lock:*"])
    stale_after: Duration = Duration(30)
    scan_count: ScanCount = 1000
    key_budget: PositiveCount = 200_000  # keys scanned per round at most; resumes next round
    memory_warn: Ratio = Ratio(0.8)
    memory_crit: Ratio = Ratio(0.95)
    # keyspace notifications: "use" them if the server has them on, "enable"
    # them (CONFIG SET) when off, or "off" to always SCAN.
    keyspace_events: Literal["use", "enable", "off"] = "use"
    reconcile_every: Interval = Interval(60)
    socket_timeout: Timeout = Timeout(2)
    ssl_ca_file: str | None = None

    def resolved_urls(self) -> list[str]:
        if self.urls:
            return list(self.urls)
        return [self.url or os.environ.get("REDIS_URL") or "redis://localhost:6379/0"]
