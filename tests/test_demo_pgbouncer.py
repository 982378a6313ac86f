"""`ultrawatch demo`, with pgbouncer installed: the services behind a real PgBouncer
by default; the connection storm queues in the pooler, ultrawatch names whose
clients wait, and `f` / `ultrawatch fix` on its alert clears it. `--no-pgbouncer` goes straight
to PostgreSQL and says so in one line (tests/test_demo.py's incident runs that way).
All five failures behind PgBouncer, fixed from the keys: tests/test_demo_tui.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.external import require_program
from tests.test_demo import INCIDENT_CHECKS, _wait, running_demo

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

# The incident's failures behind PgBouncer: the storm is seen by the pooler.
POOLED_CHECKS = tuple(
    "pgbouncer.budget.payment-service" if c == "postgres.budget.payment-service" else c
    for c in INCIDENT_CHECKS
)


def test_the_storm_queues_in_the_pooler_and_its_fix_clears_it(tmp_path: Path) -> None:
    require_program("pgbouncer")
    with running_demo("connection-storm", tmp_path) as demo:  # the default when installed
        assert demo.config.pgbouncer is not None
        assert "PgBouncer on port" in demo.log()
        assert "through PgBouncer (--no-pgbouncer: directly)" in demo.log()

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

        # The remedy: only payment-service's clients holding a server idle in a
        # transaction are ended, pass after pass as its queued ones take the servers.
        storm = "pgbouncer.budget.payment-service"
        dry = demo.cli("fix", storm, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "payment-service client 127.0.0.1:" in dry.stdout
        assert "idle in transaction" in dry.stdout
        fixed = demo.cli("fix", storm)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert "pooler clients idle in a transaction" in fixed.stdout
        assert "ultramarket: 0 waiting" in fixed.stdout
        audit = Path(demo.config.audit_log_path).read_text()
        assert audit.count('"action": "terminate"') >= 10  # the storm's 15, each on its own

        def cleared() -> bool:
            _, checks = demo.check()
            return checks["pgbouncer.pool.ultramarket"]["status"] == "ok"

        _wait(cleared, 60, "the pool to drain once the storm's connections are gone")
        _, checks = demo.check()
        assert checks[storm]["status"] == "ok", checks[storm]
