"""release-lock under overlap: without --owner only a stuck lock goes, compared
on the exact value planned on, so two overlapping runs never delete the lock a new
holder took in between. Real Redis, a real contending client, the real CLI."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from collectors.config import parse_config
from dashboard.actions.base import ActionRunner, Plan, Result
from dashboard.actions.release_lock import ReleaseLock
from tests.conftest import run_cli

KEY = "lock:overlap:1"
TRIES = 12  # the old code deleted the new holder in about half the tries (9 of 20)


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.delete(KEY)
    yield client
    client.delete(KEY)
    client.close()


def _contender(url: str, value: str, stop: threading.Event, took: list[str]) -> None:
    """A client waiting for the lock: takes it (with a TTL, as a healthy holder does)
    the moment it is free, once."""
    with redis.Redis.from_url(url) as c:
        while not stop.is_set():
            if c.set(KEY, value, nx=True, px=60_000):
                took.append(value)
                return


def test_overlapping_releases_never_delete_the_new_holder(
    redis_url: str, r: redis.Redis, write_config
) -> None:
    path = write_config(f'[redis]\nurl = "{redis_url}"\nstale_after = "30s"\n')
    outcomes: list[tuple[int, ...]] = []
    for i in range(TRIES):
        r.delete(KEY)
        r.set(KEY, f"stuck-{i}")  # no TTL: the judge calls it stuck
        stop, took = threading.Event(), []
        contender = threading.Thread(target=_contender, args=(redis_url, f"new-{i}", stop, took))
        contender.start()
        with ThreadPoolExecutor(2) as pool:
            runs = [
                pool.submit(run_cli, "release-lock", KEY, "--yes", "--config", str(path))
                for _ in range(2)
            ]
            procs = [f.result() for f in runs]
        stop.set()
        contender.join(10)
        codes = tuple(sorted(p.returncode for p in procs))
        outcomes.append(codes)
        # Exactly one run released the stuck lock; the new holder's lock is still there.
        assert codes == (0, 1), [p.stderr for p in procs]
        assert took == [f"new-{i}"], f"try {i}: the contender never took the lock"
        assert r.get(KEY) == f"new-{i}".encode(), (
            f"try {i}: the new holder's lock was deleted: {[p.stderr for p in procs]}"
        )
        assert 0 < r.pttl(KEY) <= 60_000
    assert len(outcomes) == TRIES


def test_young_lock_refused_without_force_and_released_with_it(
    redis_url: str, r: redis.Redis, write_config
) -> None:
    r.set(KEY, "healthy", px=60_000)
    path = write_config(f'[redis]\nurl = "{redis_url}"\nstale_after = "30s"\n')
    proc = run_cli("release-lock", KEY, "--yes", "--config", str(path))
    assert proc.returncode == 1
    assert f"refused: {KEY} is not stuck (expires in " in proc.stderr
    # The owner is named when it was read without a trace (Redis 6.2: only if the
    # lock was touched this second, which a slow start of the CLI may miss).
    assert any(
        f"stale after 30s): nothing was done; add --owner {owner} to" in proc.stderr
        for owner in ("healthy", "VALUE")
    ), proc.stderr
    assert r.get(KEY) == b"healthy"
    entry = json.loads((path.parent / "audit.jsonl").read_text().splitlines()[-1])
    assert (entry["outcome"], entry["target"]) == ("refused", KEY)
    # --force still compares the value it planned on.
    proc = run_cli("release-lock", KEY, "--yes", "--force", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert r.exists(KEY) == 0
    # --owner names the holder: released whatever its age (the TUI's way).
    r.set(KEY, "named", px=60_000)
    proc = run_cli("release-lock", KEY, "--yes", "--owner", "named", "--config", str(path))
    assert proc.returncode == 0, proc.stderr


def test_stale_by_idle_time_is_released(redis_url: str, r: redis.Redis, write_config) -> None:
    """Held (untouched) longer than stale_after, with a TTL: stuck as the judge says."""
    r.set("lock:tmp", "old-holder")
    dumped = r.dump("lock:tmp")
    r.delete("lock:tmp")
    r.execute_command("RESTORE", KEY, 600_000, dumped, "IDLETIME", 120)
    path = write_config(f'[redis]\nurl = "{redis_url}"\nstale_after = "30s"\n')
    proc = run_cli("release-lock", KEY, "--yes", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "stuck: held longer than 30s (redis.stale_after)" in proc.stderr  # the plan
    assert r.exists(KEY) == 0


async def test_no_ttl_lock_given_a_ttl_after_the_plan_is_left(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """Released for never expiring: the Lua script checks it still never expires."""
    r.set(KEY, "holder")
    config = parse_config(
        f'[redis]\nurl = "{redis_url}"\n[actions]\naudit_log = "{tmp_path / "a.jsonl"}"\n'
    )

    async def confirm(plan: Plan) -> bool:
        r.pexpire(KEY, 60_000)  # its holder is alive after all
        return True

    outcome = await ActionRunner(config).run(ReleaseLock(config, KEY), confirm)
    assert outcome.result is Result.REFUSED
    assert "expires now (its holder set a TTL since the plan)" in outcome.message
    assert r.get(KEY) == b"holder"
