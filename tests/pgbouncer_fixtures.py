"""A real PgBouncer (Debian's package) in front of the session's real PostgreSQL.

Skipped with the install command where the program is missing (a failure under
CI: tests/external.py). As root it runs as `nobody` (`-u`), its files readable by it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.external import require_program

# Users of the auth file: `admin` may act, `monitor` may only SHOW, `app` is the
# services' role (PgBouncer logs in to PostgreSQL as `postgres`, trusted there).
USERS = {"admin": "admin-pw-7Qx", "monitor": "monitor-pw-3Kd", "app": "app-pw-9Zr"}
# The pooled databases (each its own pools, so tests do not disturb each other):
# saturation tests use `orders`, actions `actions`, the rest `shop`.
DATABASES = ("shop", "orders", "actions")
POOL_SIZE = 2


def _server(pg_dsn: str) -> str:
    u = urlsplit(pg_dsn)
    return f"host={u.hostname} port={u.port} dbname=postgres user=postgres"


def start_pgbouncer(pg_dsn: str, **settings: Any) -> Any:
    from dashboard.demo.pgbouncer import EmbeddedPgBouncer

    require_program("pgbouncer")
    server = _server(pg_dsn)
    base = Path(tempfile.mkdtemp(prefix="ultrawatch-test-pgbouncer-"))
    return EmbeddedPgBouncer(
        base,
        {db: f"{server} pool_size={POOL_SIZE}" for db in DATABASES},
        USERS,
        settings={"max_client_conn": 100, **settings},
    ).start()


@pytest.fixture(scope="session")
def pgbouncer(pg_dsn: str) -> Iterator[Any]:
    """The session's PgBouncer (transaction pooling, pool_size 2 per database)."""
    pgb = start_pgbouncer(pg_dsn)
    yield pgb
    pgb.stop()
    shutil.rmtree(pgb.base_dir, ignore_errors=True)


@pytest.fixture
def own_pgbouncer(pg_dsn: str) -> Iterator[Callable[..., Any]]:
    """A PgBouncer of the test's own (to restart, stop, or configure otherwise)."""
    started: list[Any] = []

    def make(**settings: Any) -> Any:
        pgb = start_pgbouncer(pg_dsn, **settings)
        started.append(pgb)
        return pgb

    yield make
    for pgb in started:
        pgb.cleanup()
