"""Check ids that cannot collide: two things one id would name are refused in the
config (exit 3, one line naming the file, the key and why), never one silently
replacing the other."""

from __future__ import annotations

import os

import pytest

from collectors.config import parse_config
from collectors.core.model import Reading, Snapshot
from collectors.registry import process_targets
from collectors.rules import Rules
from tests.conftest import run_cli

SERVICE = '[[services]]\nname = "{name}"\nurl = "http://127.0.0.1:9"\n{extra}\n'
PG = '[postgres]\ndsn = "postgresql://m@127.0.0.1:1/x"\nconnection_budget = 20\n'


def test_a_service_named_total_with_a_budget_is_refused(write_config) -> None:
    path = write_config(PG + SERVICE.format(name="total", extra="connection_budget = 5"))
    for args in (("config", "check"), ("check",)):
        result = run_cli(*args, "--config", str(path))
        assert result.returncode == 3, result
        assert result.stdout == ""
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"ultrawatch: {path}: services[0].name: expected another name")
        assert "postgres.budget.total" in line


def test_a_process_named_like_a_watched_service_is_refused(write_config) -> None:
    path = write_config(
        SERVICE.format(name="a", extra="")
        + SERVICE.format(name="order-service", extra='process = { cmdline = "order" }')
        + '[[processes]]\nname = "worker"\npid = 1\n'
        + '[[processes]]\nname = "order-service"\npid = 1\n'
    )
    result = run_cli("config", "check", "--config", str(path))
    assert result.returncode == 3
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"ultrawatch: {path}: processes[1].name: expected another name")
    assert "services[1] 'order-service'" in line and "process.order-service.*" in line


@pytest.mark.parametrize(
    "toml",
    [
        # No budget: the service has no postgres.budget.<name> check to collide with.
        PG + SERVICE.format(name="total", extra=""),
        # The service's process is not watched: process.order-service.* is the entry's.
        SERVICE.format(name="order-service", extra="")
        + '[[processes]]\nname = "order-service"\npid = 1\n',
        # Names that only look alike.
        PG
        + SERVICE.format(name="totals", extra="connection_budget = 5")
        + SERVICE.format(name="b", extra='process = { cmdline = "b" }')
        + '[[processes]]\nname = "b.memory"\npid = 1\n',
    ],
)
def test_names_that_do_not_collide_are_accepted(toml: str) -> None:
    config = parse_config(toml)
    # Every process target and every check id of a round is distinct.
    names = [p.name for p in process_targets(config).targets]
    assert len(names) == len(set(names))
    readings = tuple(
        Reading(component, target, 0.0, error="down", error_kind="unreachable")
        for component, target in [("postgres", "main")]
        if config.postgres is not None
    )
    report = Rules(config).evaluate(Snapshot(1, 0.0, 1.0, readings))
    ids = [c.id for c in report.checks]
    assert len(ids) == len(set(ids))


def test_both_watched_processes_keep_their_own_checks(tmp_path) -> None:
    """The service's process and a [[processes]] entry of another name: two targets."""
    config = parse_config(
        SERVICE.format(name="order-service", extra=f"process = {{ pid = {os.getpid()} }}")
        + f'[[processes]]\nname = "worker"\npid = {os.getpid()}\n'
    )
    assert [p.name for p in process_targets(config).targets] == ["worker", "order-service"]
