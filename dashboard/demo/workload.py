"""The shoppers: a steady, low rate of orders through order-service.

After order-service acknowledges an order (201 with its id), the client
records the acknowledgement in PostgreSQL; the `lost_orders` invariant counts
acknowledged orders that are not committed. Each order is then paid through
payment-service, and product and user lookups keep the other services busy.
Runs in its own thread with its own event loop; a few orders a second at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from typing import Any

import aiohttp
import psycopg

from dashboard.demo.schema import PRODUCTS, SCHEMA

log = logging.getLogger("ultrawatch.demo")

ORDERS_PER_S = 3.0
MAX_IN_FLIGHT = 6
# Every product, the locked ones too: their orders are refused (409) while the
# stuck locks are held and resume once they are released. (order-service waits
# on a held lock with EXISTS, so the stale lock keeps aging untouched.)
SHOPPED = list(range(1, PRODUCTS + 1))


class Workload:
    def __init__(self, urls: dict[str, str], dsn: str, rate: float = ORDERS_PER_S) -> None:
        self.urls = urls
        self.dsn = dsn
        self.rate = rate
        self.counts: dict[str, int] = {"acknowledged": 0, "refused": 0, "failed": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="demo-workload", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        sem = asyncio.Semaphore(MAX_IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()
        db: psycopg.AsyncConnection[Any] | None = None
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while not self._stop.is_set():
                if db is None or db.closed:
                    db = await self._connect()
                if db is not None and not sem.locked():
                    await sem.acquire()
                    task = asyncio.ensure_future(self._shop(http, db))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    task.add_done_callback(lambda _: sem.release())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), random.expovariate(self.rate))
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if db is not None:
            await db.close()

    async def _connect(self) -> psycopg.AsyncConnection[Any] | None:
        try:
            return await psycopg.AsyncConnection.connect(
                self.dsn, application_name="ultramarket-shoppers", autocommit=True
            )
        except psycopg.Error as e:
            log.warning("workload: cannot connect to PostgreSQL: %s", e)
            await asyncio.sleep(1)
            return None

    async def _shop(self, http: aiohttp.ClientSession, db: psycopg.AsyncConnection[Any]) -> None:
        product = random.choice(SHOPPED)
        try:
            async with http.get(f"{self.urls['product-service']}/api/products/{product}") as r:
                await r.read()
            async with http.post(
                f"{self.urls['order-service']}/api/orders",
                json={"product_id": product, "quantity": 1},
            ) as r:
                body = await r.json(content_type=None) if r.status == 201 else None
            if body is None:
                self.counts["refused"] += 1
                return
            order_id = int(body["order_id"])
            await db.execute(
                f"insert into {SCHEMA}.acknowledgements (order_id) values (%s)", (order_id,)
            )
            self.counts["acknowledged"] += 1
            async with http.post(
                f"{self.urls['payment-service']}/api/payments",
                json={"order_id": order_id, "amount_cents": 100 * product},
            ) as r:
                await r.read()
            user = random.randint(1, 50)
            async with http.get(f"{self.urls['user-service']}/api/users/{user}") as r:
                await r.read()
        except (aiohttp.ClientError, TimeoutError, psycopg.Error, ValueError, KeyError):
            self.counts["failed"] += 1
