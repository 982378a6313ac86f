"""Snapshots built from the Reading.data contracts (COMMON.md), for the TUI's tests,
snapshot baselines, screenshots and bench. Fixed times: replays are deterministic."""

from __future__ import annotations

from typing import Any

from collectors.config import Config, parse_config
from collectors.core.model import Reading, Snapshot
from collectors.processes.data import ProcessData
from collectors.redis.data import Churn, Info, Lock, NodeRow, RedisData
from collectors.services.data import (
    Listeners,
    ListenerTrend,
    Memory,
    Pool,
    Security,
    ServiceData,
)

T0 = 1_795_600_800.0  # 2026-11-25T10:00:00Z
SERVICES = ("order-service", "user-service", "inventory-service", "payment-service")

CONFIG_TOML = """
[dashboard]
interval = "2s"
raise_after = 1
clear_after = 1

[postgres]
dsn = "postgresql://monitor@127.0.0.1:1/ultramarket"
connection_budget = 20

[redis]
url = "redis://127.0.0.1:1/0"

[[services]]
name = "order-service"
url = "http://127.0.0.1:3002"
connection_budget = 5

[[services]]
name = "user-service"
url = "http://127.0.0.1:3001"
connection_budget = 5

[[services]]
name = "inventory-service"
url = "http://127.0.0.1:3003"
connection_budget = 5

[[services]]
name = "payment-service"
url = "http://127.0.0.1:3004"
connection_budget = 5

[secrets]
store = { kind = "dotenv", path = "/nonexistent/.env" }
"""


def config(extra: str = "") -> Config:
    return parse_config(CONFIG_TOML + extra, "test.toml")


def _session(pid: int, service: str, state: str, age: float, **kw: Any) -> Any:
    from collectors.postgres.data import Session

    return Session(
        pid=pid,
        backend_start=T0 - 3600 - pid,
        service=service,
        application_name=service,
        user="app",
        database="ultramarket",
        state=state,
        xact_age_s=age if state != "idle" else None,
        state_age_s=age,
        query_age_s=age,
        wait_event_type=kw.get("wait_event_type"),
        wait_event=kw.get("wait_event"),
        query=kw.get("query", "select 1"),
        blocked_by=kw.get("blocked_by", []),
    )


def postgres(t: float, *, used: int = 12, incident: bool = False) -> Reading:
    from collectors.postgres.data import Blocked, InvariantResult, PostgresData, ServiceCount

    sessions = [
        _session(4100 + i, SERVICES[i % 4], "idle", 30.0 + i, query="COMMIT") for i in range(8)
    ]
    sessions.insert(
        0,
        _session(4001, "order-service", "active", 1.5, query="select * from orders where id = $1"),
    )
    blocked: list[Blocked] = []
    by_service = {s: ServiceCount(count=3, budget=5, application_names=[s]) for s in SERVICES}
    if incident:
        sessions.insert(
            0,
            _session(
                4002,
                "inventory-service",
                "idle in transaction",
                412.0,
                query="update inventory set quantity = quantity - 1 where sku = 'A-7'",
            ),
        )
        sessions.insert(
            1,
            _session(
                4003,
                "order-service",
                "active",
                95.0,
                wait_event_type="Lock",
                wait_event="transactionid",
                query="update inventory set quantity = quantity - 1 where sku = 'A-7'",
                blocked_by=[4002],
            ),
        )
        blocked = [
            Blocked(
                pid=4003,
                service="order-service",
                waiting_s=95.0,
                blocked_by=[4002],
                query="update inventory ...",
            )
        ]
        by_service["order-service"] = ServiceCount(
            count=38, budget=5, application_names=["order-service"]
        )
    return Reading(
        "postgres",
        "main",
        t,
        PostgresData(
            server_version="16.4",
            latency_ms=3.2,
            max_connections=100,
            superuser_reserved=3,
            reserved=0,
            usable=97,
            connections_used=used,
            by_service=by_service,
            by_state={"active": 2, "idle": 8},
            sessions=sessions,
            oldest_xact=None,
            longest_idle_in_xact=None,
            xmin_age=10,
            blocked=blocked,
            invariants={"negative_stock": InvariantResult(value=0, error=None)},
            hidden_fields=[],
        ),
        duration_ms=4.0,
    )


def lock(key: str, owner: str, ttl_ms: int, age_s: float) -> Lock:
    return Lock(
        key=key,
        owner=owner,
        ttl_ms=ttl_ms,
        age_s=age_s,
        kind="redis-py",
        holders=1,
        masters=1,
        quorum=True,
    )


def redis(t: float, *, locks: list[Lock] | None = None) -> Reading:
    locks = (
        locks
        if locks is not None
        else [lock(f"lock:inventory:sku-{i}", f"worker-{i}", 25_000, 2.0 + i) for i in range(5)]
    )
    no_ttl = [lk.key for lk in locks if lk.ttl_ms == -1]
    return Reading(
        "redis",
        "main",
        t,
        RedisData(
            mode="scan",
            scan_complete=True,
            coverage=1.0,
            scanned_keys=len(locks) + 40,
            nodes=[NodeRow(name="127.0.0.1:6379", role="master", reachable=True, error=None)],
            locks=locks,
            locks_total=len(locks),
            no_ttl=no_ttl,
            oldest_age_s=max((lk.age_s for lk in locks), default=None),
            churn=Churn(acquired_per_s=4.0, released_per_s=3.5),
            info=Info(
                connected_clients=14,
                blocked_clients=0,
                used_memory=3_400_000,
                maxmemory=268_435_456,
                maxmemory_policy="noeviction",
                evicted_keys=0,
                evicted_per_s=0.0,
                rejected_connections=0,
                own_commands=3,
            ),
        ),
    )


def service(
    t: float,
    name: str,
    *,
    status: str = "ok",
    rss: int = 120_000_000,
    listeners: int = 12,
    fp: str = "sha256:1a2b3c4d5e6f",
    down: bool = False,
    i: int = 0,
) -> Reading:
    hist = [20.0 + ((i * 7 + k * 3) % 11) for k in range(30)]
    if down:
        return Reading(
            "services",
            name,
            t,
            ServiceData(consecutive_failures=4, latency_history=hist),
            error="connection refused",
            error_kind="unreachable",
            stale_since=t - 12,
        )
    return Reading(
        "services",
        name,
        t,
        ServiceData(
            url="http://127.0.0.1:3002",
            status=status,
            format="ultramarket",
            http_status=200 if status == "ok" else 503,
            message="pass" if status == "ok" else "fail",
            components=[],
            latency_ms=hist[-1],
            latency_p50_ms=22.0,
            latency_p95_ms=31.0,
            latency_history=hist,
            consecutive_failures=0,
            flaps=0,
            draining=False,
            active_operations=3,
            pool=Pool(max=5, active=2, idle=3, waiting=0),
            memory=Memory(rss=rss, heapUsed=rss // 3),
            listeners=Listeners(
                total=listeners,
                maxPerEvent=10,
                byEvent={
                    "order.created": listeners // 2,
                    "order.paid": listeners - listeners // 2,
                },
            ),
            listeners_trend=ListenerTrend(
                slope_per_s=0.0, r2=0.0, baseline=listeners, samples=len(hist), rise=0
            ),
            security=Security(
                algorithm="HS256",
                accessKeyFingerprint=fp,
                refreshKeyFingerprint="sha256:99aa88bb77cc",
                loadedAt="2026-11-24T07:00:00Z",
            ),
        ),
    )


def process(t: float, name: str, *, rss: int = 120_000_000, growth: float = 0.0) -> Reading:
    hist = [rss - int(growth) * (30 - k) * 2 for k in range(30)]
    return Reading(
        "processes",
        name,
        t,
        ProcessData(
            pids=[5000 + len(name)],
            rss_bytes=rss,
            rss_history=hist,
            cpu_percent=3.0,
            fds=40,
            threads=8,
            growth_bytes_per_s=growth,
            growth_r2=0.97 if growth else 0.0,
            time_to_limit_s=(1_073_741_824 - rss) / growth if growth else None,
            memory_limit=1_073_741_824,
        ),
    )


def secrets(t: float, *, weak: bool = False) -> Reading:
    # imported here: each target's builders import their own data types
    from msgspec.structs import replace

    from collectors.secrets.data import KeyInfo, SecretsData, ServiceKeys, StoreInfo

    access = KeyInfo(
        present=True,
        length=64,
        fingerprint="sha256:1a2b3c4d5e6f",
        strength="ok",
        reason="",
        entropy_bits=256.0,
        age_s=86400 * 12,
        rotated_at=None,
        previous_fingerprint=None,
    )
    refresh = replace(access, fingerprint="sha256:99aa88bb77cc")
    if weak:
        access = replace(
            access,
            length=15,
            fingerprint="sha256:0badc0ffee00",
            strength="known-weak",
            reason="in the list of known weak secrets",
            entropy_bits=40.0,
        )
    return Reading(
        "secrets",
        "store",
        t,
        SecretsData(
            store=StoreInfo(kind="dotenv", path="/etc/ultramarket/.env"),
            algorithm="HS256",
            keys={"JWT_SECRET": access, "JWT_REFRESH_SECRET": refresh},
            distinct=True,
            services={
                s: ServiceKeys(fingerprint=access.fingerprint, matches=True, error=None)
                for s in SERVICES
            },
            rotation=None,
            probe=None,
        ),
    )


def snapshot(n: int, *, kind: str = "ok") -> Snapshot:
    """Round n of a scenario: "ok", "incident" or "down" (PostgreSQL and one service down)."""
    t = T0 + 2 * n
    readings: list[Reading] = []
    if kind == "down":
        readings.append(
            Reading(
                "postgres",
                "main",
                t,
                None,
                error="connection refused (127.0.0.1:5432)",
                error_kind="unreachable",
                stale_since=T0 - 12,
            )
        )
    else:
        readings.append(
            postgres(t, used=91 if kind == "incident" else 12 + n % 3, incident=kind == "incident")
        )
    if kind == "incident":
        locks = [
            lock("lock:inventory:sku-A-7", "order-service:7f3a", -1, 1840.0),
            lock("lock:inventory:sku-B-2", "order-service:11c0", 28_000, 95.0),
            *[lock(f"lock:inventory:sku-{i}", f"worker-{i}", 25_000, 2.0 + i) for i in range(4)],
        ]
        readings.append(redis(t, locks=locks))
    else:
        readings.append(redis(t))
    for i, name in enumerate(SERVICES):
        if kind == "down" and name == "payment-service":
            readings.append(service(t, name, down=True, i=i))
        elif kind == "incident" and name == "order-service":
            readings.append(service(t, name, status="warning", listeners=48, i=i))
        else:
            readings.append(service(t, name, i=i))
        growth = 250_000.0 if kind == "incident" and name == "order-service" else 0.0
        readings.append(
            process(
                t, name, rss=300_000_000 + n * 500_000 if growth else 120_000_000, growth=growth
            )
        )
    readings.append(secrets(t, weak=kind == "incident"))
    return Snapshot(round=n + 1, started_at=t, duration_ms=84.0, readings=tuple(readings))


def record(path: Any, kind: str = "ok", rounds: int = 3, cfg: Config | None = None) -> Any:
    from dashboard.recording import Recording

    with Recording(path, keep=None) as rec:
        rec.set_config(cfg or config())
        for n in range(rounds):
            rec.append(snapshot(n, kind=kind))
    return path
