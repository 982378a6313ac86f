"""Judging a Redis locks reading: reachable, locks without TTL, stale locks,
memory against maxmemory, and evictions while locks exist."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collectors.config import Config
from collectors.core.model import CheckResult, Reading, Status
from collectors.core.thresholds import above, at_least, failure
from collectors.core.units import format_duration

# Every check id this judge can emit (the README's check-id table lists them).
CHECK_IDS = (
    "redis.reachable",
    "redis.locks.no_ttl",
    "redis.locks.stale",
    "redis.locks.quorum",
    "redis.memory",
    "redis.evictions",
)


def _names(keys: list[str], total: int, shown: int = 5) -> str:
    text = ", ".join(keys[:shown])
    return text + (f" and {total - shown} more" if total > shown else "")


def _untracked(d: Mapping[str, Any]) -> str:
    n = int(d.get("locks_untracked") or 0)
    return f"; {n} more locks not tracked (a lock leak?)" if n else ""


def _not_locks(d: Mapping[str, Any]) -> str:
    n = int(d.get("not_locks_total") or 0)
    if not n:
        return ""
    shown = [
        f"{x.get('key')} ({x.get('type') or x.get('error') or 'not a string'})"
        for x in (d.get("not_locks") or [])[:3]
    ]
    more = f" and {n - len(shown)} more" if n > len(shown) else ""
    return f"; {n} keys under the lock pattern are not strings, not locks: {', '.join(shown)}{more}"


def _partial(d: Mapping[str, Any]) -> str:
    if d.get("scan_complete", True):
        return _untracked(d)
    scanned = f" (partial view: {d.get('coverage', 0):.0%} of the keyspace scanned so far)"
    return _untracked(d) + scanned


def judge_redis(reading: Reading, config: Config) -> list[CheckResult]:
    if not reading.ok:
        return [failure(reading, "redis.reachable", "Redis")]
    rc = config.redis
    assert rc is not None
    d = reading.data
    t = reading.target

    def check(cid: str, status: Status, summary: str, **kw: Any) -> CheckResult:
        return CheckResult(cid, "redis", t, status, summary, **kw)

    out = [_reachable(d, check)]
    partial = _partial(d)
    total = int(d.get("locks_total", 0))
    no_ttl = int(d.get("no_ttl_total", len(d.get("no_ttl", []))))
    if no_ttl:
        out.append(
            check(
                "redis.locks.no_ttl",
                Status.CRITICAL,
                f"{no_ttl} of {total} locks never expire: {_names(d['no_ttl'], no_ttl)}"
                f"{_untracked(d)}{_not_locks(d)}",
                value=no_ttl,
                unit="count",
                crit=0,
            )
        )
    else:
        out.append(
            check(
                "redis.locks.no_ttl",
                Status.OK,
                f"all {total} locks expire{partial}{_not_locks(d)}",
                value=0,
                unit="count",
                crit=0,
            )
        )

    warn = float(rc.stale_after)
    crit = 5 * warn
    oldest = d.get("oldest_age_s")
    churn = d.get("churn") or {}
    rates = ""
    if churn.get("acquired_per_s") is not None:
        rates = (
            f"; {churn['acquired_per_s']:.1f}/s acquired, {churn['released_per_s']:.1f}/s released"
        )
    # Ages are lower bounds when the server hides idle times; values unread: said so.
    notes = "".join(f"; {d[k]}" for k in ("age_unknown", "owners_unread") if d.get(k))
    if oldest is None:
        out.append(
            check(
                "redis.locks.stale",
                Status.OK,
                f"no locks held{rates}{partial}",
                value=0,
                unit="s",
                warn=warn,
                crit=crit,
            )
        )
    else:
        stale = int(d.get("stale_total", 0))
        status = above(oldest, warn, crit)
        head = (
            f"{stale} of {total} locks held longer than {format_duration(warn)}"
            if stale
            else f"{total} locks held"
        )
        by_token = d.get("oldest_age_source") == "token"
        unknown = "at least " if d.get("age_unknown") and not by_token else ""
        # A token's time is not an idle time: say where the age came from.
        source = " (from its redis-py token's time)" if by_token else ""
        out.append(
            check(
                "redis.locks.stale",
                status,
                f"{head}; oldest {d.get('oldest_key')} for {unknown}{format_duration(oldest)}"
                f"{source}{rates}{partial}{notes}",
                value=oldest,
                unit="s",
                warn=warn,
                crit=crit,
            )
        )

    if d.get("topology") == "redlock":
        out.append(_quorum(d, total, check))
    out.append(_memory(d, rc.memory_warn, rc.memory_crit, check, at_least))
    out.append(_evictions(d, total, check))
    return out


def _quorum(d: Mapping[str, Any], total: int, check: Any) -> CheckResult:
    """Redlock: a resource held on fewer than a majority of masters is not locked
    (another client can take it), and one held by different owners on different
    masters means two clients each believe they hold it."""
    below = int(d.get("below_quorum_total", len(d.get("below_quorum") or [])))
    conflict = int(d.get("conflict_total", len(d.get("conflict") or [])))
    need = d.get("quorum_need")
    masters = len(d.get("nodes") or [])
    parts = []
    if below:
        parts.append(
            f"{below} of {total} resources held on fewer than {need} of {masters} masters: "
            f"{_names(d.get('below_quorum') or [], below)}"
        )
    if conflict:
        parts.append(
            f"{conflict} held by different owners on different masters: "
            f"{_names(d.get('conflict') or [], conflict)}"
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
    who = " (owners not read: split owners not checked)" if d.get("owners_unread") else ""
    return check(
        "redis.locks.quorum",
        Status.OK,
        f"all {total} resources held on at least {need} of {masters} masters{who}",
        value=0,
        unit="count",
        warn=0,
    )


def _clients(d: Mapping[str, Any]) -> str:
    info = d.get("info") or {}
    blocked = info.get("blocked_clients", 0)
    text = f"; {info.get('connected_clients', 0)} clients ({blocked} blocked)"
    since = info.get("rejected_since_last")
    rejected = info.get("rejected_connections") or 0
    if since is not None:
        text += f", {since} connections rejected since last round"
    elif rejected:
        text += f", {rejected} connections rejected since start"
    return text + f"; {info.get('own_commands', 0)} commands sent by ultrawatch"


def _reachable(d: Mapping[str, Any], check: Any) -> CheckResult:
    nodes = d.get("nodes") or []
    down = [n for n in nodes if not n.get("reachable")]
    info = d.get("info") or {}
    mode = d.get("mode", "scan")
    if not down:
        what = f"{len(nodes)} nodes" if len(nodes) > 1 else "Redis"
        return check(
            "redis.reachable",
            Status.OK,
            f"{what} {info.get('version') or ''} reachable; mode {mode}".replace("  ", " ")
            + _clients(d),
            value=len(nodes),
            unit="count",
        )
    names = "; ".join(f"{n['name']}: {n.get('error') or 'unreachable'}" for n in down[:5])
    up = len(nodes) - len(down)
    status = Status.CRITICAL
    if d.get("topology") == "redlock" and up >= len(nodes) // 2 + 1:
        status = Status.WARNING  # a majority still answers: Redlock still works
    return check(
        "redis.reachable",
        status,
        f"{len(down)} of {len(nodes)} nodes unreachable: {names}",
        value=up,
        unit="count",
    )


def _memory(d: Mapping[str, Any], warn: float, crit: float, check: Any, at_least: Any):
    worst: tuple[float, Mapping[str, Any]] | None = None
    for n in d.get("nodes") or []:
        mx = n.get("maxmemory") or 0
        if n.get("reachable") and mx:
            ratio = (n.get("used_memory") or 0) / mx
            if worst is None or ratio > worst[0]:
                worst = (ratio, n)
    if worst is None:
        used = (d.get("info") or {}).get("used_memory", 0)
        return check(
            "redis.memory",
            Status.OK,
            f"{_mib(used)} used; no maxmemory set",
            value=None,
            unit="ratio",
            warn=warn,
            crit=crit,
        )
    ratio, n = worst
    where = f" on {n['name']}" if len(d.get("nodes") or []) > 1 else ""
    return check(
        "redis.memory",
        at_least(ratio, warn, crit),
        f"{_mib(n.get('used_memory'))} of {_mib(n.get('maxmemory'))} maxmemory used "
        f"({ratio:.0%}){where}, policy {n.get('maxmemory_policy')}",
        value=round(ratio, 3),
        unit="ratio",
        warn=warn,
        crit=crit,
    )


def _evictions(d: Mapping[str, Any], locks: int, check: Any) -> CheckResult:
    info = d.get("info") or {}
    policy = str(info.get("maxmemory_policy") or "")
    rate = info.get("evicted_per_s")
    evicted_locks = int(d.get("evicted_locks") or 0)
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
    total = int(info.get("evicted_keys") or 0)
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


def _mib(n: Any) -> str:
    return f"{(n or 0) / 1048576:.1f} MiB"
