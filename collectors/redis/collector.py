"""Redis locks: the inventory lock table, locks that never expire, stale holders,
Redlock quorums, Redis Cluster, and the server's memory and evictions.

One connection per node; SCAN with MATCH and COUNT (never KEYS) under a per-round
key budget, resumed from its cursor next round; PTTL + GET pipelined with the
SCAN itself. Where keyspace notifications are on (or `keyspace_events = "enable"`
may turn them on), lock keys are followed by their events on one subscription
per node and the full SCAN only reconciles now and then.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.exceptions import NoPermissionError, RedisError, ResponseError

from collectors.core.model import Reading
from collectors.redis.config import RedisConfig
from collectors.redis.data import Churn, Info, Lock, NodeRow, RedisData, age_buckets
from collectors.redis.events import NEEDED_EVENTS, Events, events_enabled, events_missing
from collectors.redis.node import (
    MAX_TRACKED,
    READ_CHUNK,
    LockState,
    Node,
    ReadPlan,
    RoundStats,
    describe_error,
    token_time,
)
from collectors.redis.text import EXACT_LIMIT, display_text, exact_text, host_port

TARGET = "main"
MAX_LOCKS = 200  # lock rows in a reading
MAX_NAMED = 50  # keys listed in no_ttl / stale
_HEX32 = re.compile(rb"[0-9a-f]{32}")
_UUID4 = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
# python-redis-lock: b64encode(urandom(18)), 24 chars of the standard alphabet (with
# + and /); the URL-safe variant seen in forks is accepted too.
_PRL_ID = re.compile(rb"[A-Za-z0-9+/_-]{24}")


class RedisLocksCollector:
    component = "redis"

    def __init__(self, settings: RedisConfig, *, one_shot: bool = False) -> None:
        """`settings`: the [redis] section. `one_shot`: this collector runs one round
        (`ultrawatch check`). Reads are the same either way: none changes what
        another observer sees (see Node.read_mode)."""
        self.one_shot = one_shot
        self.settings: RedisConfig = settings
        self.now = 0.0  # the round's time, for the rows' renewal ages
        self.patterns = list(self.settings.lock_patterns)
        self.urls = self.settings.resolved_urls()
        self.redlock = len(self.urls) > 1 and not self.settings.cluster
        self.nodes: dict[str, Node] = {}
        if not self.settings.cluster:
            for url in self.urls:
                node = Node(url, self.settings, one_shot=one_shot)
                self.nodes[node.name] = node
        self.cluster_error: str | None = None
        self.last_round: float | None = None

    def targets(self) -> list[str]:
        return [TARGET]

    # ----------------------------------------------------------------- round

    async def collect(self) -> list[Reading]:
        now = self.now = time.time()
        t0 = time.perf_counter()
        if self.settings.cluster:
            await self._discover(now)
        nodes = list(self.nodes.values())
        stats = await asyncio.gather(*(self._collect_node(n, now) for n in nodes))
        duration = (time.perf_counter() - t0) * 1000
        up = [(n, s) for n, s in zip(nodes, stats, strict=True) if s is not None]
        node_rows = [self._node_row(n, now) for n in nodes]
        if not up:
            error = self.cluster_error or _join_errors(nodes)
            return [
                Reading(
                    self.component,
                    TARGET,
                    now,
                    data=RedisData(nodes=node_rows, mode="scan"),
                    error=error,
                    # every node answered, but with numbers no Redis gives: unknown, not down
                    error_kind="invalid"
                    if nodes and not self.cluster_error and all(n.answered_garbage for n in nodes)
                    else "unreachable",
                    duration_ms=duration,
                )
            ]
        data = self._data(up, node_rows, now)
        self.last_round = now
        return [Reading(self.component, TARGET, now, data=data, duration_ms=duration)]

    async def _collect_node(self, node: Node, now: float) -> RoundStats | None:
        if not node.due(now):
            return None
        for attempt in (1, 2):
            was_connected = node.conn is not None
            try:
                stats = await self._round(node, now)
            except (RedisError, OSError) as e:
                await node.disconnect()
                # A connection broken by a restart gets one immediate retry.
                if attempt == 1 and was_connected and not _is_auth(e):
                    continue
                node.failed(e, now)
                return None
            node.succeeded()
            return stats
        return None

    async def _round(self, node: Node, now: float) -> RoundStats:
        await node.connect()
        info = await node.read_info(now)
        dbsize = _dbsize(info)
        use_events = await self._events_mode(node)
        stats = RoundStats()
        plan = ReadPlan(node, counting=node.view_complete(self.patterns))
        extra: set[bytes] = set()
        if use_events and (node.events is None or not node.events.alive):
            use_events = await self._subscribe(node, now, dbsize)
        if use_events:
            ev = node.events
            assert ev is not None
            if not node.scanning and now - node.pass_started >= self.settings.reconcile_every:
                node.start_pass(self.patterns, now, dbsize)
            dirty, acquired, released, evicted = ev.take()
            extra |= dirty
            extra |= {k for k, lk in node.locks.items() if lk.pttl >= 0 and lk.ttl_ms(now) == 0}
        else:
            if node.events is not None:
                await node.events.close()
                node.events = None
            if not node.scanning:
                node.start_pass(self.patterns, now, dbsize)
        if node.scanning:
            await self._scan(node, plan, stats, now, dbsize)
            if not node.scanning:
                node.end_pass(now)
                # Reconcile: anything we believe in that the pass did not see is re-read.
                extra |= set(node.locks) - node.pass_seen
        if not use_events:
            await node.read_keys(self._rereads(node, plan, stats, extra), plan, stats, now)
        else:
            # Keys named by events changed: fetch their values; the rest are confirmations.
            await node.read_keys(sorted(dirty - plan.read_now), plan, stats, now, full=True)
            await node.read_keys(sorted(extra - dirty - plan.read_now), plan, stats, now)
        await plan.types(stats)
        if use_events:
            stats.acquired, stats.released, stats.evicted_locks = acquired, released, evicted
        return stats

    async def _subscribe(self, node: Node, now: float, dbsize: int) -> bool:
        """(Re)start the node's subscription; False (scan mode) when it fails.

        A refused subscription (an ACL user without channel rights) is not retried
        every round, and a pass under way is never thrown away for it: restarting
        the SCAN each round would keep the view from ever completing."""
        if node.events is not None:
            await node.events.close()
            node.events = None
        if node.events_refused is not None and now < node.events_retry_at:
            node.mode_reason = node.events_refused
            return False
        ev = Events(node, self.patterns, _db_of(node))
        try:
            await ev.start()
        except (RedisError, OSError) as e:
            await ev.close()
            text = describe_error(e, float(self.settings.socket_timeout), node.url)
            why = "this user may not subscribe" if _is_noperm(e) else "the subscription failed"
            node.events_refused = f"keyspace notifications on, but {why}: {text}"
            node.events_retry_at = now + float(self.settings.reconcile_every)
            node.mode_reason = node.events_refused
            return False
        node.events = ev
        node.events_refused = None
        if node.scanning:
            # Events may have been missed in the part already scanned: let the
            # reconcile pass follow right after this one instead of starting over.
            node.pass_started = 0.0
        else:
            node.start_pass(self.patterns, now, dbsize)  # events may have been missed
        return True

    def _rereads(
        self, node: Node, plan: ReadPlan, stats: RoundStats, must: set[bytes]
    ) -> list[bytes]:
        """Scan mode: the known locks this round confirms. The reconcile set first,
        then those read longest ago, within what is left of the round's key budget
        (at least one chunk): the rest keep their extrapolated TTL till next round."""
        budget = max(READ_CHUNK, self.settings.key_budget - stats.reads)
        locks = node.locks
        keys = [k for k in locks if k not in plan.read_now]
        if len(keys) > budget:
            keys = heapq.nsmallest(budget, keys, key=lambda k: (k not in must, locks[k].read_at, k))
        return sorted(keys)

    async def _scan(
        self, node: Node, plan: ReadPlan, stats: RoundStats, now: float, dbsize: int
    ) -> None:
        active = [p for p in self.patterns if p in node.active]
        per_pattern = self.settings.key_budget // max(1, self.settings.scan_count) // len(active)
        for pattern in active:
            await node.scan(pattern, max(1, per_pattern), plan, stats, now, dbsize)

    async def _events_mode(self, node: Node) -> bool:
        mode = self.settings.keyspace_events
        if mode == "off":
            node.mode_reason = "keyspace_events = off in the configuration"
            return False
        try:
            reply = await node.call("CONFIG", "GET", "notify-keyspace-events")
        except ResponseError as e:
            node.mode_reason = f"cannot read notify-keyspace-events ({e})"
            return False
        flags = reply[1].decode() if len(reply) > 1 else ""
        if events_enabled(flags):
            node.mode_reason = f"notify-keyspace-events = {flags!r}"
            return True
        if mode != "enable":
            node.mode_reason = (
                f'{events_missing(flags)}; keyspace_events = "enable" lets ultrawatch turn them on'
            )
            return False
        wanted = "".join(sorted(set(flags) | {"K"} | NEEDED_EVENTS))
        try:
            await node.call("CONFIG", "SET", "notify-keyspace-events", wanted)
        except ResponseError as e:
            node.mode_reason = f"could not enable keyspace notifications ({e})"
            return False
        node.mode_reason = f"enabled notify-keyspace-events = {wanted!r}"
        return True

    # --------------------------------------------------------------- cluster

    async def _discover(self, now: float) -> None:
        """Find the primaries from whichever known node answers CLUSTER NODES."""
        candidates = sorted(
            (n for n in self.nodes.values() if n.due(now)), key=lambda n: n.error is not None
        )
        known = {n.name for n in candidates}
        seeds = [n for n in (self._new_node(u, "master") for u in self.urls) if n is not None]
        candidates += [n for n in seeds if n.name not in known]
        text = None
        for node in candidates:
            try:
                await node.connect()
                text = await node.call("CLUSTER", "NODES")
                node.in_round = False  # the connection is in a clean state again
                break
            except (RedisError, OSError, ValueError) as e:  # ValueError: unusable URL
                await node.disconnect()
                node.failed(e, now)
                self.cluster_error = f"no cluster node answered: {node.name}: {node.error}"
        if text is None:
            for node in candidates:
                if node.name not in self.nodes:
                    await node.close()
            return
        self.cluster_error = None
        spare = {n.name: n for n in candidates if n.name not in self.nodes}
        primaries = _parse_cluster_nodes(text.decode() if isinstance(text, bytes) else text)
        seed = urlsplit(self.urls[0])
        wanted: dict[str, Node] = {}
        for addr, flags in primaries:
            found = self.nodes.get(addr) or spare.pop(addr, None)
            if found is None:
                found = self._new_node(_url_for(seed, addr), "primary")
            if found is None:
                continue  # an address no URL can carry: said in cluster_error
            found.role = "primary (failing)" if "fail" in flags else "primary"
            wanted[addr] = found
        for name, node in {**self.nodes, **spare}.items():
            if name not in wanted:
                await node.close()
        self.nodes = wanted

    def _new_node(self, url: str, role: str) -> Node | None:
        try:
            return Node(url, self.settings, role=role, one_shot=self.one_shot)
        except ValueError as e:  # a malformed address from CLUSTER NODES
            self.cluster_error = f"cannot use cluster node address: {e}"
            return None

    # ------------------------------------------------------------------ data

    def _node_row(self, node: Node, now: float) -> NodeRow:
        info = node.info
        if node.error is not None or not info:
            return NodeRow(name=node.name, role=node.role, reachable=False, error=node.error)
        return NodeRow(
            name=node.name,
            role=node.role,
            reachable=True,
            error=None,
            version=_text(info.get("redis_version")),
            mode="events" if node.events is not None and node.events.alive else "scan",
            mode_reason=node.mode_reason,
            scan_complete=node.view_complete(self.patterns),
            coverage=round(node.coverage(self.patterns), 4),
            locks=len(node.locks),
            locks_untracked=node.untracked,
            keys=_dbsize(info),
            used_memory=_int(info.get("used_memory")),
            maxmemory=_int(info.get("maxmemory")),
            maxmemory_policy=_text(info.get("maxmemory_policy")),
            evicted_keys=_int(info.get("evicted_keys")),
            evicted_per_s=_round(node.evicted_per_s),
            connected_clients=_int(info.get("connected_clients")),
            blocked_clients=_int(info.get("blocked_clients")),
            rejected_connections=_int(info.get("rejected_connections")),
            rejected_since_last=node.rejected_since_last,
            own_commands=node.commands,
            values_read=node.read_values,
            idle_supported=node.idle_supported,
            restarted=node.restarted,
        )

    def _data(
        self, up: list[tuple[Node, RoundStats]], node_rows: list[NodeRow], now: float
    ) -> RedisData:
        nodes_up = [n for n, _ in up]
        view = self._merge(nodes_up, now)
        dt = now - self.last_round if self.last_round else None
        acquired = sum(s.acquired for _, s in up)
        released = sum(s.released for _, s in up)
        all_complete = len(nodes_up) == len(self.nodes) and all(
            n.view_complete(self.patterns) for n in nodes_up
        )
        coverage = min((n.coverage(self.patterns) for n in nodes_up), default=0.0)
        if len(nodes_up) < len(self.nodes):
            coverage *= len(nodes_up) / len(self.nodes)
        modes = {"events" if n.events is not None and n.events.alive else "scan" for n in nodes_up}
        return RedisData(
            mode="events" if modes == {"events"} else "scan",
            mode_reason="; ".join(sorted({n.mode_reason for n in nodes_up if n.mode_reason})),
            scan_complete=all_complete,
            coverage=round(coverage, 4),
            scanned_keys=sum(s.scanned_estimate for _, s in up),
            scan_calls=sum(s.scan_calls for _, s in up),
            keys_total=sum(_dbsize(n.info) for n in nodes_up),
            patterns=list(self.patterns),
            topology=self._topology(),
            cluster_error=self.cluster_error,
            nodes=node_rows,
            locks=view.locks,
            locks_total=view.locks_total,
            unlisted_ages=view.unlisted_ages,
            no_ttl=view.no_ttl,
            no_ttl_total=view.no_ttl_total,
            oldest_age_s=view.oldest_age_s,
            oldest_key=view.oldest_key,
            oldest_age_source=view.oldest_age_source,
            oldest_renewed_ago_s=view.oldest_renewed_ago_s,
            below_quorum=view.below_quorum,
            below_quorum_total=view.below_quorum_total,
            conflict=view.conflict,
            conflict_total=view.conflict_total,
            quorum_need=view.quorum_need,
            locks_untracked=sum(n.untracked for n in nodes_up),
            locks_tracked_max=MAX_TRACKED,
            churn=Churn(
                acquired_per_s=_round(acquired / dt) if dt else None,
                released_per_s=_round(released / dt) if dt else None,
            ),
            vanished=sum(s.vanished for _, s in up),
            evicted_locks=sum(s.evicted_locks for _, s in up),
            not_locks=[x for _, s in up for x in s.not_locks][:20],
            not_locks_total=sum(s.not_locks_total for _, s in up),
            owners_unread=_owners_unread(nodes_up),
            age_unknown=_age_unknown(nodes_up),
            info=_info(nodes_up),
        )

    def _merge(self, nodes: list[Node], now: float) -> _View:
        """The lock table: one entry per key (Redlock: how many masters hold the same
        value). Every lock is counted; only the first MAX_LOCKS become rows, and the
        ages of the others are kept as counts per age bucket. Facts only: which locks
        are stale is the judge's call, with the threshold it is given."""
        masters = len(self.nodes) if self.redlock else 1
        need = masters // 2 + 1
        by_key: dict[bytes, list[tuple[Node, LockState]]] = {}
        for node in nodes:
            for key, lock in node.locks.items():
                by_key.setdefault(key, []).append((node, lock))
        entries = [_entry(key, held, now) for key, held in by_key.items()]
        no_ttl = [e[2] for e in entries if e[6] == -1]
        oldest = min(entries, key=lambda e: e[1]) if entries else None
        below = [e[2] for e in entries if self.redlock and e[4] < need]
        conflicts = [e[2] for e in entries if e[7]]
        # No expiry first, then the oldest; keys are unique, so tuples never tie
        # beyond them and compare in C.
        listed = heapq.nsmallest(MAX_LOCKS, entries)
        cut = listed[-1] if len(entries) > MAX_LOCKS else None
        return _View(
            locks=[self._row(e, masters, need) for e in listed],
            locks_total=len(entries),
            unlisted_ages=age_buckets(-e[1] for e in entries if cut is not None and e > cut),
            no_ttl=sorted(exact_text(k) for k in no_ttl[: 4 * MAX_NAMED])[:MAX_NAMED],
            no_ttl_total=len(no_ttl),
            oldest_age_s=max(0.0, round(-oldest[1], 1)) if oldest else None,
            oldest_key=exact_text(oldest[2]) if oldest else None,
            oldest_age_source=oldest[8] if oldest else None,
            oldest_renewed_ago_s=_renewed(oldest[5], now)[0] if oldest else None,
            below_quorum=sorted(exact_text(k) for k in below[:MAX_NAMED]),
            below_quorum_total=len(below),
            conflict=sorted(exact_text(k) for k in conflicts[:MAX_NAMED]),
            conflict_total=len(conflicts),
            quorum_need=need if self.redlock else None,
        )

    def _row(self, e: _Entry, masters: int, need: int) -> Lock:
        _, neg_age, key, value, holders, group, ttl, conflict, source = e
        long = value is not None and len(value) > EXACT_LIMIT
        renewed_ago, renewals = _renewed(group, self.now)
        return Lock(
            key=exact_text(key),
            owner=None if value is None else display_text(value),
            owner_exact=None if value is None or long else exact_text(value),
            # A long value has no exact form: release compares its SHA-1.
            owner_sha1=hashlib.sha1(value).hexdigest() if long and value is not None else None,
            owner_read=value is not None,
            ttl_ms=ttl,
            age_s=max(0.0, round(-neg_age, 1)),  # never -0.0 ("-0ms")
            # A token's time or an idle time is an age; our first sight of the lock
            # is only a lower bound.
            age_known=source != "first_seen",
            age_source=source,
            kind=kind_of(key, value, self.redlock),
            renewed_ago_s=renewed_ago,
            renewals=renewals,
            holders=holders,
            masters=masters,
            quorum=holders >= need if self.redlock else None,
            conflict=conflict,
            nodes=sorted(n.name for n, _ in group),
        )

    def _topology(self) -> str:
        if self.settings.cluster:
            return "cluster"
        return "redlock" if self.redlock else "single"

    async def close(self) -> None:
        for node in self.nodes.values():
            await node.close()


# ---------------------------------------------------------------- helpers

# One lock across the masters that hold it: (has a TTL, -age, key, value, holders,
# the (node, lock) pairs holding that value, ttl ms, conflict, age source). The
# first three order the table and compare in C.
_Entry = tuple[bool, float, bytes, bytes | None, int, list[tuple[Node, LockState]], int, bool, str]


def _entry(key: bytes, held: list[tuple[Node, LockState]], now: float) -> _Entry:
    if len(held) == 1:
        value, holders, group, conflict = held[0][1].value, 1, held, False
    else:
        values = Counter(lock.value for _, lock in held)
        value, holders = values.most_common(1)[0]
        group = [(n, lk) for n, lk in held if lk.value == value]
        conflict = len(values) > 1
    ttls = [lk.ttl_ms(now) for _, lk in group]
    ttl = -1 if -1 in ttls else min(ttls)
    # The earliest start any master knows: its idle time, our first sight, or a
    # redis-py token's time (which other clients' SET NX retries cannot hide).
    since, source = min(lk.held_since() for _, lk in group)
    if source == "idle" and not all(lk.age_known for _, lk in group):
        source = "first_seen"  # a master without idle times: a lower bound
    return (ttl != -1, since - now, key, value, holders, group, ttl, conflict, source)


@dataclass(slots=True)
class _View:
    """The lock table's part of a reading (see RedisData)."""

    locks: list[Lock]
    locks_total: int
    unlisted_ages: list[tuple[int, int]]
    no_ttl: list[str]
    no_ttl_total: int
    oldest_age_s: float | None
    oldest_key: str | None
    oldest_age_source: str | None
    oldest_renewed_ago_s: float | None
    below_quorum: list[str]
    below_quorum_total: int
    conflict: list[str]
    conflict_total: int
    quorum_need: int | None


def _renewed(group: list[tuple[Node, LockState]], now: float) -> tuple[float | None, int]:
    """When any master last saw this lock's owner extend it (seconds ago), and how
    many times."""
    times = [lk.renewed_at for _, lk in group if lk.renewed_at is not None]
    renewals = max((lk.renewals for _, lk in group), default=0)
    return (round(max(0.0, now - max(times)), 1) if times else None), renewals


def kind_of(key: bytes, value: bytes | None, redlock: bool = False) -> str:
    """The lock library, from the shapes of its key and value (see Lock.kind)."""
    kind = "unknown" if value is None else _value_kind(key, value)
    if redlock and kind in ("generic", "unknown"):
        return "redlock"
    return kind


def _value_kind(key: bytes, value: bytes) -> str:
    if _HEX32.fullmatch(value):
        # redis.lock.Lock's uuid1().hex carries a plausible time; node-redlock's
        # randomBytes(16) hex does not (but for 1 in ~64 values: then its time
        # must also fall within the last 30 days).
        return "redis-py" if token_time(value, time.time()) is not None else "node-redlock"
    if key.startswith(b"lock:") and _PRL_ID.fullmatch(value):
        return "python-redis-lock"
    if _UUID4.fullmatch(value):
        return "pottery" if key.startswith(b"redlock:") else "uuid4"
    return "generic"


def _info(nodes: list[Node]) -> Info:
    infos = [n.info for n in nodes]

    def total(k: str) -> int:
        return sum(int(i.get(k, 0) or 0) for i in infos)

    rates = [n.evicted_per_s for n in nodes if n.evicted_per_s is not None]
    policies = sorted({str(i.get("maxmemory_policy", "")) for i in infos})
    maxmem = [int(i.get("maxmemory", 0) or 0) for i in infos]
    return Info(
        connected_clients=total("connected_clients"),
        blocked_clients=total("blocked_clients"),
        used_memory=total("used_memory"),
        maxmemory=sum(maxmem) if all(maxmem) else 0,
        maxmemory_policy=",".join(policies),
        evicted_keys=total("evicted_keys"),
        evicted_per_s=_round(sum(rates)) if rates else None,
        rejected_connections=total("rejected_connections"),
        rejected_since_last=(
            sum(n.rejected_since_last or 0 for n in nodes)
            if any(n.rejected_since_last is not None for n in nodes)
            else None
        ),
        own_commands=sum(n.commands for n in nodes),
        version=_text(infos[0].get("redis_version")) if infos else None,
    )


def _owners_unread(nodes: list[Node]) -> str | None:
    unread = [
        n for n in nodes if not n.read_values and any(lk.value is None for lk in n.locks.values())
    ]
    if not unread:
        return None
    how = (
        "read only of locks touched within the same second"
        if unread[0].read_mode == "peek"
        else "not read (scripts refused)"
    )
    return (
        f"some owners not read: Redis {unread[0].info.get('redis_version') or '< 7.2'} "
        "has no CLIENT NO-TOUCH, and reading a value would reset the idle time lock "
        f"ages come from, for every observer; owners are {how}"
    )


def _age_unknown(nodes: list[Node]) -> str | None:
    no_idle = [n for n in nodes if not n.idle_supported]
    if not no_idle:
        return None
    return (
        "OBJECT IDLETIME is refused under maxmemory-policy "
        f"{no_idle[0].info.get('maxmemory_policy') or '(LFU)'}: ages count from "
        "when ultrawatch first saw each lock"
    )


def _int(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _text(v: object) -> str | None:
    return None if v is None else str(v)


def _dbsize(info: dict[str, Any]) -> int:
    total = 0
    for k, v in info.items():
        if k.startswith("db") and k[2:].isdigit() and isinstance(v, str):
            for part in v.split(","):
                name, _, num = part.partition("=")
                if name == "keys" and num.isdigit():
                    total += int(num)
    return total


def _db_of(node: Node) -> int:
    path = urlsplit(node.url).path.strip("/")
    return int(path) if path.isdigit() else 0


def _parse_cluster_nodes(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        # ip:port@cport[,hostname]; IPv6 as ::1:7000; no ip (":0") = not connected.
        host, _, port = parts[1].split("@", 1)[0].split(",", 1)[0].rpartition(":")
        flags = parts[2]
        if "master" in flags.split(",") and host and port.isdigit():
            out.append((host_port(host, port), flags))
    return out


def _url_for(seed: Any, addr: str) -> str:
    """The seed URL (scheme, user, password, query) pointed at `addr` (host:port,
    IPv6 already bracketed)."""
    userinfo = seed.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{addr}" if userinfo else addr
    return urlunsplit((seed.scheme, netloc, "/0", seed.query, ""))


def _is_noperm(e: BaseException) -> bool:
    return (
        isinstance(e, NoPermissionError)
        or "NOPERM" in str(e).upper()
        or ("NO PERMISSIONS" in str(e).upper())
    )


def _is_auth(e: BaseException) -> bool:
    text = str(e).upper()
    return "NOAUTH" in text or "WRONGPASS" in text or "PASSWORD" in text


def _join_errors(nodes: list[Node]) -> str:
    if len(nodes) == 1:
        return nodes[0].error or "not reached yet"
    parts = [f"{n.name}: {n.error or 'waiting to retry'}" for n in nodes]
    return f"all {len(nodes)} nodes unreachable: " + "; ".join(parts)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
