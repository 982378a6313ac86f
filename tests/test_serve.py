"""Issue 16: `ultrawatch serve` as Prometheus and Alertmanager see it: a real process,
real HTTP scrapes, `promtool check metrics`, a real Alertmanager, signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.alertmanager_fixtures import AlertmanagerServer, wait_for
from tests.conftest import ULTRAWATCH, run_cli
from tests.external import require_program
from tests.helpers import http_server, respond

TOKEN = "Planted-Bearer-Token-0123456789"


class Service:
    """A real HTTP service whose /health answers what the test sets."""

    def __init__(self) -> None:
        self.health = "pass"

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        code = 503 if self.health == "fail" else 200
        respond(req, code, json.dumps({"status": self.health}))


@pytest.fixture
def service() -> Iterator[tuple[Service, str]]:
    svc = Service()
    with http_server(svc.handle) as url:
        yield svc, url


def config_text(url: str, *, platform: str = "shop-eu", am: str = "", extra: str = "") -> str:
    text = f"""
[dashboard]
interval = "200ms"
raise_after = 1
clear_after = 1
platform = "{platform}"

[[services]]
name = "order-service"
url = "{url}"
{extra}
"""
    if am:
        text += f'\n[alertmanager]\n{am}\nresend = "1s"\ntimeout = "2s"\n'
    return text


class Served:
    def __init__(self, proc: subprocess.Popen[str], base: str, err: Path) -> None:
        self.proc = proc
        self.base = base
        self.err = err

    def get(self, path: str) -> tuple[int, dict[str, str], str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def metrics(self) -> str:
        return self.get("/metrics")[2]

    def stderr(self) -> str:
        return self.err.read_text()


@contextmanager
def serve(config: Path, *args: str) -> Iterator[Served]:
    err = config.with_suffix(".stderr")
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            [ULTRAWATCH, "serve", "--config", str(config), "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        line = wait_for(lambda: re.search(r"serving (http://\S+)/metrics", err.read_text()), 30)
        yield Served(proc, line.group(1), err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def rounds(served: Served) -> int:
    m = re.search(r'^ultrawatch_rounds_total\{platform="[^"]+"\} (\S+)$', served.metrics(), re.M)
    return int(float(m.group(1))) if m else 0


def stop(served: Served) -> tuple[int, float]:
    t0 = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    code = served.proc.wait(10)
    return code, time.monotonic() - t0


# ------------------------------------------------------------------ /metrics


def test_metrics_health_and_sigterm(write_config, service, tmp_path: Path) -> None:
    promtool = require_program("promtool")
    svc, url = service
    config = write_config(config_text(url))
    with serve(config) as served:
        wait_for(lambda: rounds(served) >= 2)
        status, headers, text = served.get("/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
        # Prometheus's own linter finds nothing to say.
        lint = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
        )
        assert lint.returncode == 0 and lint.stdout + lint.stderr == "", lint.stdout + lint.stderr
        families = {f.name: f for f in text_string_to_metric_families(text)}
        # The names of `check --format prometheus`, every series with the platform.
        for name in (
            "ultrawatch_status",
            "ultrawatch_check_status",
            "ultrawatch_checks",
            "ultrawatch_round_duration_seconds",
            "ultrawatch_last_round_timestamp_seconds",
            "ultrawatch_rounds",
            "ultrawatch_target_up",
        ):
            assert name in families, name
        samples = [s for f in families.values() for s in f.samples]
        assert {s.labels["platform"] for s in samples} == {"shop-eu"}
        health = {
            s.labels["id"]: s.value
            for s in families["ultrawatch_check_status"].samples
            if s.labels["id"] == "service.order-service.health"
        }
        assert health == {"service.order-service.health": 0}

        status, headers, body = served.get("/health")
        assert status == 200 and headers["Content-Type"] == "application/health+json"
        doc = json.loads(body)
        assert doc["status"] == "pass"
        assert doc["checks"]["round:age"][0]["observedValue"] < 5

        # The service goes: the check turns critical in the next scrapes.
        svc.health = "fail"
        wait_for(
            lambda: (
                'ultrawatch_check_status{component="services",id="service.order-service.'
                'health",platform="shop-eu",target="order-service"} 2.0' in served.metrics()
            )
        )
        code, took = stop(served)
    assert code == 0 and took < 5, served.stderr()
    assert "serve stopped after" in served.stderr()


def test_collector_errors_show_in_metrics_and_health(write_config, tmp_path: Path) -> None:
    # Nothing listens on this port: the target is down, serve carries on and says so.
    from dashboard.demo.embedded import free_port

    config = write_config(config_text(f"http://127.0.0.1:{free_port()}"))
    with serve(config) as served:
        wait_for(lambda: rounds(served) >= 2)
        text = served.metrics()
        assert (
            'ultrawatch_target_up{component="services",platform="shop-eu",'
            'target="order-service"} 0.0' in text
        )
        status, _, body = served.get("/health")
        doc = json.loads(body)
        assert status == 200 and doc["status"] == "warn"
        assert doc["checks"]["collectors:errors"][0]["componentId"] == "services/order-service"
        assert stop(served)[0] == 0


def test_bad_listen_is_a_usage_error(write_config, service) -> None:
    _, url = service
    config = write_config(config_text(url))
    r = run_cli("serve", "--config", str(config), "--listen", "nowhere")
    assert r.returncode == 3 and "expected HOST:PORT" in r.stderr
    r = run_cli("serve", "--config", str(config), "--keep", "1h")
    assert r.returncode == 3 and "it needs --record FILE" in r.stderr


# ------------------------------------------------------------- Alertmanager


def am_alerts(am: AlertmanagerServer, platform: str, name: str | None = None) -> list[dict]:
    return [a for a in am.alerts(platform) if name is None or a["labels"]["alertname"] == name]


def test_alerts_raised_resent_and_resolved(
    write_config, service, alertmanager: AlertmanagerServer
) -> None:
    svc, url = service
    platform = "shop-alerts"
    config = write_config(
        config_text(url, platform=platform, am=f'url = "{alertmanager.url}"'), name="a.toml"
    )
    health = "service.order-service.health"
    with serve(config) as served:
        wait_for(lambda: rounds(served) >= 1)
        assert am_alerts(alertmanager, platform) == []
        svc.health = "fail"
        (alert,) = wait_for(lambda: am_alerts(alertmanager, platform, health))
        assert alert["labels"] == {
            "alertname": health,
            "severity": "critical",
            "platform": platform,
            "component": "services",
            "target": "order-service",
        }
        assert alert["annotations"]["summary"]
        assert "drain" in alert["annotations"]["remedy"]
        assert alert["status"]["state"] == "active"
        # Re-sent while open: Alertmanager's updatedAt moves on (resend = 1s).
        first = alert["updatedAt"]
        wait_for(lambda: am_alerts(alertmanager, platform, health)[0]["updatedAt"] != first)

        # Alertmanager restarts (alerts are not kept on disk): they come back.
        alertmanager.restart()
        (back,) = wait_for(lambda: am_alerts(alertmanager, platform, health))
        assert back["labels"] == alert["labels"] and back["startsAt"] == alert["startsAt"]

        # Warning is another severity: the critical alert ends, a warning one opens.
        svc.health = "warn"
        wait_for(
            lambda: (
                [a["labels"]["severity"] for a in am_alerts(alertmanager, platform, health)]
                == ["warning"]
            )
        )
        # Fixed: resolved (endsAt = now), gone from the active alerts.
        svc.health = "pass"
        wait_for(lambda: am_alerts(alertmanager, platform, health) == [])
        # self.alertmanager says delivery works.
        assert re.search(
            r'id="self\.alertmanager",platform="shop-alerts".*\} 0\.0', served.metrics()
        )
        assert stop(served)[0] == 0


def test_sigterm_resolves_nothing_and_two_platforms_never_collide(
    write_config, service, alertmanager: AlertmanagerServer
) -> None:
    svc, url = service
    svc.health = "fail"
    health = "service.order-service.health"
    configs = [
        write_config(
            config_text(url, platform=p, am=f'url = "{alertmanager.url}"'), name=f"{p}.toml"
        )
        for p in ("shop-one", "shop-two")
    ]
    with serve(configs[0]) as one, serve(configs[1]) as two:
        for p in ("shop-one", "shop-two"):
            wait_for(lambda p=p: am_alerts(alertmanager, p, health))
        # One alert each, told apart by the platform label alone.
        both = [a for a in alertmanager.alerts() if a["labels"]["alertname"] == health]
        assert sorted(a["labels"]["platform"] for a in both) == ["shop-one", "shop-two"]

        def series(served: Served) -> set[tuple[str, frozenset[tuple[str, str]]]]:
            return {
                (s.name, frozenset(s.labels.items()))
                for f in text_string_to_metric_families(served.metrics())
                for s in f.samples
            }

        assert not series(one) & series(two)
        assert stop(one)[0] == 0
        # The stopped one resolved nothing on its way out: its alert is still active.
        (left,) = am_alerts(alertmanager, "shop-one", health)
        assert left["status"]["state"] == "active"
        assert stop(two)[0] == 0


def test_alertmanager_down_keeps_polling_and_says_so(write_config, service) -> None:
    from dashboard.demo.embedded import free_port

    svc, url = service
    svc.health = "fail"
    down = f"http://127.0.0.1:{free_port()}"
    config = write_config(config_text(url, platform="shop-down", am=f'url = "{down}"'))
    with serve(config) as served:
        wait_for(lambda: rounds(served) >= 3)
        text = served.metrics()
        assert re.search(r'ultrawatch_check_status\{[^}]*id="self\.alertmanager"[^}]*\} 2\.0', text)
        assert re.search(r"ultrawatch_alertmanager_up\{[^}]*\} 0\.0", text)
        before = rounds(served)
        wait_for(lambda: rounds(served) > before + 2)  # rounds go on
        doc = json.loads(served.get("/health")[2])
        assert doc["status"] == "warn" and "not taking alerts" in json.dumps(doc)
        assert stop(served)[0] == 0


# ----------------------------------------------------------------- secrets


def test_credentials_reach_alertmanager_and_nothing_else(
    write_config, service, tmp_path: Path
) -> None:
    """A bearer token is sent as a header and appears in no output: stderr, /metrics,
    /health, the recording."""
    svc, url = service
    svc.health = "fail"
    seen: list[str] = []

    def gate(req: BaseHTTPRequestHandler) -> None:
        # An Alertmanager behind a proxy that wants the token (Alertmanager itself has
        # no auth): refuses without it, quoting what it got.
        auth = req.headers.get("Authorization", "")
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        if auth != f"Bearer {TOKEN}":
            respond(req, 401, f"bad credentials {auth}")
            return
        seen.append(body.decode())
        respond(req, 200, "")

    recording = tmp_path / "rec.sqlite"
    with http_server(gate) as am_url:
        am = f'url = "{am_url}"\nbearer_token = "{TOKEN}"'
        config = write_config(config_text(url, platform="shop-secret", am=am))
        with serve(config, "--record", str(recording)) as served:
            wait_for(lambda: any("service.order-service.health" in b for b in seen))
            outputs = [served.metrics(), served.get("/health")[2]]
            assert stop(served)[0] == 0
            outputs.append(served.stderr())
    outputs.append(recording.read_bytes().decode("latin-1"))
    assert all(TOKEN not in text for text in outputs)
    # The recording serve made is a recording like `record`'s: a past moment judged.
    replayed = run_cli("check", "--replay", str(recording), "--format", "json")
    assert replayed.returncode == 2, replayed.stderr
    assert "service.order-service.health" in replayed.stdout and TOKEN not in replayed.stdout

    # A wrong token: Alertmanager's refusal (which quotes it) is scrubbed.
    with http_server(gate) as am_url:
        am = f'url = "{am_url}"\nbearer_token = "{TOKEN}-wrong"'
        config = write_config(config_text(url, platform="shop-secret", am=am), name="w.toml")
        with serve(config) as served:
            wait_for(lambda: "401" in json.dumps(json.loads(served.get("/health")[2])))
            text = served.get("/health")[2] + served.metrics()
            assert stop(served)[0] == 0
    assert TOKEN not in text + served.stderr()


def test_ha_pair_gets_every_alert_and_one_down_is_a_warning(
    write_config, service, alertmanager: AlertmanagerServer
) -> None:
    from dashboard.demo.embedded import free_port

    svc, url = service
    svc.health = "fail"
    down = f"http://127.0.0.1:{free_port()}"
    am = f'urls = ["{alertmanager.url}", "{down}"]'
    config = write_config(config_text(url, platform="shop-pair", am=am))
    with serve(config) as served:
        wait_for(lambda: am_alerts(alertmanager, "shop-pair", "service.order-service.health"))
        # One of the pair takes alerts: a warning, saying which one does not.
        pattern = r'ultrawatch_check_status\{[^}]*id="self\.alertmanager"[^}]*\} 1\.0'
        wait_for(lambda: re.search(pattern, served.metrics()))
        up = {
            s.labels["url"]: s.value
            for f in text_string_to_metric_families(served.metrics())
            for s in f.samples
            if s.name == "ultrawatch_alertmanager_up"
        }
        assert up == {alertmanager.url: 1.0, down: 0.0}
        assert stop(served)[0] == 0
