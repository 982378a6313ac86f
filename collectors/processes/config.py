"""The [[processes]] sections."""

from __future__ import annotations

from collectors.core.settings import Name, Regex, Section
from collectors.core.units import ByteSize, Duration, PositiveCount


class ProcessConfig(Section):
    name: Name
    cmdline: Regex | None = None
    pid: PositiveCount | None = None
    pidfile: str | None = None
    memory_limit: ByteSize | None = None
    growth_warn: ByteSize = ByteSize(1024 * 1024)  # RSS slope per minute (R^2 >= 0.8)
    growth_min_span: Duration = Duration(300)  # samples must cover this before judging growth
    growth_crit_ttl: Duration = Duration(3600)  # projected time to the limit: critical below
