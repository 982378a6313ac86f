"""The embedded UltraMarket: PostgreSQL, Redis, four services, shoppers, and its config.

`Platform.start()` brings it all up and returns once every service answers
/health, having written DIR/ultrawatch.toml; `Platform.stop()` takes it all
down again (services first, then the shoppers, Redis and PostgreSQL).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import redis

from collectors.config import parse_config
from collectors.core.files import atomic_write
from collectors.core.redact import mask_url
from dashboard.demo import schema
from dashboard.demo.demo_config import render_config
from dashboard.demo.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedUnavailable, free_port
from dashboard.demo.pgbouncer import EmbeddedPgBouncer
from dashboard.demo.scenarios import Scenario
from dashboard.demo.supervisor import ServiceProcess, Supervisor
from dashboard.demo.workload import Workload

log = logging.getLogger("ultrawatch.demo")

SERVICES = ("product-service", "order-service", "payment-service", "user-service")
BUDGET = 5  # connections per service; 20 for the platform
GRACE_S = 10  # the previous JWT secret's life after a rotation
DATABASE = "ultramarket"
STARTUP_TIMEOUT_S = 60.0


class RedisLocksInUse(RuntimeError):
    """--redis-url names a Redis that already holds inventory locks."""


class Platform:
    def __init__(
        self,
        state_dir: Path,
        scenario: Scenario,
        *,
        postgres_dsn: str | None = None,
        redis_url: str | None = None,
        force_redis_locks: bool = False,
        pgbouncer: bool = False,
        audit_log: Path | None = None,
    ) -> None:
        self.dir = state_dir.resolve()
        # Where the console's actions are audited (default: in the state dir).
        self.audit_log = audit_log or self.dir / "audit.jsonl"
        self.scenario = scenario
        self.external_dsn = postgres_dsn
        self.external_redis = redis_url
        self.force_redis_locks = force_redis_locks
        self.use_pgbouncer = pgbouncer
        self.pgbouncer: EmbeddedPgBouncer | None = None
        self.planted: dict[str, str] = {}  # the stuck locks we wrote: key -> token
        self.pg: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        self.supervisor: Supervisor | None = None
        self.workload: Workload | None = None
        self.dsn = ""
        self.redis_url = ""
        self.config_path = self.dir / "ultrawatch.toml"
        self.env_path = self.dir / ".env"
        self.urls: dict[str, str] = {}

    # ------------------------------------------------------------------ start

    def start(self) -> str:
        """Bring everything up; returns the config text (also written to config_path)."""
        t0 = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        atomic_write(self.env_path, self.scenario.dotenv().encode())
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            pg = pool.submit(self._start_postgres)
            rd = pool.submit(self._start_redis)
            self.dsn, self.redis_url = pg.result(), rd.result()
        client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        try:
            if not self.external_redis:
                schema.clear_locks(client)  # our own server: anything there is ours
            elif not self.force_redis_locks:
                self._refuse_locks_in_use(client)  # before anything is written anywhere
            schema.create_schema(self.dsn)
            if self.scenario.stuck_lock:
                self.planted = schema.plant_stuck_locks(client)
        finally:
            client.close()
        log.info("data stores ready in %.1fs", time.monotonic() - t0)
        services_dsn = self.dsn
        if self.use_pgbouncer:
            self.pgbouncer = start_pooler(self.dir / "pgbouncer", self.dsn)
            services_dsn = self.pgbouncer.dsn("app", DATABASE)
            log.info("PgBouncer on port %d in front of PostgreSQL", self.pgbouncer.port)

        procs = []
        for name in SERVICES:
            port = free_port()
            self.urls[name] = f"http://127.0.0.1:{port}"
            args = ["--dsn", services_dsn, "--redis-url", self.redis_url]
            args += ["--pooled"] if self.pgbouncer is not None else []
            args += ["--env-file", str(self.env_path), "--budget", str(BUDGET)]
            args += ["--grace", str(GRACE_S)]
            procs.append(
                ServiceProcess(
                    name,
                    port,
                    args,
                    self.scenario.service_faults(name),
                    self.dir / "logs" / f"{name}.log",
                )
            )
        self.supervisor = Supervisor(procs, on_event=lambda m: log.info("%s", m))
        self.supervisor.start()
        self._wait_healthy()
        self.workload = Workload(self.urls, self.dsn)
        self.workload.start()

        text = render_config(
            scenario=self.scenario.name,
            dsn=self.dsn,
            redis_url=self.redis_url,
            services=[(p.name, self.urls[p.name], BUDGET) for p in procs],
            env_path=self.env_path,
            audit_log=self.audit_log,
            grace_s=GRACE_S,
            invariants=schema.INVARIANTS,
            pgbouncer_dsn=self.pgbouncer.admin_dsn() if self.pgbouncer else None,
            pooled_database=DATABASE,
        )
        parse_config(text, str(self.config_path))  # never hand out a config we cannot read
        atomic_write(self.config_path, text.encode())  # 0600: a DSN may hold a password
        log.info("platform up in %.1fs", time.monotonic() - t0)
        return text

    def _refuse_locks_in_use(self, client: redis.Redis) -> None:
        """An existing Redis that already has lock:inventory:* keys may be a real
        platform's: the demo's services would contend for its locks, and its
        stuck-lock scenario would overwrite two of them."""
        found = schema.existing_locks(client)
        if found:
            raise RedisLocksInUse(
                f"{mask_url(self.redis_url)} already holds {schema.LOCK_PREFIX}* keys "
                f"({', '.join(found)}{', ...' if len(found) >= 3 else ''}): they may be a "
                "real platform's inventory locks, which the demo's services would take and "
                "its stuck-lock scenario overwrite. Use another Redis or database "
                "(redis://host:port/N), or --force-redis-locks to use this one anyway."
            )

    def _start_postgres(self) -> str:
        if self.external_dsn:
            return self.external_dsn
        self.pg = EmbeddedPostgres(self.dir / "pg", settings={"max_connections": 100})
        left = _postmaster_pid(self.pg)
        if left is not None and _alive(left, "postgres", 0):
            # An earlier demo in this state dir was killed without cleaning up.
            log.warning("stopping the PostgreSQL an earlier demo left running (pid %d)", left)
            self.pg.init()
            self.pg.running = True
            _stop_postgres(self.pg)
        self.pg.start()
        if not self.pg.psql(f"select 1 from pg_database where datname = '{DATABASE}'").strip():
            self.pg.psql(f"create database {DATABASE}")
        return self.pg.dsn("postgres", DATABASE)

    def _start_redis(self) -> str:
        if self.external_redis:
            return self.external_redis
        pidfile = self.dir / "redis" / "redis.pid"
        with contextlib.suppress(OSError, ValueError):
            left = int(pidfile.read_text().strip())
            if _alive(left, "redis-server", 0):
                log.warning("stopping the Redis an earlier demo left running (pid %d)", left)
                os.kill(left, signal.SIGTERM)
                _alive(left, "redis-server", 5.0)
        self.redis = EmbeddedRedis(self.dir / "redis", args=["--pidfile", str(pidfile)])
        self.redis.start()
        return self.redis.url

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        waiting = set(self.urls)
        while waiting:
            for name in sorted(waiting):
                if _health_ok(self.urls[name]):
                    waiting.discard(name)
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"services not healthy after {STARTUP_TIMEOUT_S:.0f}s: {', '.join(waiting)} "
                    f"(see {self.dir / 'logs'})"
                )
            time.sleep(0.1)

    # ------------------------------------------------------------------- stop

    def stop(self) -> None:
        """Everything down, in order; safe to call twice and after a failed start."""
        t0 = time.monotonic()
        if self.supervisor is not None:
            log.info("stopping the services")
            self.supervisor.stop()
        if self.workload is not None:
            self.workload.stop()
        if self.external_redis and self.redis_url and self.planted:
            # Only the stuck locks we planted, and only while they still hold our
            # token; the services released their own as they drained.
            with contextlib.suppress(redis.RedisError):
                client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
                schema.remove_planted(client, self.planted)
                client.close()
            self.planted = {}
        if self.pgbouncer is not None:
            log.info("stopping PgBouncer")
            self.pgbouncer.cleanup()
        if self.redis is not None:
            log.info("stopping Redis")
            self.redis.stop()
        if self.pg is not None:
            log.info("stopping PostgreSQL")
            _stop_postgres(self.pg)
        log.info("stopped in %.1fs", time.monotonic() - t0)

    def status(self) -> dict[str, Any]:
        """What the supervisor saw: for logs and tests."""
        sup = self.supervisor
        return {
            "services": {
                s.name: {
                    "pid": s.proc.pid if s.proc else None,
                    "generation": s.generation,
                    "exits": list(s.exits),
                }
                for s in (sup.services if sup else [])
            },
            "workload": dict(self.workload.counts) if self.workload else {},
        }


POOL_SIZE = 5  # the pooler's server connections for the services (PgBouncer's default is 20)


def start_pooler(base: Path, dsn: str) -> EmbeddedPgBouncer:
    """A real PgBouncer in transaction pooling in front of `dsn`'s server: the
    services log in as `app`, ultrawatch reads as `admin` (its admin_users)."""
    import secrets

    from psycopg.conninfo import conninfo_to_dict

    server = conninfo_to_dict(dsn)
    parts = {k: server[k] for k in ("host", "port", "user", "password") if server.get(k)}
    conn = " ".join(f"{k}={v}" for k, v in parts.items())
    users = {"admin": secrets.token_urlsafe(16), "app": secrets.token_urlsafe(16)}
    pooled = {DATABASE: f"{conn} dbname={server.get('dbname') or DATABASE} pool_size={POOL_SIZE}"}
    return EmbeddedPgBouncer(base, pooled, users, stats_users=()).start()


def _stop_postgres(pg: EmbeddedPostgres) -> None:
    """pg_ctl stop, then make sure: a postmaster left behind would outlive the demo."""
    pid = _postmaster_pid(pg)
    if not pg.running:
        return
    pg.running = False
    try:  # pg.stop() without hiding why it failed
        pg._run([pg.bin("pg_ctl"), "-D", str(pg.data_dir), "-m", "fast", "-w", "stop"], 60)
    except (EmbeddedUnavailable, subprocess.TimeoutExpired) as e:
        log.warning("pg_ctl stop failed: %s", str(e)[-500:])
    if pid is None or not _alive(pid, "postgres", 5.0):
        return
    log.warning("PostgreSQL (pid %d) still running after pg_ctl stop; shutting it down", pid)
    for sig in (signal.SIGQUIT, signal.SIGKILL):  # immediate shutdown, then no choice
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if not _alive(pid, "postgres", 5.0):
            return


def _postmaster_pid(pg: EmbeddedPostgres) -> int | None:
    try:
        return int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int, name: str, wait: float) -> bool:
    """Whether `pid` is still a running `name` process after up to `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or name not in proc.name():
                return False
        except psutil.NoSuchProcess:
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)


def _health_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
            return r.status == 200 and json.loads(r.read()).get("status") == "pass"
    except (OSError, urllib.error.URLError, ValueError):
        return False
