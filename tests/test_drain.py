"""Drain and undrain real service processes, by signal and by HTTP with an admin JWT."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from collectors.config import Config, load_config
from dashboard.actions.base import ActionRunner, Outcome, Plan, Result
from dashboard.actions.drain import DrainAction
from tests.conftest import run_cli

SERVICE = str(Path(__file__).with_name("um_service.py"))


@dataclass
class Child:
    proc: subprocess.Popen[str]
    url: str
    log: Path

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def secret() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture
def start(tmp_path: Path, secret: str) -> Iterator:
    children: list[Child] = []

    def go(*extra: str, env_secret: str | None = None) -> Child:
        log = tmp_path / f"work{len(children)}.log"
        p = subprocess.Popen(
            [sys.executable, SERVICE, "--log", str(log), "--op-time", "1.2", *extra],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "JWT_SECRET": env_secret or secret},
        )
        assert p.stdout is not None
        port = int(p.stdout.readline())
        child = Child(p, f"http://127.0.0.1:{port}", log)
        children.append(child)
        return child

    yield go
    for c in children:
        if c.proc.poll() is None:
            c.proc.kill()
        c.proc.wait()


def config_text(
    child: Child, drain: str, tmp_path: Path, secret: str, *, process: bool = True
) -> str:
    env = tmp_path / ".env"
    env.write_text(f"JWT_SECRET={secret}\nJWT_REFRESH_SECRET={secrets.token_urlsafe(48)}\n")
    return (
        f'[[services]]\nname = "orders"\nurl = "{child.url}"\n'
        + (f"process = {{ pid = {child.proc.pid} }}\n" if process else "")
        + f"drain = {drain}\n"
        f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\n'
    )


async def run(config: Config, action: DrainAction) -> tuple[Outcome, list[Plan], list[str]]:
    plans: list[Plan] = []
    progress: list[str] = []

    async def confirm(plan: Plan) -> bool:
        plans.append(plan)
        return True

    outcome = await ActionRunner(config).run(action, confirm, progress.append)
    return outcome, plans, progress


def assert_work_finished(child: Child) -> None:
    lines = child.lines()
    started = {ln.split()[1] for ln in lines if ln.startswith("start ")}
    done = {ln.split()[1] for ln in lines if ln.startswith("done ")}
    assert started and started == done, lines  # nothing in flight was dropped
    assert lines[-1] == "drained"


def active_counts(progress: list[str]) -> list[int]:
    out = []
    for line in progress:
        if "active operation" in line:
            out.append(int(line.split(" active operation")[0].rsplit(" ", 1)[-1]))
    return out


async def test_drain_by_signal(start, tmp_path: Path, secret: str, write_config) -> None:
    child = start()
    path = write_config(
        config_text(child, '{ signal = "SIGTERM", timeout = "20s" }', tmp_path, secret)
    )
    config = load_config(path)
    outcome, plans, progress = await run(config, DrainAction(config, "orders", poll_interval=0.1))
    assert outcome.result is Result.VERIFIED, (outcome, progress)
    assert f"pid {child.proc.pid} exited" in outcome.message
    shown_after = dict(outcome.details)
    # The real sequence the service reported, ending at 0, and the exit code: the
    # child is a zombie of this test process until wait(), so it is visible.
    assert shown_after["active operations"].startswith("3 -> ")
    assert shown_after["active operations"].endswith(" -> 0")
    assert shown_after["exit"] == "exit code 0"
    (plan,) = plans
    assert plan.params["method"] == "signal" and plan.params["pids"] == [child.proc.pid]
    shown = dict(plan.details)
    assert shown["url"] == child.url + "/health"
    assert "3 active operations" in shown["now"] and "SIGTERM" in shown["will"]
    assert child.proc.wait(timeout=10) == 0
    assert_work_finished(child)
    counts = active_counts(progress)
    assert counts and counts == sorted(counts, reverse=True)  # falling, never rising
    entry = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert (entry["action"], entry["target"], entry["outcome"]) == ("drain", "orders", "verified")


async def test_drain_by_http_with_admin_token(
    start, tmp_path: Path, secret: str, write_config
) -> None:
    child = start()
    path = write_config(
        config_text(child, '{ path = "/admin/drain", timeout = "20s" }', tmp_path, secret)
    )
    config = load_config(path)
    outcome, _plans, progress = await run(config, DrainAction(config, "orders", poll_interval=0.1))
    assert outcome.result is Result.VERIFIED, (outcome, progress)
    assert f"pid {child.proc.pid} exited" in outcome.message
    assert any("HTTP 202" in p for p in progress)
    assert any("draining" in p for p in progress)
    assert child.proc.wait(timeout=10) == 0
    assert_work_finished(child)
    counts = active_counts(progress)
    assert counts[0] >= 1 and counts == sorted(counts, reverse=True)
    audit = (tmp_path / "audit.jsonl").read_text()
    assert secret not in audit and "Bearer" not in audit
    assert secret not in "".join(progress) + outcome.message


async def test_drain_rejected_token_is_an_error(
    start, tmp_path: Path, secret: str, write_config
) -> None:
    child = start(env_secret="the-service-holds-another-secret-" + "x" * 20)
    path = write_config(config_text(child, '{ path = "/admin/drain" }', tmp_path, secret))
    config = load_config(path)
    outcome, _, _ = await run(config, DrainAction(config, "orders"))
    assert outcome.result is Result.ERROR
    assert "refused the admin token (HTTP 401)" in outcome.message
    assert child.proc.poll() is None  # still running, nothing drained


async def test_timeout_says_what_is_running_then_undrain(
    start, tmp_path: Path, secret: str, write_config
) -> None:
    child = start("--stay", "--ops", "2")
    path = write_config(
        config_text(child, '{ path = "/admin/drain", timeout = "1s" }', tmp_path, secret)
    )
    config = load_config(path)
    # It drains but stays up (waiting to be undrained): not verified, and we say why.
    outcome, _, _ = await run(config, DrainAction(config, "orders", poll_interval=0.1))
    assert outcome.result is Result.NOT_VERIFIED
    assert "not drained within 1 s" in outcome.message and "draining" in outcome.message
    outcome, plans, _ = await run(config, DrainAction(config, "orders", undrain=True))
    assert outcome.result is Result.VERIFIED, outcome
    assert "not draining" in outcome.message
    assert plans[0].action == "undrain" and "/admin/undrain" in dict(plans[0].details)["will"]
    assert child.proc.poll() is None


async def test_refusals(start, tmp_path: Path, secret: str, write_config) -> None:
    child = start()
    path = write_config(config_text(child, '{ signal = "SIGTERM" }', tmp_path, secret))
    config = load_config(path)
    outcome, _, _ = await run(config, DrainAction(config, "nope"))
    assert outcome.result is Result.REFUSED and "no service named 'nope'" in outcome.message
    outcome, _, _ = await run(config, DrainAction(config, "orders", undrain=True))
    assert outcome.result is Result.REFUSED and "restart it" in outcome.message
    assert child.proc.poll() is None


def test_cli_drain(start, tmp_path: Path, secret: str, write_config) -> None:
    child = start("--ops", "2")
    path = write_config(
        config_text(
            child, '{ path = "/admin/drain", timeout = "20s" }', tmp_path, secret, process=False
        )
    )
    res = run_cli("drain", "orders", "--config", str(path))
    assert res.returncode == 1 and "needs --yes" in res.stderr
    assert child.proc.poll() is None
    res = run_cli("drain", "orders", "--config", str(path), "--yes")
    assert res.returncode == 0, res.stderr
    # No process configured: the service answering no more after draining is the proof.
    assert res.stdout.startswith("verified: orders drained: stopped answering")
    assert "active operations: 2 -> " in res.stdout and res.stdout.count(" -> 0\n") == 1
    assert "exit: not followed (no process configured): unknown" in res.stdout
    assert "active operations" in res.stderr  # the progress lines
    assert child.proc.wait(timeout=10) == 0
    assert_work_finished(child)


async def test_error_body_echoing_the_token_is_redacted(
    tmp_path: Path, secret: str, write_config
) -> None:
    """A service that echoes the request headers in its error body must not leak
    the admin token into the outcome, the progress or the audit log."""
    from tests.helpers import http_server, respond

    echoed: list[str] = []

    def handle(req) -> None:
        if req.command == "POST":
            auth = req.headers.get("Authorization", "")
            echoed.append(auth)
            token = auth.removeprefix("Bearer ")
            respond(req, 500, f"oops; you sent: Authorization: {auth} (raw {token})", "text/plain")
        else:
            respond(req, 200, '{"status": "ok", "draining": false}')

    with http_server(handle) as url:
        env = tmp_path / ".env"
        env.write_text(f"JWT_SECRET={secret}\n")
        path = write_config(
            f'[[services]]\nname = "orders"\nurl = "{url}"\n'
            'drain = { path = "/admin/drain" }\n'
            f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\n'
        )
        config = load_config(path)
        outcome, _plans, progress = await run(config, DrainAction(config, "orders"))
    assert outcome.result is Result.ERROR and "HTTP 500" in outcome.message
    assert "oops" in outcome.message and "<redacted" in outcome.message
    (auth,) = echoed
    token = auth.removeprefix("Bearer ")
    assert auth.startswith("Bearer ") and token.count(".") == 2
    audit = (tmp_path / "audit.jsonl").read_text()
    for text in (outcome.message, "".join(progress), audit):
        assert token not in text and secret not in text
        for part in token.split("."):
            assert part not in text


def test_shared_signal_and_token_helpers(secret: str) -> None:
    import signal

    import jwt

    from dashboard.actions.base import ActionRefused
    from dashboard.actions.signals import admin_token, redact_tokens, signal_number

    assert signal_number("term") is signal.SIGTERM and signal_number("SIGHUP") is signal.SIGHUP
    assert signal_number(" 15 ") is signal.SIGTERM
    with pytest.raises(ActionRefused, match=r"unknown signal 'SIGNOPE' in drain\.signal"):
        signal_number("SIGNOPE", "drain.signal")
    for asked in (60, 30, 3600):
        claims = jwt.decode(admin_token(secret, lifetime=asked), secret, algorithms=["HS256"])
        assert claims["role"] == "admin" and 0 < claims["exp"] - claims["iat"] <= 60
    assert jwt.get_unverified_header(admin_token(secret))["alg"] == "HS256"
    token = admin_token(secret)
    text = redact_tokens(f"x-echo: bearer {token}; body {token}; host api.example.com v1.2.3")
    assert token.split(".")[2] not in text and "api.example.com v1.2.3" in text


async def test_forced_shutdown_is_not_a_clean_drain(
    start, tmp_path: Path, secret: str, write_config
) -> None:
    """SIGTERM kills this one at once with its work in flight: not verified, and the
    engineer reads how many operations were in flight and how the process ended."""
    child = start("--forced", "--op-time", "30")
    path = write_config(
        config_text(child, '{ signal = "SIGTERM", timeout = "10s" }', tmp_path, secret)
    )
    config = load_config(path)
    outcome, _plans, progress = await run(config, DrainAction(config, "orders", poll_interval=0.1))
    assert outcome.result is Result.NOT_VERIFIED, (outcome, progress)
    assert outcome.message.startswith(f"orders pid {child.proc.pid} exited after ")
    assert "with 3 operations in flight (killed by SIGTERM): work may be lost" in outcome.message
    shown = dict(outcome.details)
    assert shown["active operations"] == "3"  # never fell; no made-up "-> 0"
    assert shown["exit"] == "killed by SIGTERM"
    assert child.proc.wait(timeout=10) == -15
    lines = child.lines()
    started = {ln.split()[1] for ln in lines if ln.startswith("start ")}
    done = {ln.split()[1] for ln in lines if ln.startswith("done ")}
    assert len(started - done) == 3  # the work really was dropped
    entry = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert entry["outcome"] == "not_verified"
    res_text = outcome.message + "".join(progress)
    assert "verified" not in res_text.replace("not_verified", "")


def test_forced_shutdown_on_the_cli_exits_1(start, tmp_path: Path, secret: str, write_config):
    child = start("--forced", "--op-time", "30")
    path = write_config(
        config_text(child, '{ signal = "SIGTERM", timeout = "10s" }', tmp_path, secret)
    )
    res = run_cli("drain", "orders", "--config", str(path), "--yes")
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert res.stdout == ""
    assert f"not_verified: orders pid {child.proc.pid} exited after " in res.stderr
    assert "with 3 operations in flight" in res.stderr and "work may be lost" in res.stderr
    assert "  active operations: 3\n" in res.stderr
    # ultrawatch is not the parent, but the exited child is still a zombie of this test.
    assert "  exit: killed by SIGTERM\n" in res.stderr
    assert child.proc.wait(timeout=10) == -15


def test_unknown_exit_and_count_never_read_as_success() -> None:
    """The judgement on its own: the pieces of evidence a drain can end with."""
    from dashboard.actions.drain import EXIT_CLEAN, _Ops, _Seen

    def ops(*counts: int | None) -> _Ops:
        o = _Ops()
        for c in counts:
            o.note(_Seen(True, draining=True, active=c))
        return o

    unknown = ops().outcome("svc", "pid 7 exited", [None])
    assert unknown.result is Result.NOT_VERIFIED
    assert "never reported 0 active operations and its exit code is not known" in unknown.message
    assert dict(unknown.details)["exit"].startswith("exit code unknown")
    assert ops().outcome("svc", "pid 7 exited", [EXIT_CLEAN]).result is Result.VERIFIED
    assert ops(2, 1, 0).outcome("svc", "pid 7 exited", [None]).result is Result.VERIFIED
    bad = ops(2, 0).outcome("svc", "pid 7 exited", ["exit code 3"])
    assert bad.result is Result.NOT_VERIFIED and "not cleanly (exit code 3)" in bad.message
    lost = ops(2, 1).outcome("svc", "stopped answering", None)
    assert lost.result is Result.NOT_VERIFIED
    assert "with 1 operation in flight: work may be lost" in lost.message
    assert dict(lost.details)["active operations"] == "2 -> 1"


async def test_undrain_of_a_service_that_was_not_draining(
    tmp_path: Path, secret: str, write_config
) -> None:
    from tests.helpers import http_server, respond

    posts: list[str] = []

    def handle(req) -> None:
        if req.command == "POST":
            posts.append(req.path)
            respond(req, 200, '{"draining": false}')
        else:
            respond(req, 200, '{"status": "pass", "draining": false, "activeOperations": 2}')

    with http_server(handle) as url:
        env = tmp_path / ".env"
        env.write_text(f"JWT_SECRET={secret}\n")
        path = write_config(
            f'[[services]]\nname = "orders"\nurl = "{url}"\n'
            'drain = { path = "/admin/drain" }\n'
            f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\n'
        )
        config = load_config(path)
        outcome, plans, _ = await run(config, DrainAction(config, "orders", undrain=True))
        res = run_cli("undrain", "orders", "--config", str(path), "--yes")
    (plan,) = plans
    assert plan.summary == "orders was not draining: nothing to undrain"
    assert dict(plan.details)["will"] == "nothing: it was not draining (no POST sent)"
    assert outcome.result is Result.VERIFIED
    assert outcome.message == "orders was not draining: nothing to undrain (no POST sent)"
    assert posts == []  # nothing was sent, from the action or the CLI
    assert res.returncode == 0, res.stderr
    assert "orders was not draining: nothing to undrain" in res.stderr  # the plan
    assert res.stdout.startswith("verified: orders was not draining: nothing to undrain")
