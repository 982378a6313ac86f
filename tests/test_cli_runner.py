"""The tests run `ultrawatch` forked from a warm process (tests/cli_runner.py): it
must behave as the executed console script does: exit code, stdout, stderr,
stdin, environment, working directory, and death by signal."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests import conftest
from tests.conftest import exec_cli, warm_cli


def both(*args: str, **kw) -> tuple[subprocess.CompletedProcess[str], ...]:
    """The same command run both ways (whatever ULTRAWATCH_TEST_EXEC says)."""
    return warm_cli(*args, **kw), exec_cli(*args, **kw)


def test_warm_runs_answer_as_executed_ones(monkeypatch, tmp_path: Path, write_config) -> None:
    # a result on stdout, exit 0
    warm, executed = both("config", "example")
    assert warm.returncode == executed.returncode == 0
    assert warm.stdout == executed.stdout and "[postgres]" in warm.stdout
    # a broken config: exit 3, one line on stderr naming the file
    bad = write_config('[dashboard]\ninterval = "soon"\n', name="bad.toml")
    warm, executed = both("config", "check", "--config", str(bad))
    assert warm.returncode == executed.returncode == 3
    assert warm.stderr == executed.stderr and str(bad) in warm.stderr
    # the environment and working directory are the caller's
    (tmp_path / "ultrawatch.toml").write_text('[dashboard]\ninterval = "5s"\n[redis]\n')
    monkeypatch.chdir(tmp_path)
    warm, executed = both("config", "check")
    assert warm.returncode == executed.returncode == 0, warm.stderr
    assert warm.stdout == executed.stdout and "ultrawatch.toml" in warm.stdout + warm.stderr
    env = {"ULTRAWATCH_CONFIG": str(bad)}
    warm, executed = both("config", "check", env=env)
    assert warm.returncode == executed.returncode == 3
    # JSON on stdout only, diagnostics apart
    down = write_config('[redis]\nurl = "redis://127.0.0.1:1/0"\n', name="down.toml")
    warm, executed = both("check", "--config", str(down), "--format", "json")
    assert warm.returncode == executed.returncode == 2
    assert json.loads(warm.stdout)["status"] == json.loads(executed.stdout)["status"] == "critical"


def test_stdin_and_a_kill_at_a_fault_point(write_config, tmp_path: Path) -> None:
    # stdin is the caller's: the config read from /dev/stdin
    text = '[dashboard]\ninterval = "7s"\n[redis]\n'
    warm, executed = both("config", "check", "--config", "/dev/stdin", input=text)
    assert warm.returncode == executed.returncode == 0, warm.stderr
    bad = '[dashboard]\ninterval = "7 parsecs"\n'
    warm, executed = both("config", "check", "--config", "/dev/stdin", input=bad)
    assert warm.returncode == executed.returncode == 3
    assert warm.stderr == executed.stderr and "interval" in warm.stderr
    env_file = tmp_path / ".env"
    env_file.write_text("JWT_SECRET=" + "a" * 64 + "\nJWT_REFRESH_SECRET=" + "b" * 64 + "\n")
    cfg = write_config(f'[secrets]\nstore = {{ kind = "dotenv", path = "{env_file}" }}\n')
    # SIGKILL at a fault point is a death by signal, as from an executed process.
    fault = {"ULTRAWATCH_FAULT": "rotate:generated"}
    warm, executed = both("rotate-secret", "--config", str(cfg), "--yes", env=fault)
    assert warm.returncode == executed.returncode == -9


def test_a_hanging_run_times_out_and_is_killed(write_config) -> None:
    import psutil

    # Accepts connections (the backlog) and never answers: the check hangs.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        cfg = write_config(f'[redis]\nurl = "redis://127.0.0.1:{port}/0"\n')
        with pytest.raises(subprocess.TimeoutExpired):
            warm_cli("check", "--config", str(cfg), "--timeout", "30", timeout=1.0)
    runner = conftest._warm
    assert runner is not None and runner.last_pid is not None
    pid = runner.last_pid
    for _ in range(50):  # killed at once; the helper reaps it
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"pid {pid} still runs")
