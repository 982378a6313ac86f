"""Issue 16: `ultrawatch silence`, `silences`, `unsilence` against a real Alertmanager."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dashboard.actions.audit import os_user
from tests.alertmanager_fixtures import AlertmanagerServer
from tests.conftest import run_cli


def _config(write_config, am: AlertmanagerServer, platform: str, name: str = "u.toml") -> Path:
    return write_config(
        f"""
[dashboard]
platform = "{platform}"

[[processes]]
name = "self"
pid = 1

[alertmanager]
url = "{am.url}"
""",
        name=name,
    )


def _silence(am: AlertmanagerServer, sid: str) -> dict:
    return next(s for s in am.silences() if s["id"] == sid)


def test_silence_list_and_unsilence(write_config, alertmanager: AlertmanagerServer) -> None:
    config = _config(write_config, alertmanager, "shop-silence")
    r = run_cli(
        "silence",
        "service.order-service.health",
        "--for",
        "1h",
        "--comment",
        "db maintenance",
        "--config",
        str(config),
        "--yes",
    )
    assert r.returncode == 0, r.stderr
    m = re.search(r"silence (\S+) active until", r.stdout)
    assert m, r.stdout
    sid = m.group(1)
    made = _silence(alertmanager, sid)
    assert made["status"]["state"] == "active"
    assert made["createdBy"] == os_user() and made["comment"] == "db maintenance"
    assert {(x["name"], x["value"]) for x in made["matchers"]} == {
        ("alertname", "service.order-service.health"),
        ("platform", "shop-silence"),
    }
    # Audited like every action.
    audit = [json.loads(line) for line in (config.parent / "audit.jsonl").read_text().splitlines()]
    assert [e["outcome"] for e in audit if e["action"] == "silence"] == ["started", "verified"]

    # A maintenance window: starts later, pending until then.
    r = run_cli(
        "silence",
        "--match",
        "component=redis",
        "--start",
        "2099-01-01T00:00:00Z",
        "--for",
        "2h",
        "--comment",
        "redis upgrade",
        "--config",
        str(config),
        "--yes",
    )
    assert r.returncode == 0, r.stderr
    later = re.search(r"silence (\S+) pending", r.stdout).group(1)  # type: ignore[union-attr]
    assert _silence(alertmanager, later)["startsAt"].startswith("2099-01-01T00:00:00")

    listed = run_cli("silences", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    assert sid in listed.stdout and later in listed.stdout
    assert "alertname=service.order-service.health,platform=shop-silence" in listed.stdout
    # Another platform's console does not list them.
    other = _config(write_config, alertmanager, "shop-other", name="other.toml")
    assert sid not in run_cli("silences", "--config", str(other)).stdout

    r = run_cli("unsilence", sid, "--config", str(config), "--yes")
    assert r.returncode == 0, r.stderr
    assert _silence(alertmanager, sid)["status"]["state"] == "expired"
    assert sid not in run_cli("silences", "--config", str(config)).stdout
    # Once more: nothing to expire.
    r = run_cli("unsilence", sid, "--config", str(config), "--yes")
    assert r.returncode == 1 and "expired already" in r.stderr


def test_silence_is_an_action(write_config, alertmanager: AlertmanagerServer) -> None:
    config = _config(write_config, alertmanager, "shop-refused")
    before = len(alertmanager.silences())
    args = ("silence", "x.y", "--for", "1h", "--comment", "c", "--config", str(config))
    r = run_cli(*args)  # stdin is not a terminal, no --yes
    assert r.returncode == 1 and "needs --yes" in r.stderr
    r = run_cli(*args, "--yes", "--read-only")
    assert r.returncode == 1 and "read-only" in r.stderr
    r = run_cli("silence", "--for", "1h", "--comment", "c", "--config", str(config), "--yes")
    assert r.returncode == 1 and "CHECK_ID or give --match" in r.stderr
    assert len(alertmanager.silences()) == before

    bare = write_config('[[processes]]\nname = "self"\npid = 1\n', name="bare.toml")
    r = run_cli("silence", "x.y", "--for", "1h", "--comment", "c", "--config", str(bare), "--yes")
    assert r.returncode == 1 and "no [alertmanager]" in r.stderr
    r = run_cli("silences", "--config", str(bare))
    assert r.returncode == 3 and "no [alertmanager]" in r.stderr


def test_alertmanager_down_is_an_error(write_config) -> None:
    from dashboard.demo.embedded import free_port

    config = write_config(
        f'[[processes]]\nname = "self"\npid = 1\n[alertmanager]\n'
        f'url = "http://127.0.0.1:{free_port()}"\ntimeout = "2s"\n'
    )
    r = run_cli("silences", "--config", str(config))
    assert r.returncode == 3 and "ultrawatch: silences: http://127.0.0.1:" in r.stderr
    r = run_cli("silence", "a.b", "--for", "1h", "--comment", "c", "--config", str(config), "--yes")
    assert r.returncode == 3 and "error" in r.stdout + r.stderr


def test_production_needs_the_check_id(write_config, alertmanager: AlertmanagerServer) -> None:
    config = write_config(
        f'[dashboard]\nproduction = true\nplatform = "shop-prod"\n'
        f'[[processes]]\nname = "self"\npid = 1\n[alertmanager]\nurl = "{alertmanager.url}"\n'
    )
    args = ("silence", "redis.memory", "--for", "10m", "--comment", "c", "--config", str(config))
    r = run_cli(*args, "--yes")
    assert r.returncode == 1 and "--confirm 'redis.memory'" in r.stderr
    r = run_cli(*args, "--confirm", "redis.memory")
    assert r.returncode == 0, r.stderr
