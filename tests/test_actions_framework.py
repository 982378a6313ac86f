"""The common shape of every action: plan -> confirm -> execute -> verify ->
audit, refused in read-only mode or when actions are switched off."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest

from collectors.config import parse_config
from dashboard.actions import audit as audit_module
from dashboard.actions.audit import AuditLog
from dashboard.actions.base import ActionRefused, ActionRunner, Outcome, Plan, Result


class TouchFile:
    """A real, tiny action: create a file, verify it exists."""

    name = "touch"

    def __init__(self, path: Path, *, refuse: str = "", fail: bool = False) -> None:
        self.path = path
        self.refuse = refuse
        self.fail = fail
        self.closed = False

    async def plan(self) -> Plan:
        if self.refuse:
            raise ActionRefused(self.refuse)
        return Plan(
            "touch",
            str(self.path),
            f"create {self.path}",
            params={"path": str(self.path), "api_secret": "hunter2"},
        )

    async def execute(self, plan: Plan, progress) -> None:
        progress("creating")
        if self.fail:
            raise OSError("disk on fire")
        self.path.touch()

    async def verify(self, plan: Plan, progress) -> Outcome:
        if self.path.exists():
            return Outcome(Result.VERIFIED, "file exists")
        return Outcome(Result.NOT_VERIFIED, "file missing")

    async def close(self) -> None:
        self.closed = True


def _config(tmp_path: Path, extra: str = ""):
    return parse_config(f'[actions]\naudit_log = "{tmp_path}/state/audit.jsonl"\n{extra}')


async def _yes(plan: Plan) -> bool:
    return True


async def _no(plan: Plan) -> bool:
    return False


async def test_confirmed_action_runs_verifies_and_is_audited(tmp_path: Path) -> None:
    config = _config(tmp_path)
    target = tmp_path / "made"
    action = TouchFile(target)
    messages: list[str] = []
    outcome = await ActionRunner(config).run(action, _yes, messages.append)
    assert outcome.result is Result.VERIFIED and outcome.result.exit_code == 0
    assert target.exists() and messages == ["creating"] and action.closed
    log = tmp_path / "state" / "audit.jsonl"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
    started, entry = AuditLog(log).entries()  # one line when it starts, one when it ends
    assert (started["action"], started["outcome"]) == ("touch", "started")
    assert started["params"]["path"] == str(target)
    assert entry["action"] == "touch" and entry["target"] == str(target)
    assert entry["outcome"] == "verified" and entry["user"]
    assert entry["params"]["api_secret"] == "<redacted>"
    assert "hunter2" not in log.read_text()
    assert entry["time"].endswith("Z") and entry["duration_ms"] >= 0


async def test_cancel_does_nothing_but_is_audited(tmp_path: Path) -> None:
    config = _config(tmp_path)
    target = tmp_path / "made"
    outcome = await ActionRunner(config).run(TouchFile(target), _no)
    assert outcome.result is Result.CANCELLED and outcome.result.exit_code == 1
    assert not target.exists()
    assert AuditLog(config.audit_log_path).entries()[0]["outcome"] == "cancelled"


async def test_refusals_and_errors(tmp_path: Path) -> None:
    config = _config(tmp_path)
    refused = await ActionRunner(config).run(TouchFile(tmp_path / "a", refuse="no"), _yes)
    assert refused.result is Result.REFUSED and refused.message == "no"
    failed = await ActionRunner(config).run(TouchFile(tmp_path / "b", fail=True), _yes)
    assert failed.result is Result.ERROR and failed.result.exit_code == 3
    assert "disk on fire" in failed.message
    assert [e["outcome"] for e in AuditLog(config.audit_log_path).entries()] == [
        "refused",
        "started",
        "error",
    ]


async def test_unwritable_audit_log_refuses_before_executing(tmp_path: Path) -> None:
    # Tests run as root, so chmod cannot make a directory unwritable: put the log
    # "inside" a regular file instead, which fails for every user.
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    config = parse_config(f'[actions]\naudit_log = "{blocker}/audit.jsonl"\n')
    target = tmp_path / "never"
    outcome = await ActionRunner(config).run(TouchFile(target), _yes)
    assert outcome.result is Result.ERROR and outcome.result.exit_code == 3
    assert outcome.message.startswith(f"audit log not writable: {blocker}/audit.jsonl: ")
    assert not target.exists()  # never executed unaudited
    assert blocker.read_text() == "not a directory"


class Hang(TouchFile):
    """Starts, then hangs in execute until it is cancelled."""

    name = "hang"

    def __init__(self, path: Path, started: asyncio.Event) -> None:
        super().__init__(path)
        self.started = started

    async def execute(self, plan: Plan, progress) -> None:
        self.started.set()
        await asyncio.sleep(3600)


async def test_interrupted_action_is_audited_and_the_cancellation_propagates(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)

    async def go() -> None:
        started = asyncio.Event()
        action = Hang(tmp_path / "h", started)
        task = asyncio.create_task(ActionRunner(config).run(action, _yes))
        await started.wait()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the cancellation was swallowed")
        assert action.closed

    await go()
    outcomes = [(e["action"], e["outcome"]) for e in AuditLog(config.audit_log_path).entries()]
    assert outcomes == [("touch", "started"), ("touch", "interrupted")]


async def test_read_only_and_disabled_refuse_everything(tmp_path: Path) -> None:
    target = tmp_path / "never"
    ro = await ActionRunner(_config(tmp_path), read_only=True).run(TouchFile(target), _yes)
    assert ro.result is Result.REFUSED and "read-only" in ro.message
    off = _config(tmp_path, "enabled = false\n")
    disabled = await ActionRunner(off).run(TouchFile(target), _yes)
    assert disabled.result is Result.REFUSED and "actions.enabled = false" in disabled.message
    assert not target.exists()


def test_audit_log_appends_lines_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "deep" / "dir" / "audit.jsonl"
    synced: list[str] = []
    real_fsync = audit_module.os.fsync

    def observed_fsync(fd: int) -> None:
        # Observe the real syscall (not a stand-in): which file each fsync hit.
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(audit_module.os, "fsync", observed_fsync)
    log = AuditLog(path)
    for i in range(3):
        log.append(action="x", target=str(i), outcome="verified", params={"n": i})
    assert synced.count(str(path)) == 3  # every line reached the disk before append returned
    lines = (tmp_path / "deep" / "dir" / "audit.jsonl").read_text().splitlines()
    assert [json.loads(line)["target"] for line in lines] == ["0", "1", "2"]
    assert os.stat(tmp_path / "deep" / "dir" / "audit.jsonl").st_size > 0


def test_action_subcommands_refuse_read_only_disabled_and_no_tty(write_config) -> None:
    from tests.conftest import run_cli

    path = str(write_config(""))
    ro = run_cli("terminate", "4242", "--yes", "--read-only", "--config", path)
    assert ro.returncode == 1 and "read-only" in ro.stderr
    ro_global = run_cli("--read-only", "--config", path, "release-lock", "lock:x", "--yes")
    assert ro_global.returncode == 1 and "read-only" in ro_global.stderr
    no_tty = run_cli("drain", "order-service", "--config", path)
    assert no_tty.returncode == 1 and "needs --yes" in no_tty.stderr
    off = str(write_config('[actions]\nenabled = false\naudit_log = "/tmp/x.jsonl"\n', "off.toml"))
    disabled = run_cli("cancel", "4242", "--yes", "--config", off)
    assert disabled.returncode == 1 and "actions.enabled = false" in disabled.stderr


class Echo(TouchFile):
    """Fails with a message that carries a token, as a service echoing headers would."""

    async def execute(self, plan: Plan, progress) -> None:
        token = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYWRtaW4ifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
        raise RuntimeError(f"HTTP 500 you sent Authorization: Bearer {token} and {token}")


async def test_tokens_in_messages_are_redacted_everywhere(tmp_path: Path) -> None:
    config = _config(tmp_path)
    outcome = await ActionRunner(config).run(Echo(tmp_path / "e"), _yes)
    assert outcome.result is Result.ERROR and "HTTP 500" in outcome.message
    log = config.audit_log_path.read_text()
    for text in (outcome.message, log):
        assert "c2lnbmF0dXJl" not in text and "eyJyb2xl" not in text
        assert "Bearer <redacted>" in text
