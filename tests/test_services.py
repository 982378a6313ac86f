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
from collectors.core.model import Reading, Snapshot
from collectors.registry import services_refs
from collectors.rules import Rules
from collectors.services.collector import ServicesCollector
from collectors.services.data import Memory, Pool
from collectors.services.rules import listeners_growing
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


async def poll(config: Config, rounds: int = 1, pause: float = 0.0) -> list[list[Reading]]:
    async def go() -> list[list[Reading]]:
        c = ServicesCollector(services_refs(config))
        out = []
        try:
            for i in range(rounds):
                if i and pause:
                    await asyncio.sleep(pause)
                out.append(await c.collect())
        finally:
            await c.close()
        return out

    return await go()


def judged(config: Config, readings: list[Reading]) -> dict[str, object]:
    report = Rules(config).evaluate(Snapshot(1, time.time(), 0.0, tuple(readings)))
    return {c.id: c for c in report.checks}


# ------------------------------------------------------------------ servers


def _slow(req: BaseHTTPRequestHandler) -> None:
    time.sleep(5)
    with contextlib.suppress(OSError):
        respond(req, 200, '{"status":"pass"}')


def _big(req: BaseHTTPRequestHandler) -> None:
    req.send_response(200)
    req.send_header("Content-Type", "application/json")
    req.send_header("Content-Length", str(BIG))
    req.end_headers()
    chunk = b" " * 65536
    with contextlib.suppress(OSError):
        for _ in range(BIG // len(chunk)):
            req.wfile.write(chunk)


def _trickle(req: BaseHTTPRequestHandler) -> None:
    req.send_response(200)
    req.send_header("Content-Type", "application/json")
    req.send_header("Content-Length", "100")
    req.end_headers()
    with contextlib.suppress(OSError):
        for b in b'{"status": "pass"    ':
            req.wfile.write(bytes([b]))
            req.wfile.flush()
            time.sleep(1)


def _reset(req: BaseHTTPRequestHandler) -> None:
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


def _loop(req: BaseHTTPRequestHandler) -> None:
    req.send_response(302)
    req.send_header("Location", req.path)
    req.send_header("Content-Length", "0")
    req.end_headers()


_MISBEHAVING = {"slow": _slow, "big": _big, "trickle": _trickle, "reset": _reset, "loop": _loop}
# what -> (status, body, content type) for the cases one plain answer makes
_ANSWERS: dict[str, tuple[int, str | bytes, str]] = {
    "invalid-json": (200, '{"status": "pass", oops}', "application/json"),
    "html": (
        502,
        "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
        "text/html",
    ),
    "array": (200, '[{"status": "pass"}]', "application/json"),
    "deep": (200, "[" * 200_000 + "]" * 200_000, "application/json"),
    "299": (299, b"", "text/plain"),
    "418": (418, b"", "text/plain"),
}


def _bad(req: BaseHTTPRequestHandler, what: str) -> None:
    if what in _MISBEHAVING:
        _MISBEHAVING[what](req)
        return
    code, body, ctype = _ANSWERS.get(what, (404, "no such case", "text/plain"))
    respond(req, code, body, ctype)


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


async def test_every_format_and_bad_answer_with_others_unharmed():
    refused = f"http://127.0.0.1:{free_port()}"
    with http_server(handler) as base:
        services = [(f"fmt{i}", f"{base}/fmt/{i}") for i in range(len(CASES))]
        services += [(f"bad-{k}", f"{base}/bad/{k}") for k in BAD_CASES]
        services.append(("refused", refused))
        config = config_for(services)
        tracemalloc.start()
        (readings,) = await poll(config)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    by = {r.target: r for r in readings}
    assert set(by) == {name for name, _ in services}
    for i, (code, _ctype, _body, status, fmt, _text) in enumerate(CASES):
        r = by[f"fmt{i}"]
        assert r.ok, r
        assert (r.data.status, r.data.format, r.data.http_status) == (status, fmt, code)
        assert r.data.latency_ms is not None
    for name, (error, status, message) in BAD_CASES.items():
        r = by[f"bad-{name}"]
        if error:
            assert r.error_kind == "unreachable" and error in (r.error or ""), (name, r.error)
            assert r.data.consecutive_failures == 1
        else:
            assert r.ok, (name, r.error)
            assert r.data.status == status, (name, r.data)
            assert message in r.data.message, (name, r.data.message)
    assert by["refused"].error_kind == "unreachable"
    assert "connection refused" in (by["refused"].error or "")
    # The 50 MB body was cut at the 1 MiB cap; the trickle and the sleeper at 1 s.
    assert peak < 20 * 1024 * 1024, peak
    # The 5 s sleeper and the 21 s trickle were each cut at their own 1 s timeout.
    for name in ("slow", "trickle"):
        assert by[f"bad-{name}"].error == "timed out after 1s", by[f"bad-{name}"].error
    checks = judged(config, readings)
    assert checks["service.refused.health"].status == "critical"  # first poll: at once
    assert checks["service.bad-html.health"].status == "critical"
    assert checks["service.bad-array.health"].status == "unknown"
    assert checks["service.fmt0.health"].status == "ok"


def _pass(req: BaseHTTPRequestHandler) -> None:
    respond(req, 200, '{"status":"pass"}')


@pytest.mark.parametrize("engine", ["aiohttp", "httpx"])
async def test_tls_private_ca_and_client_certificate(tmp_path: Path, engine: str) -> None:
    pki = Pki.create(tmp_path)
    trust = f'engine = "{engine}"\nca_file = "{pki.ca_file}"'
    with http_server(_pass, tls=pki.server_context()) as url:
        (readings,) = await poll(config_for([("tls", url)], http=f'engine = "{engine}"'))
        (r,) = readings
        assert r.error_kind == "unreachable"
        assert "CERTIFICATE_VERIFY_FAILED" in (r.error or "")
        # Trusting the private CA through ca_file makes the same service healthy.
        (readings,) = await poll(config_for([("tls", url)], http=trust))
        assert readings[0].ok and readings[0].data.status == "ok", readings[0].error
    with http_server(_pass, tls=pki.server_context(require_client_cert=True)) as url:
        (readings,) = await poll(config_for([("mtls", url)], http=trust))
        assert readings[0].error_kind == "unreachable", readings[0].data
        # (the reason reads "certificate required" or, when TLS 1.3's alert loses the
        # race with the close, "connection reset by peer")
        mtls = f'{trust}\nclient_cert = "{pki.client_cert}"\nclient_key = "{pki.client_key}"'
        (readings,) = await poll(config_for([("mtls", url)], http=mtls))
        assert readings[0].ok and readings[0].data.status == "ok", readings[0].error


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
        self.max_per_event: int | None = 10  # None: the service does not say

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
                    "byEvent": self.listeners,
                },
            }
            if self.max_per_event is not None:
                body["listeners"]["maxPerEvent"] = self.max_per_event  # type: ignore[index]
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


async def test_ultramarket_details_and_latency():
    plat = Platform()
    with http_server(plat) as base:
        config = config_for([("order-service", base)], DETAILS + '\nlatency_warn = "40ms"')
        (first,) = await poll(config)
        d = first[0].data
        assert (d.status, d.format, d.draining, d.active_operations) == (
            "ok",
            "ultramarket",
            False,
            3,
        )
        assert d.pool == Pool(max=5, active=2, idle=3, waiting=1)
        assert d.memory == Memory(rss=123456789, heapUsed=45678901)
        assert d.listeners.total == 6 and d.listeners.maxPerEvent == 10
        assert d.security.accessKeyFingerprint == "sha256:1a2b3c4d5e6f"
        checks = judged(config, first)
        assert checks["service.order-service.health"].status == "ok"
        assert checks["service.order-service.latency"].status == "ok"
        assert checks["service.order-service.listeners"].status == "ok"

        plat.delay = 0.08  # every answer now takes 80 ms
        rounds = await poll(config, rounds=3)
        last = rounds[-1][0]
        assert last.data.latency_p95_ms >= 80
        assert len(last.data.latency_history) == 3
        lat = judged(config, rounds[-1])["service.order-service.latency"]
        assert lat.status == "warning" and lat.value >= 80 and lat.warn == 40


async def test_draining_and_failing_health():
    plat = Platform()
    plat.health.update(status="fail", draining=True, activeOperations=1)
    plat.code = 503
    with http_server(plat) as base:
        config = config_for([("order-service", base)])
        (readings,) = await poll(config)
    d = readings[0].data
    assert (d.status, d.draining, d.active_operations) == ("critical", True, 1)
    check = judged(config, readings)["service.order-service.health"]
    assert check.status == "critical"
    assert "draining" in check.summary and "1 active operations" in check.summary


async def test_unreachable_counts_and_flaps():
    """Critical on the first poll; later failures warn twice, then critical at 3 in a row
    (after an answer that passed: one that failed stays critical, tests/test_health_words.py)."""
    plat = Platform()
    states = iter(["fail", "pass", "fail", "pass"])

    def flapping(req: BaseHTTPRequestHandler) -> None:
        plat.health["status"] = next(states, "pass")
        plat(req)

    async def scenario() -> list[list[Reading]]:
        with http_server(flapping) as base:
            config = config_for([("svc", base)])
            c = ServicesCollector(services_refs(config))
            out = [await c.collect() for _ in range(4)]
        # The server is gone now: connection refused from here on.
        out += [await c.collect() for _ in range(3)]
        await c.close()
        return out

    rounds = await scenario()
    config = config_for([("svc", "http://127.0.0.1:1")])
    assert rounds[3][0].data.flaps == 3
    statuses = []
    for rnd in rounds[4:]:
        r = rnd[0]
        assert not r.ok and r.error_kind == "unreachable"
        assert len(r.data.latency_history) == 4  # kept while unreachable
        statuses.append(judged(config, rnd)["service.svc.health"].status)
    assert [r[0].data.consecutive_failures for r in rounds[4:]] == [1, 2, 3]
    assert statuses == ["warning", "warning", "critical"]


async def test_listener_leak_warns_then_critical_when_doubled():
    plat = Platform()
    plat.listeners = {"order.created": 5, "order.paid": 5}  # total 10 (11 at first read)
    plat.grow = 1
    with http_server(plat) as base:
        config = config_for([("order-service", base)], 'detail_paths = ["/health/memory"]')
        rounds = await poll(config, rounds=12, pause=0.05)
    seen = [judged(config, rnd)["service.order-service.listeners"] for rnd in rounds]
    # Rounds 1-4: too few samples for a trend, every event within 10.
    assert [c.status for c in seen[:4]] == ["ok"] * 4
    trend = rounds[5][0].data.listeners_trend
    assert listeners_growing(trend) and trend.r2 >= 0.8 and trend.baseline == 11
    assert seen[5].status == "warning" and "growing" in seen[5].summary
    assert "order.created=" in seen[5].summary  # the event above its limit is named
    # total = 11 + n: doubled from 11 at the 12th round
    assert seen[10].status == "warning"
    assert seen[11].status == "critical" and "doubled" in seen[11].summary


async def test_event_above_max_per_event_without_growth():
    """The service's own maxPerEvent is the limit; the config's applies when it says none."""
    plat = Platform()
    plat.listeners = {"order.created": 3, "cart.updated": 14}
    with http_server(plat) as base:
        config = config_for([("cart", base)], 'detail_paths = ["/health/memory"]')
        (readings,) = await poll(config)
        c = judged(config, readings)["service.cart.listeners"]
        assert c.status == "warning" and "cart.updated=14" in c.summary
        assert "limit 10 per event (the service's maxPerEvent)" in c.summary
        # A higher max_per_event in the config does not override what the service says.
        raised = config_for(
            [("cart", base)], 'detail_paths = ["/health/memory"]\nmax_per_event = 20'
        )
        (readings,) = await poll(raised)
        c = judged(raised, readings)["service.cart.listeners"]
        assert c.status == "warning" and "limit 10 per event" in c.summary
        # The service allows 20: within its limit.
        plat.max_per_event = 20
        (readings,) = await poll(config)
        c = judged(config, readings)["service.cart.listeners"]
        assert c.status == "ok" and "limit 20 per event (the service's maxPerEvent)" in c.summary
        # The service says nothing: the config's max_per_event (default 10) applies.
        plat.max_per_event = None
        (readings,) = await poll(config)
        c = judged(config, readings)["service.cart.listeners"]
        assert c.status == "warning"
        assert "limit 10 per event (max_per_event from the config)" in c.summary
        (readings,) = await poll(raised)
        c = judged(raised, readings)["service.cart.listeners"]
        assert (
            c.status == "ok" and "limit 20 per event (max_per_event from the config)" in c.summary
        )


async def test_hanging_detail_path_costs_only_its_own_entry():
    """/health answers at once and /health/memory hangs: the service is reachable,
    its /health latency is kept, and detail_errors names the path that did not answer."""
    plat = Platform()

    def handle(req: BaseHTTPRequestHandler) -> None:
        if req.path == "/health/memory":
            time.sleep(8)
            with contextlib.suppress(OSError):
                respond(req, 200, "{}")
        else:
            plat(req)

    with http_server(handle) as base:
        config = parse_config(
            '[dashboard]\ncollector_timeout = "2s"\n[http]\ntimeout = "5s"\n'
            f'[[services]]\nname = "orders"\nurl = "{base}"\n{DETAILS}\n'
        )
        rounds = await poll(config, rounds=2)
    for rnd in rounds:
        (r,) = rnd
        assert r.ok and r.error is None, r.error
        assert r.data.status == "ok" and r.data.latency_ms is not None
        assert r.data.pool == Pool(max=5, active=2, idle=3, waiting=1)
        assert r.data.security.accessKeyFingerprint == "sha256:1a2b3c4d5e6f"
        assert r.data.memory is None and r.data.listeners is None
        # budget 1.5 s (2 s collector deadline - 0.5); details time out at 75 % of it
        assert r.data.detail_errors == {"/health/memory": "timed out after 1.125s"}
    assert rounds[1][0].data.latency_samples == 2
    checks = judged(config, rounds[1])
    health = checks["service.orders.health"]
    assert health.status == "ok"
    assert "detail paths failed: /health/memory (timed out after 1.125s)" in health.summary
    assert checks["service.orders.latency"].status == "ok"


async def test_down_from_the_start_stays_critical():
    """Never answered: critical from the first failed poll, with or without hysteresis."""
    config = config_for([("down", f"http://127.0.0.1:{free_port()}")])
    rounds = await poll(config, rounds=4)
    tui = Rules(config, raise_after=2, clear_after=2)
    plain = Rules(config)
    seen_tui, seen_plain = [], []
    for i, rnd in enumerate(rounds):
        snap = Snapshot(i + 1, time.time(), 0.0, tuple(rnd))
        seen_tui.append(tui.evaluate(snap).checks[0])
        seen_plain.append(plain.evaluate(snap).checks[0])
    assert [c.status for c in seen_plain] == ["critical"] * 4
    # The TUI's raise_after=2 holds a new problem back one round, then it never dips.
    assert [c.status for c in seen_tui][1:] == ["critical"] * 3
    assert "never answered since ultrawatch started" in seen_plain[3].summary
    assert "(4 consecutive polls" in seen_plain[3].summary


async def test_flapping_is_shown_and_warns_at_flap_warn():
    states = iter(["pass", "fail", "pass", "fail", "pass"])
    plat = Platform()

    def flapping(req: BaseHTTPRequestHandler) -> None:
        plat.health["status"] = next(states, "pass")
        plat(req)

    with http_server(flapping) as base:
        config = config_for([("svc", base)], "flap_warn = 4")
        rounds = await poll(config, rounds=5)
    quiet = config_for([("svc", "http://127.0.0.1:1")], "flap_warn = 0")
    first = judged(config, rounds[0])["service.svc.health"]
    assert first.status == "ok" and "flapping" not in first.summary
    third = judged(config, rounds[2])["service.svc.health"]
    assert third.status == "ok" and "flapping: 2 state changes in 15 min" in third.summary
    fifth = judged(config, rounds[4])["service.svc.health"]
    assert fifth.status == "warning" and "flapping: 4 state changes in 15 min" in fifth.summary
    # flap_warn = 0: shown, never warned on.
    off = judged(quiet, rounds[4])["service.svc.health"]
    assert off.status == "ok" and "flapping: 4 state changes" in off.summary


async def test_httpx_engine_ignores_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Health polls go straight to the service on both engines, never through a proxy
    from the environment (here one that does not exist)."""
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, dead_proxy)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    with http_server(_pass) as base:
        for engine in ("httpx", "aiohttp"):
            config = config_for([("direct", base)], http=f'engine = "{engine}"')
            (readings,) = await poll(config)
            assert readings[0].ok and readings[0].data.status == "ok", (engine, readings)


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


async def test_a_slow_service_costs_only_its_own_reading():
    """Inside the poller's deadline: the slow one times out, the others keep their readings."""
    from collectors.poller import Poller

    with http_server(handler) as base:
        config = parse_config(
            '[dashboard]\ncollector_timeout = "1.5s"\n[http]\ntimeout = "5s"\n'
            f'[[services]]\nname = "slow"\nurl = "{base}/bad/slow"\n'
            f'[[services]]\nname = "fine"\nurl = "{base}/fmt/0"\n'
        )

        async def go() -> Snapshot:
            c = ServicesCollector(services_refs(config))
            try:
                return await Poller([c], deadline=1.5).poll()
            finally:
                await c.close()

        snap = await go()
    by = {r.target: r for r in snap.readings}
    assert by["fine"].ok and by["fine"].data.status == "ok"
    assert by["slow"].error_kind == "unreachable"
    err = by["slow"].error or ""
    assert "timed out after 1.12" in err or "no answer within the 1.125s budget" in err, err


@pytest.mark.parametrize("engine", ["aiohttp", "httpx"])
async def test_both_http_engines_cap_the_body_the_same_way(engine: str) -> None:
    from collectors.core.http import HttpClient
    from tests.helpers import http_server, respond

    with http_server(lambda req: respond(req, 200, b"x" * 5000, "text/plain")) as url:
        client = HttpClient(parse_config(f'[http]\nengine = "{engine}"\nmax_body = 1000\n').http)

        async def fetch():
            try:
                return await client.get(url + "/"), await client.get(url + "/", max_body=10_000)
            finally:
                await client.aclose()

        capped, whole = await fetch()
    assert (capped.status, len(capped.body), capped.truncated) == (200, 1000, True)
    assert (len(whole.body), whole.truncated) == (5000, False)


async def test_the_panel_colours_what_the_judge_says_under_each_config() -> None:
    """order-service reports 48 listeners, 24 on each of two events and no maxPerEvent
    of its own: the Services panel colours the listener count as the judged
    `service.<name>.listeners` check says under each config's max_per_event."""
    import dataclasses

    import msgspec

    from collectors.services.data import Listeners
    from dashboard.tui.widgets.base import SyncTable
    from tests import tui_data as td
    from tests.test_tui import WIDE, judged, make_app

    snap = td.snapshot(0, kind="incident")
    mine = next(
        r for r in snap.readings if r.target == "order-service" and r.component == "services"
    )
    data = msgspec.structs.replace(
        mine.data, listeners=Listeners(total=48, byEvent={"order.created": 24, "order.paid": 24})
    )
    snap = dataclasses.replace(
        snap,
        readings=tuple(
            dataclasses.replace(r, data=data) if r is mine else r for r in snap.readings
        ),
    )
    roomy = parse_config(
        td.CONFIG_TOML.replace(
            'name = "order-service"\n', 'name = "order-service"\nmax_per_event = 30\n'
        ),
        "test.toml",
    )

    async def run() -> list[str]:
        app = make_app()
        out = []
        async with app.run_test(size=WIDE) as pilot:
            for n, config in enumerate((td.config(), roomy, td.config())):
                app.absorb(judged(dataclasses.replace(snap, round=n + 1), config))
                app.render_now()
                await pilot.pause()
                cell = app.query_one("#svc-table", SyncTable).get_row("order-service")[6]
                out.append(f"{cell.plain} {cell.style}".strip())
        return out

    assert await run() == ["48 yellow", "48", "48 yellow"]
