"""`ultrawatch demo`, with pgbouncer installed: the services behind a real PgBouncer
by default; the connection storm queues in the pooler, ultrawatch names whose
clients wait, and the pgbouncer actions clear it. `--no-pgbouncer` goes straight
to PostgreSQL and says so in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.external import require_program
from tests.test_demo import INCIDENT_CHECKS, _wait, running_demo

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def test_the_storm_queues_in_the_pooler_and_kill_then_resume_clears_it(tmp_path: Path) -> None:
    require_program("pgbouncer")
    with running_demo("connection-storm", tmp_path) as demo:  # the default when installed
        assert demo.config.pgbouncer is not None
        assert "PgBouncer on port" in demo.log()

        def queued() -> dict | None:
            _, checks = demo.check()
            pool = checks["pgbouncer.pool.ultramarket"]
            return (
                checks if pool["status"] != "ok" and "payment-service" in pool["summary"] else None
            )

        checks = _wait(queued, 60, "the storm's clients waiting in the pooler")
        pool = checks["pgbouncer.pool.ultramarket"]
        assert "clients waiting (payment-service" in pool["summary"]
        assert "(saturated)" in pool["summary"]
        assert checks["pgbouncer.budget.payment-service"]["status"] == "warning"
        assert "behind PgBouncer" in checks["postgres.budget.payment-service"]["summary"]

        killed = demo.cli("pgbouncer", "kill", "ultramarket")
        assert killed.returncode == 0, killed.stderr
        resumed = demo.cli("pgbouncer", "resume", "ultramarket")
        assert resumed.returncode == 0, resumed.stderr

        def cleared() -> bool:
            _, checks = demo.check()
            return checks["pgbouncer.pool.ultramarket"]["status"] == "ok"

        _wait(cleared, 60, "the pool to drain once the storm's connections are gone")


def test_no_pgbouncer_goes_straight_to_postgres_and_says_so(tmp_path: Path) -> None:
    with running_demo("healthy", tmp_path, extra=["--no-pgbouncer"]) as demo:
        assert demo.config.pgbouncer is None
        assert "--no-pgbouncer: the services reach PostgreSQL directly" in demo.log()


def test_the_default_says_the_services_go_through_pgbouncer(tmp_path: Path) -> None:
    require_program("pgbouncer")
    with running_demo("healthy", tmp_path) as demo:
        assert demo.config.pgbouncer is not None
        assert "through PgBouncer (--no-pgbouncer: directly)" in demo.log()


def test_the_incident_behind_pgbouncer_shows_all_five_failures(tmp_path: Path) -> None:
    """The default demo (behind PgBouncer): the storm shows in the pooler, the other
    failures as without it."""
    require_program("pgbouncer")
    pooled = [
        "pgbouncer.budget.payment-service" if c == "postgres.budget.payment-service" else c
        for c in INCIDENT_CHECKS
    ]
    with running_demo("incident", tmp_path) as demo:
        assert demo.config.pgbouncer is not None

        def all_failing() -> dict | None:
            code, checks = demo.check()
            failing = {k: v["summary"] for k, v in checks.items() if v["status"] != "ok"}
            return failing if code == 2 and set(pooled) <= set(failing) else None

        failing = _wait(all_failing, 60, "the incident's five failures")
        assert "payment-service" in failing["pgbouncer.budget.payment-service"]
