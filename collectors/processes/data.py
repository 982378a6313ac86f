"""What a processes reading carries: one process target's raw facts in one round
(RSS, fds, threads, CPU %, the RSS trend over the history window and the memory
limit it is measured against). No verdicts: the judge (rules.py) applies every
threshold.

Field names are the JSON keys recordings have always used; every field has a
default because a failed lookup, or an older recording, lacks some of them.
"""

from __future__ import annotations

import msgspec


class ProcessData(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    pids: list[int] = msgspec.field(default_factory=list)  # matched now, sorted
    match: str | None = None  # how the target is found: "pid 12", "cmdline /.../"
    rss_bytes: int | None = None  # summed over the matched processes
    rss_history: list[int] = msgspec.field(default_factory=list)  # sparkline, oldest first
    cpu_percent: float | None = None  # None on a process's first sample
    fds: int | None = None
    threads: int | None = None
    growth_bytes_per_s: float | None = None  # slope of the RSS fit; None: too few samples
    growth_r2: float | None = None
    growth_span_s: float = 0.0  # time the fitted samples cover
    samples: int = 0
    time_to_limit_s: float | None = None  # projected, against memory_limit; None: never
    memory_limit: int | None = None
    memory_limit_source: str | None = None  # config | cgroup | physical
    gone: bool = False  # the processes seen before have exited (failed reading)
    last_pids: list[int] = msgspec.field(default_factory=list)  # ... and were these


EMPTY = ProcessData()


def process_data(data: object) -> ProcessData:
    """A reading's payload as ProcessData: None (a failed reading) or a payload that
    is not one (a hand-made dict) reads as the empty default."""
    if isinstance(data, ProcessData):
        return data
    if isinstance(data, dict):
        try:
            return msgspec.convert(data, ProcessData)
        except msgspec.ValidationError:
            return EMPTY
    return EMPTY
