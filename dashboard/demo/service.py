"""One UltraMarket service of the demo: `python -m dashboard.demo.service --name order-service`.

An aiohttp server on 127.0.0.1 implementing the UltraMarket health contract of
DESIGN.md (/health, /health/connections, /health/memory, /health/security, the
JWT-protected /admin/* endpoints and /api/admin/me), a psycopg pool of at most
its connection budget (application_name = the service name), and its share of
the shop: products, orders (under a redis-py Lock), payments, users.

The faults of a scenario are switched on by arguments (--storm, --leak,
--slow-ops); the supervisor gives them to a service's first generation only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import faulthandler
import logging
import os
import random
import signal
import sys
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psutil
import psycopg
import redis.asyncio as aioredis
from aiohttp import web
from psycopg_pool import AsyncConnectionPool
from redis.exceptions import LockError, RedisError

from dashboard.demo.schema import SCHEMA, lock_key
from dashboard.demo.service_parts import Emitter, Secrets, authorize

VERSION = "2.0.0"
LOCK_TTL_S = 10.0  # an order's inventory lock expires by itself if we die holding it
LOCK_WAIT_S = 2.0  # how long an order waits for a busy product before it fails
DRAIN_TIMEOUT_S = 60.0
LEAK_EVERY_S = 0.5
LEAK_CHUNK = 256 * 1024  # bytes kept alive per leaked listener: ~0.5 MiB/s
LEAK_CAP = 384 * 1024 * 1024  # the leak stops growing here so the demo never eats the machine

log = logging.getLogger("ultramarket")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Service:
    def __init__(self, args: argparse.Namespace) -> None:
        self.name: str = args.name
        self.args = args
        self.secrets = Secrets(args.env_file, grace_s=args.grace)
        self.emitter = Emitter(max_per_event=10)
        self.pool = AsyncConnectionPool(
            args.dsn,
            min_size=1,
            max_size=max(1, args.budget),
            kwargs={"application_name": self.name, "autocommit": True, **_pooled(args)},
            check=AsyncConnectionPool.check_connection,
            timeout=5,
            open=False,
            name=self.name,
        )
        self.redis: aioredis.Redis | None = (
            aioredis.Redis.from_url(args.redis_url, socket_timeout=5) if args.redis_url else None
        )
        self.draining = False
        self.closing = False
        self.active = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.exit_event = asyncio.Event()
        self.undrained = asyncio.Event()
        self.drain_task: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.storm: list[psycopg.AsyncConnection[Any]] = []
        self.leaked: list[bytes] = []
        self.held_locks: set[Any] = set()
        self.process = psutil.Process()
        self.started = time.time()
        for event in ("order.created", "order.created", "order.created"):
            self.emitter.on(event, _noop)  # email, analytics, search index: the baseline
        self.emitter.on("order.failed", _noop)
        self.emitter.on("payment.settled", _noop)

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self.secrets.load()
        await self.pool.open(wait=False)
        if self.args.storm:
            self._spawn(self._storm(self.args.storm))
        if self.args.leak:
            self._spawn(self._leak())
        for _ in range(self.args.slow_ops):
            self._spawn(self._slow_operations())

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @contextlib.asynccontextmanager
    async def operation(self) -> AsyncIterator[None]:
        """Track in-flight work: a drain waits until none is left."""
        self.active += 1
        self.idle.clear()
        try:
            yield
        finally:
            self.active -= 1
            if self.active == 0:
                self.idle.set()

    async def drain(self, timeout: float = DRAIN_TIMEOUT_S) -> None:
        """Stop taking work, finish in-flight work, release locks, close connections, exit 0."""
        log.info("draining: %d operations in flight", self.active)
        waiter = asyncio.ensure_future(self.idle.wait())
        undrain = asyncio.ensure_future(self.undrained.wait())
        done, _ = await asyncio.wait(
            {waiter, undrain}, timeout=timeout, return_when="FIRST_COMPLETED"
        )
        waiter.cancel()
        undrain.cancel()
        if undrain in done:
            log.info("undrained: taking work again")
            self.undrained.clear()
            self.draining = False
            return
        self.closing = True  # past the point of no return: undrain is refused
        if waiter not in done:
            log.warning("drain timeout: %d operations still in flight", self.active)
        try:
            await asyncio.wait_for(self.close_resources(), 10)
        except TimeoutError:
            log.warning("closing connections took too long; exiting anyway")
        log.info("drained: exiting")
        # Answer "0 in flight" for a moment before exiting: a drain verifies only on a
        # last count of 0 it has seen (it polls every 0.25 s, slower under load).
        await asyncio.sleep(1.0)
        self.exit_event.set()

    async def close_resources(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for lock in list(self.held_locks):
            try:
                await lock.release()
            except (LockError, RedisError) as e:  # e.g. Redis stopped before us
                log.warning("lock release failed: %s: %s", type(e).__name__, e)
        self.held_locks.clear()
        for conn in self.storm:
            with contextlib.suppress(Exception):
                await conn.close()
        self.storm.clear()
        self.leaked.clear()
        with contextlib.suppress(Exception):
            await self.pool.close(timeout=5)
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()

    # ---------------------------------------------------------------- faults

    async def _storm(self, n: int) -> None:
        """The connection storm: idle connections outside the pool, never reopened.
        Behind PgBouncer (--pooled) an idle client holds no server connection, so
        there each one opens a transaction and sits in it: the first pool_size take
        every server connection, the others queue in the pooler with everyone else."""
        for _ in range(n):
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.args.dsn, application_name=self.name, autocommit=True, **_pooled(self.args)
                )
                if self.args.pooled:
                    self._spawn(_hold_transaction(conn))
                else:
                    await conn.execute("select 1")
                self.storm.append(conn)
            except psycopg.Error as e:
                log.warning("storm connection failed: %s", e)
        log.info(
            "storm: holding %d idle connections (budget %d)", len(self.storm), self.args.budget
        )

    async def _leak(self) -> None:
        """A listener per tick that is never removed, each keeping real memory alive."""
        while True:
            await asyncio.sleep(LEAK_EVERY_S)
            if len(self.leaked) * LEAK_CHUNK < LEAK_CAP:
                chunk = os.urandom(LEAK_CHUNK)  # random bytes: every page really touched
                self.leaked.append(chunk)
                self.emitter.on("order.created", lambda _e, _c=chunk: None)
            elif self.emitter.count("order.created") < 2000:
                self.emitter.on("order.created", _noop)

    async def _slow_operations(self) -> None:
        """Fulfilment jobs that each take seconds: a drain must wait for them."""
        while True:
            if self.draining:  # no new job; an undrain resumes them
                await asyncio.sleep(0.2)
                continue
            async with self.operation():
                await asyncio.sleep(random.uniform(2.5, 4.5))
                with contextlib.suppress(psycopg.Error, TimeoutError):
                    async with self.pool.connection() as conn:
                        await conn.execute(
                            f"update {SCHEMA}.orders set status = 'fulfilled' where id = "
                            f"(select max(id) from {SCHEMA}.orders where status = 'created')"
                        )
            await asyncio.sleep(0.2)

    # -------------------------------------------------------------- handlers

    def health_body(self) -> dict[str, Any]:
        return {
            "status": "fail" if self.draining else "pass",
            "serviceId": self.name,
            "version": VERSION,
            "draining": self.draining,
            "activeOperations": self.active,
        }

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(self.health_body(), status=503 if self.draining else 200)

    async def health_connections(self, request: web.Request) -> web.Response:
        stats = self.pool.get_stats()
        size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
        pool = {
            "max": self.pool.max_size,
            "active": max(0, size - available),
            "idle": available,
            "waiting": stats.get("requests_waiting", 0),
        }
        return web.json_response({"pool": pool})

    async def health_memory(self, request: web.Request) -> web.Response:
        mem = self.process.memory_info()
        return web.json_response(
            {"rss": mem.rss, "heapUsed": mem.data, "listeners": self.emitter.snapshot()}
        )

    async def health_security(self, request: web.Request) -> web.Response:
        return web.json_response({"jwt": self.secrets.describe()})

    async def admin_drain(self, request: web.Request) -> web.Response:
        if not self.draining:
            self.draining = True
            self.drain_task = asyncio.ensure_future(self.drain())
        return web.json_response({"draining": True, "activeOperations": self.active}, status=202)

    async def admin_undrain(self, request: web.Request) -> web.Response:
        if self.closing:
            return web.json_response(
                {**self.health_body(), "error": "already stopping"}, status=409
            )
        if self.draining:
            self.draining = False  # taking work again from now on
            self.undrained.set()
        return web.json_response(self.health_body())

    async def admin_reload(self, request: web.Request) -> web.Response:
        try:
            self.secrets.load()
        except Exception as e:  # never echo the file: it holds the secrets
            log.error("reload failed: %s", type(e).__name__)
            return web.json_response({"error": "cannot read the secret store"}, status=500)
        d = self.secrets.describe()
        log.info("secrets reloaded: %s", d["accessKeyFingerprint"])
        return web.json_response(
            {
                "accessKeyFingerprint": d["accessKeyFingerprint"],
                "refreshKeyFingerprint": d["refreshKeyFingerprint"],
            }
        )

    async def admin_me(self, request: web.Request) -> web.Response:
        claims = request["claims"]
        return web.json_response({"role": claims.get("role"), "sub": claims.get("sub")})

    async def products(self, request: web.Request) -> web.Response:
        pid = request.match_info.get("id")
        async with self.operation(), self.pool.connection() as conn:
            if pid is None:
                cur = await conn.execute(
                    f"select p.id, p.name, p.price_cents, i.quantity from {SCHEMA}.products p "
                    f"join {SCHEMA}.inventory i on i.product_id = p.id order by p.id"
                )
            else:
                cur = await conn.execute(
                    f"select p.id, p.name, p.price_cents, i.quantity from {SCHEMA}.products p "
                    f"join {SCHEMA}.inventory i on i.product_id = p.id where p.id = %s",
                    (int(pid),),
                )
            rows = await cur.fetchall()
        if pid is not None and not rows:
            return web.json_response({"error": "no such product"}, status=404)
        items = [{"id": r[0], "name": r[1], "price_cents": r[2], "stock": r[3]} for r in rows]
        return web.json_response(items if pid is None else items[0])

    async def create_order(self, request: web.Request) -> web.Response:
        body = await request.json()
        product, quantity = int(body["product_id"]), int(body.get("quantity", 1))
        assert self.redis is not None
        async with self.operation():
            lock = self.redis.lock(lock_key(product), timeout=LOCK_TTL_S)
            if not await self._acquire(lock):
                self.emitter.emit("order.failed", product)
                return web.json_response(
                    {"error": f"inventory of product {product} is locked; try later"}, status=409
                )
            self.held_locks.add(lock)
            try:
                async with self.pool.connection() as conn, conn.transaction():
                    cur = await conn.execute(
                        f"select quantity from {SCHEMA}.inventory where product_id = %s",
                        (product,),
                    )
                    row = await cur.fetchone()
                    if row is None or row[0] < quantity:
                        return web.json_response({"error": "out of stock"}, status=409)
                    await conn.execute(
                        f"update {SCHEMA}.inventory set quantity = quantity - %s "
                        "where product_id = %s",
                        (quantity, product),
                    )
                    cur = await conn.execute(
                        f"insert into {SCHEMA}.orders (product_id, quantity) values (%s, %s) "
                        "returning id",
                        (product, quantity),
                    )
                    order_id = (await cur.fetchone())[0]  # type: ignore[index]
            finally:
                self.held_locks.discard(lock)
                with contextlib.suppress(LockError, RedisError):
                    await lock.release()
        # Committed before we acknowledge: an acknowledged order is never lost.
        self.emitter.emit("order.created", order_id)
        return web.json_response({"order_id": order_id, "status": "created"}, status=201)

    async def _acquire(self, lock: Any) -> bool:
        """Wait up to LOCK_WAIT_S for a product's lock. A held lock is watched with
        EXISTS, which leaves its idle time alone; only a free one is taken (SET NX).
        redis-py's blocking acquire retries SET NX on the held key, and every try
        resets its idle time: on Redis < 7.2 a lock stuck for an hour would then
        look just used to a one-shot check, which reads its age from that."""
        assert self.redis is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCK_WAIT_S
        while True:
            if not await self.redis.exists(lock.name) and await lock.acquire(blocking=False):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.1)  # redis-py's own retry pace

    async def create_payment(self, request: web.Request) -> web.Response:
        body = await request.json()
        async with self.operation(), self.pool.connection() as conn:
            cur = await conn.execute(
                f"insert into {SCHEMA}.payments (order_id, amount_cents) values (%s, %s) "
                "returning id",
                (int(body["order_id"]), int(body.get("amount_cents", 0))),
            )
            payment_id = (await cur.fetchone())[0]  # type: ignore[index]
        self.emitter.emit("payment.settled", payment_id)
        return web.json_response({"payment_id": payment_id}, status=201)

    async def user(self, request: web.Request) -> web.Response:
        async with self.operation(), self.pool.connection() as conn:
            cur = await conn.execute(
                f"select id, email from {SCHEMA}.users where id = %s",
                (int(request.match_info["id"]),),
            )
            row = await cur.fetchone()
        if row is None:
            return web.json_response({"error": "no such user"}, status=404)
        return web.json_response({"id": row[0], "email": row[1]})

    # ------------------------------------------------------------ middleware

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith("/admin/") or path.startswith("/api/admin/"):
            denied = authorize(request, self.secrets)
            if denied is not None:
                return denied
        elif path.startswith("/api/") and self.draining:
            return web.json_response({"error": "draining: not taking new work"}, status=503)
        try:
            return await handler(request)
        except (psycopg.Error, TimeoutError, RedisError) as e:
            log.warning("%s %s failed: %s", request.method, path, type(e).__name__)
            return web.json_response({"error": type(e).__name__}, status=503)
        except (ValueError, KeyError) as e:
            return web.json_response({"error": f"bad request: {type(e).__name__}"}, status=400)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware])
        r = app.router
        r.add_get("/health", self.health)
        r.add_get("/health/connections", self.health_connections)
        r.add_get("/health/memory", self.health_memory)
        r.add_get("/health/security", self.health_security)
        r.add_post("/admin/drain", self.admin_drain)
        r.add_post("/admin/undrain", self.admin_undrain)
        r.add_post("/admin/reload-secrets", self.admin_reload)
        r.add_get("/api/admin/me", self.admin_me)
        if self.name == "product-service":
            r.add_get("/api/products", self.products)
            r.add_get("/api/products/{id}", self.products)
        elif self.name == "order-service":
            r.add_post("/api/orders", self.create_order)
        elif self.name == "payment-service":
            r.add_post("/api/payments", self.create_payment)
        elif self.name == "user-service":
            r.add_get("/api/users/{id}", self.user)
        return app


def _noop(*_args: object) -> None:
    pass


def _die_with_parent(parent: int | None) -> None:
    """Linux: get SIGTERM if the supervisor dies without cleaning up."""
    if parent is None or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before we asked
        sys.exit(1)


async def serve(args: argparse.Namespace) -> int:
    service = Service(args)
    await service.start()
    runner = web.AppRunner(
        service.app(), access_log=None, handle_signals=False, shutdown_timeout=2.0
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, reuse_address=True)
    await site.start()
    log.info("%s listening on 127.0.0.1:%d (pid %d)", service.name, args.port, os.getpid())

    loop = asyncio.get_running_loop()

    def on_term() -> None:
        # SIGTERM from the supervisor: the same graceful drain, with a short bound.
        if not service.draining:
            service.draining = True
            service.drain_task = asyncio.ensure_future(service.drain(timeout=5.0))

    loop.add_signal_handler(signal.SIGTERM, on_term)
    loop.add_signal_handler(signal.SIGINT, on_term)
    await service.exit_event.wait()
    await runner.cleanup()
    return 0


def _pooled(args: argparse.Namespace) -> dict[str, Any]:
    """Behind PgBouncer's transaction pooling a named prepared statement would land on
    another server connection (1.18): psycopg must never prepare."""
    return {"prepare_threshold": None} if args.pooled else {}


async def _hold_transaction(conn: psycopg.AsyncConnection[Any]) -> None:
    try:
        await conn.execute("begin")
        await conn.execute("select 1")
    except psycopg.Error as e:
        log.warning("storm transaction ended: %s", e)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dashboard.demo.service")
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dsn", required=True)
    p.add_argument("--redis-url")
    p.add_argument("--env-file", required=True)
    p.add_argument("--budget", type=int, default=5)
    p.add_argument("--grace", type=float, default=10.0, help="seconds the previous secret lives")
    p.add_argument("--parent-pid", type=int)
    p.add_argument("--storm", type=int, default=0)
    p.add_argument("--pooled", action="store_true", help="--dsn is a PgBouncer")
    p.add_argument("--leak", action="store_true")
    p.add_argument("--slow-ops", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {args.name} %(levelname)s %(message)s"
    )
    logging.getLogger("psycopg.pool").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="jwt")  # short demo keys are the point
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1` dumps every stack to the log
    _die_with_parent(args.parent_pid)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
