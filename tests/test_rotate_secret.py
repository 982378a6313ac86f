"""`ultrawatch rotate-secret` against real store files and real HTTP services.

Every test scans what the tool printed and audited for every secret value it
handled (old and new), and fails if one is there.
"""

from __future__ import annotations

import contextlib
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.config import parse_config
from collectors.secrets.store import fingerprint, parse_dotenv
from dashboard.actions.base import Action, ActionRefused, ActionRunner, Result
from dashboard.actions.rotate_secret import (
    FinishRotation,
    ResumeRotation,
    RotateKeys,
    RotateSecret,
)
from tests.conftest import run_cli
from tests.jwt_service import JwtService, assert_no_secret, running

KEYS = ("JWT_SECRET", "JWT_REFRESH_SECRET")


def strong() -> str:
    return secrets.token_urlsafe(48)


class World:
    """A dotenv store, services on it, a config, and everything the tool emitted."""

    def __init__(self, tmp_path: Path, write_config, urls: list[str], extra: str = "") -> None:
        self.tmp = tmp_path
        self.env = tmp_path / "ultramarket.env"
        services = "".join(
            f'\n[[services]]\nname = "svc-{i}"\nurl = "{u}"\ndetail_paths = ["/health/security"]\n'
            for i, u in enumerate(urls)
        )
        self.config_path = write_config(
            services + f'\n[secrets]\nstore = {{ kind = "dotenv", path = "{self.env}" }}\n{extra}\n'
        )
        self.audit = tmp_path / "audit.jsonl"
        self.outputs: list[str] = []
        self.seen: list[str] = []  # every secret value that was ever in the store

    def values(self) -> dict[str, str]:
        values = parse_dotenv(self.env.read_text())
        for k, v in values.items():
            if not k.endswith("_ROTATED_AT") and v not in self.seen:
                self.seen.append(v)
        return values

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        proc = run_cli("rotate-secret", "--config", str(self.config_path), *args, env=env)
        self.outputs += [proc.stdout, proc.stderr]
        return proc

    def assert_clean(self) -> None:
        self.values()
        audit = self.audit.read_text() if self.audit.exists() else ""
        assert_no_secret(self.seen, *self.outputs, audit)


def write_store(path: Path, access: str, refresh: str) -> None:
    path.write_text(
        f"# UltraMarket\nNODE_ENV=production\nJWT_SECRET={access}\nJWT_REFRESH_SECRET={refresh}\n"
    )


@contextlib.contextmanager
def services(env: Path, n: int = 2, **kw: object) -> Iterator[tuple[list[JwtService], list[str]]]:
    svcs = [JwtService(env, **kw) for _ in range(n)]  # type: ignore[arg-type]
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(running(s)) for s in svcs]
        yield svcs, urls


def test_rotate_tells_services_keeps_previous_and_refuses_a_second_rotation(
    tmp_path: Path, write_config
) -> None:
    old_a, old_r = strong(), strong()
    env = tmp_path / "ultramarket.env"
    write_store(env, old_a, old_r)
    env.chmod(0o640)
    with services(env) as (svcs, urls):
        w = World(tmp_path, write_config, urls, 'grace_period = "10m"')
        w.values()
        proc = w.cli("--yes")
        assert proc.returncode == 0, proc.stderr + proc.stdout
        v = w.values()
        assert v["JWT_SECRET"] != old_a and len(v["JWT_SECRET"]) >= 86
        assert v["JWT_REFRESH_SECRET"] != old_r and v["JWT_REFRESH_SECRET"] != v["JWT_SECRET"]
        assert v["JWT_SECRET_PREVIOUS"] == old_a
        assert v["JWT_REFRESH_SECRET_PREVIOUS"] == old_r
        assert v["JWT_SECRET_ROTATED_AT"].endswith("Z")
        assert v["NODE_ENV"] == "production"
        assert stat.S_IMODE(env.stat().st_mode) == 0o640
        for s in svcs:
            assert s.access == v["JWT_SECRET"] and s.reloads == 1
        assert "svc-0: ok: reports " + fingerprint(v["JWT_SECRET"]) in proc.stdout
        assert "--finish" in proc.stdout

        again = w.cli("--yes")
        assert again.returncode == 1
        assert "grace period" in again.stderr and "log those users out" in again.stderr
        assert w.values() == v  # nothing changed

        finish = w.cli("--finish", "--yes")
        assert finish.returncode == 1 and "grace period" in finish.stderr
    entries = [line for line in w.audit.read_text().splitlines() if line.strip()]
    outcomes = [__import__("json").loads(e)["outcome"] for e in entries]
    assert outcomes[:6] == [
        "started",
        "step:start",
        "step:written",
        "step:notified",
        "verified",
        "refused",
    ]
    w.assert_clean()


def test_dry_run_changes_nothing(tmp_path: Path, write_config) -> None:
    env = tmp_path / "ultramarket.env"
    write_store(env, strong(), strong())
    before = env.read_bytes()
    with services(env, 1) as (svcs, urls):
        w = World(tmp_path, write_config, urls, "[actions]\nenabled = false\n")
        w.values()
        # no terminal, no --yes, read-only, actions switched off: it changes nothing
        proc = w.cli("--dry-run", "--read-only")
        assert proc.returncode == 0, proc.stderr
        assert "dry run: show the rotation plan; nothing will be changed" in proc.stdout
        assert "svc-0 (POST /admin/reload-secrets)" in proc.stdout
        assert "grace period: 15m" in proc.stdout
        assert "svc-0 now: on " + fingerprint(w.values()["JWT_SECRET"]) in proc.stdout
        assert svcs[0].reloads == 0
        # without --dry-run the same command is refused
        refused = w.cli("--yes", "--read-only")
        assert refused.returncode == 1 and "read-only" in refused.stderr
    assert env.read_bytes() == before
    assert not w.audit.exists()  # nothing done, nothing to audit
    w.assert_clean()


async def test_action_api_for_the_tui(tmp_path: Path, write_config) -> None:
    env = tmp_path / "ultramarket.env"
    a, r = strong(), strong()
    write_store(env, a, r)
    with services(env, 1) as (svcs, urls):
        w = World(tmp_path, write_config, urls, 'grace_period = "10m"')
        config = parse_config(w.config_path.read_text())
        action = RotateSecret(config, keys=["JWT_REFRESH_SECRET"])
        messages: list[str] = []

        async def yes(plan: object) -> bool:
            messages.append(repr(plan))
            return True

        outcome = await ActionRunner(config).run(action, yes, messages.append)
        assert outcome.result is Result.VERIFIED, outcome.message
        v = w.values()
        assert v["JWT_SECRET"] == a and "JWT_SECRET_PREVIOUS" not in v  # only the one named
        assert v["JWT_REFRESH_SECRET_PREVIOUS"] == r
        assert svcs[0].refresh == v["JWT_REFRESH_SECRET"]
        w.outputs += [*messages, repr(outcome)]
    w.assert_clean()


def test_service_that_does_not_reload_is_named_and_previous_stays(
    tmp_path: Path, write_config
) -> None:
    env = tmp_path / "ultramarket.env"
    old_a = strong()
    write_store(env, old_a, strong())
    good = JwtService(env)
    stuck = JwtService(env, ignore_reload=True)
    with running(good) as u1, running(stuck) as u2:
        w = World(tmp_path, write_config, [u1, u2], 'grace_period = "10m"\nverify_timeout = "1s"')
        w.values()
        proc = w.cli("--yes")
        assert proc.returncode == 1
        assert "svc-1 did not take the new key" in proc.stderr
        assert "svc-1: NOT on the new key" in proc.stderr
        assert "svc-0: ok" in proc.stderr
        v = w.values()
        assert v["JWT_SECRET_PREVIOUS"] == old_a
        finish = w.cli("--finish", "--yes")
        assert finish.returncode == 1
        # the service recovers: running the rotation again resumes (tells it again)
        stuck.ignore_reload = False
        resume = w.cli("--yes")
        assert resume.returncode == 0, resume.stderr
        assert "resume" in resume.stderr
        assert w.values()["JWT_SECRET"] == v["JWT_SECRET"]  # no second new secret
        assert stuck.access == v["JWT_SECRET"]
    w.assert_clean()


def test_finish_drops_previous_after_grace_and_refuses_with_a_lagging_service(
    tmp_path: Path, write_config
) -> None:
    env = tmp_path / "ultramarket.env"
    write_store(env, strong(), strong())
    with services(env, 2) as (svcs, urls):
        w = World(tmp_path, write_config, urls, 'grace_period = "1s"')
        w.values()
        assert w.cli("--yes").returncode == 0
        time.sleep(1.1)
        # a service falls back to the previous key (restarted from an old copy)
        saved = svcs[1].access
        svcs[1].access = w.values()["JWT_SECRET_PREVIOUS"]
        refused = w.cli("--finish", "--yes")
        assert refused.returncode == 1
        assert "svc-1 still reports" in refused.stderr
        assert "JWT_SECRET_PREVIOUS" in w.values()
        svcs[1].access = saved
        # killed while writing: the previous secret is still there, the file whole
        killed = w.cli("--finish", "--yes", env={"ULTRAWATCH_FAULT": "store:temp-written"})
        assert killed.returncode == -9
        assert "JWT_SECRET_PREVIOUS" in w.values()
        done = w.cli("--finish", "--yes")
        assert done.returncode == 0, done.stderr
        v = w.values()
        assert "JWT_SECRET_PREVIOUS" not in v and "JWT_REFRESH_SECRET_PREVIOUS" not in v
        assert all(s.previous is None for s in svcs)  # told to reload: previous forgotten
        # nothing left to drop: the services are told again (a finish killed before
        # telling them leaves them holding the previous secret in memory)
        again = w.cli("--finish", "--yes")
        assert again.returncode == 0, again.stderr
        assert "no rotation to finish" in again.stderr
        assert "no previous secret was left in the store; told the services" in again.stdout
    w.assert_clean()
    # without services to tell, there is nothing to do at all
    cfg = write_config(
        f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\n', name="alone.toml"
    )
    alone = run_cli("rotate-secret", "--finish", "--yes", "--config", str(cfg))
    assert alone.returncode == 1 and "no rotation to finish" in alone.stderr


def test_env_store_is_refused(tmp_path: Path, write_config) -> None:
    cfg = write_config('[secrets]\nstore = { kind = "env" }\n')
    proc = run_cli("rotate-secret", "--config", str(cfg), "--yes")
    assert proc.returncode == 1 and "read-only" in proc.stderr


def test_signal_reload_to_a_local_process(tmp_path: Path, write_config) -> None:
    env = tmp_path / "ultramarket.env"
    old = strong()
    write_store(env, old, strong())
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.jwt_service", str(env)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        cfg = write_config(
            f'[[services]]\nname = "local"\nurl = "{url}"\n'
            'detail_paths = ["/health/security"]\n'
            f'process = {{ pid = {proc.pid} }}\nreload = {{ signal = "SIGHUP" }}\n'
            f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\n'
        )
        out = run_cli("rotate-secret", "--config", str(cfg), "--yes")
        assert out.returncode == 0, out.stderr
        assert f"SIGHUP sent to pid {proc.pid}" in out.stderr
        values = parse_dotenv(env.read_text())
        assert values["JWT_SECRET_PREVIOUS"] == old
        audit = (tmp_path / "audit.jsonl").read_text()
        assert "step:notified" in audit
        assert_no_secret(list(values.values()), out.stdout, out.stderr, audit)
    finally:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------- crash safety

STEPS = [
    "rotate:planned",
    "rotate:generated",
    "store:temp-written",
    "store:renamed",
    "rotate:written",
    "rotate:notifying:1",
    "rotate:notifying:2",
    "rotate:notified",
    "rotate:verified",
]


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_leaves_a_safe_store(tmp_path: Path, write_config, step: str) -> None:
    env = tmp_path / "ultramarket.env"
    old_a, old_r = strong(), strong()
    write_store(env, old_a, old_r)
    with services(env, 3) as (svcs, urls):
        w = World(tmp_path, write_config, urls, 'grace_period = "10m"')
        w.values()
        killed = w.cli("--yes", env={"ULTRAWATCH_FAULT": step})
        assert killed.returncode == -9, killed.stderr
        v = w.values()  # complete and parseable
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")] or (
            step == "store:temp-written"
        )
        for key, old in (("JWT_SECRET", old_a), ("JWT_REFRESH_SECRET", old_r)):
            if v[key] == old:
                continue  # the old secret, untouched
            assert v[key + "_PREVIOUS"] == old  # the new one, and the old kept
        # no service is left holding a key the store does not have
        for s in svcs:
            assert s.access in (v["JWT_SECRET"], v.get("JWT_SECRET_PREVIOUS"))
        told = sum(s.access == v["JWT_SECRET"] != old_a for s in svcs)
        if step.startswith("rotate:notifying:"):
            assert told == int(step.rsplit(":", 1)[1])  # killed after telling that many
        # running it again completes the job or explains why not
        again = w.cli("--yes")
        after = w.values()
        if step in ("rotate:planned", "rotate:generated", "store:temp-written"):
            assert v["JWT_SECRET"] == old_a
            assert again.returncode == 0, again.stderr
        elif step in ("store:renamed", "rotate:written") or step.startswith("rotate:notifying"):
            assert again.returncode == 0 and "resume" in again.stderr, again.stderr
            assert after["JWT_SECRET"] == v["JWT_SECRET"]
        else:
            assert again.returncode == 1 and "grace period" in again.stderr
        assert after.get("JWT_SECRET_PREVIOUS") == old_a
        assert after["JWT_SECRET"] != old_a and after["JWT_REFRESH_SECRET"] != old_r
        assert all(s.access == after["JWT_SECRET"] for s in svcs)
    w.assert_clean()


def rotated_store(env: Path) -> tuple[dict[str, str], dict[str, str]]:
    """A store mid-rotation whose grace period is long over: (current, previous)."""
    cur = {"JWT_SECRET": strong(), "JWT_REFRESH_SECRET": strong()}
    prev = {"JWT_SECRET": strong(), "JWT_REFRESH_SECRET": strong()}
    env.write_text(
        "".join(
            f"{k}={cur[k]}\n{k}_PREVIOUS={prev[k]}\n{k}_ROTATED_AT=2020-01-01T00:00:00Z\n"
            for k in cur
        )
    )
    return cur, prev


@pytest.mark.parametrize(
    "step",
    [
        "store:temp-written",
        "store:renamed",
        "finish:written",
        "rotate:notifying:1",
        "rotate:notifying:2",
    ],
)
def test_sigkill_while_finishing(tmp_path: Path, write_config, step: str) -> None:
    env = tmp_path / "ultramarket.env"
    cur, prev = rotated_store(env)
    with services(env, 3) as (svcs, urls):
        assert all(s.previous == prev["JWT_SECRET"] for s in svcs)
        w = World(tmp_path, write_config, urls)
        w.values()
        killed = w.cli("--finish", "--yes", env={"ULTRAWATCH_FAULT": step})
        assert killed.returncode == -9, killed.stderr
        v = w.values()  # complete and parseable, the current secrets untouched
        assert {k: v[k] for k in cur} == cur
        dropped = "JWT_SECRET_PREVIOUS" not in v
        assert dropped == (step not in ("store:temp-written",)), v.keys()
        if not dropped:
            assert v["JWT_SECRET_PREVIOUS"] == prev["JWT_SECRET"]
        # killed after the write and before every service was told: some still hold
        # the previous secret in memory; the rerun tells them
        again = w.cli("--finish", "--yes")
        assert again.returncode == 0, again.stdout + again.stderr
        after = w.values()
        assert "JWT_SECRET_PREVIOUS" not in after and "JWT_REFRESH_SECRET_PREVIOUS" not in after
        assert all(s.previous is None and s.access == cur["JWT_SECRET"] for s in svcs)
    w.assert_clean()


def dir_files(d: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in d.iterdir() if not p.name.startswith(".")}


# DirStore.write for a two-key rotation writes 6 files: a kill at every boundary
@pytest.mark.parametrize(
    "step", [f"store:between-files:{i}" for i in range(1, 6)] + ["rotate:written"]
)
def test_sigkill_with_a_dir_store(tmp_path: Path, write_config, step: str) -> None:
    d = tmp_path / "secrets"
    d.mkdir()
    old_a, old_r = strong(), strong()
    (d / "JWT_SECRET").write_text(old_a)
    (d / "JWT_REFRESH_SECRET").write_text(old_r)
    with services(d, 2, kind="dir") as (svcs, urls):
        cfg = write_config(
            "".join(
                f'[[services]]\nname = "svc-{i}"\nurl = "{u}"\n'
                'detail_paths = ["/health/security"]\n'
                for i, u in enumerate(urls)
            )
            + f'[secrets]\nstore = {{ kind = "dir", path = "{d}" }}\ngrace_period = "10m"\n'
        )
        killed = run_cli(
            "rotate-secret", "--config", str(cfg), "--yes", env={"ULTRAWATCH_FAULT": step}
        )
        assert killed.returncode == -9
        files = dir_files(d)
        seen = [v for k, v in files.items() if not k.endswith("_ROTATED_AT")]
        for key, old in (("JWT_SECRET", old_a), ("JWT_REFRESH_SECRET", old_r)):
            # old or new, and never a new one without the old kept
            assert files[key] == old or files[key + "_PREVIOUS"] == old
        again = run_cli("rotate-secret", "--config", str(cfg), "--yes")
        # the rerun finishes the job: exit 0 only because both keys really rotated
        assert again.returncode == 0, again.stdout + again.stderr
        files = dir_files(d)
        seen += [v for k, v in files.items() if not k.endswith("_ROTATED_AT")]
        for key, old in (("JWT_SECRET", old_a), ("JWT_REFRESH_SECRET", old_r)):
            assert files[key] != old and files[key + "_PREVIOUS"] == old
        assert all(s.access == files["JWT_SECRET"] for s in svcs)
        assert all(s.refresh == files["JWT_REFRESH_SECRET"] for s in svcs)
        # the rotation is complete: a third run is the refused second rotation
        third = run_cli("rotate-secret", "--config", str(cfg), "--yes")
        assert third.returncode == 1 and "grace period" in third.stderr
    audit = (tmp_path / "audit.jsonl").read_text()
    assert_no_secret(
        [*seen, old_a, old_r],
        killed.stdout,
        killed.stderr,
        again.stdout,
        again.stderr,
        third.stdout,
        third.stderr,
        audit,
    )


def test_no_new_secret_while_a_service_that_may_use_the_previous_is_down(
    tmp_path: Path, write_config
) -> None:
    """After the grace period, a rotation drops the current _PREVIOUS: not while a
    service that can report its key is unreachable or on another key."""
    env = tmp_path / "ultramarket.env"
    cur, _prev = rotated_store(env)
    up, down = JwtService(env), JwtService(env)
    with running(up) as u1:
        stack = contextlib.ExitStack()
        u2 = stack.enter_context(running(down))
        w = World(tmp_path, write_config, [u1, u2])
        w.values()
        stack.close()  # svc-1 is stopped (restarting, network blip)
        before = env.read_bytes()
        refused = w.cli("--yes")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "cannot generate a new secret while a service may still use a key" in (
            refused.stderr
        )
        assert "svc-1: cannot read which key it uses" in refused.stderr
        assert env.read_bytes() == before
        # a service on some other key (neither current nor previous) is named too
        up.access = strong()
        other = w.cli("--yes")
        assert other.returncode == 1
        assert f"svc-0 reports {fingerprint(up.access)} for JWT_SECRET, not the store's" in (
            other.stderr
        )
        w.seen.append(up.access)
        up.load()
        with running(down) as u2_again:  # back, on a new port: the config follows it
            w2 = World(tmp_path, write_config, [u1, u2_again])
            w2.seen, w2.outputs = w.seen, w.outputs
            done = w2.cli("--yes")
            assert done.returncode == 0, done.stdout + done.stderr
        v = w.values()
        assert v["JWT_SECRET_PREVIOUS"] == cur["JWT_SECRET"]
    w.assert_clean()


async def test_each_remediation_is_its_own_action(tmp_path: Path, write_config) -> None:
    """`rotate-secret` hands over to the action the store and services call for; each
    action on its own refuses the state it cannot work on."""
    env = tmp_path / "ultramarket.env"
    _cur, prev = rotated_store(env)  # mid-rotation, grace long over

    async def plan(action: Action) -> str:
        try:
            return (await action.plan()).summary
        finally:
            await action.close()

    with services(env, 1) as (svcs, urls):
        w = World(tmp_path, write_config, urls)
        w.values()
        config = parse_config(w.config_path.read_text())
        entry = RotateSecret(config, finish=True, dry_run=True)
        assert "dry run: show the finish plan" in (await plan(entry))
        assert type(entry.chosen) is FinishRotation
        # a service still on the previous key: telling it again, not a new secret
        svcs[0].access = prev["JWT_SECRET"]
        entry = RotateSecret(config, dry_run=True)
        (await plan(entry))
        assert type(entry.chosen) is ResumeRotation and entry.chosen.audit_mode == "dry-run"
        with pytest.raises(ActionRefused, match="cannot generate a new secret while a service"):
            (await plan(RotateKeys(config, dry_run=True)))
        svcs[0].load()  # back on the current key: nothing to resume, a new secret is fine
        with pytest.raises(ActionRefused, match="no rotation to resume"):
            (await plan(ResumeRotation(config, dry_run=True)))
        entry = RotateSecret(config, dry_run=True)
        assert "dry run: show the rotation plan" in (await plan(entry))
        assert type(entry.chosen) is RotateKeys
    assert env.read_text().count("_PREVIOUS=") == 2  # dry runs: nothing changed
    w.assert_clean()


def test_signal_reload_never_hits_a_stale_pidfile_or_our_own_ancestors(
    tmp_path: Path, write_config
) -> None:
    """The reload signal goes only to a live, matched process that is not ultrawatch
    itself or one of its parents (a shell whose command line names the service)."""
    from tests.conftest import ULTRAWATCH

    env = tmp_path / "ultramarket.env"
    write_store(env, strong(), strong())
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(gone.stdout)
    marker = f"uw-marker-{secrets.token_hex(6)}"
    cfg = write_config(
        f'[[services]]\nname = "stale"\nurl = "http://127.0.0.1:9"\n'
        f'process = {{ pidfile = "{pidfile}" }}\nreload = {{ signal = "SIGHUP" }}\n'
        f'[[services]]\nname = "mine"\nurl = "http://127.0.0.1:9"\n'
        f'process = {{ cmdline = "{marker}" }}\nreload = {{ signal = "SIGHUP" }}\n'
        f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\n'
    )
    # The parent shell's command line carries the marker (as `uv run ... svc` would).
    script = f'"{ULTRAWATCH}" rotate-secret --config "{cfg}" --yes; echo "rc=$?" # {marker}'
    out = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert out.returncode == 0 and "rc=" in out.stdout, out  # the shell was not signalled
    assert f"stale: no local process found to signal (pid {gone.stdout.strip()}" in out.stderr
    assert f"mine: no local process found to signal (no process matches cmdline /{marker}/)" in (
        out.stderr
    )
    assert "SIGHUP sent" not in out.stderr
