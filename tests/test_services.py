"""ServicesCollector against real HTTP servers on 127.0.0.1: every health format,
every bad answer, latency, failures, flaps and listener leaks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from collectors.config import Config, parse_config
from collectors.http import HttpClient
from collectors.model import Reading, Snapshot
from collectors.rules import Rules
from collectors.services import ServicesCollector
from tests.conftest import run_cli
from tests.helpers import Pki, http_server, respond
from tests.test_health_formats import CASES

BIG = 50 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_for(services: list[tuple[str, str]], extra: str = "", http: str = "") -> Config:
    text = f'[dashboard]\nhistory = "15m"\n[http]\ntimeout = "1s"\n{http}\n'
    for name, url in services:
        text += f'[[services]]\nname = "{name}"\nurl = "{url}"\n{extra}\n'
    return parse_config(text)


def poll(config: Config, rounds: int = 1, pause: float = 0.0) -> list[list[Reading]]:
    async def go() -> list[list[Reading]]:
        c = ServicesCollector(config, HttpClient(config.http))
        out = []
        try:
            for i in range(rounds):
                if i and pause:
                    await asyncio.sleep(pause)
                out.append(await c.collect())
        finally:
            await c.close()
        return out

    return asyncio.run(go())


def judged(config: Config, readings: list[Reading]) -> dict[str, object]:
    report = Rules(config).evaluate(Snapshot(1, time.time(), 0.0, tuple(readings)))
    return {c.id: c for c in report.checks}


# ------------------------------------------------------------------ servers


def _bad(req: BaseHTTPRequestHandler, what: str) -> None:
    if what == "slow":
        time.sleep(5)
        with contextlib.suppress(OSError):
            respond(req, 200, '{"status":"pass"}')
    elif what == "invalid-json":
        respond(req, 200, '{"status": "pass", oops}')
    elif what == "big":
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(BIG))
        req.end_headers()
        chunk = b" " * 65536
        with contextlib.suppress(OSError):
            for _ in range(BIG // len(chunk)):
                req.wfile.write(chunk)
    elif what == "trickle":
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", "100")
        req.end_headers()
        with contextlib.suppress(OSError):
            for b in b'{"status": "pass"    ':
                req.wfile.write(bytes([b]))
                req.wfile.flush()
                time.sleep(1)
    elif what == "reset":
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", "1000")
        req.end_headers()
        req.wfile.write(b'{"status": "pa')
        req.wfile.flush()
        # SO_LINGER 0: close() sends a TCP RST instead of a FIN.
        req.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        req.connection.close()
        req.close_connection = True
    elif what == "loop":
        req.send_response(302)
        req.send_header("Location", req.path)
        req.send_header("Content-Length", "0")
        req.end_headers()
    elif what == "html":
        respond(
            req,
            502,
            "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            "text/html",
        )
    elif what == "array":
        respond(req, 200, '[{"status": "pass"}]')
    elif what == "deep":
        respond(req, 200, "[" * 200_000 + "]" * 200_000)
    elif what == "299":
        respond(req, 299, b"", "text/plain")
    elif what == "418":
        respond(req, 418, b"", "text/plain")
    else:
        respond(req, 404, "no such case", "text/plain")


def handler(req: BaseHTTPRequestHandler) -> None:
    parts = req.path.strip("/").split("/")
    if parts[0] == "fmt":
        code, ctype, body, *_ = CASES[int(parts[1])]
        respond(req, code, body, ctype or "text/plain")
    elif parts[0] == "bad":
        _bad(req, parts[1])
    else:
        respond(req, 404, "", "text/plain")


BAD_CASES = {
    # name: (expected error fragment or None, expected data status, message fragment)
    "slow": ("timed out", None, None),
    "invalid-json": (None, "unknown", "invalid JSON"),
    "big": (None, "unknown", "size cap"),
    "trickle": ("timed out", None, None),
    "reset": ("reset by peer", None, None),
    "loop": ("too many redirects", None, None),
    "html": (None, "critical", "502 Bad Gateway"),
    "array": (None, "unknown", "array"),
    "deep": (None, "unknown", "nested too deeply"),
    "299": (None, "ok", "HTTP 299"),
    "418": (None, "critical", "HTTP 418"),
}


def test_every_format_and_bad_answer_with_others_unharmed():
    refused = f"http://127.0.0.1:{free_port()}"
    with http_server(handler) as base:
        services = [(f"fmt{i}", f"{base}/fmt/{i}") for i in range(len(CASES))]
        services += [(f"bad-{k}", f"{base}/bad/{k}") for k in BAD_CASES]
        services.append(("refused", refused))
        config = config_for(services)
        tracemalloc.start()
        t0 = time.perf_counter()
        (readings,) = poll(config)
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    by = {r.target: r for r in readings}
    assert set(by) == {name for name, _ in services}
    for i, (code, _ctype, _body, status, fmt, _text) in enumerate(CASES):
        r = by[f"fmt{i}"]
        assert r.ok, r
        assert (r.data["status"], r.data["format"], r.data["http_status"]) == (status, fmt, code)
        assert r.data["latency_ms"] is not None
    for name, (error, status, message) in BAD_CASES.items():
        r = by[f"bad-{name}"]
        if error:
            assert r.error_kind == "unreachable" and error in (r.error or ""), (name, r.error)
            assert r.data["consecutive_failures"] == 1
        else:
            assert r.ok, (name, r.error)
            assert r.data["status"] == status, (name, r.data)
            assert message in r.data["message"], (name, r.data["message"])
    assert by["refused"].error_kind == "unreachable"
    assert "connection refused" in (by["refused"].error or "")
    # The 50 MB body was cut at the 1 MiB cap; the trickle and the sleeper at 1 s.
    assert peak < 20 * 1024 * 1024, peak
    assert elapsed < 4.5  # the 5 s sleeper and the 21 s trickle did not hold the round
    checks = judged(config, readings)
    assert checks["service.refused.health"].status == "critical"  # first poll: at once
    assert checks["service.bad-html.health"].status == "critical"
    assert checks["service.bad-array.health"].status == "unknown"
    assert checks["service.fmt0.health"].status == "ok"


def _pass(req: BaseHTTPRequestHandler) -> None:
    respond(req, 200, '{"status":"pass"}')


@pytest.mark.parametrize("engine", ["aiohttp", "httpx"])
def test_tls_private_ca_and_client_certificate(tmp_path: Path, engine: str) -> None:
    pki = Pki.create(tmp_path)
    trust = f'engine = "{engine}"\nca_file = "{pki.ca_file}"'
    with http_server(_pass, tls=pki.server_context()) as url:
        (readings,) = poll(config_for([("tls", url)], http=f'engine = "{engine}"'))
        (r,) = readings
        assert r.error_kind == "unreachable"
        assert "CERTIFICATE_VERIFY_FAILED" in (r.error or "")
        # Trusting the private CA through ca_file makes the same service healthy.
        (readings,) = poll(config_for([("tls", url)], http=trust))
        assert readings[0].ok and readings[0].data["status"] == "ok", readings[0].error
    with http_server(_pass, tls=pki.server_context(require_client_cert=True)) as url:
        (readings,) = poll(config_for([("mtls", url)], http=trust))
        assert readings[0].error_kind == "unreachable", readings[0].data
        # (the reason reads "certificate required" or, when TLS 1.3's alert loses the
        # race with the close, "connection reset by peer")
        mtls = f'{trust}\nclient_cert = "{pki.client_cert}"\nclient_key = "{pki.client_key}"'
        (readings,) = poll(config_for([("mtls", url)], http=mtls))
        assert readings[0].ok and readings[0].data["status"] == "ok", readings[0].error


# ---------------------------------------------------- UltraMarket and history


class Platform:
    """A real UltraMarket-like service whose answers a test changes."""

    def __init__(self) -> None:
        self.health: dict[str, object] = {
            "status": "pass",
            "serviceId": "order-service",
            "version": "2.0.0",
            "draining": False,
            "activeOperations": 3,
        }
        self.code = 200
        self.delay = 0.0
        self.listeners: dict[str, int] = {"order.created": 4, "order.paid": 2}
        self.grow = 0  # listeners added to order.created per /health/memory request

    def __call__(self, req: BaseHTTPRequestHandler) -> None:
        if self.delay:
            time.sleep(self.delay)
        if req.path == "/health":
            respond(req, self.code, json.dumps(self.health))
        elif req.path == "/health/connections":
            respond(req, 200, '{"pool":{"max":5,"active":2,"idle":3,"waiting":1}}')
        elif req.path == "/health/memory":
            self.listeners["order.created"] += self.grow
            body = {
                "rss": 123456789,
                "heapUsed": 45678901,
                "listeners": {
                    "total": sum(self.listeners.values()),
                    "maxPerEvent": 10,
                    "byEvent": self.listeners,
                },
            }
            respond(req, 200, json.dumps(body))
        elif req.path == "/health/security":
            respond(
                req,
                200,
                '{"jwt":{"algorithm":"HS256","accessKeyFingerprint":"sha256:1a2b3c4d5e6f",'
                '"refreshKeyFingerprint":"sha256:0f0f0f0f0f0f","loadedAt":"2026-11-24T10:00:00Z"}}',
            )
        else:
            respond(req, 404, "", "text/plain")


DETAILS = 'detail_paths = ["/health/connections", "/health/memory", "/health/security"]'


def test_ultramarket_details_and_latency():
    plat = Platform()
    with http_server(plat) as base:
        config = config_for([("order-service", base)], DETAILS + '\nlatency_warn = "40ms"')
        (first,) = poll(config)
        d = first[0].data
        assert (d["status"], d["format"], d["draining"], d["active_operations"]) == (
            "ok",
            "ultramarket",
            False,
            3,
        )
        assert d["pool"] == {"max": 5, "active": 2, "idle": 3, "waiting": 1}
        assert d["memory"] == {"rss": 123456789, "heapUsed": 45678901}
        assert d["listeners"]["total"] == 6 and d["listeners"]["maxPerEvent"] == 10
        assert d["security"]["accessKeyFingerprint"] == "sha256:1a2b3c4d5e6f"
        checks = judged(config, first)
        assert checks["service.order-service.health"].status == "ok"
        assert checks["service.order-service.latency"].status == "ok"
        assert checks["service.order-service.listeners"].status == "ok"

        plat.delay = 0.08  # every answer now takes 80 ms
        rounds = poll(config, rounds=3)
        last = rounds[-1][0]
        assert last.data["latency_p95_ms"] >= 80
        assert len(last.data["latency_history"]) == 3
        lat = judged(config, rounds[-1])["service.order-service.latency"]
        assert lat.status == "warning" and lat.value >= 80 and lat.warn == 40


def test_draining_and_failing_health():
    plat = Platform()
    plat.health.update(status="fail", draining=True, activeOperations=1)
    plat.code = 503
    with http_server(plat) as base:
        config = config_for([("order-service", base)])
        (readings,) = poll(config)
    d = readings[0].data
    assert (d["status"], d["draining"], d["active_operations"]) == ("critical", True, 1)
    check = judged(config, readings)["service.order-service.health"]
    assert check.status == "critical"
    assert "draining" in check.summary and "1 active operations" in check.summary


def test_unreachable_counts_and_flaps():
    """Critical on the first poll; later failures warn twice, then critical at 3 in a row."""
    plat = Platform()
    states = iter(["pass", "fail", "pass", "fail"])

    def flapping(req: BaseHTTPRequestHandler) -> None:
        plat.health["status"] = next(states, "pass")
        plat(req)

    async def scenario() -> list[list[Reading]]:
        with http_server(flapping) as base:
            config = config_for([("svc", base)])
            c = ServicesCollector(config, HttpClient(config.http))
            out = [await c.collect() for _ in range(4)]
        # The server is gone now: connection refused from here on.
        out += [await c.collect() for _ in range(3)]
        await c.close()
        return out

    rounds = asyncio.run(scenario())
    config = config_for([("svc", "http://127.0.0.1:1")])
    assert rounds[3][0].data["flaps"] == 3
    statuses = []
    for rnd in rounds[4:]:
        r = rnd[0]
        assert not r.ok and r.error_kind == "unreachable"
        assert len(r.data["latency_history"]) == 4  # kept while unreachable
        statuses.append(judged(config, rnd)["service.svc.health"].status)
    assert [r[0].data["consecutive_failures"] for r in rounds[4:]] == [1, 2, 3]
    assert statuses == ["warning", "warning", "critical"]


def test_listener_leak_warns_then_critical_when_doubled():
    plat = Platform()
    plat.listeners = {"order.created": 5, "order.paid": 5}  # total 10 (11 at first read)
    plat.grow = 1
    with http_server(plat) as base:
        config = config_for([("order-service", base)], 'detail_paths = ["/health/memory"]')
        rounds = poll(config, rounds=12, pause=0.05)
    seen = [judged(config, rnd)["service.order-service.listeners"] for rnd in rounds]
    # Rounds 1-4: too few samples for a trend, every event within 10.
    assert [c.status for c in seen[:4]] == ["ok"] * 4
    trend = rounds[5][0].data["listeners_trend"]
    assert trend["growing"] and trend["r2"] >= 0.8 and trend["baseline"] == 11
    assert seen[5].status == "warning" and "growing" in seen[5].summary
    assert "order.created=" in seen[5].summary  # the event above its limit is named
    # total = 11 + n: doubled from 11 at the 12th round
    assert seen[10].status == "warning"
    assert seen[11].status == "critical" and "doubled" in seen[11].summary


def test_event_above_max_per_event_without_growth():
    plat = Platform()
    plat.listeners = {"order.created": 3, "cart.updated": 14}
    with http_server(plat) as base:
        config = config_for([("cart", base)], 'detail_paths = ["/health/memory"]')
        (readings,) = poll(config)
        c = judged(config, readings)["service.cart.listeners"]
        assert c.status == "warning" and "cart.updated=14" in c.summary
        config = config_for(
            [("cart", base)], 'detail_paths = ["/health/memory"]\nmax_per_event = 20'
        )
        (readings,) = poll(config)
        assert judged(config, readings)["service.cart.listeners"].status == "ok"


def test_check_cli_reports_services(write_config):
    plat = Platform()
    with http_server(plat) as base:
        path = write_config(
            f'[[services]]\nname = "order-service"\nurl = "{base}"\n{DETAILS}\n'
            f'[[services]]\nname = "gone"\nurl = "http://127.0.0.1:{free_port()}"\n'
        )
        res = run_cli("check", "--config", str(path), "--format", "json")
    out = json.loads(res.stdout)
    checks = {c["id"]: c for c in out["checks"]}
    assert checks["service.order-service.health"]["status"] == "ok"
    assert checks["service.gone.health"]["status"] == "critical"
    assert "unreachable" in checks["service.gone.health"]["summary"]
    assert res.returncode == 2


def test_a_slow_service_costs_only_its_own_reading():
    """Inside the poller's deadline: the slow one times out, the others keep their readings."""
    from collectors.poller import Poller

    with http_server(handler) as base:
        config = parse_config(
            '[dashboard]\ncollector_timeout = "1.5s"\n[http]\ntimeout = "5s"\n'
            f'[[services]]\nname = "slow"\nurl = "{base}/bad/slow"\n'
            f'[[services]]\nname = "fine"\nurl = "{base}/fmt/0"\n'
        )

        async def go() -> Snapshot:
            c = ServicesCollector(config, HttpClient(config.http))
            try:
                return await Poller([c], deadline=1.5).poll()
            finally:
                await c.close()

        snap = asyncio.run(go())
    by = {r.target: r for r in snap.readings}
    assert by["fine"].ok and by["fine"].data["status"] == "ok"
    assert by["slow"].error_kind == "unreachable"
    err = by["slow"].error or ""
    assert "timed out after 1.12" in err or "no answer within the 1.125s budget" in err, err


@pytest.mark.parametrize("engine", ["aiohttp", "httpx"])
def test_both_http_engines_cap_the_body_the_same_way(engine: str) -> None:
    from collectors.http import HttpClient
    from tests.helpers import http_server, respond

    with http_server(lambda req: respond(req, 200, b"x" * 5000, "text/plain")) as url:
        client = HttpClient(parse_config(f'[http]\nengine = "{engine}"\nmax_body = 1000\n').http)

        async def fetch():
            try:
                return await client.get(url + "/"), await client.get(url + "/", max_body=10_000)
            finally:
                await client.aclose()

        capped, whole = asyncio.run(fetch())
    assert (capped.status, len(capped.body), capped.truncated) == (200, 1000, True)
    assert (len(whole.body), whole.truncated) == (5000, False)
