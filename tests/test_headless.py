"""`ultrawatch check` as cron and Nagios see it: a real PostgreSQL up, down and
hanging; every output format; --output, --watch and --only."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collectors.core.model import CheckResult, Report, Snapshot, Status
from dashboard.demo.embedded import free_port
from dashboard.headless import format_nagios, format_prometheus
from tests import nagios
from tests.conftest import ULTRAWATCH, run_cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP server that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _pg(dsn: str, extra: str = "") -> str:
    return f'[postgres]\ndsn = "{dsn}"\n{extra}'


def test_healthy_postgres_is_ok_with_design_json_shape(write_config, pg_dsn: str) -> None:
    result = run_cli("check", "--config", str(write_config(_pg(pg_dsn))))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"schema", "status", "started_at", "duration_ms", "counts", "checks"}
    assert out["schema"] == "ultrawatch.check/v1"
    assert out["status"] == "ok"
    assert out["started_at"].endswith("Z") and isinstance(out["duration_ms"], int)
    assert set(out["counts"]) == {"ok", "warning", "critical", "unknown"}
    check = next(c for c in out["checks"] if c["id"] == "postgres.connections")
    assert set(check) == {
        "id", "component", "target", "status", "summary", "value", "unit", "warn", "crit",
    }  # fmt: skip
    assert check["unit"] == "ratio" and check["warn"] == 0.8 and check["crit"] == 0.95
    assert "usable connections in use" in check["summary"]


def test_postgres_down_is_critical_and_exits_2(write_config) -> None:
    port = free_port()
    path = write_config(_pg(f"postgresql://monitor@127.0.0.1:{port}/x", 'connect_timeout = "1s"'))
    result = run_cli("check", "--config", str(path), "--timeout", "5")
    assert result.returncode == 2
    out = json.loads(result.stdout)
    reach = next(c for c in out["checks"] if c["id"] == "postgres.reachable")
    assert reach["status"] == "critical"
    assert "unreachable" in reach["summary"] and "refused" in reach["summary"].lower()


@pytest.mark.parametrize("timeout", ["2", "10"])
def test_silent_targets_are_unreachable_critical_whatever_the_timeout(
    write_config, silent_port, timeout: str
) -> None:
    # Connects, never answers: PostgreSQL, Redis and HTTP alike. Their own timeouts
    # are capped below the round's deadline, so each reads unreachable (critical, the
    # monitoring-plugins convention) and not unknown, with --timeout 2 as with 10.
    path = write_config(
        _pg(f"postgresql://monitor@127.0.0.1:{silent_port}/x", 'connect_timeout = "30s"\n')
        + f'[redis]\nurl = "redis://127.0.0.1:{silent_port}/0"\nsocket_timeout = "30s"\n'
        + f'[[services]]\nname = "svc"\nurl = "http://127.0.0.1:{silent_port}"\n'
        + '[http]\ntimeout = "30s"\n'
    )
    result = run_cli("check", "--config", str(path), "--timeout", timeout, timeout=40)
    assert result.returncode == 2, result.stdout + result.stderr
    checks = {c["id"]: c for c in json.loads(result.stdout)["checks"]}
    for cid in ("postgres.reachable", "redis.reachable", "service.svc.health"):
        assert checks[cid]["status"] == "critical", checks[cid]
        assert "unreachable" in checks[cid]["summary"]
    assert "timeout expired" in checks["postgres.reachable"]["summary"]


def _blocking_script(tmp_path: Path, how: str) -> Path:
    """A check whose one collector hangs `how`: "block" stops the event loop itself
    (time.sleep in collect), "wait" awaits forever."""
    script = tmp_path / "hang.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio, sys, time
            import collectors.poller as poller
            from collectors.config import parse_config
            from dashboard import headless

            class Hangs:
                component = "processes"
                def targets(self): return ["worker"]
                async def collect(self):
                    if {how!r} == "block":
                        time.sleep(3600)
                    await asyncio.sleep(3600)
                async def close(self): pass

            def build(config, only=None, **kw):
                out = poller.Collectors([Hangs()])
                out.shared = []
                return out

            poller.build_collectors = build
            config = parse_config('[[processes]]\\nname = "worker"\\npid = 1\\n')
            sys.exit(headless.run_check(config, fmt="json", timeout=1))
            """
        )
    )
    return script


def test_a_collector_blocking_the_event_loop_cannot_outlive_the_timeout(tmp_path: Path) -> None:
    script = _blocking_script(tmp_path, "block")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr == "ultrawatch: check did not finish within 1s (a collector blocked)\n"


def test_watch_ends_when_a_later_round_blocks_the_event_loop(tmp_path: Path) -> None:
    """The watchdog is re-armed each round (one thread for the run): rounds that end in
    time never trip it, the first one that blocks ends the process within its bound."""
    script = tmp_path / "watch_block.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time
            import collectors.poller as poller
            from collectors.config import parse_config
            from collectors.core.model import Reading
            from dashboard import headless

            class BlocksOnRoundThree:
                component = "processes"
                rounds = 0
                def targets(self): return ["worker"]
                async def collect(self):
                    self.rounds += 1
                    if self.rounds == 3:
                        time.sleep(3600)
                    return [Reading("processes", "worker", time.time(), error="down",
                                    error_kind="invalid")]
                async def close(self): pass

            def build(config, only=None, **kw):
                out = poller.Collectors([BlocksOnRoundThree()])
                out.shared = []
                return out

            poller.build_collectors = build
            config = parse_config('[[processes]]\\nname = "worker"\\npid = 1\\n')
            sys.exit(headless.run_check(config, fmt="json", timeout=1, watch=0.3))
            """
        )
    )
    t0 = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 3, result.stderr
    assert len(result.stdout.splitlines()) == 2  # the two rounds that ended
    assert result.stderr == "ultrawatch: check did not finish within 1s (a collector blocked)\n"
    assert time.monotonic() - t0 < 15


def test_a_collector_hanging_forever_reads_unknown_with_the_reason(tmp_path: Path) -> None:
    script = _blocking_script(tmp_path, "wait")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 3, result.stderr
    checks = json.loads(result.stdout)["checks"]
    assert all(c["status"] == "unknown" for c in checks)
    assert "no answer within" in checks[0]["summary"]
    # its other checks are there too, not read (a stable set of checks)
    assert all(c["summary"].endswith(": not read") for c in checks[1:])


def test_text_format(write_config, pg_dsn: str) -> None:
    result = run_cli("check", "--format", "text", "--config", str(write_config(_pg(pg_dsn))))
    assert result.returncode == 0
    first, *rest = result.stdout.splitlines()
    assert first.startswith("ULTRAWATCH OK at ")
    assert any("postgres.connections" in line and "usable" in line for line in rest)


def test_nagios_format_with_perfdata(write_config) -> None:
    port = free_port()
    path = write_config(_pg(f"postgresql://m@127.0.0.1:{port}/x", 'connect_timeout = "1s"'))
    result = run_cli("check", "--format", "nagios", "--config", str(path))
    assert result.returncode == 2
    first = result.stdout.splitlines()[0]
    # the checks that depend on the server are there, unknown: not read
    assert first.startswith("ULTRAWATCH CRITICAL - 1 critical, 3 unknown: postgres.reachable")
    assert "CRITICAL: postgres.reachable" in result.stdout.splitlines()[1]


def test_nagios_perfdata_units_and_ranges(write_config, pg_dsn: str) -> None:
    result = run_cli("check", "--format", "nagios", "--config", str(write_config(_pg(pg_dsn))))
    out = nagios.parse(result.stdout)
    assert out.first.startswith("ULTRAWATCH OK - all ")
    _value, uom, (warn, crit) = out.perf["postgres.connections"]
    assert uom == "%" and warn == "80" and crit == "95"
    assert out.perf["postgres.reachable"][1] == "ms"


def test_prometheus_format_parses(write_config, pg_dsn: str) -> None:
    result = run_cli("check", "--format", "prometheus", "--config", str(write_config(_pg(pg_dsn))))
    assert result.returncode == 0
    families = {f.name: f for f in text_string_to_metric_families(result.stdout)}
    status = {s.labels["id"]: s.value for s in families["ultrawatch_check_status"].samples}
    assert status["postgres.reachable"] == 0
    assert "ultrawatch_check_value_ratio" in families
    assert "ultrawatch_check_value_seconds" in families  # latency converted from ms
    assert families["ultrawatch_rounds"].type == "counter"


def test_output_file_is_written_atomically(write_config, pg_dsn: str, tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "ultrawatch.prom"
    target.parent.mkdir()  # node_exporter's textfile directory: --output never creates it
    path = write_config(_pg(pg_dsn))
    result = run_cli(
        "check", "--format", "prometheus", "--output", str(target), "--config", str(path)
    )
    assert result.returncode == 0
    assert result.stdout == ""
    assert 'ultrawatch_status{platform="ultrawatch"} 0' in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["ultrawatch.prom"]  # no temp left


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_watch_prints_one_json_object_per_round(write_config, pg_dsn: str, stop: int) -> None:
    path = write_config(_pg(pg_dsn))
    proc = subprocess.Popen(
        [ULTRAWATCH, "check", "--watch", "0.2", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
    finally:
        proc.send_signal(stop)
        code = proc.wait(10)
    objs = [json.loads(line) for line in lines]
    assert all(o["schema"] == "ultrawatch.check/v1" for o in objs)
    assert len({o["started_at"] for o in objs}) == 3
    assert code == 0  # stopped cleanly: the exit code is the last round's status


def test_only_limits_the_collectors(write_config, pg_dsn: str) -> None:
    path = write_config(_pg(pg_dsn) + '\n[redis]\nurl = "redis://127.0.0.1:1/0"\n')
    result = run_cli("check", "--only", "postgres", "--config", str(path))
    assert result.returncode == 0, result.stdout
    assert {c["component"] for c in json.loads(result.stdout)["checks"]} == {"postgres"}
    bad = run_cli("check", "--only", "postgres,mysql", "--config", str(path))
    assert bad.returncode == 3 and "unknown collector 'mysql'" in bad.stderr


def _report(*checks: CheckResult, started_at: float = 1795550000.123456) -> Report:
    return Report(Snapshot(7, started_at, 84.0, ()), checks)


def _check(cid: str, value: float, unit: str, **kw: object) -> CheckResult:
    return CheckResult(cid, "test", "t", Status.OK, "fine", value=value, unit=unit, **kw)


def test_prometheus_numbers_are_exact() -> None:
    report = _report(
        _check("big.bytes", 123456789, "bytes"),
        _check("tiny.ratio", 0.000123456789, "ratio"),
    )
    text = format_prometheus(report)
    stamp_line = 'ultrawatch_last_round_timestamp_seconds{platform="ultrawatch"} 1795550000.123456'
    assert stamp_line + "\n" in text
    assert 'ultrawatch_check_value_bytes{platform="ultrawatch",id="big.bytes"} 123456789\n' in text
    assert (
        'ultrawatch_check_value_ratio{platform="ultrawatch",id="tiny.ratio"} 0.000123456789\n'
        in text
    )
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (stamp,) = families["ultrawatch_last_round_timestamp_seconds"].samples
    assert stamp.value == 1795550000.123456


def test_prometheus_timestamp_of_a_real_round_is_not_rounded(write_config, pg_dsn: str) -> None:
    result = run_cli("check", "--format", "prometheus", "--config", str(write_config(_pg(pg_dsn))))
    assert result.returncode == 0
    assert "e+" not in result.stdout and "e-" not in result.stdout
    (line,) = [
        ln for ln in result.stdout.splitlines() if ln.startswith("ultrawatch_last_round_timestamp")
    ]
    # Seconds with the fraction: a 6-significant-digit form would end in 0000.
    assert re.fullmatch(
        r'ultrawatch_last_round_timestamp_seconds\{platform="ultrawatch"\} \d{10}\.\d+', line
    )


def _perfdata(stdout: str) -> dict[str, tuple[str, str, list[str]]]:
    return nagios.parse(stdout).perf


def test_nagios_perfdata_has_no_exponent() -> None:
    report = _report(
        _check("big.bytes", 123456789, "bytes", warn=1e9, crit=2e9),
        _check("tiny.ratio", 1e-7, "ratio", warn=0.8),
        _check("huge.count", 1.5e17, "count"),
        _check("slow.ms", 1234567.891, "ms"),
    )
    fields = _perfdata(format_nagios(report))
    assert fields["big.bytes"] == ("123456789", "B", ["1000000000", "2000000000"])
    assert fields["tiny.ratio"] == ("0.00001", "%", ["80"])
    assert fields["huge.count"] == ("150000000000000000", "", [])
    assert fields["slow.ms"] == ("1234567.891", "ms", [])


def test_nagios_ranges_point_down_for_checks_that_alert_below(write_config, pg_dsn: str) -> None:
    # A 5-byte key is weak below 32 bytes; an invariant is bad below its limits.
    path = write_config(
        _pg(
            pg_dsn,
            '[[postgres.invariants]]\nname = "rows"\nsql = "select 3"\ncrit_below = 5\n'
            '[[postgres.invariants]]\nname = "both"\nsql = "select 3"\n'
            "warn_below = 10\ncrit_below = 2\n"
            '[[postgres.invariants]]\nname = "high"\nsql = "select 3"\ncrit_above = 2\n',
        )
        + '[secrets]\nstore = { kind = "env" }\nkeys = ["UW_TEST_KEY"]\n'
    )
    result = run_cli(
        "check", "--format", "nagios", "--config", str(path), env={"UW_TEST_KEY": "short"}
    )
    assert result.returncode == 2, result.stderr
    fields = _perfdata(result.stdout)
    assert "postgres.invariant.rows" in fields, result.stdout
    assert fields["secrets.UW_TEST_KEY.strength"] == ("5", "B", ["", "32:"])
    assert fields["postgres.invariant.rows"] == ("3", "", ["", "5:"])
    assert fields["postgres.invariant.both"] == ("3", "", ["10:", "2:"])
    assert fields["postgres.invariant.high"] == ("3", "", ["", "2"])  # alerts above: plain N
    assert "CRITICAL: postgres.invariant.rows" in result.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("check", "--format", "xml"), "ultrawatch: check: argument --format: invalid choice"),
        (("--bogus",), "ultrawatch: unrecognized arguments: --bogus"),
        (("check", "--timeout", "abc"), "ultrawatch: check: argument --timeout: expected a"),
        (("check", "--timeout", "0"), "ultrawatch: check: argument --timeout: expected a"),
        (("check", "--watch", "-1"), "ultrawatch: check: argument --watch: expected a"),
    ],
)
def test_bad_arguments_are_unknown_not_critical(args: tuple[str, ...], said: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 3  # argparse's 2 would read as CRITICAL to Nagios
    assert result.stdout == ""
    first, hint = result.stderr.splitlines()
    assert first.startswith(said)
    assert hint.startswith("(see 'ultrawatch") and hint.endswith("--help')")


def _read_lines(fd: int, n: int) -> list[str]:
    buf = b""
    while buf.count(b"\n") < n:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
    return buf.decode().replace("\r\n", "\n").splitlines()[:n]


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:  # EIO once the writer is gone
        pass


def test_watch_in_a_terminal_prints_json_lines(write_config, pg_dsn: str) -> None:
    path = write_config(_pg(pg_dsn))
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [ULTRAWATCH, "check", "--watch", "0.2", "--config", str(path)],
        stdout=slave,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    try:
        lines = _read_lines(master, 2)
    finally:
        # Keep reading, as a terminal does: a full pty would block the writer.
        drain = threading.Thread(target=_drain, args=(master,), daemon=True)
        drain.start()
        proc.send_signal(2)
        proc.wait(10)
        drain.join(5)
        os.close(master)
    objs = [json.loads(line) for line in lines]
    assert [o["schema"] for o in objs] == ["ultrawatch.check/v1"] * 2


def test_watch_rounds_are_bounded_by_the_timeout(write_config, silent_port) -> None:
    # Each round of a watch is bounded like a one-shot check: a silent PostgreSQL
    # with a 30 s connect_timeout is critical in every line.
    path = write_config(
        _pg(f"postgresql://monitor@127.0.0.1:{silent_port}/x", 'connect_timeout = "30s"')
    )
    proc = subprocess.Popen(
        [ULTRAWATCH, "check", "--watch", "0.1", "--timeout", "2", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
    finally:
        proc.send_signal(2)
        proc.wait(10)
    for line in lines:
        check = json.loads(line)["checks"][0]
        assert check["id"] == "postgres.reachable" and check["status"] == "critical"


def test_libpq_environment_is_used_without_a_dsn(write_config, pg_dsn: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(pg_dsn)
    env = {
        "PGHOST": str(params.get("host", "")),
        "PGPORT": str(params.get("port", "")),
        "PGUSER": str(params.get("user", "")),
        "PGDATABASE": str(params.get("dbname", "")),
        "PGPASSWORD": str(params.get("password", "")),
    }
    path = write_config("[postgres]\n")
    result = run_cli("check", "--config", str(path), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["id"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["postgres.reachable"]["status"] == "ok"
    # And it is the environment that decides: another PGPORT is another (absent) server.
    moved = run_cli("check", "--config", str(path), env={**env, "PGPORT": str(free_port())})
    assert moved.returncode == 2
    reach = next(c for c in json.loads(moved.stdout)["checks"] if c["id"] == "postgres.reachable")
    assert reach["status"] == "critical"


def test_library_warnings_never_reach_stderr() -> None:
    """psycopg logs "query cancellation failed" when a deadline cancels a query on a
    slow server; without a handler Python prints it on stderr, and cron mails it."""
    warn = "logging.getLogger('psycopg').warning('query cancellation failed: timeout expired')"
    bare = subprocess.run(
        [sys.executable, "-c", f"import logging; {warn}"], capture_output=True, text=True
    )
    assert "query cancellation failed" in bare.stderr  # what the user would have seen
    quiet = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import logging; from dashboard.cli import quiet_library_logs; "
            f"quiet_library_logs(); {warn}",
        ],
        capture_output=True,
        text=True,
    )
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
