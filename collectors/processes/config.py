"""The [[processes]] sections, and the process targets the collector and judge take."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from msgspec.structs import force_setattr

from collectors.core.settings import Name, Regex, Section
from collectors.core.units import ByteSize, Duration, PositiveCount


class ProcessConfig(Section, frozen=True):
    name: Name
    cmdline: Regex | None = None
    pid: PositiveCount | None = None
    pidfile: str | None = None
    memory_limit: ByteSize | None = None
    growth_warn: ByteSize = ByteSize(1024 * 1024)  # RSS slope per minute (R^2 >= 0.8)
    growth_min_span: Duration = Duration(300)  # samples must cover this before judging growth
    growth_crit_ttl: Duration = Duration(3600)  # projected time to the limit: critical below


class ProcessTargets(msgspec.Struct, frozen=True):
    """Every process to watch, each as a ProcessConfig (its match, memory limit and
    growth thresholds), plus the history window for the RSS trend. Built from the whole
    Config by `collectors.registry.process_targets`: the [[processes]] sections and each
    [[services]] `process` match with its `memory_limit` (a target never reads the
    Config itself)."""

    targets: tuple[ProcessConfig, ...]
    window: float = 900.0  # [dashboard] history
    by_name: Mapping[str, ProcessConfig] = msgspec.field(default_factory=dict)  # from `targets`

    def __post_init__(self) -> None:
        force_setattr(self, "by_name", {p.name: p for p in self.targets})

    def target(self, name: str) -> ProcessConfig:
        """The target's settings; the defaults for a name no longer configured (a
        recording replayed with another config)."""
        found = self.by_name.get(name)
        return found if found is not None else ProcessConfig(name=Name(name))
