"""`ultrawatch check`: one round (or --watch), printed as json, text, nagios or
prometheus, with Nagios exit codes. Never imports textual or rich.

stdout carries only the result; diagnostics go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from msgspec.structs import replace

from collectors.config import Config
from collectors.core.model import Report, Snapshot, Status
from collectors.core.units import Duration

SCHEMA = "ultrawatch.check/v1"
FORMATS = ("json", "text", "nagios", "prometheus")


# -------------------------------------------------------------------- formats


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_json_obj(report: Report) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "status": report.status.value,
        "started_at": iso(report.snapshot.started_at),
        "duration_ms": round(report.snapshot.duration_ms),
        "counts": report.counts,
        "checks": [c.to_dict() for c in _ordered(report)],
    }


def format_json(report: Report, *, indent: int | None = 2) -> str:
    return json.dumps(to_json_obj(report), indent=indent, ensure_ascii=False) + "\n"


def _ordered(report: Report) -> list[Any]:
    """Worst first, then by id: what needs attention is on top."""
    return sorted(report.checks, key=lambda c: (-c.status.severity, c.id))


_LABEL = {
    Status.OK: "OK",
    Status.WARNING: "WARN",
    Status.CRITICAL: "CRIT",
    Status.UNKNOWN: "UNKN",
}


def format_text(report: Report) -> str:
    counts = report.counts
    head = (
        f"ULTRAWATCH {report.status.value.upper()} at {iso(report.snapshot.started_at)} "
        f"in {report.snapshot.duration_ms:.0f} ms: "
        + ", ".join(f"{counts[s.value]} {s.value}" for s in _NAGIOS_ORDER if counts[s.value])
    )
    lines = [head]
    checks = _ordered(report)
    width = max((len(c.id) for c in checks), default=0)
    lines += [f"  {_LABEL[c.status]:4}  {c.id:<{width}}  {c.summary}" for c in checks]
    return "\n".join(lines) + "\n"


_NAGIOS_ORDER = (Status.CRITICAL, Status.UNKNOWN, Status.WARNING, Status.OK)
_NAGIOS_WORD = {
    Status.OK: "OK",
    Status.WARNING: "WARNING",
    Status.CRITICAL: "CRITICAL",
    Status.UNKNOWN: "UNKNOWN",
}
# unit -> (perfdata UOM, multiplier)
_UOM = {
    "ratio": ("%", 100.0),
    "percent": ("%", 1.0),
    "ms": ("ms", 1.0),
    "s": ("s", 1.0),
    "seconds": ("s", 1.0),
    "bytes": ("B", 1.0),
    # Nagios has no rate UOM: the number stays in bytes per second, unit-less, so no
    # graphing tool mistakes a growth rate for a size in bytes.
    "bytes_per_s": ("", 1.0),
    "count": ("", 1.0),
}


def _perf_label(label: str) -> str:
    label = label.replace("=", "_")
    if re.search(r"[\s']", label):
        return "'" + label.replace("'", "''") + "'"
    return label


def _nagios_num(v: float) -> str:
    """Fixed-point, trailing zeros stripped: perfdata allows only [-0-9.], no exponent."""
    if not math.isfinite(v):
        return "U"  # the plugin guidelines' "undetermined"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    # 12 significant digits drop float noise (0.1 * 100 = 10.000000000000002).
    text = format(Decimal(f"{v:.12g}"), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _perf_range(threshold: float | None, below: bool, mult: float) -> str:
    if threshold is None or not math.isfinite(threshold):
        return ""
    # A plain N alerts outside 0..N (above N); "N:" alerts outside N..inf (below N).
    n = _nagios_num(threshold * mult)
    return f"{n}:" if below else n


def format_nagios(report: Report) -> str:
    status = report.status
    bad = [c for c in _ordered(report) if c.status is not Status.OK]
    if bad:
        first = "; ".join(f"{c.id}: {c.summary}" for c in bad[:3])
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        summary = f"{len(bad)} of {len(report.checks)} checks not ok: {first}{more}"
    else:
        summary = f"all {len(report.checks)} checks ok"
    perf = []
    for c in sorted(report.checks, key=lambda c: c.id):
        if c.value is None:
            continue
        uom, mult = _UOM.get(c.unit or "", ("", 1.0))
        fields = [
            f"{_nagios_num(c.value * mult)}{uom}",
            _perf_range(c.warn, c.below, mult),
            _perf_range(c.crit, c.below, mult),
        ]
        perf.append(f"{_perf_label(c.id)}={';'.join(fields).rstrip(';')}")
    summary = summary.replace("|", "/")
    lines = [f"ULTRAWATCH {_NAGIOS_WORD[status]} - {summary} | {' '.join(perf)}".rstrip(" |")]
    lines += [f"{_NAGIOS_WORD[c.status]}: {c.id}: {c.summary}".replace("|", "/") for c in bad]
    return "\n".join(lines) + "\n"


def _prom_num(v: float) -> str:
    """Exact: integers as integers, other floats as their shortest round-trip repr
    (a Unix time printed as 1.79555e+09 would be off by over an hour)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 2**53:
        return str(int(v))
    return repr(float(v))


def _prom_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_prom_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


# unit -> (metric suffix, multiplier to the base unit)
_PROM_UNITS = {
    "ratio": ("_ratio", 1.0),
    "percent": ("_ratio", 0.01),
    "ms": ("_seconds", 0.001),
    "s": ("_seconds", 1.0),
    "seconds": ("_seconds", 1.0),
    "bytes": ("_bytes", 1.0),
    "bytes_per_s": ("_bytes_per_second", 1.0),
}


def format_prometheus(report: Report, *, rounds: int = 1) -> str:
    out: list[str] = []

    def block(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        if not samples:
            return
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {_prom_num(v)}" for labels, v in samples)

    block(
        "ultrawatch_status",
        "gauge",
        "Overall status: 0 ok, 1 warning, 2 critical, 3 unknown.",
        [("", report.status.exit_code)],
    )
    block(
        "ultrawatch_check_status",
        "gauge",
        "Status of one check: 0 ok, 1 warning, 2 critical, 3 unknown.",
        [
            (_labels(id=c.id, component=c.component, target=c.target), c.status.exit_code)
            for c in sorted(report.checks, key=lambda c: c.id)
        ],
    )
    by_metric: dict[str, list[tuple[str, float]]] = {}
    for c in sorted(report.checks, key=lambda c: c.id):
        if c.value is None:
            continue
        suffix, mult = _PROM_UNITS.get(c.unit or "", ("", 1.0))
        name = f"ultrawatch_check_value{suffix}"
        by_metric.setdefault(name, []).append((_labels(id=c.id), c.value * mult))
    for name in sorted(by_metric):
        block(name, "gauge", "The number a check judged, in base units.", by_metric[name])
    block(
        "ultrawatch_checks",
        "gauge",
        "Number of checks by status.",
        [(_labels(status=s), float(n)) for s, n in report.counts.items()],
    )
    block(
        "ultrawatch_round_duration_seconds",
        "gauge",
        "How long the poll round took.",
        [("", report.snapshot.duration_ms / 1000)],
    )
    block(
        "ultrawatch_last_round_timestamp_seconds",
        "gauge",
        "When the poll round started, as a Unix time.",
        [("", report.snapshot.started_at)],
    )
    block("ultrawatch_rounds_total", "counter", "Poll rounds completed.", [("", float(rounds))])
    return "\n".join(out) + "\n"


def render(report: Report, fmt: str, *, rounds: int = 1, compact: bool = False) -> str:
    if fmt == "json":
        return format_json(report, indent=None if compact else 2)
    if fmt == "text":
        return format_text(report)
    if fmt == "nagios":
        return format_nagios(report)
    if fmt == "prometheus":
        return format_prometheus(report, rounds=rounds)
    raise ValueError(f"unknown format {fmt!r}")


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Temp file in the same directory, fsync, rename: readers never see half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------- runs


def _emit(text: str, output: str | None) -> None:
    if output:
        write_atomically(output, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


# How far past --timeout a blocked event loop is given before the process ends.
WATCHDOG_GRACE = 0.5


class Watchdog:
    """Ends the process (UNKNOWN) when a round overruns its bound. asyncio's own
    timeouts cannot fire while a collector blocks the event loop (time.sleep, a
    blocking C call); a thread's timer still can."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        self.disarm()
        self._timer = threading.Timer(self.seconds + WATCHDOG_GRACE, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        line = f"ultrawatch: check did not finish within {self.seconds:g}s (a collector blocked)\n"
        try:
            os.write(2, line.encode())  # not sys.stderr: the blocked thread may hold its lock
        finally:
            os._exit(Status.UNKNOWN.exit_code)


def round_deadline(config: Config, timeout: float) -> float:
    """Each collector's deadline: inside --timeout, with room to judge, print and close."""
    # Whole tenths: the deadline and the timeouts below it appear in summaries.
    return max(
        0.1, math.floor(min(float(config.dashboard.collector_timeout), timeout - 0.3) * 10) / 10
    )


def bounded(config: Config, deadline: float) -> Config:
    """The config with every connect/socket/request timeout below the round's deadline.

    A silent target then fails on its own timeout and reads unreachable (critical,
    the monitoring-plugins convention); only a wedged collector is cut off by the
    deadline and reads unknown. Without this, `--timeout 2` turned a silent
    PostgreSQL (connect_timeout 3s) into unknown while `--timeout 10` said critical.
    """
    # The margin covers the round's own work on a busy machine (a client library's
    # first use, judging), so the target's timeout fires before the deadline does.
    limit = Duration(max(0.1, math.floor((deadline - min(1.0, deadline * 0.35)) * 10) / 10))

    def cap(value: float) -> Duration:
        return Duration(min(float(value), limit))

    from collectors.registry import capped_config

    changes: dict[str, Any] = {
        "dashboard": replace(config.dashboard, collector_timeout=Duration(deadline)),
        "http": replace(config.http, timeout=cap(config.http.timeout)),
        **capped_config(config, cap),
    }
    return replace(config, **changes)


async def check_once(
    config: Config,
    *,
    only: Sequence[str] | None,
    timeout: float,
) -> Report:
    from collectors.poller import Poller, build_collectors
    from collectors.rules import Rules

    t0 = time.monotonic()
    # A first build only imports the client libraries (constructing collectors opens
    # nothing); that time is spent, so the deadlines are taken from what is left.
    build_collectors(config, only, one_shot=True)
    deadline = round_deadline(config, timeout - (time.monotonic() - t0))
    collectors = build_collectors(bounded(config, deadline), only, one_shot=True)
    poller = Poller(collectors, deadline=deadline)
    try:
        snapshot = await poller.poll()
    finally:
        remaining = timeout - (time.monotonic() - t0)
        try:
            await asyncio.wait_for(poller.aclose(), timeout=max(0.05, min(1.0, remaining - 0.1)))
        except TimeoutError:
            pass
    return Rules(config).evaluate(snapshot)


async def check_watch(
    config: Config,
    *,
    only: Sequence[str] | None,
    interval: float,
    timeout: float,
    fmt: str,
    output: str | None,
) -> Status:
    from collectors.poller import Poller, build_collectors
    from collectors.rules import Rules

    rules = Rules(
        config,
        raise_after=config.dashboard.raise_after,
        clear_after=config.dashboard.clear_after,
    )
    # Every round is bounded by --timeout like a one-shot check.
    deadline = round_deadline(config, timeout)
    poller = Poller(build_collectors(bounded(config, deadline), only), deadline=deadline)
    watchdog = Watchdog(timeout)
    last = Status.UNKNOWN

    def judged(snapshot: Snapshot) -> None:
        nonlocal last
        report = rules.evaluate(snapshot)
        watchdog.disarm()
        last = report.status
        _emit(render(report, fmt, rounds=poller.rounds, compact=True), output)

    try:
        # Until cancelled (a signal): each round under the watchdog, `interval` apart.
        await poller.run(interval, judged, on_start=watchdog.arm)
    except asyncio.CancelledError:
        pass
    finally:
        # Closing is bounded too: a target that stopped answering cannot hold the exit.
        watchdog.arm()
        try:
            await asyncio.wait_for(poller.aclose(), timeout)
        except TimeoutError:
            pass
        finally:
            watchdog.disarm()
    return last


def run_check(
    config: Config,
    *,
    fmt: str | None = None,
    only: Sequence[str] | None = None,
    timeout: float = 10.0,
    watch: float | None = None,
    output: str | None = None,
    report: Report | None = None,
) -> int:
    """Run `check` and return its exit code. `report` judges a replayed moment instead."""
    if fmt is None:
        # --watch prints one JSON object per line per round, even in a terminal.
        tty = sys.stdout.isatty() and not output and watch is None
        fmt = "text" if tty else "json"
    loop = asyncio.new_event_loop()
    try:
        if report is not None:
            _emit(render(report, fmt), output)
            return report.status.exit_code
        if watch is not None:
            task = loop.create_task(
                check_watch(
                    config, only=only, interval=watch, timeout=timeout, fmt=fmt, output=output
                )
            )
            # Ctrl+C / SIGTERM cancel the watch between awaits: a KeyboardInterrupt raised
            # at an arbitrary point can drop a wakeup and leave the clean-up waiting
            # forever. A second signal ends the process at once.
            stops = 0

            def stop() -> None:
                nonlocal stops
                stops += 1
                if stops > 1:
                    os._exit(130)
                task.cancel()

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop)
            return loop.run_until_complete(task).exit_code
        watchdog = Watchdog(timeout)
        watchdog.arm()
        try:
            try:
                result = loop.run_until_complete(
                    asyncio.wait_for(check_once(config, only=only, timeout=timeout), timeout)
                )
            except TimeoutError:
                print(
                    f"ultrawatch: check did not finish within --timeout {timeout:g}s",
                    file=sys.stderr,
                )
                return Status.UNKNOWN.exit_code
            _emit(render(result, fmt), output)
            return result.status.exit_code
        finally:
            watchdog.disarm()
    finally:
        # Not loop.shutdown_default_executor(): a hung thread would hang us too.
        loop.close()
