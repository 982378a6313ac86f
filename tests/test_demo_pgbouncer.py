"""`ultrawatch demo --pgbouncer`: the services behind a real PgBouncer; the
connection storm queues in the pooler, ultrawatch names whose clients wait, and
the pgbouncer actions clear it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.external import require_program
from tests.test_demo import _wait, running_demo

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def test_the_storm_queues_in_the_pooler_and_kill_then_resume_clears_it(tmp_path: Path) -> None:
    require_program("pgbouncer")
    with running_demo("connection-storm", tmp_path, extra=["--pgbouncer"]) as demo:
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


def test_without_the_flag_one_line_says_how(tmp_path: Path) -> None:
    with running_demo("healthy", tmp_path) as demo:
        assert demo.config.pgbouncer is None
        assert "ultrawatch demo --pgbouncer" in demo.log()
