"""Health summaries in the failing component's own words, for the formats real
services speak (IETF health+json, Spring Boot 1.x and 2.x, ASP.NET Core, terminus),
from real HTTP servers; unreachable stays critical once raised; its perfdata agrees."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

import msgspec
import pytest

from collectors.core.model import Report, Snapshot
from collectors.registry import services_refs
from collectors.rules import Rules
from collectors.services.collector import ServicesCollector
from dashboard.headless import format_nagios
from tests import nagios
from tests.helpers import http_server, respond
from tests.test_services import config_for, judged, poll

HJ = "application/health+json"

IETF_FAILING = {
    "status": "fail",
    "notes": [""],
    "output": "",
    "checks": {
        "postgres:connections": [
            {"status": "pass", "observedValue": 12, "observedUnit": "connections"}
        ],
        "redis:responseTime": [
            {
                "status": "fail",
                "observedValue": 2500,
                "observedUnit": "ms",
                "output": "READONLY You can't write against a read only replica",
            }
        ],
    },
}
SPRING_1 = {  # Boot 1.x: each indicator at the top level, its details beside its status
    "status": "DOWN",
    "diskSpace": {"status": "UP", "total": 100, "free": 50, "threshold": 10},
    "db": {
        "status": "DOWN",
        "error": "org.postgresql.util.PSQLException: FATAL: too many connections for role",
    },
}
SPRING_2 = {  # Boot 2.2+: components, each with details
    "status": "DOWN",
    "components": {
        "ping": {"status": "UP"},
        "redis": {
            "status": "DOWN",
            "details": {"error": "RedisConnectionFailureException: Unable to connect to Redis"},
        },
    },
}
ASPNET = {
    "status": "Unhealthy",
    "totalDuration": "00:00:02.01",
    "entries": {
        "self": {"status": "Healthy", "duration": "00:00:00.0001"},
        "sql": {
            "status": "Unhealthy",
            "description": "SQL Server health check failed",
            "exception": "A network-related error occurred while connecting to SQL Server",
            "duration": "00:00:02",
        },
    },
}
TERMINUS = {  # @nestjs/terminus: a HealthCheckError's causes
    "status": "error",
    "info": {"database": {"status": "up"}},
    "error": {"queue": {"status": "down", "message": "bull queue 'orders' has 812 waiting"}},
    "details": {
        "database": {"status": "up"},
        "queue": {"status": "down", "message": "bull queue 'orders' has 812 waiting"},
    },
}
TERMINUS_CAUSES = {  # HealthCheckError(message, {key: {status, ...its own fields}})
    "status": "error",
    "info": {},
    "error": {"dog": {"status": "down", "badboys": 3}},
    "details": {"dog": {"status": "down", "badboys": 3}},
}


def _serve(code: int, body: dict, ctype: str = "application/json") -> Callable:
    def handle(req: BaseHTTPRequestHandler) -> None:
        respond(req, code, json.dumps(body), ctype)

    return handle


@pytest.mark.parametrize(
    ("code", "body", "ctype", "words"),
    [
        (503, IETF_FAILING, HJ, ["redis:responseTime", "READONLY You can't write", "2500 ms"]),
        (503, SPRING_1, "application/json", ["db", "too many connections for role"]),
        (
            503,
            SPRING_2,
            "application/vnd.spring-boot.actuator.v3+json",
            ["redis", "Unable to connect to Redis"],
        ),
        (
            503,
            ASPNET,
            "application/json",
            ["sql", "SQL Server health check failed", "network-related error"],
        ),
        (503, TERMINUS, "application/json", ["queue", "bull queue 'orders' has 812 waiting"]),
        (503, TERMINUS_CAUSES, "application/json", ["dog", "badboys=3"]),
    ],
    ids=["ietf", "spring1", "spring2", "aspnetcore", "terminus", "terminus-causes"],
)
async def test_the_summary_carries_the_failing_components_words(
    code: int, body: dict, ctype: str, words: list[str]
) -> None:
    with http_server(_serve(code, body, ctype)) as base:
        config = config_for([("svc", base)])
        (readings,) = await poll(config)
    check = judged(config, readings)["service.svc.health"]
    assert check.status == "critical"
    assert "not ok: " in check.summary
    for w in words:
        assert w in check.summary, check.summary
    assert "['" not in check.summary  # no Python list reprs
    # The healthy components are not blamed.
    for healthy in ("postgres:connections", "diskSpace", "ping", "self", "database"):
        assert f"not ok: {healthy}" not in check.summary


async def test_notes_are_words_not_a_list() -> None:
    body = {"status": "warn", "notes": ["", "replica lag over 5 s", ""], "output": ""}
    with http_server(_serve(200, body, HJ)) as base:
        config = config_for([("svc", base)])
        (readings,) = await poll(config)
    check = judged(config, readings)["service.svc.health"]
    assert check.status == "warning"
    assert check.summary.startswith("warn: replica lag over 5 s; ietf format"), check.summary
    assert "[" not in check.summary


async def test_plain_http_is_not_called_ssl() -> None:
    config = config_for([("svc", "http://127.0.0.1:1")])
    (readings,) = await poll(config)
    check = judged(config, readings)["service.svc.health"]
    assert check.status == "critical" and "connection refused" in check.summary
    assert "ssl" not in check.summary.lower()


async def test_a_failing_service_that_stops_answering_stays_critical_until_it_answers() -> None:
    """The issue: draining (503 fail), then gone, read critical -> warning -> warning ->
    critical. Now critical throughout, ok as soon as it answers again."""
    answer = {"status": "fail", "draining": True, "activeOperations": 1}

    def handle(req: BaseHTTPRequestHandler) -> None:
        respond(req, 200 if answer["status"] == "pass" else 503, json.dumps(answer))

    rules: Rules  # one judge across rounds, as --watch and the TUI
    statuses: list[str] = []
    perf: list[tuple[str, str, list[str]]] = []

    def judge(readings: list) -> None:
        report = rules.evaluate(Snapshot(len(statuses) + 1, time.time(), 0.0, tuple(readings)))
        check = report.check("service.svc.health")
        assert check is not None
        statuses.append(check.status.value)
        if check.value is not None:
            field = nagios.parse(format_nagios(Report(report.snapshot, (check,)))).perf
            perf.append(field["service.svc.health"])
            assert nagios.derived_status(perf[-1]) == check.status.value, (check, perf[-1])

    with http_server(handle) as base:
        config = config_for([("svc", base)])
        rules = Rules(config)
        c = ServicesCollector(services_refs(config))
        judge(await c.collect())  # answers: 503 fail, draining
    try:
        for _ in range(4):  # gone: connection refused
            judge(await c.collect())
        answer.update(status="pass", draining=False, activeOperations=0)
        with http_server(handle) as again:
            # Restarted (on another port here): the same collector follows it there.
            c.services = [msgspec.structs.replace(s, url=again) for s in c.services]
            judge(await c.collect())
    finally:
        await c.close()
    assert statuses == ["critical"] * 5 + ["ok"]
    assert [p[0] for p in perf] == ["1", "2", "3", "4"]  # the failed polls, each critical


async def test_an_answering_service_gone_warns_then_critical_with_perfdata_to_match() -> None:
    with http_server(_serve(200, {"status": "pass"}, HJ)) as base:
        config = config_for([("svc", base)])
        c = ServicesCollector(services_refs(config))
        await c.collect()
    try:
        rounds = [await c.collect() for _ in range(3)]
    finally:
        await c.close()
    checks = [judged(config, r)["service.svc.health"] for r in rounds]
    assert [ch.status for ch in checks] == ["warning", "warning", "critical"]
    for ch in checks:
        field = nagios.parse(format_nagios(Report(Snapshot(1, 0.0, 0.0, ()), (ch,)))).perf[
            "service.svc.health"
        ]
        assert nagios.derived_status(field) == ch.status.value
        assert field[2], field  # the ranges are there


async def test_never_answered_prints_perfdata_that_reads_critical() -> None:
    """`health=1;;3` read as ok while the check said critical."""
    config = config_for([("svc", "http://127.0.0.1:1")])
    (readings,) = await poll(config)
    check = judged(config, readings)["service.svc.health"]
    field = nagios.parse(format_nagios(Report(Snapshot(1, 0.0, 0.0, ()), (check,)))).perf[
        "service.svc.health"
    ]
    assert check.status == "critical" and nagios.derived_status(field) == "critical"
