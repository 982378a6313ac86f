"""`production = true` on the command line: every action subcommand needs
`--confirm TARGET` naming its target; `--yes` alone is refused (exit 1, saying what
to add), and a wrong name is refused too. Real Redis, PostgreSQL and services."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from tests.conftest import run_cli
from tests.test_drain import config_text, secret, start  # noqa: F401 (fixtures)

PRODUCTION = "[dashboard]\nproduction = true\n"


def _audit(path: Path) -> list[dict]:
    log = path.parent / "audit.jsonl"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def _refused_for_yes_alone(proc, want: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert (
        f"refused: production = true: --yes alone is not enough; add --confirm '{want}'"
        in proc.stderr
    )


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.delete("lock:prod:1")
    client.close()


def test_release_lock(redis_url: str, r: redis.Redis, write_config) -> None:
    r.set("lock:prod:1", "stuck-holder")  # never expires: stuck
    path = write_config(f'{PRODUCTION}[redis]\nurl = "{redis_url}"\n')
    proc = run_cli("release-lock", "lock:prod:1", "--yes", "--config", str(path))
    _refused_for_yes_alone(proc, "lock:prod:1")
    assert r.get("lock:prod:1") == b"stuck-holder"
    # Refused, and audited under its target.
    entry = _audit(path)[-1]
    assert (entry["outcome"], entry["target"]) == ("refused", "lock:prod:1")
    # Not a terminal, nothing given: says what is needed.
    proc = run_cli("release-lock", "lock:prod:1", "--config", str(path))
    assert proc.returncode == 1 and "needs --confirm TARGET" in proc.stderr
    proc = run_cli("release-lock", "lock:prod:1", "--confirm", "lock:prod:2", "--config", str(path))
    assert proc.returncode == 1
    assert "--confirm 'lock:prod:2' is not the target: expected --confirm 'lock:prod:1'" in (
        proc.stderr
    )
    assert r.get("lock:prod:1") == b"stuck-holder"
    proc = run_cli(
        "release-lock", "lock:prod:1", "--yes", "--confirm", "lock:prod:1", "--config", str(path)
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("verified: released lock:prod:1")
    assert r.exists("lock:prod:1") == 0


def _wait_active(pg_dsn: str, pid: int) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        for _ in range(200):
            sql = "select state from pg_stat_activity where pid = %s"
            row = c.execute(sql, (pid,)).fetchone()
            if row and row[0] == "active":
                return
            threading.Event().wait(0.05)
    raise AssertionError(f"pid {pid} never became active")


def test_cancel_and_terminate(pg_dsn: str, write_config) -> None:
    path = write_config(f'{PRODUCTION}[postgres]\ndsn = "{pg_dsn}"\n')
    with psycopg.connect(pg_dsn, application_name="prod-victim", autocommit=True) as victim:
        pid = str(victim.info.backend_pid)
        errors: list[BaseException] = []

        def sleep() -> None:
            try:
                victim.execute("select pg_sleep(30)")
            except psycopg.Error as e:
                errors.append(e)

        t = threading.Thread(target=sleep)
        t.start()
        try:
            _wait_active(pg_dsn, int(pid))
            for command in ("cancel", "terminate"):
                proc = run_cli(command, pid, "--yes", "--config", str(path))
                _refused_for_yes_alone(proc, pid)
                assert _audit(path)[-1]["target"] == f"pid {pid}"
            assert not errors  # both refusals left the query running
            proc = run_cli("cancel", pid, "--confirm", pid, "--config", str(path))
            assert proc.returncode == 0, proc.stderr
        finally:
            t.join(10)
        assert errors and isinstance(errors[0], psycopg.errors.QueryCanceled)
        proc = run_cli("terminate", pid, "--confirm", pid, "--config", str(path))
        assert proc.returncode == 0, proc.stderr
        with pytest.raises(psycopg.OperationalError):
            victim.execute("select 1")


def test_drain_and_undrain(start, tmp_path: Path, secret: str, write_config) -> None:  # noqa: F811
    child = start()
    path = write_config(
        PRODUCTION
        + config_text(
            child, '{ path = "/admin/drain", timeout = "20s" }', tmp_path, secret, process=False
        )
    )
    for command in ("drain", "undrain"):
        proc = run_cli(command, "orders", "--yes", "--config", str(path))
        _refused_for_yes_alone(proc, "orders")
        assert _audit(path)[-1]["target"] == "orders"
    assert child.proc.poll() is None  # nothing was sent
    # Undrain of a service that is not draining: verified, nothing to do.
    proc = run_cli("undrain", "orders", "--confirm", "orders", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("drain", "orders", "--confirm", "orders", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert child.proc.wait(timeout=10) == 0


def test_rotate_secret(tmp_path: Path, write_config) -> None:
    env = tmp_path / ".env"
    old = secrets.token_urlsafe(48)
    env.write_text(f"JWT_SECRET={old}\n")
    path = write_config(
        f'{PRODUCTION}[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\n'
        'keys = ["JWT_SECRET"]\n'
    )
    proc = run_cli("rotate-secret", "--yes", "--config", str(path))
    _refused_for_yes_alone(proc, "JWT_SECRET")
    assert f"JWT_SECRET={old}\n" == env.read_text()
    proc = run_cli("rotate-secret", "JWT_SECRET", "--confirm", "JWT_SECRET", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert f"JWT_SECRET_PREVIOUS={old}" in env.read_text()
