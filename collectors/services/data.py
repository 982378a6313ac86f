"""What a services reading carries: the raw facts of one service's /health and
detail paths in one round, and its bounded histories (latency, flaps, listener
trend). No verdicts: the judge (rules.py) applies every threshold.

Field names are the JSON keys recordings have always used (camelCase where the
service's own /health/* answer names them), so older recordings read back into
these Structs; every field has a default because a failed poll, or an older
recording, lacks some of them.
"""

from __future__ import annotations

import msgspec


class Component(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One component of a health answer (a Spring indicator, an IETF check, ...)."""

    name: str = ""
    status: str = "unknown"  # ok | warning | critical | unknown
    detail: str = ""


class Pool(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """/health/connections: the service's own database pool."""

    max: int | None = None
    active: int | None = None
    idle: int | None = None
    waiting: int | None = None


class Memory(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """/health/memory: the process's own view of its memory."""

    rss: int | None = None
    heapUsed: int | None = None  # the service's own key names


class Listeners(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """/health/memory `listeners`: event listener counts."""

    total: int = 0
    maxPerEvent: int | None = None  # the service's own budget per event
    byEvent: dict[str, int] = msgspec.field(default_factory=dict)


class Security(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """/health/security `jwt`: which keys the service holds (fingerprints only)."""

    algorithm: str | None = None
    accessKeyFingerprint: str | None = None
    refreshKeyFingerprint: str | None = None
    loadedAt: str | None = None


class ListenerTrend(msgspec.Struct, kw_only=True, frozen=True, gc=False, omit_defaults=True):
    """The least-squares fit of the listener total over the history window."""

    slope_per_s: float  # listeners per second
    r2: float
    baseline: int  # the total when this run of the service was first seen
    samples: int = 0  # points in the window
    rise: int | None = None  # last total minus first total in the window
    # Recordings made before the judge owned the growth threshold carry the verdict
    # instead of `rise`; read only to judge them as they were judged then.
    growing: bool | None = None


class HeapTrend(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """The least-squares fit of the heap the service reports (/health/memory
    heapUsed) over the history window: the service's own view of a leak, there
    long before the process RSS slope has its minutes of samples."""

    slope_per_s: float  # bytes per second
    r2: float
    baseline: int  # the heap when this run of the service was first seen
    samples: int = 0  # points in the window
    span_s: float = 0.0  # from the window's first point to its last
    rise: int = 0  # last minus first in the window


class ServiceData(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One service in one round (a failed poll fills only url, status, message,
    the latency history and the failure counts)."""

    url: str | None = None
    status: str | None = None  # what the health answer means: ok | warning | critical | unknown
    format: str | None = None  # ultramarket | ietf | spring | aspnetcore | ... | None: no answer
    http_status: int | None = None
    message: str | None = None
    components: list[Component] = msgspec.field(default_factory=list)
    draining: bool | None = None
    active_operations: int | None = None
    service_id: str | None = None
    version: str | None = None
    latency_ms: float | None = None  # this round's /health
    latency_p50_ms: float | None = None  # over the history window
    latency_p95_ms: float | None = None
    latency_samples: int = 0
    latency_history: list[float] = msgspec.field(default_factory=list)
    pool: Pool | None = None
    memory: Memory | None = None
    listeners: Listeners | None = None
    security: Security | None = None
    detail_errors: dict[str, str] = msgspec.field(default_factory=dict)  # path -> why
    # Numbers the service sent that cannot be counts or sizes (NaN, Infinity, negative,
    # absurd): "listeners.total" -> "NaN in /health/memory". Read as absent.
    odd_numbers: dict[str, str] = msgspec.field(default_factory=dict)
    listeners_trend: ListenerTrend | None = None
    heap_trend: HeapTrend | None = None
    consecutive_failures: int = 0
    flaps: int = 0  # health state changes in the window
    flap_window_s: float = 0.0
    polls: int = 0  # since ultrawatch started
    ever_answered: bool | None = None  # None: not recorded (then: polls <= 1)
    # What /health's last answer meant (ok, warning, critical, unknown); while it is
    # unreachable, the answer before it stopped answering. None: never answered.
    last_answer: str | None = None


EMPTY = ServiceData()


def service_data(data: object) -> ServiceData:
    """A reading's payload as ServiceData: None (a failed reading) or a payload
    that is not one (a hand-made dict) reads as the empty default, so a panel
    always has fields to show."""
    if isinstance(data, ServiceData):
        return data
    if isinstance(data, dict):
        try:
            return msgspec.convert(data, ServiceData)
        except msgspec.ValidationError:
            return EMPTY
    return EMPTY
