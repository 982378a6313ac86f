"""`ultrawatch fix pgbouncer.budget.<service>` / `pgbouncer.pool.<database>`: the
storm behind a real PgBouncer 1.18 (transaction pooling, pool_size 2) in front of
the real PostgreSQL. The storm's clients each hold a server connection idle in a
transaction (or wait in the pool for one); the same service's well-behaved client
does short transactions, another service sits idle: only the storm is ended."""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from collectors.config import load_config
from dashboard.actions.base import ActionRunner, Plan, Result
from dashboard.actions.fix import FixAction, one_round, remedy_for, why_no_remedy
from dashboard.actions.pooled_storm import IDLE_IN_TX_AFTER
from tests.conftest import run_cli
from tests.pgbouncer_fixtures import POOL_SIZE, start_pgbouncer

DB = "orders"
STORM = 5  # clients holding a transaction: POOL_SIZE hold servers, the rest wait


def admin_rows(pgb: Any, command: str) -> list[dict[str, Any]]:
    with psycopg.connect(pgb.admin_dsn(), autocommit=True, prepare_threshold=None) as c:
        cur = c.execute(command, prepare=False)
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, r, strict=False)) for r in cur.fetchall()]


def apps(pgb: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in admin_rows(pgb, "SHOW CLIENTS"):
        out[r["application_name"]] = out.get(r["application_name"], 0) + 1
    return out


def waiting(pgb: Any) -> int:
    return sum(r["cl_waiting"] for r in admin_rows(pgb, "SHOW POOLS") if r["database"] == DB)


@pytest.fixture(scope="module")
def bouncer(pg_dsn: str) -> Iterator[Any]:
    """A PgBouncer of this module's own: the storm saturates its pool."""
    pgb = start_pgbouncer(pg_dsn)
    yield pgb
    pgb.stop()
    shutil.rmtree(pgb.base_dir, ignore_errors=True)


class PooledStorm:
    """STORM clients of `app` that BEGIN and sit in the transaction (the demo's
    pooled storm), one client of `app` doing short transactions all along, and one
    idle client of another service."""

    def __init__(self, pgb: Any, pg_dsn: str) -> None:
        tag = uuid.uuid4().hex[:6]
        self.app, self.other = f"pay-{tag}", f"user-{tag}"
        self.pgb, self.pg_dsn = pgb, pg_dsn
        self.storm: list[psycopg.Connection[Any]] = []
        self.good_errors: list[str] = []
        self.good_done = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        for _ in range(STORM):
            c = self._connect(self.app)
            self.storm.append(c)
            self._spawn(self._hold, c)
        self.good = self._connect(self.app)
        self._spawn(self._short_transactions)
        self.idle_other = self._connect(self.other)  # a client, holding no server
        # The pool is full and the holders have been idle in a transaction long enough.
        deadline = time.monotonic() + 30
        while not self._ready():
            assert time.monotonic() < deadline, "the storm did not saturate the pool"
            time.sleep(0.1)

    def _connect(self, app: str) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self.pgb.dsn("app", DB), autocommit=True, application_name=app, prepare_threshold=None
        )

    def _spawn(self, target: Any, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _hold(self, c: psycopg.Connection[Any]) -> None:
        try:
            c.execute("begin")
            c.execute("select 1")
        except psycopg.Error:
            pass  # ended by the fix while waiting for a server (or after)

    def _short_transactions(self) -> None:
        while not self._stop.is_set():
            try:
                with self.good.transaction():
                    self.good.execute("select 1")
                self.good_done += 1
            except psycopg.Error as e:
                self.good_errors.append(str(e))
                return
            time.sleep(0.05)

    def _ready(self) -> bool:
        with psycopg.connect(self.pg_dsn, autocommit=True) as c:
            rows = c.execute(
                "select count(*) from pg_stat_activity where application_name = %s "
                "and state = 'idle in transaction' and now() - state_change > %s::interval",
                (self.app, f"{IDLE_IN_TX_AFTER + 0.2} seconds"),
            ).fetchone()
        return bool(rows and rows[0] >= POOL_SIZE) and waiting(self.pgb) >= STORM - POOL_SIZE

    def config(
        self, write_config: Any, *, postgres: bool = True, budget: int = 2, production: bool = False
    ) -> Path:
        pg = f'[postgres]\ndsn = "{self.pg_dsn}"\n\n' if postgres else ""
        prod = "[dashboard]\nproduction = true\n\n" if production else ""
        path: Path = write_config(
            f"{prod}{pg}"
            f'[pgbouncer]\ndsn = "{self.pgb.admin_dsn()}"\ndatabases = ["{DB}"]\n\n'
            f'[[services]]\nname = "{self.app}"\nurl = "http://127.0.0.1:9"\n'
            f'pg_application_name = "{self.app}"\nconnection_budget = {budget}\n\n'
            f'[[services]]\nname = "{self.other}"\nurl = "http://127.0.0.1:9"\n'
            f'pg_application_name = "{self.other}"\nconnection_budget = 2\n',
            "production.toml" if production else "ultrawatch.toml",
        )
        return path

    def close(self) -> None:
        self._stop.set()
        for c in [*self.storm, self.good, self.idle_other]:
            try:
                c.cancel_safe(timeout=1)
            except Exception:
                pass
            c.close()
        for t in self._threads:
            t.join(timeout=5)


@pytest.fixture
def storm(bouncer: Any, pg_dsn: str) -> Iterator[PooledStorm]:
    s = PooledStorm(bouncer, pg_dsn)
    yield s
    s.close()


def _audit(path: Path) -> list[dict[str, Any]]:
    log = path.parent / "audit.jsonl"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def test_fix_ends_the_pooled_storm_and_nothing_else(
    storm: PooledStorm, bouncer: Any, write_config: Any
) -> None:
    check = f"pgbouncer.budget.{storm.app}"
    # Without [postgres] there is no remedy, and the refusal says why.
    bare = storm.config(write_config, postgres=False)
    r = run_cli("fix", check, "--yes", "--config", str(bare))
    assert r.returncode == 1, r.stderr
    assert "there is no [postgres] section" in r.stderr

    path = storm.config(write_config)
    before = apps(bouncer)
    assert before[storm.app] == STORM + 1 and before[storm.other] == 1

    dry = run_cli("fix", check, "--dry-run", "--config", str(path))
    assert dry.returncode == 0, dry.stderr
    assert f"{storm.app}: {STORM + 1} client connections through PgBouncer, budget 2" in dry.stdout
    held = [r["remote_pid"] for r in admin_rows(bouncer, "SHOW SERVERS") if r["database"] == DB]
    for pid in held:  # the servers the storm holds, each with the backend to end
        assert f"pid {pid}: {storm.app} client 127.0.0.1:" in dry.stdout
    assert "idle in transaction" in dry.stdout and "backend_start 20" in dry.stdout
    assert f"{STORM - POOL_SIZE + 1} of their clients wait in the pool" in dry.stdout

    ro = run_cli("fix", check, "--yes", "--read-only", "--config", str(path))
    assert ro.returncode == 1 and "read-only" in ro.stderr
    assert apps(bouncer) == before  # neither changed anything
    assert [e["outcome"] for e in _audit(path)] == ["refused"]  # the read-only refusal

    # With production = true, --yes alone is not enough: the service is named.
    prod = storm.config(write_config, production=True)
    r = run_cli("fix", check, "--yes", "--config", str(prod))
    assert r.returncode == 1 and f"add --confirm '{storm.app}'" in r.stderr, r.stderr
    assert apps(bouncer) == before

    done = run_cli("fix", check, "--yes", "--config", str(path), timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ended {STORM} pooler clients idle in a transaction" in done.stdout
    assert f"{storm.app} 1 client, within its budget of 2" in done.stdout
    assert "in 3 passes" in done.stdout  # 2 holders, 2 that took their servers, the last
    assert f"{DB}: 0 waiting" in done.stdout

    after = apps(bouncer)
    assert after.get(storm.app) == 1 and after.get(storm.other) == 1
    assert waiting(bouncer) == 0
    for c in storm.storm:  # every storm client was dropped by PgBouncer
        with pytest.raises(psycopg.OperationalError):
            c.execute("select 1")
    # The well-behaved client went on, untouched, through and after the storm.
    n = storm.good_done
    deadline = time.monotonic() + 5
    while storm.good_done <= n + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert storm.good_errors == [] and storm.good_done > n + 2
    storm.idle_other.execute("select 1")

    entries = _audit(path)
    ended = [e for e in entries if e["action"] == "terminate"]
    assert len(ended) == STORM and {e["outcome"] for e in ended} == {"verified"}
    assert all(e["params"]["service"] == storm.app for e in ended)
    assert {e["params"]["pid"] for e in ended} >= set(held)
    fix = [e for e in entries if e["action"] == "end-pooled-clients"]
    # the production refusal (after its plan), then the fix
    assert [e["outcome"] for e in fix] == ["refused", "started", "verified"]
    assert fix[0]["params"]["fixes"] == check
    assert all(bouncer.users["admin"] not in json.dumps(e) for e in entries)


async def test_the_pool_alert_names_the_services_over_budget_and_fixes_them(
    storm: PooledStorm, bouncer: Any, write_config: Any
) -> None:
    config = load_config(storm.config(write_config))
    check_id = f"pgbouncer.pool.{DB}"
    report = await one_round(config, ["pgbouncer"])
    check = report.check(check_id)
    assert check is not None and check.status.value in ("warning", "critical")
    remedy = remedy_for(check, report.snapshot.readings, config)
    assert remedy is not None and remedy.subject == storm.app
    assert remedy.hint == f"f: end {storm.app}'s stuck pooled clients"

    # Without [postgres] the pooler alerts carry no remedy, and say why.
    bare = load_config(storm.config(write_config, postgres=False))
    budget = report.check(f"pgbouncer.budget.{storm.app}")
    assert budget is not None
    assert remedy_for(budget, report.snapshot.readings, bare) is None
    why = why_no_remedy(budget, report.snapshot.readings, bare)
    assert why is not None and "no [postgres] section" in why

    shown: list[Plan] = []

    async def cancel(plan: Plan) -> bool:
        shown.append(plan)
        return False

    runner = ActionRunner(config)
    cancelled = await runner.run(FixAction(config, check_id, report=report), cancel)
    assert cancelled.result is Result.CANCELLED
    assert apps(bouncer)[storm.app] == STORM + 1  # cancel changed nothing
    assert shown[0].details[0] == ("fixes", f"{check_id} ({check.status.value})")
    assert shown[0].details[1][0] == storm.app

    async def yes(plan: Plan) -> bool:
        return True

    out = await runner.run(FixAction(config, check_id, report=report), yes)
    assert out.result is Result.VERIFIED, out.message
    assert f"ended {STORM} pooler clients" in out.message
    assert apps(bouncer).get(storm.app) == 1 and waiting(bouncer) == 0
    assert storm.good_errors == []


async def test_tui_f_on_the_pooler_alert_and_why_none_without_postgres(
    storm: PooledStorm, bouncer: Any, tmp_path: Path
) -> None:
    from dashboard.tui.app import UltrawatchApp
    from tests.test_tui import screen_text
    from tests.test_tui_actions import _config, audit, cancel_then_confirm, select_row, until

    check = f"pgbouncer.budget.{storm.app}"
    services = (
        f'[pgbouncer]\ndsn = "{bouncer.admin_dsn()}"\ndatabases = ["{DB}"]\nclients_every = "1s"\n'
        f'[[services]]\nname = "{storm.app}"\nurl = "http://127.0.0.1:9"\n'
        f'pg_application_name = "{storm.app}"\nconnection_budget = 2\n'
    )
    # Without [postgres]: no `f` on the alert, and its detail says why.
    bare = UltrawatchApp(_config(tmp_path, services))
    async with bare.run_test(size=(200, 60)) as pilot:
        record = await select_row(pilot, bare, "#alerts-table", lambda r: r.get("check") == check)
        assert record is not None and "remedy" not in record
        assert "there is no [postgres] section" in record["no_remedy"]
        assert check not in bare.model.remedies

    app = UltrawatchApp(_config(tmp_path, f'[postgres]\ndsn = "{storm.pg_dsn}"\n{services}'))
    async with app.run_test(size=(200, 60), notifications=True) as pilot:
        await select_row(
            pilot, app, "#alerts-table", lambda r: r.get("check") == check and "remedy" in r
        )
        assert f"f {check}: end the pooler clients of {storm.app}" in screen_text(app)
        outcome, plan = await cancel_then_confirm(
            pilot, app, "f", untouched=lambda: apps(bouncer)[storm.app] == STORM + 1
        )
        assert "End pooled clients" in plan and "idle in transaction" in plan
        assert outcome.result.value == "verified", outcome.message
        await until(pilot, lambda: check not in app.model.alerts)
    assert apps(bouncer).get(storm.app) == 1 and waiting(bouncer) == 0
    assert storm.good_errors == []
    assert len([e for e in audit(tmp_path) if e["action"] == "terminate"]) == STORM
