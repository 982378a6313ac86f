"""Runs the collectors concurrently, each under its own deadline.

A collector that is slow, hangs or raises yields error Readings (with
`stale_since`) for its targets; it never delays the round past the deadline nor
stops the others. A collector that lost its target is retried with capped
exponential backoff. `run` is the one poll loop every caller uses (the TUI,
`check --watch`, `record`): rounds never overlap, the next is scheduled when the
previous one has ended.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from collectors.config import Config
from collectors.core.model import ErrorKind, Reading, Snapshot
from collectors.core.redact import clean, printable, scrub


class SharedResource(Protocol):
    async def aclose(self) -> None: ...


class Collectors(list["Collector"]):
    """build_collectors' answer: the collectors, plus what they share (`shared`),
    which the Poller given this list closes in its `aclose`, and the secrets their
    config holds (`secrets`), which the Poller scrubs from every error it passes on."""

    shared: list[SharedResource]
    secrets: list[str]


class Collector(Protocol):
    component: str
    # False for collectors whose targets are cheap to retry one by one (HTTP with a
    # timeout, a process lookup): every round tries again, so recovery shows at once.
    # backoff: bool  (optional attribute; True when absent)
    # detail: bool  (optional attribute; True when absent): set False by a caller whose
    # rounds only the judges read (`check`), a collector may then leave out what only
    # screens and recordings show. `judging_only` sets it.

    def targets(self) -> list[str]:
        """Target names, so a collector that fails still yields one reading each."""
        ...

    async def collect(self) -> list[Reading]: ...

    async def close(self) -> None: ...


@dataclass
class _State:
    task: asyncio.Task[list[Reading]] | None = None
    started: float = 0.0
    failures: int = 0
    next_attempt: float = 0.0
    stale_since: dict[str, float] = field(default_factory=dict)
    last_errors: list[Reading] = field(default_factory=list)


class Poller:
    def __init__(
        self,
        collectors: Sequence[Collector],
        *,
        deadline: float = 5.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        clock: Callable[[], float] = time.time,
        shared: Sequence[SharedResource] | None = None,
    ) -> None:
        self.collectors = list(collectors)
        # Resources the collectors share (build_collectors' one HttpClient): the Poller
        # owns them and closes them once, after every collector has closed.
        self.shared = list(shared if shared is not None else getattr(collectors, "shared", []))
        # A client library's error may quote a DSN or URL: the registry knows every
        # secret the config holds, and none of them leaves a round (screens, formats,
        # recordings), whichever collector forgot to scrub its own errors.
        self.secrets: list[str] = list(getattr(collectors, "secrets", []))
        self.deadline = deadline
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.clock = clock
        self.rounds = 0
        self._state: dict[int, _State] = {id(c): _State() for c in self.collectors}

    async def poll(self, deadline: float | None = None) -> Snapshot:
        """One round: every collector at once, bounded by `deadline` seconds."""
        limit = self.deadline if deadline is None else deadline
        started = self.clock()
        t0 = time.perf_counter()
        waiting: dict[int, asyncio.Task[list[Reading]]] = {}
        for c in self.collectors:
            st = self._state[id(c)]
            if st.task is not None and not st.task.done():
                continue  # still stuck in an earlier round; do not pile up
            if st.failures and started < st.next_attempt:
                continue  # backing off
            st.task = asyncio.create_task(c.collect(), name=f"collect-{c.component}")
            st.started = started
            waiting[id(c)] = st.task
        if waiting:
            await asyncio.wait(waiting.values(), timeout=limit)

        readings: list[Reading] = []
        for c in self.collectors:
            settled = self._settle(c, waiting.get(id(c)), started, limit)
            readings.extend(_escaped(r, self.secrets) for r in settled)
        self.rounds += 1
        return Snapshot(
            round=self.rounds,
            started_at=started,
            duration_ms=(time.perf_counter() - t0) * 1000,
            readings=tuple(readings),
        )

    def _settle(
        self,
        c: Collector,
        task: asyncio.Task[list[Reading]] | None,
        started: float,
        limit: float,
    ) -> list[Reading]:
        st = self._state[id(c)]
        now = self.clock()
        if task is None:
            if st.task is not None and not st.task.done():
                busy = f"collector still busy since {now - st.started:.0f}s ago"
                return self._failed(c, st, busy, "timeout", now, count=False)
            wait = max(0.0, st.next_attempt - now)
            return [
                dataclasses.replace(r, error=f"{r.error} (retrying in {wait:.0f}s)", taken_at=now)
                for r in st.last_errors
            ] or self._failed(c, st, "waiting to retry", "unreachable", now, count=False)
        if not task.done():
            task.cancel()
            return self._failed(c, st, f"no answer within {limit:g}s", "timeout", now)
        if task.cancelled():
            return self._failed(c, st, "collector was cancelled", "internal", now)
        exc = task.exception()
        if exc is not None:
            return self._failed(c, st, f"{type(exc).__name__}: {exc}", "internal", now)

        result = task.result()
        out: list[Reading] = []
        for r in result:
            key = r.target
            if r.error is None:
                st.stale_since.pop(key, None)
                out.append(r)
            else:
                since = st.stale_since.setdefault(key, r.stale_since or now)
                out.append(dataclasses.replace(r, stale_since=since))
        lost = result and all(r.error_kind == "unreachable" for r in result)
        if lost and getattr(c, "backoff", True):
            self._backoff(st, now)
            st.last_errors = out
        else:
            st.failures = 0
            st.next_attempt = 0.0
            st.last_errors = []
        return out

    def _failed(
        self,
        c: Collector,
        st: _State,
        message: str,
        kind: ErrorKind,
        now: float,
        *,
        count: bool = True,
    ) -> list[Reading]:
        if count:
            self._backoff(st, now)
        out = []
        for target in c.targets():
            since = st.stale_since.setdefault(target, now)
            out.append(
                Reading(
                    component=c.component,
                    target=target,
                    taken_at=now,
                    error=message,
                    error_kind=kind,
                    stale_since=since,
                )
            )
        if count:
            st.last_errors = out
        return out

    def _backoff(self, st: _State, now: float) -> None:
        st.failures += 1
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (st.failures - 1))
        # The first failure is retried on the next round; backoff starts after.
        st.next_attempt = now + (delay if st.failures > 1 else 0.0)

    async def run(
        self,
        interval: float,
        on_snapshot: Callable[[Snapshot], Awaitable[None] | None],
        *,
        wake: asyncio.Event | None = None,
        paused: Callable[[], bool] = lambda: False,
        stop: asyncio.Event | None = None,
        rounds: int | None = None,
        on_error: Callable[[Exception], None] | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> int:
        """The one poll loop (the TUI, `check --watch`, `record`): a round,
        `on_snapshot` with it, then rest `interval` seconds (rounds never overlap);
        returns the number of rounds handed over.

        `wake` set: a round at once ("poll now"), even while `paused()` says to skip
        rounds; set during a round, the next one follows it. `stop` set: no further
        round (the one under way finishes and is handed over). `rounds`: stop after
        that many. `on_start` runs before each round (a watchdog armed). An exception
        from the round or `on_snapshot` goes to `on_error` and polling goes on; with
        no `on_error` it ends the loop.
        """
        wake = wake or asyncio.Event()
        done = 0
        while stop is None or not stop.is_set():
            if not paused() or wake.is_set():
                wake.clear()
                if await self._round(on_snapshot, on_error, on_start):
                    done += 1
                if rounds is not None and done >= rounds:
                    break
            await _rest(interval, wake, stop)
        return done

    async def _round(
        self,
        on_snapshot: Callable[[Snapshot], Awaitable[None] | None],
        on_error: Callable[[Exception], None] | None,
        on_start: Callable[[], None] | None,
    ) -> bool:
        try:
            if on_start is not None:
                on_start()
            result = on_snapshot(await self.poll())
            if inspect.isawaitable(result):
                await result
        except Exception as e:
            if on_error is None:
                raise
            on_error(e)
            return False
        return True

    async def aclose(self) -> None:
        for c in self.collectors:
            st = self._state[id(c)]
            if st.task is not None and not st.task.done():
                st.task.cancel()
            try:
                await asyncio.wait_for(c.close(), timeout=2)
            except Exception:  # closing is best effort; the process is ending
                pass
        for r in self.shared:
            try:
                await asyncio.wait_for(r.aclose(), timeout=2)
            except Exception:  # best effort too
                pass


async def _rest(interval: float, wake: asyncio.Event, stop: asyncio.Event | None) -> None:
    """Wait `interval` seconds, or until `wake` or `stop` is set."""
    if wake.is_set() or (stop is not None and stop.is_set()):
        return
    waits = [asyncio.ensure_future(wake.wait())]
    if stop is not None:
        waits.append(asyncio.ensure_future(stop.wait()))
    try:
        await asyncio.wait(waits, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def _escaped(r: Reading, secrets: Sequence[str] = ()) -> Reading:
    """Target text is data: control characters (terminal escapes) become `\\xNN`
    here, once, for every screen, format and recording downstream; and an error
    never carries a secret of the config."""
    error = scrub(r.error, secrets) if r.error and secrets else r.error
    data, error, target = clean(r.data), clean(error), printable(r.target)
    if data is r.data and error is r.error and target is r.target:
        return r
    return dataclasses.replace(r, data=data, error=error, target=target)


def judging_only(collectors: Sequence[Collector]) -> None:
    """Rounds read by the judges alone: collectors that can leave out what only the
    screens and recordings show (their `detail`) do."""
    for c in collectors:
        if hasattr(c, "detail"):
            c.detail = False


def build_collectors(
    config: Config, only: Sequence[str] | None = None, *, one_shot: bool = False
) -> Collectors:
    """The collectors the config switches on, in registry order. Client libraries are
    imported by each target's `build`, so `check --only redis` never pays for psycopg
    or httpx. What they share (the one HttpClient) is in `.shared`: the Poller built
    from this list closes it. `one_shot`: a single round (`check`), whose reads must
    leave no trace the next check sees."""
    from collectors.registry import TARGETS, Shared, config_secrets

    wanted = set(only or [t.name for t in TARGETS])
    shared = Shared(config)
    out = Collectors()
    out.extend(
        t.build(config, shared, one_shot) for t in TARGETS if t.name in wanted and t.enabled(config)
    )
    out.shared = shared.resources
    out.secrets = config_secrets(config)
    return out
