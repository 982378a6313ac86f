"""`ultrawatch check`: one round (or --watch), printed as json, text, nagios or
prometheus, with Nagios exit codes. Never imports textual or rich.

stdout carries only the result; diagnostics go to stderr.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import msgspec
from msgspec.structs import replace

from collectors.config import DEFAULT_PLATFORM, Config
from collectors.core.files import atomic_write
from collectors.core.model import CheckResult, Report, Snapshot, Status
from collectors.core.units import Duration, iso_time

SCHEMA = "ultrawatch.check/v1"
FORMATS = ("json", "text", "nagios", "prometheus")


# -------------------------------------------------------------------- formats


def iso(ts: float) -> str:
    return iso_time(ts, "milliseconds")


def to_json_obj(report: Report) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "status": report.status.value,
        "started_at": iso(report.snapshot.started_at),
        "duration_ms": round(report.snapshot.duration_ms),
        "counts": report.counts,
        "checks": [c.to_dict() for c in _ordered(report)],
    }


def _as_plain(value: object) -> object:
    # Subclasses of str, int and float from the config (Name, Duration, ByteSize...)
    # are written as their value, as json.dumps wrote them; msgspec takes exact types.
    for base in (str, float, int):
        if isinstance(value, base):
            return base(value)
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


_JSON = msgspec.json.Encoder(enc_hook=_as_plain)


def format_json(report: Report, *, indent: int | None = 2) -> str:
    """The same text json.dumps(indent=..., ensure_ascii=False) wrote, made by msgspec
    in C: 1,500 checks (500 services) cost ~40 ms of a cold check in Python's encoder.
    indent=None is one line with json.dumps' separators (msgspec's indent 0)."""
    raw = _JSON.encode(to_json_obj(report))
    return msgspec.json.format(raw, indent=0 if indent is None else indent).decode() + "\n"


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


def _exact_num(v: float) -> str:
    """Fixed-point, every digit the float needs to read back as itself."""
    if not math.isfinite(v):
        return "U"
    text = format(Decimal(repr(float(v))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _scaled(limit: float | None, mult: float) -> float | None:
    return limit * mult if limit is not None and math.isfinite(limit) else None


def _nagios_range(
    hi: float | None, lo: float | None, reach: bool, value: float, num: Callable[[float], str]
) -> str:
    """One Nagios range (`[@][start:][end]`, alert outside start..end, inside with `@`)
    that alerts exactly when the value passes `hi` (reaches it, with `reach`) or falls
    below `lo`."""
    if hi is None and lo is None:
        return ""
    if hi is None:
        assert lo is not None
        return f"{num(lo)}:"
    if reach and lo is None:
        # Plain N is 0..N, inclusive: the same verdict unless the value sits on N.
        if 0 <= value != hi and hi >= 0:
            return num(hi)
        return f"@{num(hi)}:"
    if lo is None:
        return num(hi) if hi >= 0 and value >= 0 else f"~:{num(hi)}"
    if lo > hi:  # below lo or above hi covers every number
        return "@~:"
    return f"{num(lo)}:{num(hi)}"


def _range_alerts(spec: str, value: float) -> bool:
    """Does `value` alert against the Nagios range `spec` (the plugin guidelines)."""
    if not spec:
        return False
    invert = spec.startswith("@")
    body = spec[1:] if invert else spec
    start_s, _, end_s = body.rpartition(":") if ":" in body else ("", "", body)
    start = -math.inf if start_s == "~" else float(start_s or 0)
    end = float(end_s) if end_s else math.inf
    return (value < start or value > end) != invert


def _range_status(value: float, warn: str, crit: str) -> Status:
    if _range_alerts(crit, value):
        return Status.CRITICAL
    if _range_alerts(warn, value):
        return Status.WARNING
    return Status.OK


def _perf_field(c: CheckResult) -> str:
    """`'label'=value[UOM];warn;crit` whose ranges say what the status says: the ranges
    are written from every limit the value was judged against, in as few digits as keep
    the verdict; a value whose status its limits do not decide (held by hysteresis,
    rounded onto a limit) gets no ranges rather than ranges that contradict it."""
    assert c.value is not None
    uom, mult = _UOM.get(c.unit or "", ("", 1.0))
    b = c.bounds
    value = c.value * mult
    warn_hi, crit_hi = _scaled(b.warn_above, mult), _scaled(b.crit_above, mult)
    warn_lo, crit_lo = _scaled(b.warn_below, mult), _scaled(b.crit_below, mult)
    fields = [f"{_nagios_num(value)}{uom}"]
    for num in (_nagios_num, _exact_num):
        shown = num(value)
        warn = _nagios_range(warn_hi, warn_lo, b.reach, value, num)
        crit = _nagios_range(crit_hi, crit_lo, b.reach, value, num)
        if shown == "U" or c.status is Status.UNKNOWN:
            fields = [f"{shown}{uom}", warn, crit]
            break
        if _range_status(float(shown), warn, crit) is c.status:
            fields = [f"{shown}{uom}", warn, crit]
            break
    return f"{_perf_label(c.id)}={';'.join(fields).rstrip(';')}"


# NRPE (before v3) carries 1 KiB of output: the first line stays well under it.
NAGIOS_FIRST_LINE_MAX = 256


def _nagios_head(report: Report, bad: list[CheckResult]) -> str:
    head = f"ULTRAWATCH {_NAGIOS_WORD[report.status]} - "
    if not bad:
        return head + f"all {len(report.checks)} checks ok"
    counts = report.counts
    head += ", ".join(f"{counts[s.value]} {s.value}" for s in _NAGIOS_ORDER if counts[s.value])
    ids: list[str] = []
    for i, c in enumerate(bad):
        more = f" (+{len(bad) - i - 1} more)" if i + 1 < len(bad) else ""
        line = head + ": " + ", ".join([*ids, c.id]) + more
        if len(line.encode()) > NAGIOS_FIRST_LINE_MAX:
            break
        ids.append(c.id)
    if not ids:
        return head
    rest = len(bad) - len(ids)
    return head + ": " + ", ".join(ids) + (f" (+{rest} more)" if rest else "")


def format_nagios(report: Report) -> str:
    """The plugin output format: one short first line (status, counts, the ids not ok),
    then one long-output line per check not ok, then the perfdata after a `|`, one
    label per line (Nagios joins them)."""
    bad = [c for c in _ordered(report) if c.status is not Status.OK]
    lines = [_nagios_head(report, bad).replace("|", "/")]
    lines += [f"{_NAGIOS_WORD[c.status]}: {c.id}: {c.summary}".replace("|", "/") for c in bad]
    perf = [
        _perf_field(c) for c in sorted(report.checks, key=lambda c: c.id) if c.value is not None
    ]
    if perf:
        lines.append("| " + perf[0])
        lines += perf[1:]
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


def format_prometheus(report: Report, *, rounds: int = 1, platform: str = DEFAULT_PLATFORM) -> str:
    """Text exposition format. Every series carries `platform` (`[dashboard] platform`):
    two instances' textfiles on one node_exporter never name the same series."""
    out: list[str] = []

    def block(
        name: str, kind: str, help_: str, samples: list[tuple[dict[str, str], float]]
    ) -> None:
        if not samples:
            return
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(
            f"{name}{_labels(platform=platform, **labels)} {_prom_num(v)}" for labels, v in samples
        )

    checks = sorted(report.checks, key=lambda c: c.id)
    block(
        "ultrawatch_status",
        "gauge",
        "Overall status: 0 ok, 1 warning, 2 critical, 3 unknown.",
        [({}, report.status.exit_code)],
    )
    block(
        "ultrawatch_check_status",
        "gauge",
        "Status of one check: 0 ok, 1 warning, 2 critical, 3 unknown.",
        [
            ({"id": c.id, "component": c.component, "target": c.target}, c.status.exit_code)
            for c in checks
        ],
    )
    by_metric: dict[str, list[tuple[dict[str, str], float]]] = {}
    for c in checks:
        if c.value is None:
            continue
        suffix, mult = _PROM_UNITS.get(c.unit or "", ("", 1.0))
        name = f"ultrawatch_check_value{suffix}"
        by_metric.setdefault(name, []).append(({"id": c.id}, c.value * mult))
    for name in sorted(by_metric):
        block(name, "gauge", "The number a check judged, in base units.", by_metric[name])
    block(
        "ultrawatch_checks",
        "gauge",
        "Number of checks by status.",
        [({"status": s}, float(n)) for s, n in report.counts.items()],
    )
    block(
        "ultrawatch_round_duration_seconds",
        "gauge",
        "How long the poll round took.",
        [({}, report.snapshot.duration_ms / 1000)],
    )
    block(
        "ultrawatch_last_round_timestamp_seconds",
        "gauge",
        "When the poll round started, as a Unix time.",
        [({}, report.snapshot.started_at)],
    )
    block("ultrawatch_rounds_total", "counter", "Poll rounds completed.", [({}, float(rounds))])
    return "\n".join(out) + "\n"


def render(
    report: Report,
    fmt: str,
    *,
    rounds: int = 1,
    compact: bool = False,
    platform: str = DEFAULT_PLATFORM,
) -> str:
    if fmt == "json":
        return format_json(report, indent=None if compact else 2)
    if fmt == "text":
        return format_text(report)
    if fmt == "nagios":
        return format_nagios(report)
    if fmt == "prometheus":
        return format_prometheus(report, rounds=rounds, platform=platform)
    raise ValueError(f"unknown format {fmt!r}")


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """`check --output`: readers (node_exporter's textfile collector) never see half a
    file. World-readable like any exposition file; two checks writing the same file
    at once each leave their own temp file alone (no stale-temp cleanup)."""
    atomic_write(path, text, mode=0o644, make_parents=True, clean_stale=False)


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
    blocking C call); a thread's timer still can.

    One thread for the whole run, not a `threading.Timer` per round: starting and
    ending a thread every round was a fifth of a `--watch` round's CPU."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._deadline: float | None = None  # monotonic; None: disarmed
        self._idle = False  # the thread waits with no deadline: arming must wake it
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self) -> None:
        with self._cond:
            self._deadline = time.monotonic() + self.seconds + WATCHDOG_GRACE
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)
                self._thread.start()
            elif self._idle:
                self._cond.notify()
            # else the thread wakes at the earlier deadline it sleeps towards and
            # finds this later one: no wake-up per round

    def disarm(self) -> None:
        with self._cond:
            self._deadline = None

    def _watch(self) -> None:
        with self._cond:
            while True:
                deadline = self._deadline
                self._idle = deadline is None
                if deadline is None:
                    self._cond.wait()
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    self._fire()
                self._cond.wait(left)

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
    from collectors.poller import Poller, build_collectors, judging_only
    from collectors.rules import Rules

    t0 = time.monotonic()
    # A first build only imports the client libraries (constructing collectors opens
    # nothing); that time is spent, so the deadlines are taken from what is left.
    build_collectors(config, only, one_shot=True)
    deadline = round_deadline(config, timeout - (time.monotonic() - t0))
    collectors = build_collectors(bounded(config, deadline), only, one_shot=True)
    judging_only(collectors)  # check prints checks, never a screen's detail
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
    from collectors.poller import Poller, build_collectors, judging_only
    from collectors.rules import Rules

    rules = Rules(
        config,
        raise_after=config.dashboard.raise_after,
        clear_after=config.dashboard.clear_after,
    )
    # Every round is bounded by --timeout like a one-shot check.
    deadline = round_deadline(config, timeout)
    collectors = build_collectors(bounded(config, deadline), only)
    judging_only(collectors)
    poller = Poller(collectors, deadline=deadline)
    watchdog = Watchdog(timeout)
    last = Status.UNKNOWN

    def judged(snapshot: Snapshot) -> None:
        nonlocal last
        report = rules.evaluate(snapshot)
        watchdog.disarm()
        last = report.status
        _emit(
            render(report, fmt, rounds=poller.rounds, compact=True, platform=config.platform),
            output,
        )

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
            _emit(render(report, fmt, platform=config.platform), output)
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
            _emit(render(result, fmt, platform=config.platform), output)
            return result.status.exit_code
        finally:
            watchdog.disarm()
    finally:
        # Not loop.shutdown_default_executor(): a hung thread would hang us too.
        loop.close()
