"""parse_health / parse_details on real bodies of each health format."""

from __future__ import annotations

import json

import pytest

from collectors.services.health_formats import parse_details, parse_health

J = "application/json"
HJ = "application/health+json"
T = "text/plain"

ULTRAMARKET_OK = json.dumps(
    {
        "status": "pass",
        "serviceId": "order-service",
        "version": "2.0.0",
        "draining": False,
        "activeOperations": 3,
    }
)
ULTRAMARKET_DRAINING = json.dumps(
    {"status": "fail", "serviceId": "order-service", "draining": True, "activeOperations": 1}
)
IETF_WARN = json.dumps(
    {
        "status": "warn",
        "version": "1",
        "releaseId": "1.2.2",
        "notes": [""],
        "output": "",
        "serviceId": "f03e522f-1f44-4062-9b55-9587f91c9c41",
        "description": "health of authz service",
        "checks": {
            "cassandra:responseTime": [
                {
                    "componentId": "dfd6cf2b-1b6e-4412-a0b8-f6f7797a60d2",
                    "componentType": "datastore",
                    "observedValue": 250,
                    "observedUnit": "ms",
                    "status": "warn",
                    "affectedEndpoints": ["/users/{userId}"],
                    "time": "2018-01-17T03:36:48Z",
                    "output": "",
                }
            ],
            "uptime": [
                {
                    "componentType": "system",
                    "observedValue": 1209600.245,
                    "observedUnit": "s",
                    "status": "pass",
                    "time": "2018-01-17T03:36:48Z",
                }
            ],
        },
    }
)
SPRING_DOWN = json.dumps(
    {
        "status": "DOWN",
        "components": {
            "db": {"status": "UP", "details": {"database": "PostgreSQL", "validationQuery": "x"}},
            "diskSpace": {"status": "UP", "details": {"total": 1, "free": 1, "threshold": 1}},
            "broker": {
                "status": "DOWN",
                "components": {
                    "kafka": {"status": "DOWN", "details": {"error": "Connection refused"}},
                    "rabbit": {"status": "UP"},
                },
            },
            "ping": {"status": "UP"},
        },
    }
)
ASPNET_UI = json.dumps(
    {
        "status": "Degraded",
        "totalDuration": "00:00:00.0123",
        "entries": {
            "sql": {
                "data": {},
                "description": "slow queries",
                "duration": "00:00:00.01",
                "status": "Degraded",
                "tags": ["db"],
            },
            "self": {"data": {}, "duration": "00:00:00.0001", "status": "Healthy", "tags": []},
        },
    }
)
TERMINUS_ERROR = json.dumps(
    {
        "status": "error",
        "info": {"database": {"status": "up"}},
        "error": {"redis": {"status": "down", "message": "Could not connect"}},
        "details": {
            "database": {"status": "up"},
            "redis": {"status": "down", "message": "Could not connect"},
        },
    }
)
HEALTH_GO_PARTIAL = json.dumps(
    {
        "status": "Partially Available",
        "timestamp": "2017-01-01T00:00:00.413567856+033:00",
        "failures": {"rabbitmq": "Failed during rabbitmq health check"},
        "system": {
            "version": "go1.8",
            "goroutines_count": 4,
            "total_alloc_bytes": 21321,
            "heap_objects_count": 21323,
            "alloc_bytes": 234523,
        },
        "component": {"name": "myservice", "version": "v1.0"},
    }
)


CASES = [
    # (code, content type, body, status, format, must appear in message or None)
    (200, J, ULTRAMARKET_OK, "ok", "ultramarket", "pass"),
    (503, J, ULTRAMARKET_DRAINING, "critical", "ultramarket", "fail"),
    (200, HJ, json.dumps({"status": "pass"}), "ok", "ietf", None),
    (200, HJ, IETF_WARN, "warning", "ietf", "health of authz service"),
    (503, HJ, json.dumps({"status": "fail", "output": "db down"}), "critical", "ietf", "db down"),
    (200, HJ, json.dumps({"status": "UP"}), "ok", "ietf", None),
    (200, HJ, json.dumps({"status": "maybe"}), "unknown", "ietf", "maybe"),
    (200, J, json.dumps({"status": "UP"}), "ok", "spring", None),
    (503, J, SPRING_DOWN, "critical", "spring", None),
    (503, J, json.dumps({"status": "OUT_OF_SERVICE"}), "critical", "spring", None),
    (200, J, json.dumps({"status": "UNKNOWN"}), "unknown", "spring", None),
    (503, J, json.dumps({"status": "REFUSING_TRAFFIC"}), "critical", "spring", None),
    (200, J, ASPNET_UI, "warning", "aspnetcore", "Degraded"),
    (200, T, "Healthy", "ok", "aspnetcore", None),
    (200, T, "Degraded", "warning", "aspnetcore", None),
    (503, T, "Unhealthy", "critical", "aspnetcore", None),
    (
        200,
        J,
        json.dumps(
            {
                "status": "ok",
                "info": {"db": {"status": "up"}},
                "error": {},
                "details": {"db": {"status": "up"}},
            }
        ),
        "ok",
        "terminus",
        None,
    ),
    (503, J, TERMINUS_ERROR, "critical", "terminus", None),
    (200, J, json.dumps({"status": "ok"}), "ok", "json", None),
    (503, J, json.dumps({"status": "error"}), "critical", "json", None),
    (200, T, "SERVER_IS_READY", "ok", "lightship", None),
    (500, T, "SERVER_IS_NOT_READY", "critical", "lightship", None),
    (500, T, "SERVER_IS_SHUTTING_DOWN", "critical", "lightship", None),
    (
        200,
        J,
        json.dumps(
            {"status": "OK", "timestamp": "2017-01-01T00:00:00Z", "system": {"version": "go1.8"}}
        ),
        "ok",
        "health-go",
        None,
    ),
    (200, J, HEALTH_GO_PARTIAL, "warning", "health-go", None),
    (
        503,
        J,
        json.dumps({"status": "Unavailable", "failures": {"db": "timeout"}}),
        "critical",
        "health-go",
        None,
    ),
    (200, T, "OK", "ok", "text", None),
    (200, T, "ok\n", "ok", "text", None),
    (200, T, "I'm alive and kicking", "ok", "text", "alive and kicking"),
    (503, T, "down for maintenance", "critical", "text", None),
    (200, T, "", "ok", "status-code", None),
    (204, "", "", "ok", "status-code", None),
    (299, "", "", "ok", "status-code", None),
    (302, "", "", "ok", "status-code", None),
    (418, "", "", "critical", "status-code", None),
    (418, T, "I'm a teapot", "critical", "text", "teapot"),
    (200, J, json.dumps({"healthy": False}), "critical", "json", None),
    (200, J, json.dumps({"status": True}), "ok", "json", None),
    # a body that claims health is never better than a 5xx status
    (500, J, json.dumps({"status": "ok"}), "critical", "json", "HTTP 500"),
]


@pytest.mark.parametrize(("code", "ctype", "body", "status", "fmt", "text"), CASES)
def test_formats(code: int, ctype: str, body: str, status: str, fmt: str, text: str | None):
    h = parse_health(code, ctype, body.encode(), False)
    assert (h.status, h.format) == (status, fmt), h
    if text:
        assert text in h.message


def test_components_are_kept():
    spring = parse_health(503, J, SPRING_DOWN.encode())
    comps = {c["name"]: c for c in spring.components}
    assert comps["broker/kafka"]["status"] == "critical"
    assert "Connection refused" in comps["broker/kafka"]["detail"]
    assert comps["db"]["status"] == "ok" and "PostgreSQL" in comps["db"]["detail"]

    ietf = parse_health(200, HJ, IETF_WARN.encode())
    comps = {c["name"].split(" ")[0]: c for c in ietf.components}
    assert comps["cassandra:responseTime"]["status"] == "warning"
    assert comps["cassandra:responseTime"]["detail"].startswith("250 ms")
    assert comps["uptime"]["detail"].startswith("1209600.245 s")

    asp = parse_health(200, J, ASPNET_UI.encode())
    assert [(c["name"], c["status"]) for c in asp.components] == [
        ("sql", "warning"),
        ("self", "ok"),
    ]
    term = parse_health(503, J, TERMINUS_ERROR.encode())
    assert {c["name"]: c["status"] for c in term.components} == {
        "database": "ok",
        "redis": "critical",
    }
    hg = parse_health(200, J, HEALTH_GO_PARTIAL.encode())
    assert hg.components == [
        {"name": "rabbitmq", "status": "warning", "detail": "Failed during rabbitmq health check"}
    ]


def test_ultramarket_fields():
    h = parse_health(200, J, ULTRAMARKET_OK.encode())
    assert h.fields == {
        "draining": False,
        "activeOperations": 3,
        "serviceId": "order-service",
        "version": "2.0.0",
    }
    assert parse_health(500, T, b"SERVER_IS_SHUTTING_DOWN").fields == {"draining": True}


BAD = [
    (200, J, b'{"status": "pass",', "invalid JSON"),
    (200, J, b"[1, 2, 3]", "array"),
    (200, J, b'"ok"', "string"),
    (200, J, b"42", "number"),
    (200, J, b"[" * 100_000 + b"]" * 100_000, "nested"),
    (200, J, b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested"),
    (200, J, json.dumps({"state": "fine"}).encode(), "without a status"),
    (200, J, json.dumps({"status": {"x": 1}}).encode(), "not a word"),
    (200, J, json.dumps({"status": "purple"}).encode(), "unrecognised"),
    (200, "text/html", b"<html><head><title>Welcome</title></head></html>", "HTML page"),
    (200, J, b"\xff\xfe\x00garbage{", "invalid JSON"),
]


@pytest.mark.parametrize(("code", "ctype", "body", "why"), BAD)
def test_bad_bodies_are_unknown_with_a_reason(code: int, ctype: str, body: bytes, why: str):
    h = parse_health(code, ctype, body)
    assert h.status == "unknown"
    assert why in h.message


def test_html_error_page_and_truncation():
    page = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body>"
    h = parse_health(502, "text/html", page)
    assert (h.status, h.format) == ("critical", "html")
    assert "502 Bad Gateway" in h.message
    t = parse_health(200, J, b'{"status": "pass"' + b" " * 100, truncated=True)
    assert t.status == "unknown" and "size cap" in t.message
    assert parse_health(None, "", b"").status == "unknown"


def test_bounded_components():
    many = {"status": "DOWN", "components": {f"c{i}": {"status": "DOWN"} for i in range(1000)}}
    h = parse_health(503, J, json.dumps(many).encode())
    assert h.status == "critical" and len(h.components) == 50
    huge = {"status": "fail", "output": "x" * 100_000}
    assert len(parse_health(503, HJ, json.dumps(huge).encode()).message) <= 300


def test_details():
    assert parse_details(200, b'{"pool":{"max":5,"active":2,"idle":3,"waiting":0}}', False) == {
        "pool": {"max": 5, "active": 2, "idle": 3, "waiting": 0}
    }
    mem = parse_details(
        200,
        json.dumps(
            {
                "rss": 123456789,
                "heapUsed": 45678901,
                "listeners": {"total": 42, "maxPerEvent": 10, "byEvent": {"a": 3, "b": 12}},
            }
        ).encode(),
        False,
    )
    assert mem["memory"] == {"rss": 123456789, "heapUsed": 45678901}
    assert mem["listeners"] == {"total": 42, "maxPerEvent": 10, "byEvent": {"b": 12, "a": 3}}
    sec = parse_details(
        200,
        b'{"jwt":{"algorithm":"HS256","accessKeyFingerprint":"sha256:1a2b3c4d5e6f",'
        b'"refreshKeyFingerprint":"sha256:abcdefabcdef","loadedAt":"2026-11-24T10:00:00Z"}}',
        False,
    )
    assert sec["security"]["accessKeyFingerprint"] == "sha256:1a2b3c4d5e6f"
    for code, body in ((500, b'{"pool":{}}'), (200, b"[1]"), (200, b"nope"), (200, b"[" * 99999)):
        assert parse_details(code, body, False) == {}
