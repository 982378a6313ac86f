"""The heap a service reports (/health/memory heapUsed) is judged within the first
minute (service.<name>.heap), where the process RSS slope waits minutes."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

from collectors.core.model import Reading
from collectors.registry import services_refs
from collectors.services.collector import ServicesCollector
from collectors.services.data import Memory, ServiceData
from collectors.services.rules import HEAP_MIN_SPAN
from tests.helpers import http_server, respond
from tests.test_services import config_for, judged, poll

MIB = 1024 * 1024


class Leaky:
    """A real service whose heap grows by `step` bytes per /health/memory answer."""

    def __init__(self, step: int) -> None:
        self.heap = 40 * MIB
        self.step = step

    def __call__(self, req: BaseHTTPRequestHandler) -> None:
        if req.path == "/health":
            respond(req, 200, json.dumps({"status": "pass", "serviceId": "order-service"}))
        elif req.path == "/health/memory":
            self.heap += self.step
            body = {"rss": 3 * self.heap, "heapUsed": self.heap, "listeners": {"total": 4}}
            respond(req, 200, json.dumps(body))
        else:
            respond(req, 404, "", "text/plain")


DETAILS = 'detail_paths = ["/health/memory"]'


async def test_the_reported_heap_and_its_trend_are_read_each_round() -> None:
    with http_server(Leaky(step=512 * 1024)) as base:
        config = config_for([("order-service", base)], DETAILS)
        rounds = await poll(config, rounds=3, pause=0.05)
    trend = rounds[-1][0].data.heap_trend
    assert trend is not None and trend.samples == 3 and trend.rise == 2 * 512 * 1024
    assert trend.baseline == 40 * MIB + 512 * 1024
    check = judged(config, rounds[-1])["service.order-service.heap"]
    # Too short a span for a verdict yet: ok, and says when it will judge.
    assert check.status == "ok" and f"judged after {HEAP_MIN_SPAN:.0f} s" in check.summary
    assert check.value == 40 * MIB + 3 * 512 * 1024


def _reading(collector: ServicesCollector, at: float, heap: int) -> Reading:
    """One round's reading as the collector builds it, at a chosen time: the trend
    is the collector's own fit over the samples it was given."""
    st = collector._state["order-service"]
    trend = collector._heap_trend(st, at, {"heapUsed": heap})
    data = ServiceData(status="ok", memory=Memory(heapUsed=heap), heap_trend=trend)
    return Reading("services", "order-service", at, data=data)


def test_a_growing_heap_warns_within_the_first_minute_then_critical_when_doubled() -> None:
    config = config_for([("order-service", "http://127.0.0.1:9")], DETAILS)
    c = ServicesCollector(services_refs(config))
    t0 = time.time()
    statuses = {}
    for i in range(31):  # a round every 2 s for a minute: +1 MiB each
        r = _reading(c, t0 + 2 * i, 20 * MIB + i * MIB)
        statuses[2 * i] = judged(config, [r])["service.order-service.heap"]
    first_warning = min(t for t, chk in statuses.items() if chk.status != "ok")
    assert first_warning <= 40, first_warning  # judged within the first minute
    assert statuses[first_warning].status == "warning"
    assert "growing 30.0 MiB/min" in statuses[first_warning].summary
    # 20 MiB at first, 40 MiB after 20 rounds: doubled
    assert statuses[38].status == "warning" and statuses[40].status == "critical"
    assert "doubled" in statuses[40].summary


def test_a_steady_heap_and_a_restart_stay_ok() -> None:
    config = config_for([("order-service", "http://127.0.0.1:9")], DETAILS)
    c = ServicesCollector(services_refs(config))
    t0 = time.time()
    wobble = [0, 3, -2, 1, -3, 2, 0, -1, 2, -2, 1, 0, 3, -3, 1, -1, 0, 2, -2, 1, 0]
    last = None
    for i, w in enumerate(wobble):  # 40 s around 50 MiB
        last = judged(config, [_reading(c, t0 + 2 * i, 50 * MIB + w * 100_000)])
    assert last["service.order-service.heap"].status == "ok"
    assert "steady" in last["service.order-service.heap"].summary
    # A restart (far less heap): a new baseline, no growth from the old one.
    after = judged(config, [_reading(c, t0 + 50, 10 * MIB)])["service.order-service.heap"]
    assert after.status == "ok" and c._state["order-service"].heap_baseline == 10 * MIB


async def test_no_heap_reported_is_ok_and_a_failed_path_unknown() -> None:
    def no_heap(req: BaseHTTPRequestHandler) -> None:
        if req.path == "/health":
            respond(req, 200, '{"status": "pass"}')
        elif req.path == "/health/memory":
            respond(req, 200, '{"listeners": {"total": 3}}')
        else:
            respond(req, 404, "", "text/plain")

    with http_server(no_heap) as base:
        config = config_for([("svc", base)], DETAILS)
        (readings,) = await poll(config)
    check = judged(config, readings)["service.svc.heap"]
    assert check.status == "ok" and "no heapUsed" in check.summary

    def broken(req: BaseHTTPRequestHandler) -> None:
        if req.path == "/health":
            respond(req, 200, '{"status": "pass"}')
        else:
            respond(req, 500, "boom", "text/plain")

    with http_server(broken) as base:
        config = config_for([("svc", base)], DETAILS)
        (readings,) = await poll(config)
    check = judged(config, readings)["service.svc.heap"]
    assert check.status == "unknown" and "/health/memory" in check.summary
