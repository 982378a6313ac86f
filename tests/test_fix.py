"""`ultrawatch fix CHECK_ID`: the remedy an alert carries, against real PostgreSQL,
Redis and JWT services; and the bulk action under it (each target re-checked,
verified and audited on its own)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from collectors.config import load_config
from collectors.secrets.store import parse_dotenv
from dashboard.actions.base import ActionRunner, Plan, Result
from dashboard.actions.fix import FixAction, remedy_for
from tests.conftest import run_cli
from tests.jwt_service import JwtService, running
from tests.test_rotate_secret import strong, write_store


def _audit(path: Path) -> list[dict]:
    audit = path.parent / "audit.jsonl"
    return [json.loads(x) for x in audit.read_text().splitlines()] if audit.exists() else []


def _pids(pg_dsn: str, app: str) -> dict[int, str]:
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        rows = c.execute(
            "select pid, state from pg_stat_activity where application_name = %s", (app,)
        ).fetchall()
    return {pid: state for pid, state in rows}


class Storm:
    """A service over its budget: idle sessions opened one after the other (oldest
    first), one running a query and one idle in a transaction."""

    def __init__(self, pg_dsn: str, idle: int) -> None:
        self.app = f"pay-{uuid.uuid4().hex[:8]}"
        self.dsn = pg_dsn
        self.idle: list[psycopg.Connection] = []
        for _ in range(idle):
            c = psycopg.connect(pg_dsn, application_name=self.app, autocommit=True)
            c.execute("select 1")
            self.idle.append(c)
            time.sleep(0.05)  # distinct state_change: "oldest idle first" is testable
        self.in_xact = psycopg.connect(pg_dsn, application_name=self.app, autocommit=True)
        self.in_xact.execute("begin")
        self.in_xact.execute("select 1")
        self.active = psycopg.connect(pg_dsn, application_name=self.app, autocommit=True)
        self._sleeper = threading.Thread(target=self._sleep, daemon=True)
        self._sleeper.start()
        deadline = time.monotonic() + 10
        while "active" not in _pids(pg_dsn, self.app).values():
            assert time.monotonic() < deadline, "the active session never started"
            time.sleep(0.02)

    def _sleep(self) -> None:
        try:
            self.active.execute("select pg_sleep(30)")
        except psycopg.Error:
            pass

    def config(self, write_config, budget: int) -> Path:
        return write_config(
            f'[postgres]\ndsn = "{self.dsn}"\n\n[[services]]\nname = "{self.app}"\n'
            f'url = "http://127.0.0.1:9"\npg_application_name = "{self.app}"\n'
            f"connection_budget = {budget}\n"
        )

    def close(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as c:
            c.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where application_name = %s",
                (self.app,),
            )
        for c in [*self.idle, self.in_xact, self.active]:
            c.close()


@pytest.fixture
def storm(pg_dsn: str) -> Iterator[Storm]:
    s = Storm(pg_dsn, idle=4)
    yield s
    s.close()


def test_fix_budget_terminates_the_oldest_idle_beyond_budget_only(
    pg_dsn: str, storm: Storm, write_config
) -> None:
    # 6 connections, budget 3: 3 over; the 3 oldest idle go, never the active one
    # nor the one in a transaction, and the newest idle stays.
    path = storm.config(write_config, budget=3)
    check = f"postgres.budget.{storm.app}"
    oldest = [c.info.backend_pid for c in storm.idle[:3]]
    newest = storm.idle[3].info.backend_pid

    dry = run_cli("fix", check, "--dry-run", "--config", str(path))
    assert dry.returncode == 0, dry.stderr
    for pid in oldest:
        assert f"pid {pid}: idle " in dry.stdout
        assert "backend_start 20" in dry.stdout  # the identity it will check
    assert f"pid {newest}" not in dry.stdout
    assert "beyond its budget of 3, oldest idle first" in dry.stdout
    assert len(_pids(pg_dsn, storm.app)) == 6  # a dry run changes nothing
    assert _audit(path) == []

    done = run_cli("fix", check, "--yes", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert "3 of 3 sessions terminated and verified" in done.stdout
    left = _pids(pg_dsn, storm.app)
    assert sorted(left.values()) == ["active", "idle", "idle in transaction"]
    assert newest in left and not any(p in left for p in oldest)
    # the bulk is audited, and each target on its own (started + verified)
    entries = _audit(path)
    per_pid = [e for e in entries if e["target"].startswith("pid ")]
    assert sorted({e["params"]["pid"] for e in per_pid}) == sorted(oldest)
    assert {e["outcome"] for e in per_pid} == {"started", "verified"}
    assert all(e["params"]["only_idle"] for e in per_pid)
    bulk = [e for e in entries if e["target"] == f"3 idle sessions of {storm.app}"]
    assert [e["outcome"] for e in bulk] == ["started", "verified"]
    assert bulk[0]["params"]["fixes"] == check

    # within budget now (3 of 3): nothing to fix, a refusal (1)
    again = run_cli("fix", check, "--yes", "--config", str(path))
    assert again.returncode == 1
    assert "is ok now: nothing to fix" in again.stderr


async def test_a_target_that_changed_since_the_plan_is_left_alone_and_named(
    pg_dsn: str, storm: Storm, write_config
) -> None:
    """Each target is re-checked at its turn: one that began a transaction after the
    plan is refused (never terminated), the others go on, the result says which."""
    path = storm.config(write_config, budget=2)
    config = load_config(str(path))
    action = FixAction(config, f"postgres.budget.{storm.app}")
    busy = storm.idle[1]

    async def confirm(plan: Plan) -> bool:
        assert f"pid {busy.info.backend_pid}" in dict(plan.details)
        busy.execute("begin")
        busy.execute("select 1")  # no longer idle
        return True

    outcome = await ActionRunner(config).run(action, confirm)
    assert outcome.result is Result.NOT_VERIFIED and outcome.result.exit_code == 1
    assert outcome.message.startswith("3 of 4 sessions terminated and verified; not: ")
    assert f"pid {busy.info.backend_pid} (refused:" in outcome.message
    assert "not idle" in outcome.message
    left = _pids(pg_dsn, storm.app)
    assert left[busy.info.backend_pid] == "idle in transaction"  # never ended


async def test_cancel_at_the_confirmation_changes_nothing(
    pg_dsn: str, storm: Storm, write_config
) -> None:
    path = storm.config(write_config, budget=1)
    config = load_config(str(path))

    async def no(plan: Plan) -> bool:
        return False

    action = FixAction(config, f"postgres.budget.{storm.app}")
    outcome = await ActionRunner(config).run(action, no)
    assert outcome.result is Result.CANCELLED
    assert len(_pids(pg_dsn, storm.app)) == 6
    assert [e["outcome"] for e in _audit(path)] == ["cancelled"]


def test_unknown_check_and_no_remedy_and_read_only(pg_dsn: str, storm: Storm, write_config) -> None:
    path = storm.config(write_config, budget=1)
    unknown = run_cli("fix", "postgres.budget.nobody", "--yes", "--config", str(path))
    assert unknown.returncode == 3
    assert "no check 'postgres.budget.nobody'" in unknown.stderr
    none = run_cli("fix", "postgres.reachable", "--yes", "--config", str(path))
    assert none.returncode == 1  # ok: nothing to fix
    ro = run_cli(
        "fix", f"postgres.budget.{storm.app}", "--yes", "--read-only", "--config", str(path)
    )
    assert ro.returncode == 1 and "read-only" in ro.stderr
    assert len(_pids(pg_dsn, storm.app)) == 6


# ------------------------------------------------------------------- locks


@pytest.fixture
def locks(redis_url: str) -> Iterator[tuple[redis.Redis, str]]:
    prefix = f"lock:fix{uuid.uuid4().hex[:6]}"
    r = redis.Redis.from_url(redis_url)
    yield r, prefix
    for key in r.scan_iter(f"{prefix}:*"):
        r.delete(key)
    r.close()


def test_fix_no_ttl_releases_each_lock_only_with_its_owner(
    redis_url: str, locks: tuple[redis.Redis, str], write_config
) -> None:
    r, prefix = locks
    r.set(f"{prefix}:1", "owner-a")  # never expires
    r.set(f"{prefix}:2", "owner-b")
    r.set(f"{prefix}:3", "owner-c", px=60_000)  # a healthy lock
    path = write_config(f'[redis]\nurl = "{redis_url}"\nlock_patterns = ["{prefix}:*"]\n')
    dry = run_cli("fix", "redis.locks.no_ttl", "--dry-run", "--config", str(path))
    assert dry.returncode == 0, dry.stderr
    assert f"{prefix}:1: owner owner-a, no TTL" in dry.stdout
    assert f"{prefix}:2: owner owner-b, no TTL" in dry.stdout
    assert f"{prefix}:3" not in dry.stdout
    done = run_cli("fix", "redis.locks.no_ttl", "--yes", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert "2 of 2 locks released and verified" in done.stdout
    assert r.get(f"{prefix}:1") is None and r.get(f"{prefix}:2") is None
    assert r.get(f"{prefix}:3") == b"owner-c"
    per_key = [e for e in _audit(path) if e["action"] == "release-lock" and ":" in e["target"]]
    assert {(e["target"], e["outcome"]) for e in per_key} >= {
        (f"{prefix}:1", "verified"),
        (f"{prefix}:2", "verified"),
    }


async def test_a_lock_taken_by_another_holder_meanwhile_is_left_in_place(
    redis_url: str, locks: tuple[redis.Redis, str], write_config
) -> None:
    r, prefix = locks
    r.set(f"{prefix}:1", "owner-a")
    r.set(f"{prefix}:2", "owner-b")
    path = write_config(f'[redis]\nurl = "{redis_url}"\nlock_patterns = ["{prefix}:*"]\n')
    config = load_config(str(path))

    async def confirm(plan: Plan) -> bool:
        r.set(f"{prefix}:2", "new-holder")  # released and taken again after the plan
        return True

    outcome = await ActionRunner(config).run(FixAction(config, "redis.locks.no_ttl"), confirm)
    assert outcome.result is Result.NOT_VERIFIED
    assert outcome.message.startswith("1 of 2 locks released and verified; not: ")
    assert r.get(f"{prefix}:1") is None
    assert r.get(f"{prefix}:2") == b"new-holder"  # never another holder's lock


# ----------------------------------------------------------------- secrets


def test_fix_weak_secret_rotates_then_finishes_after_the_grace_period(
    tmp_path: Path, write_config
) -> None:
    env = tmp_path / "ultramarket.env"
    write_store(env, "your-secret-key", strong())
    with running(JwtService(env)) as url:
        path = write_config(
            f'[[services]]\nname = "svc"\nurl = "{url}"\ndetail_paths = ["/health/security"]\n'
            f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\ngrace_period = "2s"\n'
        )
        check = "secrets.JWT_SECRET.strength"
        rotated = run_cli("fix", check, "--yes", "--config", str(path))
        assert rotated.returncode == 0, rotated.stderr
        values = parse_dotenv(env.read_text())
        assert values["JWT_SECRET"] != "your-secret-key" and "JWT_SECRET_PREVIOUS" in values
        # the alert stays open (the weak previous secret is still accepted): the same
        # fix now plans the finish, refused with the time left until the grace ends
        early = run_cli("fix", check, "--yes", "--config", str(path))
        assert early.returncode == 1
        assert "grace period of JWT_SECRET runs until" in early.stderr
        assert "from now" in early.stderr
        assert "JWT_SECRET_PREVIOUS" in parse_dotenv(env.read_text())
        time.sleep(2.1)
        finished = run_cli("fix", check, "--yes", "--config", str(path))
        assert finished.returncode == 0, finished.stderr
        assert "previous secret of" in finished.stdout
        assert "JWT_SECRET_PREVIOUS" not in parse_dotenv(env.read_text())
        done = run_cli("fix", check, "--yes", "--config", str(path))
        assert done.returncode == 1 and "nothing to fix" in done.stderr
    for out in (rotated, early, finished):
        assert "your-secret-key" not in out.stdout + out.stderr


def test_remedy_hints_name_the_remedy(pg_dsn: str, storm: Storm, write_config) -> None:
    """What the Alerts panel shows: from a round's readings, without I/O."""
    import asyncio

    from dashboard.actions.fix import one_round

    path = storm.config(write_config, budget=3)
    config = load_config(str(path))
    report = asyncio.run(one_round(config, ["postgres"]))
    check = report.check(f"postgres.budget.{storm.app}")
    assert check is not None
    remedy = remedy_for(check, report.snapshot.readings, config)
    assert remedy is not None
    assert remedy.hint == "f: terminate 3 idle sessions"
    assert remedy.description.startswith(
        f"terminate the 3 idle sessions of {storm.app} beyond its budget of 3"
    )
    ok = report.check("postgres.reachable")
    assert ok is not None and remedy_for(ok, report.snapshot.readings, config) is None
