"""Judging a Redis locks reading: reachable, locks without TTL, stale locks,
memory against maxmemory, and evictions while locks exist.

Every threshold is here: the reading holds facts (ages, TTLs, owners), and which
locks are stale follows the `stale_after` of the configuration given, so a replay
with another configuration judges again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from collectors.core.model import CheckResult, Limits, Reading, Status
from collectors.core.thresholds import above, at_least, failure, not_read, why_unread
from collectors.core.units import format_duration
from collectors.redis.config import RedisConfig
from collectors.redis.data import Lock, NodeRow, RedisData, age_step

# Every check id this judge can emit (the README's check-id table lists them).
CHECK_IDS = (
    "redis.reachable",
    "redis.locks.no_ttl",
    "redis.locks.stale",
    "redis.locks.quorum",
    "redis.memory",
    "redis.evictions",
)

Check = Callable[..., CheckResult]


def is_stale(lock: Lock, stale_after: float) -> bool:
    """Held longer than `stale_after` (the `warn` of the judged redis.locks.stale)."""
    return lock.age_s is not None and lock.age_s > stale_after


def stale_count(d: RedisData, stale_after: float) -> tuple[int, bool]:
    """How many locks are held longer than `stale_after`, and whether that count is
    exact: the rows carry their ages, the other locks are counted per age bucket,
    and a bucket straddling the threshold (one that is not a whole second, minute
    or hour as the bucket's width needs) may hold some that are."""
    # is_stale inlined: 10,000 locks, judged and shown every round
    count = sum(1 for lk in d.locks if lk.age_s is not None and lk.age_s > stale_after)
    exact = True
    for edge, n in d.unlisted_ages:
        if edge - age_step(edge) >= stale_after:
            count += n
        elif edge > stale_after:
            exact = False
    # Locks neither listed nor counted by age (a reading recorded before the ages
    # of unlisted locks were): younger than every listed lock with a TTL, so none
    # is stale when no listed lock is.
    if count and d.locks_total > len(d.locks) + sum(n for _, n in d.unlisted_ages):
        exact = False
    return count, exact


def _names(keys: list[str], total: int, shown: int = 5) -> str:
    text = ", ".join(keys[:shown])
    return text + (f" and {total - shown} more" if total > shown else "")


def _untracked(d: RedisData) -> str:
    n = d.locks_untracked
    return f"; {n} more locks not tracked (a lock leak?)" if n else ""


def _not_locks(d: RedisData) -> str:
    n = d.not_locks_total
    if not n:
        return ""
    shown = [f"{x.key} ({x.type or x.error or 'not a string'})" for x in d.not_locks[:3]]
    more = f" and {n - len(shown)} more" if n > len(shown) else ""
    return f"; {n} keys under the lock pattern are not strings, not locks: {', '.join(shown)}{more}"


def _partial(d: RedisData) -> str:
    if d.scan_complete:
        return _untracked(d)
    scanned = f" (partial view: {d.coverage:.0%} of the keyspace scanned so far)"
    return _untracked(d) + scanned


def is_redlock(rc: RedisConfig) -> bool:
    """Several independent masters (`urls`), not a cluster: locks are Redlock's."""
    return bool(rc.urls) and len(rc.urls or ()) > 1 and not rc.cluster


def check_ids(rc: RedisConfig) -> list[str]:
    """Every check id a reading judged with this config has (redis.reachable first),
    whether or not Redis could be read."""
    quorum = ["redis.locks.quorum"] if is_redlock(rc) else []
    return [
        "redis.reachable",
        "redis.locks.no_ttl",
        "redis.locks.stale",
        *quorum,
        "redis.memory",
        "redis.evictions",
    ]


def judge_redis(reading: Reading, rc: RedisConfig) -> list[CheckResult]:
    """The checks of one reading, judged with the [redis] section `rc`."""
    if not reading.ok:
        why = why_unread(reading, "Redis")
        return [
            failure(reading, "redis.reachable", "Redis"),
            *not_read(reading, check_ids(rc)[1:], why),
        ]
    d: RedisData = reading.data
    t = reading.target

    def check(cid: str, status: Status, summary: str, **kw: Any) -> CheckResult:
        return CheckResult(cid, "redis", t, status, summary, **kw)

    total = d.locks_total
    out = [_reachable(d, check), _no_ttl(d, total, check), _stale(d, total, rc, check)]
    if d.topology == "redlock":
        out.append(_quorum(d, total, check))
    elif is_redlock(rc):  # a reading from a single node, judged with a Redlock config
        out.append(check("redis.locks.quorum", Status.UNKNOWN, "not a Redlock reading: not read"))
    out.append(_memory(d, rc.memory_warn, rc.memory_crit, check))
    out.append(_evictions(d, total, check))
    return out


def _no_ttl(d: RedisData, total: int, check: Check) -> CheckResult:
    no_ttl = d.no_ttl_total if d.no_ttl_total is not None else len(d.no_ttl)
    if no_ttl:
        return check(
            "redis.locks.no_ttl",
            Status.CRITICAL,
            f"{no_ttl} of {total} locks never expire: {_names(d.no_ttl, no_ttl)}"
            f"{_untracked(d)}{_not_locks(d)}",
            value=no_ttl,
            unit="count",
            crit=0,
        )
    return check(
        "redis.locks.no_ttl",
        Status.OK,
        f"all {total} locks expire{_partial(d)}{_not_locks(d)}",
        value=0,
        unit="count",
        crit=0,
    )


def _stale(d: RedisData, total: int, rc: RedisConfig, check: Check) -> CheckResult:
    warn = float(rc.stale_after)
    crit = 5 * warn
    oldest = d.oldest_age_s
    churn = d.churn
    rates = ""
    if churn.acquired_per_s is not None:
        rates = (
            f"; {churn.acquired_per_s:.1f}/s acquired, {churn.released_per_s or 0.0:.1f}/s released"
        )
    if oldest is None:
        return check(
            "redis.locks.stale",
            Status.OK,
            f"no locks held{rates}{_partial(d)}",
            value=0,
            unit="s",
            warn=warn,
            crit=crit,
        )
    stale, exact = stale_count(d, warn)
    head = f"{total} locks held"
    if stale or not exact:
        at_least_ = "" if exact else "at least "
        head = f"{at_least_}{stale} of {total} locks held longer than {format_duration(warn)}"
    by_token = d.oldest_age_source == "token"
    unknown = "at least " if d.age_unknown and not by_token else ""
    # A token's time is not an idle time: say where the age came from.
    source = " (from its redis-py token's time)" if by_token else ""
    if d.oldest_renewed_ago_s is not None:
        # Its holder keeps extending it: alive, or hung in a loop that renews.
        source += (
            f" (renewed by its holder {format_duration(d.oldest_renewed_ago_s)} ago: "
            "held that long by the same owner)"
        )
    # Ages are lower bounds when the server hides idle times; values unread: said so.
    notes = "".join(f"; {note}" for note in (d.age_unknown, d.owners_unread) if note)
    return check(
        "redis.locks.stale",
        above(oldest, warn, crit),
        f"{head}; oldest {d.oldest_key} for {unknown}{format_duration(oldest)}"
        f"{source}{rates}{_partial(d)}{notes}",
        value=oldest,
        unit="s",
        warn=warn,
        crit=crit,
    )


def _quorum(d: RedisData, total: int, check: Check) -> CheckResult:
    """Redlock: a resource held on fewer than a majority of masters is not locked
    (another client can take it), and one held by different owners on different
    masters means two clients each believe they hold it."""
    below = d.below_quorum_total if d.below_quorum_total is not None else len(d.below_quorum)
    conflict = d.conflict_total if d.conflict_total is not None else len(d.conflict)
    need = d.quorum_need
    masters = len(d.nodes)
    parts = []
    if below:
        parts.append(
            f"{below} of {total} resources held on fewer than {need} of {masters} masters: "
            f"{_names(d.below_quorum, below)}"
        )
    if conflict:
        parts.append(
            f"{conflict} held by different owners on different masters: "
            f"{_names(d.conflict, conflict)}"
        )
    if parts:
        return check(
            "redis.locks.quorum",
            Status.WARNING,
            "; ".join(parts),
            value=below + conflict,
            unit="count",
            warn=0,
        )
    # Unread owners (a one-shot check before Redis 7.2) cannot show a split.
    who = " (owners not read: split owners not checked)" if d.owners_unread else ""
    return check(
        "redis.locks.quorum",
        Status.OK,
        f"all {total} resources held on at least {need} of {masters} masters{who}",
        value=0,
        unit="count",
        warn=0,
    )


def _clients(d: RedisData) -> str:
    info = d.info
    text = f"; {info.connected_clients} clients ({info.blocked_clients} blocked)"
    since = info.rejected_since_last
    if since is not None:
        text += f", {since} connections rejected since last round"
    elif info.rejected_connections:
        text += f", {info.rejected_connections} connections rejected since start"
    return text + f"; {info.own_commands} commands sent by ultrawatch"


def _reachable(d: RedisData, check: Check) -> CheckResult:
    nodes = d.nodes
    down = [n for n in nodes if not n.reachable]
    if not down:
        what = f"{len(nodes)} nodes" if len(nodes) > 1 else "Redis"
        return check(
            "redis.reachable",
            Status.OK,
            f"{what} {d.info.version or ''} reachable; mode {d.mode}".replace("  ", " ")
            + _clients(d),
            value=len(nodes),
            unit="count",
        )
    names = "; ".join(f"{n.name}: {n.error or 'unreachable'}" for n in down[:5])
    up = len(nodes) - len(down)
    status = Status.CRITICAL
    if d.topology == "redlock" and up >= len(nodes) // 2 + 1:
        status = Status.WARNING  # a majority still answers: Redlock still works
    return check(
        "redis.reachable",
        status,
        f"{len(down)} of {len(nodes)} nodes unreachable: {names}",
        value=up,
        unit="count",
    )


def _memory(d: RedisData, warn: float, crit: float, check: Check) -> CheckResult:
    worst: tuple[float, NodeRow] | None = None
    for n in d.nodes:
        mx = n.maxmemory or 0
        if n.reachable and mx:
            ratio = (n.used_memory or 0) / mx
            if worst is None or ratio > worst[0]:
                worst = (ratio, n)
    if worst is None:
        return check(
            "redis.memory",
            Status.OK,
            f"{_mib(d.info.used_memory)} used; no maxmemory set",
            value=None,
            unit="ratio",
            warn=warn,
            crit=crit,
        )
    ratio, n = worst
    where = f" on {n.name}" if len(d.nodes) > 1 else ""
    return check(
        "redis.memory",
        at_least(ratio, warn, crit),
        f"{_mib(n.used_memory)} of {_mib(n.maxmemory)} maxmemory used "
        f"({ratio:.0%}){where}, policy {n.maxmemory_policy}",
        value=round(ratio, 3),
        unit="ratio",
        warn=warn,
        crit=crit,
        limits=Limits(warn_above=warn, crit_above=crit, reach=True),
    )


def _evictions(d: RedisData, locks: int, check: Check) -> CheckResult:
    info = d.info
    policy = info.maxmemory_policy
    rate = info.evicted_per_s
    evicted_locks = d.evicted_locks
    evicting = bool(policy) and any(p != "noeviction" for p in policy.split(","))
    if evicted_locks:
        return check(
            "redis.evictions",
            Status.CRITICAL,
            f"{evicted_locks} lock keys were evicted: mutual exclusion is broken (policy {policy})",
            value=evicted_locks,
            unit="count",
            crit=0,
        )
    if rate and locks and evicting:
        return check(
            "redis.evictions",
            Status.CRITICAL,
            f"{rate:.1f} keys/s evicted under {policy} while {locks} locks are held: "
            "evicted locks let two holders in",
            value=rate,
            unit="count",
            crit=0,
        )
    total = info.evicted_keys
    if rate is None and total and locks and evicting:
        # A one-shot check has no previous sample: the total is all it knows.
        return check(
            "redis.evictions",
            Status.WARNING,
            f"{total} keys evicted since start under {policy} while {locks} locks are held; "
            "rate next round (evicted locks let two holders in)",
            value=total,
            unit="count",
            crit=0,
        )
    if rate is None:
        summary = f"{total} keys evicted since start (rate next round)"
    else:
        summary = f"{rate:.1f} keys/s evicted"
    if evicting and locks:
        summary += f"; policy {policy} may evict locks"
    return check("redis.evictions", Status.OK, summary, value=rate, unit="count", crit=0)


def _mib(n: int | None) -> str:
    return f"{(n or 0) / 1048576:.1f} MiB"
