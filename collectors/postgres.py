"""PostgreSQL: one connection for the whole tool, never a pool.

Every monitoring query runs under `statement_timeout`; the tool's own backend
is excluded from every count.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

from collectors.config import Config, PostgresConfig
from collectors.model import Reading

APPLICATION_NAME = "ultrawatch"

CAPACITY_SQL = sql.SQL(
    """
    select
      current_setting('server_version') as server_version,
      current_setting('max_connections')::int as max_connections,
      current_setting('superuser_reserved_connections')::int as superuser_reserved,
      coalesce(current_setting('reserved_connections', true), '0')::int as reserved,
      (select count(*) from pg_stat_activity
        where backend_type = 'client backend' and pid <> pg_backend_pid()) as used
    """
)


class PostgresCollector:
    component = "postgres"

    def __init__(self, config: Config) -> None:
        assert config.postgres is not None
        self.settings: PostgresConfig = config.postgres
        self.conn: psycopg.AsyncConnection[Any] | None = None

    def targets(self) -> list[str]:
        return [self.settings.name]

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self.conn is not None and not self.conn.closed and not self.conn.broken:
            return self.conn
        await self.close()
        s = self.settings
        self.conn = await psycopg.AsyncConnection.connect(
            s.dsn,
            application_name=APPLICATION_NAME,
            autocommit=True,
            connect_timeout=max(1, round(s.connect_timeout)),
            options=f"-c statement_timeout={int(s.statement_timeout * 1000)}",
        )
        return self.conn

    async def collect(self) -> list[Reading]:
        started = time.time()
        t0 = time.perf_counter()
        try:
            conn = await self._connect()
            t1 = time.perf_counter()
            async with conn.cursor() as cur:
                await cur.execute(CAPACITY_SQL)
                row = await cur.fetchone()
            latency_ms = (time.perf_counter() - t1) * 1000
        except psycopg.Error as e:
            await self.close()
            return [
                Reading(
                    "postgres",
                    self.settings.name,
                    started,
                    error=_one_line(e),
                    error_kind="unreachable",
                    duration_ms=(time.perf_counter() - t0) * 1000,
                )
            ]
        assert row is not None
        version, max_conn, su_reserved, reserved, used = row
        data = {
            "server_version": version,
            "latency_ms": round(latency_ms, 2),
            "max_connections": max_conn,
            "superuser_reserved": su_reserved,
            "reserved": reserved,
            "usable": max_conn - su_reserved - reserved,
            "connections_used": used,
        }
        return [
            Reading(
                "postgres",
                self.settings.name,
                started,
                data=data,
                duration_ms=(time.perf_counter() - t0) * 1000,
            )
        ]

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and not conn.closed:
            try:
                await conn.close()
            except psycopg.Error:
                pass


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
