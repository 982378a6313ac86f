"""Following lock keys by keyspace notifications: one pub/sub subscription per node.

Pub/sub is fire-and-forget: a subscriber that lost its connection (or fell too
far behind) says so, and the collector reconciles with a full SCAN.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from collectors.redis.text import SIGNAL_PREFIX

if TYPE_CHECKING:
    from collectors.redis.node import Node

MAX_DIRTY = 200_000  # events buffered beyond this: give up and reconcile by SCAN
NEEDED_EVENTS = set("g$xe")  # generic (del/expire), string (set), expired, evicted


def events_enabled(flags: str) -> bool:
    have = set(flags)
    if "A" in have:
        have |= set("g$lshzxetd")
    return "K" in have and have >= NEEDED_EVENTS


_FLAG_NAMES = {
    "K": "key-space events",
    "g": "generic commands (del, expire)",
    "$": "string commands (set)",
    "x": "expirations",
    "e": "evictions",
}


def events_missing(flags: str) -> str:
    """Why `flags` do not let ultrawatch follow locks by their events, naming the
    missing flags (key-event events alone, `E`, are not enough: we subscribe to
    key-space channels)."""
    if not flags:
        return "keyspace notifications are off (notify-keyspace-events = '')"
    have = set(flags)
    if "A" in have:
        have |= set("g$lshzxetd")
    missing = [f for f in "Kg$xe" if f not in have]
    names = ", ".join(f"{f} ({_FLAG_NAMES[f]})" for f in missing)
    return f"notify-keyspace-events = {flags!r} lacks {names}"


class Events:
    """One pub/sub subscription following a node's lock keys by their events."""

    def __init__(self, node: Node, patterns: list[str], db: int) -> None:
        self.node = node
        self.prefix = f"__keyspace@{db}__:".encode()
        self.channels = [f"__keyspace@{db}__:{p}" for p in patterns]
        self.client: aioredis.Redis | None = None
        self.pubsub: Any = None
        self.task: asyncio.Task[None] | None = None
        self.dirty: set[bytes] = set()
        self.acquired = 0
        self.released = 0
        self.evicted = 0
        self.lost = False

    async def start(self) -> None:
        s = self.node.settings
        kwargs: dict[str, Any] = {
            "socket_timeout": float(s.socket_timeout),
            "socket_connect_timeout": float(s.socket_timeout),
            "retry": Retry(NoBackoff(), 0),
            "client_name": "ultrawatch-events",
        }
        if self.node.url.startswith("rediss://") and s.ssl_ca_file:
            kwargs["ssl_ca_certs"] = s.ssl_ca_file
        self.client = aioredis.Redis.from_url(self.node.url, **kwargs)
        self.pubsub = self.client.pubsub()
        await self.pubsub.psubscribe(*self.channels)
        self.node.commands += 1
        await self._confirmed(float(s.socket_timeout))
        self.task = asyncio.create_task(self._run(), name=f"redis-events-{self.node.name}")

    async def _confirmed(self, timeout: float) -> None:
        """Wait for the server to confirm every pattern: a refusal (an ACL user
        without channel permissions gets NOPERM) is raised here, at the start,
        not discovered later by the reader task as a lost subscription."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        confirmed = 0
        while confirmed < len(self.channels):
            left = deadline - loop.time()
            if left <= 0:
                raise RedisTimeoutError(f"PSUBSCRIBE not confirmed within {timeout:g}s")
            msg = await self.pubsub.get_message(timeout=left)
            if msg is not None and msg.get("type") == "psubscribe":
                confirmed += 1
            elif msg is not None:
                self._handle(msg)  # an event for a pattern confirmed already

    def _handle(self, msg: dict[str, Any]) -> None:
        if msg.get("type") != "pmessage":
            return
        channel: bytes = msg["channel"]
        key = channel[len(self.prefix) :]
        event = msg["data"]
        if key.startswith(SIGNAL_PREFIX):
            return
        if event == b"set":
            self.acquired += 1
        elif event in (b"del", b"expired", b"evicted", b"rename_from"):
            self.released += 1
            if event == b"evicted":
                self.evicted += 1
        self.dirty.add(key)
        if len(self.dirty) > MAX_DIRTY:
            self.lost = True
            self.dirty.clear()

    async def _run(self) -> None:
        try:
            while True:
                msg = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is not None:
                    self._handle(msg)
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError):
            self.lost = True  # fire-and-forget pub/sub: reconcile by SCAN

    def take(self) -> tuple[set[bytes], int, int, int]:
        dirty, self.dirty = self.dirty, set()
        counts = (self.acquired, self.released, self.evicted)
        self.acquired = self.released = self.evicted = 0
        return dirty, *counts

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done() and not self.lost

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        with contextlib.suppress(Exception):
            if self.pubsub is not None:
                await self.pubsub.aclose()
        with contextlib.suppress(Exception):
            if self.client is not None:
                await self.client.aclose()
