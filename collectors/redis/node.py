"""One Redis node as the lock collector sees it: one connection, SCAN state,
the locks found there and (optionally) one keyspace-notification subscription.

The hot path talks to the connection directly (send a batch, read replies) so
that the PTTL/GET reads for the keys of one SCAN batch travel in the same write
as the next SCAN: the client parses replies while the server scans.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import ssl
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    RedisError,
    ResponseError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from collectors.core.redact import dsn_secrets
from collectors.redis.config import RedisConfig
from collectors.redis.data import NotLock
from collectors.redis.resp import Replies, pack
from collectors.redis.text import SIGNAL_PREFIX, exact_text, node_name

if TYPE_CHECKING:
    from collectors.redis.events import Events

READ_CHUNK = 1000  # keys per pipelined write outside the scan loop
# Locks tracked per node at most: a leak creating millions of lock keys must not
# grow our memory or our rounds without bound. Beyond it locks are only counted.
MAX_TRACKED = 50_000
# Before Redis 7.2 (no CLIENT NO-TOUCH) any read of a value resets the key's idle time,
# for every observer. This script reads a lock's value only when its idle time is 0:
# the server's LRU clock (1 s resolution) cannot tick during a script, so the GET
# writes back the very clock value the key already had and nothing changes. TYPE and
# OBJECT do not touch the key. Replies: {type} (a value not read, or not a string:
# "none" when there is no key) or {"string", value}.
PEEK = b"""
local t = redis.call('type', KEYS[1])['ok']
if t ~= 'string' or redis.call('object', 'idletime', KEYS[1]) ~= 0 then
  return {t}
end
return {t, redis.call('get', KEYS[1])}
"""
PEEK_SHA = hashlib.sha1(PEEK).hexdigest()
# An expiry later than the last one seen by more than this (ms) was set again since:
# extended by its holder, or released and taken again. Compared in the server's clock
# (TIME) by 250 ms (python-redis-lock's expire=1 renews by 667 ms); without it, from
# our round's start, by a fifth of the TTL up to 1 s (a busy client reads late).
TTL_JUMP_MS = (250, 1000)
# redis-py's Lock token is uuid1().hex (also accepted: the dashed form).
_UUID = re.compile(
    rb"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I
)
_UUID_EPOCH = 0x01B21DD213814000  # 100 ns ticks from 1582-10-15 (UUID time) to 1970-01-01
TOKEN_SKEW = 5.0  # a token's clock may run this far ahead of ours
TOKEN_MAX_AGE = 30 * 86400.0  # older "timestamps" are taken for chance, not a token


def token_time(value: bytes | None, now: float) -> float | None:
    """When a version-1 UUID lock token (redis-py's Lock) was made, if plausible.

    redis-py makes the token when acquire() starts, on the client's clock: the time
    is when the holder began to acquire, which is what an idle time reset by other
    clients' SET NX retries hides. Implausible times (random hex that happens to
    look like a v1 UUID, a client clock far off) are ignored."""
    if value is None or not _UUID.fullmatch(value):
        return None
    u = uuid.UUID(value.decode("ascii"))
    if u.version != 1 or u.variant != uuid.RFC_4122:
        return None
    at = (u.time - _UUID_EPOCH) / 1e7
    if not now - TOKEN_MAX_AGE <= at <= now + TOKEN_SKEW:
        return None
    return min(at, now)


@dataclass(slots=True)
class LockState:
    value: bytes | None  # None: not read (a GET would have reset the idle time)
    pttl: int  # as read; -1 = no expiry
    read_at: float
    first_seen: float
    value_at: float  # when the value was last fetched (our GET touched it then)
    age_known: bool = True  # first_seen came from OBJECT IDLETIME, not our first sight
    token_at: float | None = None  # a redis-py (uuid1) token's time: see token_time
    # We saw the key free (or held by another value) at this time or later, so this
    # holding began after it.
    not_before: float | None = None
    touched_at: float = 0.0  # the last touch by anyone (read time - idle time) we saw
    expires_srv: int | None = None  # when it expires, in the server's clock (ms; TIME)
    renewed_at: float | None = None  # when we last saw its owner extend its TTL
    renewals: int = 0  # TTL extensions by the same owner that we saw

    def held_since(self) -> tuple[float, str]:
        """When this holding began as far as we know, and how we know it.

        The token is made when acquire() starts, so a holder that waited in a
        blocking acquire looks older by its wait. A token older than a moment we
        saw the lock free or held by someone else is such a wait: it is not used."""
        token = self.token_at
        waited = token is not None and self.not_before is not None and token < self.not_before
        if token is not None and token < self.first_seen and not waited:
            return token, "token"
        return self.first_seen, "idle" if self.age_known else "first_seen"

    def ttl_ms(self, now: float) -> int:
        if self.pttl < 0:
            return self.pttl
        return max(0, int(self.pttl - (now - self.read_at) * 1000))


@dataclass(slots=True)
class RoundStats:
    scanned_estimate: int = 0
    scan_calls: int = 0
    reads: int = 0
    vanished: int = 0  # deleted between SCAN and PTTL
    acquired: int = 0
    released: int = 0
    evicted_locks: int = 0
    not_locks: list[NotLock] = field(default_factory=list)
    not_locks_total: int = 0  # non-string keys under a lock pattern


def rev64(cursor: int) -> int:
    return int(f"{cursor:064b}"[::-1], 2)


def describe_error(e: BaseException, timeout: float, url: str = "") -> str:
    """A one-line reading of a Redis failure, never with a password in it."""
    raw = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
    text = raw.strip().splitlines()[0] if raw.strip() else type(e).__name__
    upper = text.upper()
    cause = e.__cause__ or e.__context__
    has_password = bool(urlsplit(url).password or dsn_secrets(url)) if url else True
    if "NOAUTH" in upper or (isinstance(e, AuthenticationError) and not has_password):
        return "authentication required: the server has a password and none was given"
    if isinstance(e, AuthenticationError) or "WRONGPASS" in upper or "INVALID PASSWORD" in upper:
        return "authentication failed: the server rejected the password (requirepass/ACL)"
    if isinstance(cause, ssl.SSLError) or "SSL" in upper:
        detail = str(cause) if isinstance(cause, ssl.SSLError) else text
        return f"TLS failed: {detail}"
    tls = url.startswith("rediss://")
    if isinstance(e, RedisTimeoutError | TimeoutError):
        hint = " (TLS handshake unanswered: does this port speak TLS?)" if tls else ""
        return f"no answer within {timeout:g}s: {text}{hint}"
    if isinstance(e, ConnectionError):
        return f"cannot connect{' (TLS)' if tls else ''}: {text}"
    return text


SCAN_DEPTH = 4  # SCANs queued at once: keeps the server busy, bounds its latency cost


def partitions(dbsize: int, count: int) -> int:
    """Ranges to scan side by side: one for small keyspaces, up to 8 for large ones."""
    n = 1
    while n < 8 and dbsize >= n * 2 * count * 50:
        n *= 2
    return n


class Part:
    """One range [lo, hi) of the reverse-binary cursor space and where its scan is."""

    __slots__ = ("cursor", "done", "hi", "lo")

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        self.cursor = rev64(lo)  # Redis cursors count in reversed bit order
        self.done = False

    def advance(self, cursor: int) -> None:
        self.cursor = cursor
        if cursor == 0 or rev64(cursor) >= self.hi:
            self.done = True

    def progress(self) -> int:
        if self.done:
            return self.hi - self.lo
        return max(0, min(self.hi, rev64(self.cursor)) - self.lo)


class Node:
    """A Redis server (standalone, a Redlock master, or a cluster primary)."""

    def __init__(
        self, url: str, settings: RedisConfig, *, role: str = "master", one_shot: bool = False
    ) -> None:
        self.url = url
        # One round and gone (`ultrawatch check`). Reads are the same either way:
        # no reading ever touches a lock (see read_mode).
        self.one_shot = one_shot
        self.name = node_name(url)
        self.role = role
        self.settings = settings
        self.pool: aioredis.ConnectionPool | None = None
        self.conn: Connection | None = None
        self.replies: Replies | None = None
        self.in_round = False  # a round is using the connection (cleared when it ends)
        self.error: str | None = None
        self.answered_garbage = False  # the last failure was an answer no Redis gives
        self.failures = 0
        self.next_attempt = 0.0
        self.commands = 0  # commands this tool sent to this node
        self.no_touch = False
        self.peek_loaded = False  # PEEK is in the server's script cache
        self.idle_supported = True
        self.run_id: str | None = None
        self.restarted = False
        self.info: dict[str, Any] = {}
        self.prev_evicted: tuple[float, int] | None = None
        self.prev_rejected: int | None = None
        self.rejected_since_last: int | None = None  # None: the first INFO
        self.evicted_per_s: float | None = None
        self.locks: dict[bytes, LockState] = {}
        self.cursors: dict[str, list[Part]] = {}
        self.passes: dict[str, int] = {}
        self.active: set[str] = set()  # patterns whose current pass has not ended
        self.pass_seen: set[bytes] = set()  # tracked locks this pass returned
        self.pass_untracked = 0  # lock keys this pass found beyond MAX_TRACKED
        self.last_untracked = 0  # ... and the last complete pass
        self.pass_started = 0.0
        self.last_full_pass = 0.0
        self.last_pass_started = 0.0  # start of the last pass that ended (0: none)
        self.dropped = False  # a lock was left untracked (full table): bounds void
        self.events: Events | None = None
        self.events_refused: str | None = None  # why the last subscription failed
        self.events_retry_at = 0.0
        self.mode_reason = ""

    # ------------------------------------------------------------ connection

    def _pool(self) -> aioredis.ConnectionPool:
        s = self.settings
        kwargs: dict[str, Any] = {
            "socket_timeout": float(s.socket_timeout),
            "socket_connect_timeout": float(s.socket_timeout),
            "retry": Retry(NoBackoff(), 0),
            "client_name": "ultrawatch",
            "max_connections": 1,
            "protocol": 2,  # our reply reader speaks RESP2
        }
        if self.url.startswith("rediss://") and s.ssl_ca_file:
            kwargs["ssl_ca_certs"] = s.ssl_ca_file
        return aioredis.ConnectionPool.from_url(self.url, **kwargs)

    async def connect(self) -> Connection:
        if self.in_round:
            # The last round was cancelled mid-pipeline: its replies would be misread,
            # and keys it scanned were never read. Fresh connection, fresh pass.
            await self.disconnect()
            self.active.clear()
            if self.events is not None:
                self.events.lost = True
        if self.conn is not None and self.conn.is_connected:
            self.in_round = True
            return self.conn
        await self.disconnect()
        self.in_round = True  # from here on a cancellation leaves the stream unknown
        self.pool = self._pool()
        self.conn = await self.pool.get_connection()  # AUTH, SELECT, TLS done by redis-py
        stream = getattr(self.conn, "_reader", None)
        self.replies = Replies(stream, float(self.settings.socket_timeout)) if stream else None
        self.commands += 2
        # Our GETs must not make lock keys look recently used (Redis >= 7.2).
        try:
            await self.call("CLIENT", "NO-TOUCH", "ON")
            self.no_touch = True
        except ResponseError:
            self.no_touch = False
        self.peek_loaded = False
        if not self.no_touch:
            await self.load_peek()
        return self.conn

    async def load_peek(self) -> None:
        """Put PEEK in the script cache (again after a SCRIPT FLUSH); without it
        (scripting refused to this user) values are not read at all."""
        try:
            await self.call("SCRIPT", "LOAD", PEEK)
            self.peek_loaded = True
        except ResponseError:
            self.peek_loaded = False

    async def disconnect(self) -> None:
        pool, self.pool, self.conn, self.replies = self.pool, None, None, None
        self.in_round = False
        if pool is not None:
            with contextlib.suppress(Exception):
                await pool.disconnect()

    async def close(self) -> None:
        if self.events is not None:
            await self.events.close()
            self.events = None
        await self.disconnect()

    async def call(self, *args: Any) -> Any:
        await self.send([args])
        answer = await self.reply()
        if isinstance(answer, ResponseError):
            raise answer
        return answer

    async def send(self, commands: list[tuple[Any, ...]]) -> None:
        assert self.conn is not None
        self.commands += len(commands)
        await self.conn.send_packed_command([pack(*c) for c in commands], check_health=False)

    async def reply(self) -> Any:
        """The next reply; error replies are returned, not raised."""
        if self.replies is not None:
            return await self.replies.reply()
        assert self.conn is not None
        try:
            return await self.conn.read_response()
        except ResponseError as e:
            return e

    @property
    def read_mode(self) -> str:
        """How lock values are read, so that reading never changes what another
        observer sees: "get" where a GET leaves no trace (CLIENT NO-TOUCH, Redis >=
        7.2 and Valkey; or an LFU policy, which has no idle time to keep), "peek"
        (PEEK: the value only of a lock touched within the same second) before 7.2,
        "type" (values never read) where scripts are refused."""
        if self.no_touch or not self.idle_supported:
            return "get"
        return "peek" if self.peek_loaded else "type"

    @property
    def read_values(self) -> bool:
        """Every lock's value is read (see read_mode)."""
        return self.read_mode == "get"

    def due(self, now: float) -> bool:
        return now >= self.next_attempt

    def failed(self, e: BaseException, now: float) -> None:
        self.error = describe_error(e, float(self.settings.socket_timeout), self.url)
        self.answered_garbage = isinstance(e, GarbageAnswer)
        self.failures += 1
        # Reconnect with capped exponential backoff; the first retry is next round.
        delay = min(30.0, 2.0 ** (self.failures - 1)) if self.failures > 1 else 0.0
        self.next_attempt = now + delay

    def succeeded(self) -> None:
        self.in_round = False
        self.error = None
        self.failures = 0
        self.next_attempt = 0.0

    # -------------------------------------------------------------------- INFO

    async def read_info(self, now: float) -> dict[str, Any]:
        raw = await self.call("INFO")
        info = parse_info(raw)
        check_info_numbers(info)
        run_id = str(info.get("run_id", ""))
        self.restarted = self.run_id is not None and run_id != self.run_id
        if self.restarted:
            self.forget()
        self.run_id = run_id
        evicted = int(info.get("evicted_keys", 0))
        if self.prev_evicted is not None and not self.restarted:
            t0, e0 = self.prev_evicted
            dt = now - t0
            self.evicted_per_s = max(0, evicted - e0) / dt if dt > 0 else None
        else:
            self.evicted_per_s = None
        self.prev_evicted = (now, evicted)
        rejected = int(info.get("rejected_connections", 0) or 0)
        self.rejected_since_last = (
            max(0, rejected - self.prev_rejected)
            if self.prev_rejected is not None and not self.restarted
            else None
        )
        self.prev_rejected = rejected
        if "lfu" in str(info.get("maxmemory_policy", "")):
            self.idle_supported = False  # OBJECT IDLETIME is refused under LFU
        self.info = info
        return info

    def forget(self) -> None:
        """After a restart: everything known about this node is void."""
        self.locks.clear()
        self.cursors.clear()
        self.passes.clear()
        self.active.clear()
        self.pass_seen.clear()
        self.pass_untracked = self.last_untracked = 0
        self.last_full_pass = self.last_pass_started = 0.0
        if self.events is not None:
            self.events.lost = True

    # -------------------------------------------------------------------- SCAN

    def free_since(self) -> float | None:
        """A lock key we do not track was free (or not a lock) at some moment since
        this time: SCAN returns every key present for a whole pass, so the last pass
        that ended would have found it, and a tracked key is dropped only when seen
        gone. None when not known: no pass has ended, or the table overflowed."""
        if self.dropped or not self.last_pass_started:
            return None
        return self.last_pass_started

    def view_complete(self, patterns: Iterable[str]) -> bool:
        return all(self.passes.get(p, 0) > 0 for p in patterns)

    def coverage(self, patterns: list[str]) -> float:
        """How much of the keyspace the view covers: 1.0 once a full pass has ended,
        else the share of the first pass done (from the reverse-binary cursors)."""
        parts = []
        for p in patterns:
            if self.passes.get(p, 0) > 0:
                parts.append(1.0)
            else:
                parts.append(sum(x.progress() for x in self.cursors.get(p, [])) / 2**64)
        return min(parts) if parts else 1.0

    def start_pass(self, patterns: list[str], now: float, dbsize: int) -> None:
        n = partitions(dbsize, self.settings.scan_count)
        if self.info.get("cluster_enabled") == 1:
            n = 1  # cluster cursors (Redis 7.4+) carry a slot index: no range splitting
        for p in patterns:
            self.cursors[p] = [Part(i * 2**64 // n, (i + 1) * 2**64 // n) for i in range(n)]
        self.active = set(patterns)
        self.pass_seen = set()
        self.pass_untracked = 0
        self.pass_started = now

    def end_pass(self, now: float) -> None:
        self.last_full_pass = now
        self.last_pass_started = self.pass_started
        self.last_untracked = self.pass_untracked

    @property
    def untracked(self) -> int:
        """Lock keys known to exist but not tracked (the table is full)."""
        return max(self.last_untracked, self.pass_untracked)

    @property
    def scanning(self) -> bool:
        """A pass is under way."""
        return bool(self.active)

    async def scan(
        self,
        pattern: str,
        calls_allowed: int,
        read: ReadPlan,
        stats: RoundStats,
        now: float,
        dbsize: int,
    ) -> bool:
        """Continue the SCAN of `pattern` for at most `calls_allowed` calls. True when
        the pass ended.

        The keyspace is split into a few ranges of the reverse-binary cursor, each
        scanned on its own, with up to SCAN_DEPTH SCANs queued: the server never
        waits for us. Each write carries the next SCAN plus the reads for the keys
        the previous one found, and we parse those replies while the server scans.
        """
        count = self.settings.scan_count
        parts = self.cursors.get(pattern) or []
        before = sum(x.progress() for x in parts)
        waiting = [x for x in parts if not x.done]
        inflight: deque[tuple[Part | None, list[Shape]]] = deque()
        calls = 0
        first: list[tuple[Any, ...]] = []
        while waiting and len(first) < SCAN_DEPTH and calls < calls_allowed:
            start = waiting.pop(0)
            first.append(("SCAN", start.cursor, "MATCH", pattern, "COUNT", count))
            inflight.append((start, []))
            calls += 1
        if first:
            await self.send(first)
        read.in_scan = True
        while inflight:
            part, reads = inflight.popleft()
            if part is not None:
                answer = await self.reply()
                if isinstance(answer, ResponseError):
                    raise answer
                part.advance(int(answer[0]))
                new = read.take(answer[1], self.pass_seen)
                nxt = part if not part.done else (waiting.pop(0) if waiting else None)
                batch = read.commands(new)
                if nxt is not None and calls < calls_allowed:
                    batch.insert(0, ("SCAN", nxt.cursor, "MATCH", pattern, "COUNT", count))
                    inflight.append((nxt, new))
                    calls += 1
                elif new:
                    inflight.append((None, new))
                if batch:
                    await self.send(batch)
            await read.collect(self, reads, stats, now)
        read.in_scan = False
        stats.scan_calls += calls
        after = sum(x.progress() for x in parts)
        stats.scanned_estimate += int(max(0, after - before) / 2**64 * dbsize)
        ended = all(x.done for x in parts)
        if ended:
            self.passes[pattern] = self.passes.get(pattern, 0) + 1
            self.active.discard(pattern)
        return ended

    async def read_keys(
        self, keys: list[bytes], read: ReadPlan, stats: RoundStats, now: float, full: bool = False
    ) -> None:
        """Pipelined reads in chunks, then the values of locks that showed signs of change."""
        for i in range(0, len(keys), READ_CHUNK):
            chunk = read.shape(keys[i : i + READ_CHUNK], full)
            await self.send(read.commands(chunk))
            await read.collect(self, chunk, stats, now)
        while read.followup:
            again, read.followup = read.followup, []
            for i in range(0, len(again), READ_CHUNK):
                chunk = read.shape(again[i : i + READ_CHUNK], True)
                await self.send(read.commands(chunk))
                await read.collect(self, chunk, stats, now)


# (key, full, idle): full reads the value (GET, PEEK or TYPE: see Node.read_mode);
# idle asks OBJECT IDLETIME first.
Shape = tuple[bytes, bool, bool]


class ReadPlan:
    """Which keys this round reads, and what the replies mean.

    No read may change what another observer sees (a lock's idle time is its age
    for every one-shot check): values are read with GET only where the server
    does not touch keys for us (CLIENT NO-TOUCH), else with PEEK, which reads a
    value only when that leaves no trace. A known lock is read with OBJECT
    IDLETIME + PTTL only, and its value again when someone touched it (idle time
    shorter than our last read) or its TTL jumped, or while it is not yet known.
    """

    def __init__(self, node: Node, counting: bool) -> None:
        self.node = node
        self.read_now: set[bytes] = set()
        self.followup: list[bytes] = []
        self.counting = counting  # churn is only counted once a full view exists
        self.in_scan = False  # replies being read belong to the SCAN pass
        self.mode = node.read_mode  # fixed for the round: replies are read by shape
        self.wrong_type: list[bytes] = []  # GET refused: their TYPE is asked after
        self.noscript = False  # PEEK fell out of the script cache (SCRIPT FLUSH)
        # The server's clock (ms) when the batch being read was run: each batch of
        # reads starts with TIME, so TTLs compare in the server's time, not in ours
        # (a busy client, the TUI rendering, reads its replies late).
        self.srv_ms: int | None = None

    def shape(self, keys: list[bytes], full: bool = False) -> list[Shape]:
        node = self.node
        idle = node.idle_supported
        always = full or self.mode == "get"
        locks = node.locks
        out = []
        for k in keys:
            lk = locks.get(k)
            # Unknown keys are read whole; known ones only when touched since (see
            # _confirm): an untouched lock's idle time only grows, so PEEK would
            # not read its value now either.
            out.append((k, always or lk is None, idle))
        return out

    def take(self, keys: list[bytes], pass_seen: set[bytes]) -> list[Shape]:
        fresh = []
        locks = self.node.locks
        for k in keys:
            if k in locks:
                pass_seen.add(k)  # only tracked keys: the set stays bounded
            if k in self.read_now or k.startswith(SIGNAL_PREFIX):
                continue  # SCAN repeats keys; signal lists are not locks
            self.read_now.add(k)
            fresh.append(k)
        return self.shape(fresh)

    def commands(self, keys: list[Shape]) -> list[tuple[Any, ...]]:
        cmds: list[tuple[Any, ...]] = [("TIME",)] if keys else []
        mode = self.mode
        for k, full, idle in keys:
            if idle:
                cmds.append(("OBJECT", "IDLETIME", k))  # before any read that may touch
            cmds.append(("PTTL", k))
            if full:
                if mode == "get":
                    cmds.append(("GET", k))
                elif mode == "peek":
                    cmds.append(("EVALSHA", PEEK_SHA, 1, k))
                else:
                    # TYPE looks the key up without touching it: it still tells a
                    # lock (a string) from a hash or a list under the lock pattern.
                    cmds.append(("TYPE", k))
        return cmds

    async def collect(self, node: Node, keys: list[Shape], stats: RoundStats, now: float) -> None:
        if keys:
            t = await node.reply()
            ok = isinstance(t, list) and len(t) == 2
            self.srv_ms = int(t[0]) * 1000 + int(t[1]) // 1000 if ok else None
        for k, full, asked_idle in keys:
            idle = await node.reply() if asked_idle else None
            pttl = await node.reply()
            value = await node.reply() if full else None
            self._apply(node, k, full, idle, pttl, value, stats, now)

    def _value(self, reply: Any) -> tuple[str, bytes | None]:
        """What a GET, PEEK or TYPE reply says: the key's type ("none": gone,
        "string": a lock, "error": refused, else not a lock) and its value, None
        when not read."""
        if isinstance(reply, ResponseError):
            if self.mode == "peek" and str(reply).startswith("NOSCRIPT"):
                self.noscript = True
                return "string?", None  # not known this round
            return "error", None
        if self.mode == "get":
            return ("none", None) if reply is None else ("string", reply)
        if self.mode == "peek" and isinstance(reply, list):
            kind = _type_of(reply[0]) if reply else "none"
            return kind, reply[1] if len(reply) > 1 else None
        return _type_of(reply), None

    def _apply(
        self,
        node: Node,
        k: bytes,
        full: bool,
        idle: Any,
        pttl: Any,
        value: Any,
        stats: RoundStats,
        now: float,
    ) -> None:
        """What the replies for one key (OBJECT IDLETIME?, PTTL, GET/PEEK/TYPE if
        full) say: not a lock, gone, unchanged, touched, renewed by its holder, or
        a lock (new or taken again)."""
        if isinstance(idle, ResponseError):
            idle = None
            node.idle_supported = False  # LFU policy or OBJECT renamed away
        stats.reads += 1
        self.read_now.add(k)
        prev = node.locks.get(k)
        if isinstance(pttl, ResponseError):
            pttl = -2
        kind, got = self._value(value) if full else ("string", None)
        if kind not in ("string", "string?", "none"):
            self._not_a_lock(node, k, kind, value, stats)
            return
        if pttl == -2 or kind == "none":
            if prev is not None:
                del node.locks[k]
                stats.released += 1
            else:
                stats.vanished += 1  # deleted between SCAN and PTTL
            return
        idle_s = int(idle) if isinstance(idle, int) else None
        pttl = int(pttl)
        if not full:
            assert prev is not None
            self._confirm(k, prev, pttl, idle_s, now)
        elif prev is None:
            self._store(node, k, None, got, pttl, idle_s, stats, now)
        else:
            self._again(node, k, prev, got, pttl, idle_s, stats, now)

    def _again(
        self,
        node: Node,
        k: bytes,
        prev: LockState,
        got: bytes | None,
        pttl: int,
        idle: int | None,
        stats: RoundStats,
        now: float,
    ) -> None:
        """A known lock read whole again: the same holding, renewed by its holder,
        or taken by another (whose age starts afresh)."""
        jumped = _ttl_jumped(prev, pttl, now, self.srv_ms)
        if idle is not None:
            prev.touched_at = now - idle
        if not jumped or (got is not None and got == prev.value):
            prev.expires_srv = self._expiry(pttl)
        if got is not None and got == prev.value:
            if jumped and pttl >= 0:
                prev.renewed_at = now  # its owner extended it: the holder is alive
                prev.renewals += 1
            prev.pttl, prev.read_at, prev.value_at = pttl, now, now
            return
        if not jumped and (got is None or prev.value is None):
            # Nothing says the holding changed: the owner is learnt (or still not
            # read), the age kept.
            if idle is not None:
                prev.first_seen = min(prev.first_seen, now - idle)
            prev.pttl, prev.read_at = pttl, now
            if got is not None:
                prev.value, prev.value_at = got, now
                prev.token_at = token_time(got, now)
            return
        # Another owner, or a TTL set again by an owner we could not read: a renewal
        # or a new holder. Its age starts afresh: never older than we can show.
        self._store(node, k, prev, got, pttl, idle, stats, now)

    def _confirm(self, k: bytes, prev: LockState, pttl: int, idle: int | None, now: float) -> None:
        """A known lock read without its value: still ours to extrapolate, or touched
        by someone (its value is fetched again)."""
        if _touched(prev, pttl, idle, now, self.srv_ms):
            # Touched or set again: its value is read again (PEEK reads it if the
            # touch was this second), by the round's follow-up reads.
            self.followup.append(k)
            return
        prev.pttl, prev.read_at = pttl, now
        prev.expires_srv = self._expiry(pttl)
        if idle is not None:
            prev.first_seen = min(prev.first_seen, now - idle)

    def _not_a_lock(self, node: Node, k: bytes, kind: str, value: Any, stats: RoundStats) -> None:
        """A GET refused (WRONGTYPE) or a type other than string: a key under the
        lock pattern that is not a lock. It is counted (the first few named)."""
        if kind == "error":
            row = NotLock(key=exact_text(k), error=_first_line(value))
        else:
            row = NotLock(key=exact_text(k), type=kind)
        node.locks.pop(k, None)
        stats.not_locks_total += 1
        if len(stats.not_locks) < 20:
            stats.not_locks.append(row)
            if row.error is not None:
                self.wrong_type.append(k)  # its TYPE is asked after the round

    def _store(
        self,
        node: Node,
        k: bytes,
        prev: LockState | None,
        value: bytes | None,
        pttl: int,
        idle_s: int | None,
        stats: RoundStats,
        now: float,
    ) -> None:
        """A lock seen for the first time, or a new holding of a known one."""
        first = now - (idle_s or 0)
        not_before: float | None
        if prev is not None:
            stats.released += 1  # released and taken again between rounds
            not_before = prev.read_at  # the last time we saw the previous holding
        else:
            not_before = node.free_since()
        full_table = prev is None and len(node.locks) >= MAX_TRACKED
        if full_table and not _make_room(node, pttl):
            node.dropped = True
            if self.in_scan:
                node.pass_untracked += 1
            return
        if self.counting or prev is not None:
            stats.acquired += 1
        node.locks[k] = LockState(
            value, pttl, now, first, now, idle_s is not None, token_time(value, now), not_before
        )
        node.locks[k].touched_at = first
        node.locks[k].expires_srv = self._expiry(pttl)
        if self.in_scan:
            node.pass_seen.add(k)

    def _expiry(self, pttl: int) -> int | None:
        return self.srv_ms + pttl if pttl >= 0 and self.srv_ms is not None else None

    async def types(self, stats: RoundStats) -> None:
        """The TYPE of the keys whose GET was refused (a hash or a list under the lock
        pattern), asked after the round's pipeline: TYPE does not touch the key."""
        if self.noscript:
            await self.node.load_peek()  # for the next round
        keys, self.wrong_type = self.wrong_type, []
        if not keys:
            return
        await self.node.send([("TYPE", k) for k in keys])
        found = {}
        for k in keys:
            answer = await self.node.reply()
            if isinstance(answer, bytes | str) and not isinstance(answer, ResponseError):
                found[exact_text(k)] = answer.decode() if isinstance(answer, bytes) else answer
        stats.not_locks[:] = [
            NotLock(key=row.key, type=found[row.key]) if row.key in found else row
            for row in stats.not_locks
        ]


def _type_of(reply: Any) -> str:
    """A TYPE reply as text ("none" when there is no key)."""
    return reply.decode("ascii", "replace") if isinstance(reply, bytes) else "none"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def _make_room(node: Node, pttl: int) -> bool:
    """A full table still takes a lock without expiry (the one that matters) in
    place of one that expires by itself; the displaced lock is counted instead."""
    if pttl != -1:
        return False
    victim = next((k for k, lk in node.locks.items() if lk.pttl >= 0), None)
    if victim is None:
        return False
    del node.locks[victim]
    node.pass_untracked += 1
    node.dropped = True
    return True


def _ttl_jumped(prev: LockState, pttl: int, now: float, srv_ms: int | None = None) -> bool:
    """Was the TTL set again since the last read (extended by its holder, or the
    lock released and taken again)?"""
    if (pttl == -1) != (prev.pttl == -1):
        return True
    if pttl < 0:
        return False
    if srv_ms is not None and prev.expires_srv is not None:
        # Both in the server's clock: only the server's own delays blur it.
        return srv_ms + pttl > prev.expires_srv + TTL_JUMP_MS[0]
    low, high = TTL_JUMP_MS
    return pttl > prev.ttl_ms(now) + max(low, min(high, pttl // 5))


def _touched(
    prev: LockState, pttl: int, idle: int | None, now: float, srv_ms: int | None = None
) -> bool:
    """Did someone else write or read this lock since we last fetched its value?"""
    if _ttl_jumped(prev, pttl, now, srv_ms):
        return True
    # Our reads never touch a lock (see Node.read_mode): the last touch we know is
    # the one its idle time showed at the last read (resolution 1 s).
    return idle is not None and now - idle > prev.touched_at + 1.5


# The INFO fields the judges count with; a proxy or a broken server answering
# `nan`, `-1` or 10**30 there must not read as "0 evictions".
COUNTED_INFO = (
    "used_memory",
    "maxmemory",
    "evicted_keys",
    "connected_clients",
    "blocked_clients",
    "rejected_connections",
)
ABSURD = 2**63  # beyond any counter a Redis keeps (they are 64-bit)


class GarbageAnswer(RedisError):
    """The server answered, but not with what Redis answers: the reading is unknown."""


def check_info_numbers(info: dict[str, Any]) -> None:
    for key in COUNTED_INFO:
        if key not in info:
            continue
        value = info[key]
        if not isinstance(value, int) or not 0 <= value < ABSURD:
            raise GarbageAnswer(f"INFO {key} is {str(value)[:40]!r} (expected a whole number)")


def parse_info(raw: bytes | str) -> dict[str, Any]:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    out: dict[str, Any] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        out[k] = int(v) if v.lstrip("-").isdigit() else v
    return out
