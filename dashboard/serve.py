"""`ultrawatch serve`: the engine running for good, for Prometheus and Alertmanager.

One process polls (`Poller.run`, the one loop), serves `GET /metrics` (the metric
names of `check --format prometheus`, made by prometheus-client from the latest
judged round, every series with `platform`), `GET /health` (its own health as
`application/health+json`), optionally records every round (`--record`) and sends
alerts to `[alertmanager]`. SIGTERM / SIGINT stop it within a few seconds, exit 0,
and resolve nothing on the way out. Never imports textual.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from collectors.config import Config
from collectors.core.model import Report, Snapshot, Status
from collectors.core.redact import printable, scrub
from collectors.core.units import iso_time

# The value suffix and scale of each unit: the names `check --format prometheus` uses.
from dashboard.headless import _PROM_UNITS as PROM_UNITS

if TYPE_CHECKING:
    from aiohttp import web

    from dashboard.alertmanager import Alerter

DEFAULT_LISTEN = ("127.0.0.1", 9469)
HEALTH_TYPE = "application/health+json"


@dataclass
class State:
    """What the server knows: the latest judged round and how the loop is doing."""

    config: Config
    started: float
    latest: Report | None = None
    rounds: int = 0
    last_error: str | None = None
    alerter: Alerter | None = None


# ------------------------------------------------------------------ /metrics


class ReportCollector(Collector):
    """prometheus-client collector: metric families from the latest judged round."""

    def __init__(self, state: State) -> None:
        self.state = state

    def describe(self) -> list[Metric]:
        return []  # not asked at registration: the families depend on the rounds

    def collect(self) -> Iterator[Metric]:
        report = self.state.latest
        platform = self.state.config.platform
        if report is None:
            yield _gauge("ultrawatch_up", "1 while serve runs.", [], [([], 1.0)], platform)
            return
        checks = sorted(report.checks, key=lambda c: c.id)
        yield _gauge(
            "ultrawatch_status",
            "Overall status: 0 ok, 1 warning, 2 critical, 3 unknown.",
            [],
            [([], float(report.status.exit_code))],
            platform,
        )
        yield _gauge(
            "ultrawatch_check_status",
            "Status of one check: 0 ok, 1 warning, 2 critical, 3 unknown.",
            ["id", "component", "target"],
            [([c.id, c.component, c.target], float(c.status.exit_code)) for c in checks],
            platform,
        )
        yield from _values(report, platform)
        yield _gauge(
            "ultrawatch_checks",
            "Number of checks by status.",
            ["status"],
            [([s], float(n)) for s, n in report.counts.items()],
            platform,
        )
        yield _gauge(
            "ultrawatch_round_duration_seconds",
            "How long the poll round took.",
            [],
            [([], report.snapshot.duration_ms / 1000)],
            platform,
        )
        yield _gauge(
            "ultrawatch_last_round_timestamp_seconds",
            "When the poll round started, as a Unix time.",
            [],
            [([], report.snapshot.started_at)],
            platform,
        )
        rounds = CounterMetricFamily(
            "ultrawatch_rounds", "Poll rounds completed.", labels=["platform"]
        )
        rounds.add_metric([platform], float(self.state.rounds))
        yield rounds
        yield _gauge(
            "ultrawatch_target_up",
            "1 when the collector read the target this round, 0 when it failed.",
            ["component", "target"],
            [([r.component, r.target], 1.0 if r.ok else 0.0) for r in report.snapshot.readings],
            platform,
        )
        if self.state.alerter is not None:
            yield _gauge(
                "ultrawatch_alertmanager_up",
                "1 when the last delivery of alerts to this Alertmanager succeeded.",
                ["url"],
                [([u.base], 1.0 if u.ok else 0.0) for u in self.state.alerter.urls],
                platform,
            )


def _gauge(
    name: str,
    help_: str,
    labels: list[str],
    samples: list[tuple[list[str], float]],
    platform: str,
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_, labels=["platform", *labels])
    for values, v in samples:
        family.add_metric([platform, *values], v)
    return family


def _values(report: Report, platform: str) -> Iterator[Metric]:
    by_name: dict[str, list[tuple[list[str], float]]] = {}
    for c in sorted(report.checks, key=lambda c: c.id):
        if c.value is None:
            continue
        suffix, mult = PROM_UNITS.get(c.unit or "", ("", 1.0))
        by_name.setdefault(f"ultrawatch_check_value{suffix}", []).append(([c.id], c.value * mult))
    for name in sorted(by_name):
        yield _gauge(
            name, "The number a check judged, in base units.", ["id"], by_name[name], platform
        )


class Exposition:
    """The /metrics text (the classic text format, which every Prometheus reads and
    `promtool check metrics` lints), made once per round by the loop that judged it,
    so a scrape only copies bytes and never waits for a round or a render."""

    def __init__(self, state: State) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ReportCollector(state))
        self.body = b""
        self.refresh()

    def refresh(self) -> None:
        from prometheus_client import generate_latest

        self.body = generate_latest(self.registry)


# ------------------------------------------------------------------- /health


def health(state: State, now: float) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body): pass, warn (collectors erroring, no round yet, alerts not
    delivered) or fail (the last round is older than three intervals plus a deadline:
    the loop is stuck). pass and warn answer 200, fail 503 (the draft's convention)."""
    d = state.config.dashboard
    stale_after = 3 * float(d.interval) + float(d.collector_timeout)
    report = state.latest
    checks: dict[str, list[dict[str, Any]]] = {}
    status = "pass"
    notes: list[str] = []
    if report is None:
        status = "warn" if now - state.started < stale_after else "fail"
        notes.append("no round finished yet")
    else:
        age = max(0.0, now - report.snapshot.started_at - report.snapshot.duration_ms / 1000)
        old = age > stale_after
        checks["round:age"] = [
            {
                "componentType": "system",
                "observedValue": round(age, 3),
                "observedUnit": "s",
                "status": "fail" if old else "pass",
                "time": iso_time(report.snapshot.started_at),
            }
        ]
        if old:
            status = "fail"
            notes.append(f"last round {age:.0f}s ago")
        failed = [r for r in report.snapshot.readings if not r.ok]
        checks["collectors:errors"] = [
            {
                "componentId": f"{r.component}/{r.target}",
                "componentType": "component",
                "status": "warn",
                "output": r.error,
            }
            for r in failed
        ] or [{"componentType": "component", "observedValue": 0, "status": "pass"}]
        if failed and status == "pass":
            status = "warn"
        if failed:
            notes.append(f"{len(failed)} targets not read")
    if state.alerter is not None:
        am = state.alerter.check()
        checks["alertmanager:delivery"] = [
            {
                "componentType": "component",
                "status": "pass" if am.status is Status.OK else "warn",
                "output": am.summary,
            }
        ]
        if am.status is not Status.OK and status == "pass":
            status = "warn"
    body: dict[str, Any] = {
        "status": status,
        "serviceId": f"ultrawatch/{state.config.platform}",
        "description": "ultrawatch serve",
        "checks": checks,
    }
    if notes:
        body["notes"] = notes
    if state.last_error:
        body["output"] = state.last_error
    return (503 if status == "fail" else 200), body


# -------------------------------------------------------------------- server


def make_app(state: State, exposition: Exposition) -> web.Application:
    from aiohttp import web
    from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=exposition.body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4}
        )

    async def healthz(request: web.Request) -> web.Response:
        code, body = health(state, time.time())
        data = json.dumps(body).encode()
        return web.Response(status=code, body=data, headers={"Content-Type": HEALTH_TYPE})

    async def index(request: web.Request) -> web.Response:
        return web.Response(text="ultrawatch serve: /metrics /health\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", healthz)
    app.router.add_get("/", index)
    return app


class HttpThread:
    """The HTTP server on an event loop of its own thread: a scrape is answered while
    the poll loop parses a round or judges it (CPU-bound Python holds the GIL for at
    most the switch interval, 5 ms, before this thread runs), not after."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="ultrawatch-http", daemon=True
        )
        self.runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen (OSError when it cannot); the port bound (`0` picks a free one)."""
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(host, port), self.loop)
        return await asyncio.wrap_future(fut)

    async def _start(self, host: str, port: int) -> int:
        from aiohttp import web

        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, host, port, shutdown_timeout=1.0).start()
        for address in self.runner.addresses:
            return int(address[1])
        return port

    async def stop(self) -> None:
        if not self.thread.is_alive():
            return
        if self.runner is not None:
            fut = asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop)
            await _bounded(asyncio.wrap_future(fut), 2.0)
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self.thread.join, 2.0)
        if not self.thread.is_alive():
            self.loop.close()


def run_serve(config: Config, args: argparse.Namespace) -> int:
    if args.keep is not None and not args.record:
        # An option that would be silently ignored is a usage error (exit 3), as in `check`.
        print(
            "ultrawatch: serve: --keep is the recording's retention; it needs --record FILE",
            file=sys.stderr,
        )
        return 3
    host, port = args.listen or DEFAULT_LISTEN
    return asyncio.run(
        serve(config, host, port, record=args.record, keep=args.keep, alerts=not args.no_alerts)
    )


class Server:
    """Everything `serve` does with a round (judge, keep for /metrics and /health,
    record, alert) and its HTTP server, apart from the poll loop that feeds it
    (`judged` is the loop's callback; bench/serve.py feeds it rounds itself)."""

    def __init__(
        self,
        config: Config,
        *,
        record: str | None = None,
        keep: float | None = None,
        alerts: bool = True,
    ) -> None:
        from collectors.registry import config_secrets
        from collectors.rules import Rules

        d = config.dashboard
        self.config = config
        self.state = State(config, started=time.time())
        self.secrets = config_secrets(config)
        self.rules = Rules(config, raise_after=d.raise_after, clear_after=d.clear_after)
        self.rec = _open_recording(config, record, keep)
        if alerts and config.alertmanager is not None:
            from dashboard.alertmanager import Alerter

            self.state.alerter = Alerter(config)
        self.exposition = Exposition(self.state)
        self.http = HttpThread(make_app(self.state, self.exposition))

    async def start(self, host: str, port: int) -> int:
        """Listen (OSError when it cannot); the port bound (`0` picks a free one)."""
        return await self.http.start(host, port)

    def judged(self, snapshot: Snapshot) -> None:
        from dashboard.alertmanager import with_self_check

        state = self.state
        report = with_self_check(self.rules.evaluate(snapshot), state.alerter)
        state.latest, state.rounds, state.last_error = report, state.rounds + 1, None
        if self.rec is not None:
            self.rec.append(snapshot)
        if state.alerter is not None:
            state.alerter.observe(report)

    async def round_done(self, snapshot: Snapshot) -> None:
        """The poll loop's callback: the round judged, then its /metrics text made in a
        worker thread (prometheus-client spends ~50-100 us a sample: 100 ms and more at
        3,000 series), so neither the loop's timers nor a scrape wait for it."""
        self.judged(snapshot)
        await asyncio.to_thread(self.exposition.refresh)

    def failed(self, e: Exception) -> None:
        text = printable(scrub(f"round failed: {type(e).__name__}: {e}", self.secrets))
        self.state.last_error = text
        print(f"ultrawatch: serve: {text}", file=sys.stderr, flush=True)

    async def aclose(self) -> None:
        if self.state.alerter is not None:
            await _bounded(self.state.alerter.aclose(), 1.0)
        await self.http.stop()
        if self.rec is not None:
            self.rec.close()


async def serve(
    config: Config,
    host: str,
    port: int,
    *,
    record: str | None = None,
    keep: float | None = None,
    alerts: bool = True,
) -> int:
    from collectors.poller import Poller, build_collectors

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = Server(config, record=record, keep=keep, alerts=alerts)
    try:
        bound = await server.start(host, port)
    except OSError as e:
        await server.aclose()
        why = e.strerror or e
        print(f"ultrawatch: serve: cannot listen on {host}:{port}: {why}", file=sys.stderr)
        return 3
    alerter = server.state.alerter
    sending = f", alerts to {', '.join(alerter.api.urls)}" if alerter else ""
    print(
        f"ultrawatch: serving http://{host}:{bound}/metrics and /health "
        f"(platform {config.platform}{sending})",
        file=sys.stderr,
        flush=True,
    )
    d = config.dashboard
    poller = Poller(build_collectors(config), deadline=d.collector_timeout)
    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(poller.run(d.interval, server.round_done, on_error=server.failed))
    ]
    if alerter is not None:
        tasks.append(asyncio.create_task(alerter.run()))
    try:
        await _until(stop, tasks)
    finally:
        # Stop now, not after the round under way (its deadline may be seconds off):
        # cancel, then close everything within bounds. Nothing is resolved.
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _bounded(poller.aclose(), 2.0)
        await server.aclose()
    print(f"ultrawatch: serve stopped after {server.state.rounds} rounds", file=sys.stderr)
    return 0


async def _until(stop: asyncio.Event, tasks: list[asyncio.Task[Any]]) -> None:
    """Until a signal, or a task ended on its own (an error it could not carry on past)."""
    waiter = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    for t in done:
        if t is not waiter and not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]


async def _bounded(aw: Any, seconds: float) -> None:
    try:
        await asyncio.wait_for(aw, seconds)
    except (TimeoutError, Exception):  # closing is best effort; the process is ending
        pass


def _open_recording(config: Config, record: str | None, keep: float | None) -> Any:
    if record is None:
        return None
    from dashboard.recording import DEFAULT_KEEP, Recording

    rec = Recording(record, keep=keep or DEFAULT_KEEP)
    try:
        rec.set_config(config)  # refuses a damaged file before any target is touched
    except Exception:
        rec.close()
        raise
    return rec
