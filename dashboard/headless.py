"""`ultrawatch check`: one round (or --watch), printed as json, text, nagios or
prometheus, with Nagios exit codes. Never imports textual or rich.

stdout carries only the result; diagnostics go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collectors.config import Config
from collectors.model import Report, Status

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


def _num(v: float) -> str:
    return f"{v:.6g}"


def _perf_range(threshold: float | None, below: bool, mult: float) -> str:
    if threshold is None:
        return ""
    # A plain number alerts above it; "N:" alerts below it.
    return f"{_num(threshold * mult)}:" if below else _num(threshold * mult)


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
        below = c.warn is not None and c.crit is not None and c.crit < c.warn
        fields = [
            f"{_num(c.value * mult)}{uom}",
            _perf_range(c.warn, below, mult),
            _perf_range(c.crit, below, mult),
        ]
        perf.append(f"{_perf_label(c.id)}={';'.join(fields).rstrip(';')}")
    summary = summary.replace("|", "/")
    lines = [f"ULTRAWATCH {_NAGIOS_WORD[status]} - {summary} | {' '.join(perf)}".rstrip(" |")]
    lines += [f"{_NAGIOS_WORD[c.status]}: {c.id}: {c.summary}".replace("|", "/") for c in bad]
    return "\n".join(lines) + "\n"


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
        out.extend(f"{name}{labels} {_num(v)}" for labels, v in samples)

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


async def check_once(
    config: Config,
    *,
    only: Sequence[str] | None,
    timeout: float,
) -> Report:
    from collectors.poller import Poller, build_collectors
    from collectors.rules import Rules

    t0 = time.monotonic()
    collectors = build_collectors(config, only, one_shot=True)
    # Leave room inside the hard bound to judge, print and close.
    deadline = max(0.1, min(config.dashboard.collector_timeout, timeout - 0.3))
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
    poller = Poller(build_collectors(config, only), deadline=config.dashboard.collector_timeout)
    last = Status.UNKNOWN
    try:
        while True:
            report = rules.evaluate(await poller.poll())
            last = report.status
            _emit(render(report, fmt, rounds=poller.rounds, compact=True), output)
            await asyncio.sleep(interval)
    except asyncio.CancelledError:
        pass
    finally:
        await poller.aclose()
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
    fmt = fmt or ("text" if sys.stdout.isatty() and not output else "json")
    loop = asyncio.new_event_loop()
    try:
        if report is not None:
            _emit(render(report, fmt), output)
            return report.status.exit_code
        if watch is not None:
            task = loop.create_task(
                check_watch(config, only=only, interval=watch, fmt=fmt, output=output)
            )
            try:
                return loop.run_until_complete(task).exit_code
            except KeyboardInterrupt:
                task.cancel()
                return loop.run_until_complete(task).exit_code
        try:
            result = loop.run_until_complete(
                asyncio.wait_for(check_once(config, only=only, timeout=timeout), timeout)
            )
        except TimeoutError:
            print(
                f"ultrawatch: check did not finish within --timeout {timeout:g}s", file=sys.stderr
            )
            return Status.UNKNOWN.exit_code
        _emit(render(result, fmt), output)
        return result.status.exit_code
    finally:
        # Not loop.shutdown_default_executor(): a hung thread would hang us too.
        loop.close()
