"""Services: /health plus the detail paths of every service, all at once.

One shared HttpClient (bounded concurrency, timeout, size cap) does the I/O;
`health_formats` says what an answer means. Per service we keep bounded
histories: latency (p50/p95 over the dashboard window), consecutive failures,
flaps (status changes in the window) and the listener total with its trend.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import Any

from msgspec.structs import replace

from collectors.core.history import RingBuffer, linear_trend, percentile
from collectors.core.http import Fetched, HttpClient
from collectors.core.model import Reading
from collectors.services.config import ServiceConfig, ServicesRefs
from collectors.services.data import (
    Component,
    HeapTrend,
    Listeners,
    ListenerTrend,
    Memory,
    Pool,
    Security,
    ServiceData,
)
from collectors.services.health_formats import (
    CRITICAL,
    Health,
    parse_details,
    parse_health,
)

HISTORY_SLOTS = 600  # samples each history keeps (rounds)
HISTORY_POINTS = 60  # latency_history kept in a reading (sparkline width)
DETAIL_SHARE = 0.75  # detail paths time out at this share of the per-service budget
DETAIL_MARGIN = 0.05  # s kept back from the budget to parse and build the reading
# /health's meanings as numbers, so a round's status costs a slot in a RingBuffer.
STATUS_CODES = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3, "unreachable": 4}


@dataclass
class _ServiceState:
    latency: RingBuffer
    listeners: RingBuffer
    # What /health meant, round by round, as STATUS_CODES (flaps only compare them).
    statuses: RingBuffer
    heap: RingBuffer
    consecutive_failures: int = 0
    polls: int = 0
    answered: bool = False  # /health has answered at least once since we started
    last_answer: str | None = None  # what its last answer meant
    listeners_baseline: int | None = None
    heap_baseline: int | None = None


class ServicesCollector:
    component = "services"
    backoff = False  # each target is retried every round (per-request timeouts)

    def __init__(
        self, refs: ServicesRefs, http: HttpClient | None = None, *, one_shot: bool = False
    ) -> None:
        """`one_shot`: a single round (`check`): each history holds the one sample
        it will ever get, instead of 600 slots allocated with it (19 KB a service,
        ~10 MB zeroed during a 500-service round)."""
        self.services = refs.services
        # A client handed in is shared and closed by its owner (the Poller); one made
        # here is ours to close.
        self._own_http = http is None
        self.http = http or HttpClient(refs.http)
        self.window = float(refs.window)
        # Finish inside the poller's deadline, so one slow service costs only its own
        # reading, never the whole collector's.
        deadline = float(refs.deadline)
        self.budget = max(0.2, deadline - 0.5 if deadline > 2 else deadline * 0.75)
        self.request_timeout = min(float(self.http.settings.timeout), self.budget)
        # Clearly below the budget: a hanging detail path gives up before /health's
        # reading is due.
        self.detail_timeout = min(self.request_timeout, self.budget * DETAIL_SHARE)
        n = 1 if one_shot else HISTORY_SLOTS
        self._state: dict[str, _ServiceState] = {
            s.name: _ServiceState(
                latency=RingBuffer(n),
                listeners=RingBuffer(n),
                statuses=RingBuffer(n),
                heap=RingBuffer(n),
            )
            for s in self.services
        }

    def targets(self) -> list[str]:
        return [s.name for s in self.services]

    async def collect(self) -> list[Reading]:
        return list(await asyncio.gather(*(self._one(s) for s in self.services)))

    async def close(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def _one(self, svc: ServiceConfig) -> Reading:
        started = time.time()
        try:
            async with asyncio.timeout(self.budget):  # no extra task per service
                return await self._poll(svc, started)
        except TimeoutError:
            # Queued behind other requests for too long: a failed poll of this service.
            return self._failed(svc, started, f"no answer within the {self.budget:g}s budget")
        except Exception as e:  # our bug, not the target's: one service, not the round
            return Reading(
                self.component,
                svc.name,
                started,
                data=ServiceData(url=svc.url),
                error=f"internal error: {type(e).__name__}: {e}",
                error_kind="internal",
            )

    async def _poll(self, svc: ServiceConfig, started: float) -> Reading:
        st = self._state[svc.name]
        st.polls += 1
        base = svc.url.rstrip("/")
        # /health alone decides reachability; the detail paths start at the same time but
        # only get what is left of the budget once /health has answered, so one hanging
        # detail path costs its own entry in detail_errors, never the service.
        t0 = time.monotonic()
        end = t0 + self.budget - DETAIL_MARGIN
        get = self.http.get(base + svc.health_path, timeout=self.request_timeout)
        if not svc.detail_paths:  # awaited in this task: no task of its own to make
            main = await get
            if main.error is not None:
                return self._failed(svc, started, main.error, main.elapsed_ms)
            return self._answered(svc, st, started, main, [])
        health = asyncio.ensure_future(get)
        detail_tasks = [
            asyncio.ensure_future(self.http.get(base + p, timeout=self.detail_timeout))
            for p in svc.detail_paths
        ]
        try:
            main = await health
            if main.error is not None:
                return self._failed(svc, started, main.error, main.elapsed_ms)
            left = max(0.0, end - time.monotonic())
            await asyncio.wait(detail_tasks, timeout=left)
        finally:
            pending = [t for t in detail_tasks if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        waited = time.monotonic() - t0
        details = [
            t.result()
            if not t.cancelled()
            else Fetched(base + p, error=f"no answer within {waited:.2g}s (after /health)")
            for p, t in zip(svc.detail_paths, detail_tasks, strict=True)
        ]
        return self._answered(svc, st, started, main, details)

    def _answered(
        self,
        svc: ServiceConfig,
        st: _ServiceState,
        started: float,
        main: Fetched,
        details: list[Fetched],
    ) -> Reading:
        """The reading of a service whose /health answered."""
        base = svc.url.rstrip("/")
        now = time.time()
        st.consecutive_failures = 0
        st.answered = True
        health_seen = parse_health(main.status, main.content_type, main.body, main.truncated)
        st.last_answer = health_seen.status
        self._note_status(st, now, health_seen.status)
        st.latency.append(now, main.elapsed_ms)
        data = ServiceData(
            **self._health_data(base + svc.health_path, main, health_seen),
            **self._latency_data(st, main.elapsed_ms),
            **self._details(svc, st, now, details),
            **self._common(st, now),
        )
        odd_health = health_seen.fields.get("odd_numbers")
        if odd_health:
            where = {k: f"{v} in {svc.health_path}" for k, v in odd_health.items()}
            data = replace(data, odd_numbers={**where, **data.odd_numbers})
        return Reading(self.component, svc.name, started, data=data, duration_ms=main.elapsed_ms)

    def _failed(
        self, svc: ServiceConfig, started: float, error: str, elapsed_ms: float = 0.0
    ) -> Reading:
        """Unreachable: the reading still carries the failure count and latency history."""
        st = self._state[svc.name]
        now = time.time()
        st.consecutive_failures += 1
        self._note_status(st, now, "unreachable")
        data = ServiceData(
            url=svc.url.rstrip("/") + svc.health_path,
            status=CRITICAL,
            message=error,
            **self._latency_data(st, None),
            **self._common(st, now),
        )
        return Reading(
            self.component,
            svc.name,
            started,
            data=data,
            error=error,
            error_kind="unreachable",
            duration_ms=elapsed_ms or (now - started) * 1000,
        )

    # ------------------------------------------------------------------ pieces

    @staticmethod
    def _health_data(url: str, main: Fetched, h: Health) -> dict[str, Any]:
        return {
            "url": url,
            "status": h.status,
            "format": h.format,
            "http_status": main.status,
            "message": h.message,
            "components": [Component(**c) for c in h.components],
            "draining": h.fields.get("draining"),
            "active_operations": h.fields.get("activeOperations"),
            "service_id": h.fields.get("serviceId"),
            "version": h.fields.get("version"),
        }

    def _latency_data(self, st: _ServiceState, latest: float | None) -> dict[str, Any]:
        recent = [v for _, v in st.latency.window(self.window, time.time())]
        p50 = percentile(recent, 50)
        p95 = percentile(recent, 95)
        return {
            "latency_ms": latest,
            "latency_p50_ms": None if p50 is None else round(p50, 2),
            "latency_p95_ms": None if p95 is None else round(p95, 2),
            "latency_samples": len(recent),
            "latency_history": [round(v, 2) for v in recent[-HISTORY_POINTS:]],
        }

    def _note_status(self, st: _ServiceState, now: float, status: str) -> None:
        st.statuses.append(now, STATUS_CODES.get(status, -1))

    def _common(self, st: _ServiceState, now: float) -> dict[str, Any]:
        seen = [s for _, s in st.statuses.window(self.window, now)]
        flaps = sum(1 for a, b in itertools.pairwise(seen) if a != b)
        return {
            "consecutive_failures": st.consecutive_failures,
            "flaps": flaps,
            "flap_window_s": self.window,
            "polls": st.polls,
            "ever_answered": st.answered,
            "last_answer": st.last_answer,
        }

    def _details(
        self, svc: ServiceConfig, st: _ServiceState, now: float, details: list[Fetched]
    ) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        errors: dict[str, str] = {}
        odd: dict[str, str] = {}
        for path, f in zip(svc.detail_paths, details, strict=True):
            if f.error is not None:
                errors[path] = f.error
                continue
            got = parse_details(f.status, f.body, f.truncated)
            if not got:
                errors[path] = f"HTTP {f.status}: no pool, memory, listeners or jwt data"
            odd.update({k: f"{v} in {path}" for k, v in got.pop("odd_numbers", {}).items()})
            merged.update(got)
        pool, memory, security = merged.get("pool"), merged.get("memory"), merged.get("security")
        listeners = Listeners(**merged["listeners"]) if "listeners" in merged else None
        if any(k.startswith("listeners.") for k in odd):
            listeners = None  # counts we cannot trust: no verdict, and no trend point
        return {
            "pool": Pool(**pool) if pool is not None else None,
            "memory": Memory(**memory) if memory is not None else None,
            "listeners": listeners,
            "security": Security(**security) if security is not None else None,
            "detail_errors": errors,
            "odd_numbers": odd,
            "listeners_trend": (
                self._listener_trend(st, now, listeners.total) if listeners is not None else None
            ),
            "heap_trend": self._heap_trend(st, now, memory),
        }

    def _heap_trend(
        self, st: _ServiceState, now: float, memory: dict[str, Any] | None
    ) -> HeapTrend | None:
        """The fit of the reported heap over the window (facts; the judge decides)."""
        heap = None if memory is None else memory.get("heapUsed")
        if heap is None:
            return None
        st.heap, st.heap_baseline = _after_restart(st.heap, st.heap_baseline, heap)
        st.heap.append(now, heap)
        samples = st.heap.window(self.window, now)
        trend = linear_trend(samples)
        return HeapTrend(
            slope_per_s=round(trend.slope, 2) if trend else 0.0,
            r2=round(trend.r2, 4) if trend else 0.0,
            baseline=st.heap_baseline,
            samples=len(samples),
            span_s=round(samples[-1][0] - samples[0][0], 1),
            rise=int(samples[-1][1] - samples[0][1]),
        )

    def _listener_trend(self, st: _ServiceState, now: float, total: int) -> ListenerTrend:
        """The fit of the listener total over the window: facts only (whether that is
        a leak is the judge's call)."""
        st.listeners, st.listeners_baseline = _after_restart(
            st.listeners, st.listeners_baseline, total
        )
        st.listeners.append(now, total)
        samples = st.listeners.window(self.window, now)
        trend = linear_trend(samples)
        return ListenerTrend(
            slope_per_s=round(trend.slope, 6) if trend else 0.0,
            r2=round(trend.r2, 4) if trend else 0.0,
            baseline=st.listeners_baseline,
            samples=len(samples),
            rise=int(samples[-1][1] - samples[0][1]),
        )


def _after_restart(
    history: RingBuffer, baseline: int | None, value: float
) -> tuple[RingBuffer, int]:
    """The history and baseline to add `value` to: less than half the last sample is
    a restart (heap, listeners), so a new history and a new baseline start there."""
    last = history.last()
    if last is not None and value < last[1] / 2:
        return RingBuffer(history.capacity), int(value)
    return history, int(value) if baseline is None else baseline
