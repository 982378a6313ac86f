"""What a Redis locks reading carries: facts, never verdicts.

Field names are the keys readings had as plain dicts, so recordings made before
these types existed read back into them (fields they lack take the defaults; keys
these types no longer have, such as the old `stale` list, are ignored). Whether a
lock is stale is the judge's call (collectors/redis/rules.py) from the ages here
and the configuration it is given, so a replay with another `stale_after` judges
again.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from itertools import repeat

import msgspec


class Lock(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One lock (a resource, for Redlock: the value most masters hold). Up to
    10,000 per round: no GC tracking (it holds only strings and numbers)."""

    key: str  # exact_text of the key (lossless)
    owner: str | None = None  # the value for display; None: not read
    owner_exact: str | None = None  # lossless value; None when too long or not read
    owner_sha1: str | None = None  # SHA-1 of a value too long for an exact form
    owner_read: bool = True
    # The collector always knows these; None only in a reading from elsewhere
    # that lacks them (shown as a dash, never stale).
    ttl_ms: int | None = None  # -1: never expires
    age_s: float | None = None  # rounded to 0.1 s
    age_known: bool = True  # False: a lower bound (our first sight of the lock)
    age_source: str = "idle"  # "idle" | "token" | "first_seen"
    # Its library, from the key's and value's shape: "redis-py" | "python-redis-lock"
    # | "pottery" | "uuid4" (Redlock, aioredlock...) | "node-redlock" | "redlock"
    # (several masters, another value) | "generic" | "unknown" (value not read)
    kind: str = "unknown"
    # Its TTL extended by the same owner while we watched (the holder is alive):
    # how long ago we last saw that, and how many times. age_s is then how long
    # that owner has held it (since first seen), not an idle time.
    renewed_ago_s: float | None = None
    renewals: int = 0
    holders: int = 1  # masters holding this value
    masters: int = 1
    quorum: bool | None = None  # Redlock only: held on a majority of masters
    conflict: bool = False  # Redlock: another master holds another value
    nodes: list[str] = msgspec.field(default_factory=list)


class NodeRow(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One server. An unreachable one has only its name, role and error."""

    name: str
    role: str = "master"
    reachable: bool = False
    error: str | None = None
    version: str | None = None
    mode: str | None = None  # "events" | "scan"
    mode_reason: str | None = None
    scan_complete: bool | None = None
    coverage: float | None = None
    locks: int | None = None
    locks_untracked: int | None = None
    keys: int | None = None
    used_memory: int | None = None
    maxmemory: int | None = None
    maxmemory_policy: str | None = None
    evicted_keys: int | None = None
    evicted_per_s: float | None = None
    connected_clients: int | None = None
    blocked_clients: int | None = None
    rejected_connections: int | None = None
    rejected_since_last: int | None = None
    own_commands: int | None = None
    values_read: bool | None = None
    idle_supported: bool | None = None
    restarted: bool | None = None


class Info(msgspec.Struct, kw_only=True, frozen=True):
    """INFO summed over the nodes that answered."""

    connected_clients: int = 0
    blocked_clients: int = 0
    used_memory: int = 0
    maxmemory: int = 0  # 0: no limit (on some node)
    maxmemory_policy: str = ""  # the nodes' policies, comma-separated
    evicted_keys: int = 0
    evicted_per_s: float | None = None  # None: no previous sample yet
    rejected_connections: int = 0
    rejected_since_last: int | None = None
    own_commands: int = 0
    version: str | None = None


class Churn(msgspec.Struct, kw_only=True, frozen=True):
    acquired_per_s: float | None = None  # None: the first round
    released_per_s: float | None = None


class NotLock(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A key under a lock pattern that is not a string: its type, or the error."""

    key: str
    type: str | None = None
    error: str | None = None


class RedisData(msgspec.Struct, kw_only=True, frozen=True):
    """A reading of the locks and the servers (a failed one: only `nodes`, `mode`)."""

    mode: str = "scan"  # "events" when every node follows keyspace notifications
    mode_reason: str = ""
    scan_complete: bool = True  # every node has ended a full pass
    coverage: float = 0.0  # share of the keyspace the view covers
    scanned_keys: int = 0
    scan_calls: int = 0
    keys_total: int = 0
    patterns: list[str] = msgspec.field(default_factory=list)
    topology: str = "single"  # "single" | "redlock" | "cluster"
    cluster_error: str | None = None
    nodes: list[NodeRow] = msgspec.field(default_factory=list)
    # The first MAX_LOCKS locks: those without expiry, then the oldest.
    locks: list[Lock] = msgspec.field(default_factory=list)
    locks_total: int = 0  # every lock, rows or not
    # The ages of the locks that are not rows (see age_bucket), so that any age
    # threshold counts every lock.
    unlisted_ages: list[tuple[int, int]] = msgspec.field(default_factory=list)
    no_ttl: list[str] = msgspec.field(default_factory=list)  # first names, sorted
    no_ttl_total: int | None = None  # None (hand-built readings): len(no_ttl)
    oldest_age_s: float | None = None
    oldest_key: str | None = None
    oldest_age_source: str | None = None
    oldest_renewed_ago_s: float | None = None  # the oldest lock's last renewal seen
    below_quorum: list[str] = msgspec.field(default_factory=list)
    below_quorum_total: int | None = None
    conflict: list[str] = msgspec.field(default_factory=list)
    conflict_total: int | None = None
    quorum_need: int | None = None
    locks_untracked: int = 0  # lock keys seen beyond what a node tracks
    locks_tracked_max: int = 0
    churn: Churn = msgspec.field(default_factory=Churn)
    vanished: int = 0
    evicted_locks: int = 0
    not_locks: list[NotLock] = msgspec.field(default_factory=list)
    not_locks_total: int = 0
    owners_unread: str | None = None  # why owners were not read, when they were not
    age_unknown: str | None = None  # why ages are lower bounds, when they are
    info: Info = msgspec.field(default_factory=Info)


# ------------------------------------------------------ ages of unlisted locks

HOUR = 3600
DAY = 86400


def age_bucket(age_s: float) -> int:
    """The bucket a lock of this age (rounded to 0.1 s, as rows are) counts under in
    `unlisted_ages`: its upper edge, the whole second up to an hour, the whole
    minute up to a day, the whole hour beyond. The bucket holds ages in
    (edge - age_step(edge), edge]."""
    age = max(0.0, round(age_s, 1))
    if age <= HOUR:
        return math.ceil(age)
    if age <= DAY:
        return math.ceil(age / 60) * 60
    return math.ceil(age / HOUR) * HOUR


def age_buckets(ages: Iterable[float]) -> list[tuple[int, int]]:
    """`unlisted_ages` for these ages: (edge, count) by edge, as age_bucket puts them.
    10,000 locks a round: the whole seconds are counted in C, then regrouped (the
    minute or hour above an age is the one above its whole second)."""
    seconds = Counter(map(math.ceil, map(round, ages, repeat(1))))
    if not seconds or max(seconds) <= HOUR:
        return sorted(seconds.items())
    out: Counter[int] = Counter()
    for edge, n in seconds.items():
        out[age_bucket(edge)] += n
    return sorted(out.items())


def age_step(edge: int) -> int:
    """The width of the bucket whose upper edge is `edge`."""
    return 1 if edge <= HOUR else 60 if edge <= DAY else HOUR
