"""`ultrawatch check` as cron and Nagios see it: a real PostgreSQL up, down and
hanging; every output format; --output, --watch and --only."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dashboard.demo.embedded import free_port
from tests.conftest import ULTRAWATCH, run_cli


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


def test_hanging_target_finishes_inside_timeout_as_unknown(write_config, silent_port) -> None:
    path = write_config(
        _pg(f"postgresql://monitor@127.0.0.1:{silent_port}/x", 'connect_timeout = "30s"')
    )
    t0 = time.monotonic()
    result = run_cli("check", "--config", str(path), "--timeout", "2", timeout=20)
    elapsed = time.monotonic() - t0
    assert result.returncode == 3, result.stderr
    out = json.loads(result.stdout)
    reach = next(c for c in out["checks"] if c["id"] == "postgres.reachable")
    assert reach["status"] == "unknown"
    assert "no answer within" in reach["summary"]
    # The hard bound holds: 2 s of check plus interpreter start-up, not 30 s.
    assert elapsed < 6


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
    assert first.startswith("ULTRAWATCH CRITICAL - 1 of 1 checks not ok: postgres.reachable")
    assert "CRITICAL: postgres.reachable" in result.stdout.splitlines()[1]


def test_nagios_perfdata_units_and_ranges(write_config, pg_dsn: str) -> None:
    result = run_cli("check", "--format", "nagios", "--config", str(write_config(_pg(pg_dsn))))
    head, _, perf = result.stdout.splitlines()[0].partition(" | ")
    assert head.startswith("ULTRAWATCH OK - all ")
    fields = dict(item.split("=", 1) for item in perf.split())
    value, warn, crit = fields["postgres.connections"].split(";")
    assert value.endswith("%") and warn == "80" and crit == "95"
    assert fields["postgres.reachable"].endswith("ms")


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
    path = write_config(_pg(pg_dsn))
    result = run_cli(
        "check", "--format", "prometheus", "--output", str(target), "--config", str(path)
    )
    assert result.returncode == 0
    assert result.stdout == ""
    assert "ultrawatch_status 0" in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["ultrawatch.prom"]  # no temp left


def test_watch_prints_one_json_object_per_round(write_config, pg_dsn: str) -> None:
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
        proc.send_signal(2)
        proc.wait(10)
    objs = [json.loads(line) for line in lines]
    assert all(o["schema"] == "ultrawatch.check/v1" for o in objs)
    assert len({o["started_at"] for o in objs}) == 3


def test_only_limits_the_collectors(write_config, pg_dsn: str) -> None:
    path = write_config(_pg(pg_dsn) + '\n[redis]\nurl = "redis://127.0.0.1:1/0"\n')
    result = run_cli("check", "--only", "postgres", "--config", str(path))
    assert result.returncode == 0, result.stdout
    assert {c["component"] for c in json.loads(result.stdout)["checks"]} == {"postgres"}
    bad = run_cli("check", "--only", "postgres,mysql", "--config", str(path))
    assert bad.returncode == 3 and "unknown collector 'mysql'" in bad.stderr
