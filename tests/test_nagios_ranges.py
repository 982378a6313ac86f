"""Nagios output that means what ultrawatch means: the perfdata ranges, read by a real
parser (nagiosplugin's Range), give every judged value the status ultrawatch gave it,
for every combination of limits; the first line stays short."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.core.model import CheckResult, Limits, Reading, Report, Snapshot, Status
from collectors.postgres.config import Invariant, PostgresConfig
from collectors.postgres.data import InvariantResult, PostgresData
from collectors.postgres.rules import judge_postgres
from dashboard.headless import NAGIOS_FIRST_LINE_MAX, format_nagios
from tests import nagios
from tests.conftest import run_cli

# Small integers make values land on limits; the rest is every finite float.
NUMBER = st.one_of(
    st.integers(-5, 5).map(float),
    st.floats(-1e6, 1e6),
    st.floats(allow_nan=False, allow_infinity=False),
)
LIMIT = st.one_of(st.none(), NUMBER)


def _agrees(report: Report) -> dict[str, tuple[str, str, list[str]]]:
    perf = nagios.parse(format_nagios(report)).perf
    for c in report.checks:
        if c.value is None or c.status is Status.UNKNOWN:
            continue
        assert nagios.derived_status(perf[c.id]) == c.status.value, (c, perf[c.id])
    return perf


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=NUMBER,
    warn_above=LIMIT,
    crit_above=LIMIT,
    warn_below=LIMIT,
    crit_below=LIMIT,
    used=st.integers(0, 120),
    usable=st.integers(1, 120),
)
def test_an_invariants_ranges_say_its_status_for_any_limits(
    value: float,
    warn_above: float | None,
    crit_above: float | None,
    warn_below: float | None,
    crit_below: float | None,
    used: int,
    usable: int,
) -> None:
    inv = Invariant(
        name="inv",
        sql="select 1",
        warn_above=warn_above,
        crit_above=crit_above,
        warn_below=warn_below,
        crit_below=crit_below,
    )
    pg = PostgresConfig(invariants=[inv])
    data = PostgresData(
        latency_ms=1.0,
        usable=usable,
        connections_used=used,
        invariants={"inv": InvariantResult(value=value)},
    )
    reading = Reading("postgres", "main", time.time(), data=data)
    report = Report(Snapshot(1, time.time(), 1.0, (reading,)), tuple(judge_postgres(reading, pg)))
    perf = _agrees(report)
    limits = [warn_above, crit_above, warn_below, crit_below]
    if any(x is not None for x in limits):  # the ranges are there, not dropped
        assert any(perf["postgres.invariant.inv"][2]), perf["postgres.invariant.inv"]


@settings(max_examples=400, deadline=None)
@given(
    value=NUMBER,
    warn=LIMIT,
    crit=LIMIT,
    unit=st.sampled_from(["count", "s", "bytes", "ms"]),
)
def test_reaching_a_limit_is_said_in_the_ranges(
    value: float, warn: float | None, crit: float | None, unit: str
) -> None:
    """Connections at exactly 80 % of the slots warn: `@80:`, not `80` (0..80 is ok)."""
    limits = Limits(warn_above=warn, crit_above=crit, reach=True)
    c = CheckResult(
        "x.y",
        "t",
        "t",
        limits.status(value),
        "s",
        value=value,
        unit=unit,
        warn=warn,
        crit=crit,
        limits=limits,
    )
    perf = _agrees(Report(Snapshot(1, 0.0, 1.0, ()), (c,)))
    if warn is not None or crit is not None:
        assert any(perf["x.y"][2])


@settings(max_examples=300, deadline=None)
@given(
    value=st.integers(0, 1000).map(lambda n: n / 1000),
    warn=st.one_of(st.none(), st.integers(0, 100).map(lambda n: n / 100)),
    crit=st.one_of(st.none(), st.integers(0, 100).map(lambda n: n / 100)),
    reach=st.booleans(),
)
def test_ratios_in_percent_keep_their_verdict(
    value: float, warn: float | None, crit: float | None, reach: bool
) -> None:
    limits = Limits(warn_above=warn, crit_above=crit, reach=reach)
    c = CheckResult(
        "r", "t", "t", limits.status(value), "s", value=value, unit="ratio", limits=limits
    )
    perf = _agrees(Report(Snapshot(1, 0.0, 1.0, ()), (c,)))
    assert perf["r"][1] == "%"


def test_ranges_that_cannot_say_the_status_are_left_out() -> None:
    # Held critical by the judge (hysteresis, a rule beyond the number): the value
    # alone would read ok against 0..3, so no ranges rather than ranges that lie.
    c = CheckResult(
        "service.a.health",
        "services",
        "a",
        Status.CRITICAL,
        "unreachable",
        value=1.0,
        unit="count",
        crit=3.0,
    )
    assert nagios.parse(format_nagios(Report(Snapshot(1, 0.0, 1.0, ()), (c,)))).perf[
        "service.a.health"
    ] == ("1", "", [])


def _invariants(pg_dsn: str, *invs: str) -> str:
    body = "".join(f"[[postgres.invariants]]\n{inv}\n" for inv in invs)
    return f'[postgres]\ndsn = "{pg_dsn}"\n{body}'


def test_both_directions_through_a_real_check(write_config, pg_dsn: str) -> None:
    """The issue's case: warn_above = 5, crit_below = 1 printed `=3;5;1`, which any
    parser reads as CRITICAL while ultrawatch said OK."""
    path = write_config(
        _invariants(
            pg_dsn,
            'name = "mid"\nsql = "select 3"\nwarn_above = 5\ncrit_below = 1',
            'name = "low"\nsql = "select 0"\nwarn_above = 5\ncrit_below = 1',
            'name = "band"\nsql = "select 7"\nwarn_above = 5\nwarn_below = 1',
            'name = "inside"\nsql = "select 3"\nwarn_above = 5\nwarn_below = 1',
        )
    )
    result = run_cli("check", "--format", "nagios", "--config", str(path))
    out = nagios.parse(result.stdout)
    perf = out.perf
    assert perf["postgres.invariant.mid"] == ("3", "", ["5", "1:"])
    assert nagios.derived_status(perf["postgres.invariant.mid"]) == "ok"
    assert nagios.derived_status(perf["postgres.invariant.low"]) == "critical"
    assert perf["postgres.invariant.band"] == ("7", "", ["1:5"])  # the lower bound kept
    assert nagios.derived_status(perf["postgres.invariant.band"]) == "warning"
    assert nagios.derived_status(perf["postgres.invariant.inside"]) == "ok"
    assert result.returncode == 2
    assert "CRITICAL: postgres.invariant.low: low = 0" in out.long[0]


def test_the_first_line_is_short_and_the_rest_is_long_output(write_config, pg_dsn: str) -> None:
    names = [f"invariant_with_a_rather_long_descriptive_name_{i:02}" for i in range(40)]
    path = write_config(
        _invariants(pg_dsn, *(f'name = "{n}"\nsql = "select 1"\ncrit_above = 0' for n in names))
    )
    result = run_cli("check", "--format", "nagios", "--config", str(path))
    assert result.returncode == 2
    out = nagios.parse(result.stdout)
    first = result.stdout.splitlines()[0]
    assert len(first.encode()) <= NAGIOS_FIRST_LINE_MAX < 1024  # NRPE's 1 KiB
    assert first.startswith("ULTRAWATCH CRITICAL - 40 critical, ")
    assert first.endswith(" more)")
    assert "|" not in first
    # Every check not ok in the long output, every value in the perfdata.
    assert len(out.long) == 40
    assert all(line.startswith("CRITICAL: postgres.invariant.") for line in out.long)
    assert {f"postgres.invariant.{n}" for n in names} <= set(out.perf)
    assert "postgres.connections" in out.perf
