"""The ultrawatch.toml the demo writes for itself: a complete config for its platform."""

from __future__ import annotations

import json
from pathlib import Path

STALE_AFTER = "20s"  # the planted stale lock is already 10 minutes old
MEMORY_LIMIT = "1GiB"
DETAIL_PATHS = ["/health/connections", "/health/memory", "/health/security"]


def _q(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value)


def cmdline_pattern(service: str, port: int) -> str:
    """A regex matching that service's process and nothing else: not ours, not a test's,
    not the same service of another demo running beside this one (hence the port)."""
    return rf"dashboard[.]demo[.]service --name {service} --port {port}( |$)"


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def render_config(
    *,
    scenario: str,
    dsn: str,
    redis_url: str,
    services: list[tuple[str, str, int]],
    env_path: Path,
    audit_log: Path,
    grace_s: float,
    invariants: dict[str, str],
    pgbouncer_dsn: str | None = None,
    pooled_database: str = "ultramarket",
) -> str:
    budget = sum(b for _, _, b in services)
    lines = [
        f"# Written by `ultrawatch demo` (scenario {scenario}); valid while the demo runs.",
        "",
        "[dashboard]",
        'interval = "2s"',
        "",
        "[postgres]",
        f"dsn = {_q(dsn)}",
        f"connection_budget = {budget}",
    ]
    for name, sql in invariants.items():
        lines += ["", "[[postgres.invariants]]", f"name = {_q(name)}", f"sql = {_q(sql)}"]
        lines.append("crit_above = 0")
    lines += [
        "",
        "[redis]",
        f"url = {_q(redis_url)}",
        'lock_patterns = ["lock:*"]',
        f"stale_after = {_q(STALE_AFTER)}",
    ]
    for name, url, svc_budget in services:
        lines += [
            "",
            "[[services]]",
            f"name = {_q(name)}",
            f"url = {_q(url)}",
            'health_path = "/health"',
            f"detail_paths = [{', '.join(_q(p) for p in DETAIL_PATHS)}]",
            f"pg_application_name = {_q(name)}",
            f"connection_budget = {svc_budget}",
            f"process = {{ cmdline = {_q(cmdline_pattern(name, _port(url)))} }}",
            'drain = { path = "/admin/drain", timeout = "60s" }',
            f"memory_limit = {_q(MEMORY_LIMIT)}",
        ]
    if pgbouncer_dsn is not None:
        lines += [
            "",
            "[pgbouncer]",
            f"dsn = {_q(pgbouncer_dsn)}",
            f"databases = [{_q(pooled_database)}]",
        ]
    lines += [
        "",
        "[secrets]",
        f'store = {{ kind = "dotenv", path = {_q(str(env_path))} }}',
        'keys = ["JWT_SECRET", "JWT_REFRESH_SECRET"]',
        'algorithm = "HS256"',
        f'access_token_lifetime = "{grace_s:g}s"',
        f'grace_period = "{grace_s:g}s"',
        'probe = { service = "user-service", path = "/api/admin/me" }',
        "",
        "[actions]",
        "enabled = true",
        f"audit_log = {_q(str(audit_log))}",
        "",
    ]
    return "\n".join(lines)
