"""Release a stuck Redis lock safely: compare-and-delete with the exact value seen.

The plan reads the lock on every master (several for Redlock); execution runs a
Lua compare-and-delete with that exact value, so a lock that was released and
taken again by someone else in between is never deleted: the action refuses and
says so. Verification reads the key again.

Without an owner named (`--owner`, `--owner-sha1`, the TUI's row), only a lock the
judge calls stuck is released: one that never expires, or one held longer than
`redis.stale_after`. Otherwise two overlapping runs could each read "the" owner,
the second reading the lock a new holder just took, and delete it. A young or
healthy lock is refused unless `force` (which still compares the value).

Only keys under `redis.lock_patterns` that hold strings are released. The release
is the lock library's own (one Lua script): python-redis-lock's waiters block on
BLPOP of `lock-signal:<name>`, so its lock is deleted and that list signalled as
its UNLOCK_SCRIPT does. Reading the lock leaves no trace (CLIENT NO-TOUCH, or
before Redis 7.2 the collector's PEEK): a refused or cancelled release never makes
a stuck lock look young to the next check. After the release the key is watched
for a few seconds: a live holder that re-creates it (aioredlock's watchdog does)
makes the release "not verified".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import RedisError, ResponseError

from collectors.config import Config
from collectors.core.units import format_duration
from collectors.redis.collector import kind_of
from collectors.redis.node import PEEK, describe_error
from collectors.redis.text import (
    SIGNAL_PREFIX,
    display_text,
    exact_text,
    matches_any,
    node_name,
    parse_exact,
)
from dashboard.actions.base import ActionRefused, Outcome, Plan, Progress, Result

# Delete only if the value is still exactly the one the engineer saw (ARGV[2] = "sha1":
# ARGV[1] is the SHA-1 of a value too long to carry exactly; "idle": the value was not
# read (Redis < 7.2, where reading it would have reset the idle time), and the key
# must be untouched since the plan: its idle time at least ARGV[1] seconds). ARGV[3]
# = "no-ttl": it was released for never expiring, so it must still never expire (a
# holder that set a TTL since is alive). With KEYS[2] (python-redis-lock's
# `lock-signal:<name>`), a value of its id shape (24 base64 characters) is released
# as its own UNLOCK_SCRIPT does: the list renewed with one element expiring in
# ARGV[4] ms, which wakes a waiter blocked in BLPOP. 1 deleted, 0 another value (left
# in place), -1 no such key any more, -3 it expires now (left in place), -4 touched
# since the plan (left in place).
CAS_DELETE = """
if redis.call('exists', KEYS[1]) == 0 then
  return {-1}
end
if ARGV[2] == 'idle' and redis.call('object', 'idletime', KEYS[1]) < tonumber(ARGV[1]) then
  return {-4}
end
local v = redis.call('get', KEYS[1])
if ARGV[2] == 'sha1' then
  if redis.sha1hex(v) ~= ARGV[1] then
    return {0}
  end
elseif ARGV[2] ~= 'idle' and v ~= ARGV[1] then
  return {0}
end
if ARGV[3] == 'no-ttl' and redis.call('pttl', KEYS[1]) ~= -1 then
  return {-3}
end
if KEYS[2] and string.len(v) == 24 and string.match(v, '^[A-Za-z0-9+/_-]+$') then
  redis.call('del', KEYS[2])
  redis.call('lpush', KEYS[2], 1)
  redis.call('pexpire', KEYS[2], ARGV[4])
end
return {redis.call('del', KEYS[1]), v}
"""
SIGNAL_EXPIRE_MS = 1000  # python-redis-lock's default signal_expire
# After the release, how long the key is watched for its holder re-creating it. A
# live holder renews before its TTL runs out: a lock with a TTL that was renewed or
# touched within `stale_after` is watched up to the TTL the plan saw, at most
# WATCH_MAX (aioredlock renews every 6 s by default). Others (no TTL, or untouched
# for longer: no holder renews them) get a short look for a waiter taking them.
WATCH_MAX = 6.5
WATCH_SHORT = 0.5
WATCH_EVERY = 0.05


@dataclass
class _Seen:
    master: str
    value: bytes | None  # None: no such key, or (read False) not read
    pttl: int
    idle: int | None
    error: str | None = None
    read: bool = True  # the value was read (else: reading it would leave a trace)
    at: float = 0.0  # when read (monotonic)


class ReleaseLock:
    name = "release-lock"

    def __init__(
        self,
        config: Config,
        key: str | bytes,
        expected_owner: str | bytes | None = None,
        *,
        age_s: float | None = None,
        expected_sha1: str | None = None,
        force: bool = False,
        renewed_ago_s: float | None = None,
        watch_s: float | None = None,
    ) -> None:
        """`key` and `expected_owner` as bytes, or as the text a reading shows
        (`key`, `owner_exact`), which is decoded losslessly. A value too long for an
        exact form is named by its SHA-1 (`owner_sha1`). `age_s`: the lock's age as
        the caller's reading knows it (an idle time read now may have been reset by
        an earlier GET). Without an owner, only a stuck lock is released unless
        `force`. `renewed_ago_s`: the caller's reading saw the owner extend its TTL
        that long ago (the holder is alive: the plan warns). `watch_s`: how long to
        watch for the holder re-creating the lock after the release (default: up to
        the TTL seen, at most WATCH_MAX)."""
        self.config = config
        self.key = key if isinstance(key, bytes) else parse_exact(key)
        self.expected = (
            expected_owner
            if isinstance(expected_owner, bytes | None)
            else parse_exact(expected_owner)
        )
        self.expected_sha1 = expected_sha1.lower() if expected_sha1 else None
        self.age_s = age_s
        self.force = force
        self.renewed_ago_s = renewed_ago_s
        self.watch_s = watch_s
        self.kind = "unknown"
        self.signal: bytes | None = None  # python-redis-lock's list, when its key shape
        # Per master, for an unread value: (idle time at the plan, less one; when read).
        self.unread_idle: dict[str, tuple[int, float]] = {}
        self.ttl_ms = -2  # as the plan saw it
        self.holder_may_renew = False  # a TTL renewed or touched lately: watched longer
        self.released_at = 0.0
        # Why the lock may go without an owner named (set by plan), and the masters
        # where it was released for never expiring.
        self.stuck: str | None = None
        self.no_ttl_on: set[str] = set()
        # Per master: CLIENT NO-TOUCH accepted, so our reads leave its idle times alone.
        self.touch_off: dict[str, bool] = {}
        self.clients: dict[str, Any] = {}
        self.targets: list[str] = []  # masters that hold exactly the expected value
        self.value: bytes | None = None
        self.deleted: dict[str, int] = {}
        self.retaken_after: dict[str, float] = {}  # master -> seconds after the release

    # ------------------------------------------------------------ connecting

    def _connect(self) -> dict[str, Any]:
        rc = self.config.redis
        if rc is None:
            raise ActionRefused("no [redis] section in the configuration")
        if self.clients:
            return self.clients
        kwargs: dict[str, Any] = {
            "socket_timeout": float(rc.socket_timeout),
            "socket_connect_timeout": float(rc.socket_timeout),
            "client_name": "ultrawatch-action",
        }
        for url in rc.resolved_urls():
            extra = dict(kwargs)
            if url.startswith("rediss://") and rc.ssl_ca_file:
                extra["ssl_ca_certs"] = rc.ssl_ca_file
            if rc.cluster:
                from redis.asyncio.cluster import RedisCluster

                # The cluster client routes the key to the primary owning its slot.
                self.clients[node_name(url)] = RedisCluster.from_url(url, **extra)
                break
            extra["retry"] = Retry(NoBackoff(), 0)
            # One connection per master, so CLIENT NO-TOUCH sent once covers every read.
            extra["single_connection_client"] = True
            self.clients[node_name(url)] = aioredis.Redis.from_url(url, **extra)
        return self.clients

    @property
    def audit_target(self) -> str:
        """What a refused run is audited under when no plan was made."""
        return exact_text(self.key)

    @property
    def audit_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"key": exact_text(self.key)}
        if self.expected is not None:
            params["owner"] = display_text(self.expected)
        if self.expected_sha1:
            params["owner_sha1"] = self.expected_sha1
        return params

    async def _read_one(self, name: str, client: Any, cluster: bool) -> _Seen:
        """One master's view of the key, leaving no trace: TYPE, OBJECT IDLETIME and
        PTTL never touch it; the value is read with CLIENT NO-TOUCH on, else (before
        Redis 7.2) with PEEK, which reads it only when that changes nothing, else
        with a GET only when the key was touched within the last second anyway."""
        if name not in self.touch_off and not cluster:
            try:  # Redis >= 7.2 / Valkey: our GET must not make the lock look fresh
                await client.execute_command("CLIENT", "NO-TOUCH", "ON")
                self.touch_off[name] = True
            except ResponseError:
                self.touch_off[name] = False
        kind = await client.type(self.key)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind == "none":
            return _Seen(name, None, -2, None, at=time.monotonic())
        if kind != "string":
            return _Seen(name, None, -2, None, f"{kind}, not a string: not a lock", False)
        idle = None
        with contextlib.suppress(ResponseError):
            idle = await client.object("idletime", self.key)
        pttl = int(await client.pttl(self.key))
        at = time.monotonic()
        if self.touch_off.get(name) or idle is None:
            value = await client.get(self.key)  # no trace (NO-TOUCH, or no idle time: LFU)
            return _Seen(name, value, pttl, idle, at=at)
        try:
            reply = await client.eval(PEEK, 1, self.key)
        except ResponseError:  # scripts refused to this user: not read
            reply = []
        if len(reply) > 1:
            return _Seen(name, reply[1], pttl, idle, at=at)
        if idle <= 1 and self.expected is None and self.expected_sha1 is None:
            # Touched within the last second or two by others: our GET moves its
            # idle time by a second at most, and the compare gets the exact value.
            return _Seen(name, await client.get(self.key), pttl, idle, at=at)
        return _Seen(name, None, pttl, idle, read=False, at=at)

    async def _read(self) -> list[_Seen]:
        out = []
        cluster = bool(self.config.redis and self.config.redis.cluster)
        for name, client in self._connect().items():
            try:
                out.append(await self._read_one(name, client, cluster))
            except ResponseError as e:
                out.append(_Seen(name, None, -2, None, f"not a string lock: {e}"))
            except (RedisError, OSError) as e:
                rc = self.config.redis
                timeout = float(rc.socket_timeout) if rc else 2.0
                urls = rc.resolved_urls() if rc else []
                url = next((u for u in urls if node_name(u) == name), "")
                out.append(_Seen(name, None, -2, None, describe_error(e, timeout, url)))
        return out

    # ----------------------------------------------------------------- steps

    def _only_locks(self, key: str) -> None:
        """Refuse a key outside every lock pattern: cart:123 is not a lock."""
        rc = self.config.redis
        patterns = list(rc.lock_patterns) if rc is not None else []
        if self.key.startswith(SIGNAL_PREFIX):
            raise ActionRefused(
                f"{key} is python-redis-lock's wake-up list, not a lock: nothing was done"
            )
        if not matches_any(patterns, self.key):
            raise ActionRefused(
                f"{key} matches none of redis.lock_patterns ({', '.join(patterns)}): "
                "only lock keys are released; nothing was done"
            )

    async def plan(self) -> Plan:
        key = exact_text(self.key)
        self._only_locks(key)
        seen = await self._read()
        failed = [s for s in seen if s.error]
        wrong = [s for s in failed if s.error and "not a string" in s.error]
        if wrong:
            raise ActionRefused(f"{key} is a {wrong[0].error}; nothing was done")
        held = [s for s in seen if s.value is not None or (not s.read and not s.error)]
        if not held:
            why = "; ".join(f"{s.master}: {s.error}" for s in failed)
            if failed and len(failed) == len(seen):
                raise ActionRefused(f"cannot read {key}: {why}")
            raise ActionRefused(f"{key} is not held (no such key): nothing to release")
        mine = self._mine(key, held)
        self.targets = [s.master for s in mine]
        first = mine[0]
        self.ttl_ms = first.pttl
        rc = self.config.redis
        stale_after = float(rc.stale_after) if rc is not None else 30.0
        recent = first.idle is None or first.idle < stale_after
        self.holder_may_renew = first.pttl >= 0 and (self.renewed_ago_s is not None or recent)
        value = self.value
        self.kind = kind_of(self.key, value, len(seen) > 1) if value is not None else "unknown"
        if self.key.startswith(b"lock:"):
            signal = SIGNAL_PREFIX + self.key[len(b"lock:") :]
            # One script takes keys of one cluster slot only (python-redis-lock's
            # own release cannot run on a cluster either, unless hash-tagged).
            cluster = bool(self.config.redis and self.config.redis.cluster)
            if not cluster or key_slot(signal) == key_slot(self.key):
                self.signal = signal
        if self.expected is None and self.expected_sha1 is None:
            self._judge_stuck(key, mine)
        for s in mine:
            if s.value is None and self.expected is None and self.expected_sha1 is None:
                # Unread: compared by "untouched since the plan" (see CAS_DELETE):
                # its idle time then, less one for the resolution, plus the time since.
                self.unread_idle[s.master] = ((s.idle or 0) - 1, s.at)
        details = self._details(key, seen, held, mine, failed)
        where = f" on {len(mine)} master(s)" if len(seen) > 1 else ""
        return Plan(
            action=self.name,
            target=key,
            summary=f"delete {key}{where} only if it still holds {self._owner_text()}",
            details=details,
            params=self._params(key, first.pttl),
            confirm_name=key,
        )

    def _mine(self, key: str, held: list[_Seen]) -> list[_Seen]:
        """The masters holding the value to release (sets `value`)."""
        read = [s for s in held if s.value is not None]
        if self.expected_sha1 is not None:
            # A long value known by its SHA-1: the one read now must hash to it.
            match = [s.value for s in read if _sha1(s.value) == self.expected_sha1]
            self.value = match[0] if match else None
            unread = [s for s in held if not s.read]
            if self.value is None and unread:
                return unread  # compared by SHA-1 inside the script
        elif self.expected is None:
            # Without --owner, the value read now is the one that must still be there.
            values = [s.value for s in read]
            self.value = max(set(values), key=values.count) if values else None
            if not values:
                return held  # none read: compared by "untouched since the plan"
        else:
            self.value = self.expected
            unread = [s for s in held if not s.read]
            if unread and not read:
                return unread  # compared with the given owner inside the script
        mine = [s for s in read if self.value is not None and s.value == self.value]
        mine += [s for s in held if not s.read and (self.expected or self.expected_sha1)]
        if not mine:
            now = display_text(read[0].value or b"") if read else "another value"
            raise ActionRefused(f"{key} holds {now}, not {self._owner_text()}: nothing was done")
        return mine

    def _owner_text(self) -> str:
        if self.value is not None:
            return display_text(self.value)
        if self.expected_sha1 is not None:
            return f"a value with SHA-1 {self.expected_sha1}"
        return "the value it holds now (untouched since this plan)"

    def _details(
        self,
        key: str,
        seen: list[_Seen],
        held: list[_Seen],
        mine: list[_Seen],
        failed: list[_Seen],
    ) -> list[tuple[str, str]]:
        first = mine[0]
        ttl = "never expires" if first.pttl == -1 else format_duration(max(0, first.pttl) / 1000)
        owner = (
            display_text(self.value)
            if self.value is not None
            else "not read (this server has no CLIENT NO-TOUCH: reading it would reset "
            "the idle time every check reads as its age)"
        )
        details = [
            ("key", key),
            ("owner", owner),
            ("kind", self.kind),
            ("release", self._how()),
            ("ttl", ttl),
            self._age(first.idle),
        ]
        warning = self._alive(first)
        if warning:
            details.append(("warning", warning))
        masters = len(seen)
        if masters > 1:
            details.append(("masters", f"{len(mine)} of {masters} hold this value"))
            others = [s for s in held if s.value is not None and s.value != self.value]
            if others:
                details.append(
                    ("left alone", ", ".join(f"{s.master} (another holder)" for s in others))
                )
        if failed:
            details.append(("unreadable", "; ".join(f"{s.master}: {s.error}" for s in failed)))
        if self.stuck:
            details.append(("stuck", self.stuck))
        return details

    def _how(self) -> str:
        """What will be done, the way the lock's library releases it."""
        compare = "compare-and-delete in one script"
        if self.signal is None:
            return compare
        signal = exact_text(self.signal)
        wake = (
            f"and push one wake-up to {signal} (expiring in {SIGNAL_EXPIRE_MS} ms), as "
            "python-redis-lock's own release does, so a waiter blocked on it gets the lock"
        )
        if self.kind == "python-redis-lock":
            return f"{compare}, {wake}"
        return f"{compare}; if the value is a python-redis-lock id, {wake}"

    def _alive(self, first: _Seen) -> str | None:
        """Does the holder look alive (its TTL renewed)? It may then re-take the lock."""
        if self.renewed_ago_s is not None:
            ago = format_duration(self.renewed_ago_s)
            return f"TTL renewed {ago} ago: the holder may re-take it"
        if first.pttl >= 0 and first.idle is not None and first.idle <= 2:
            return (
                f"touched {format_duration(first.idle)} ago with a TTL (a renewal, or "
                "clients retrying): the holder may be alive and re-take it"
            )
        return None

    def _params(self, key: str, pttl: int) -> dict[str, Any]:
        params: dict[str, Any] = {
            "key": key,
            "owner": display_text(self.value) if self.value is not None else "not read",
            "kind": self.kind,
            "masters": self.targets,
            "ttl_ms": pttl,
        }
        if self.expected_sha1:
            params["owner_sha1"] = self.expected_sha1
        if self.force:
            params["force"] = True
        if self.stuck:
            params["stuck"] = self.stuck
        return params

    def _judge_stuck(self, key: str, mine: list[_Seen]) -> None:
        """Without an owner named: refuse unless the lock is stuck as the judge says
        (no TTL, or held longer than `stale_after`) on every master holding it. The
        age is a lower bound (an idle time: any access resets it), so a lock taken a
        moment ago is never taken for stale. Sets `stuck` (why, for the plan) and
        `no_ttl_on` (masters where it must still never expire when deleted)."""
        rc = self.config.redis
        stale_after = float(rc.stale_after) if rc is not None else 30.0
        ages = {s.master: max(self.age_s or 0.0, float(s.idle or 0)) for s in mine}
        self.no_ttl_on = {s.master for s in mine if s.pttl == -1}
        young = [s for s in mine if s.master not in self.no_ttl_on]
        young = [s for s in young if ages[s.master] <= stale_after]
        if not young:
            stale = f"held longer than {format_duration(stale_after)} (redis.stale_after)"
            self.stuck = "never expires" if len(self.no_ttl_on) == len(mine) else stale
            return
        if self.force:
            self.no_ttl_on = set()
            return
        first = young[0]
        ttl = format_duration(max(0, first.pttl) / 1000)
        age = format_duration(ages[first.master])
        seen = f"last used {age} ago" if self.age_s is None else f"held {age}"
        raise ActionRefused(
            f"{key} is not stuck (expires in {ttl}, {seen}; stale after "
            f"{format_duration(stale_after)}): nothing was done; add --owner "
            f"{display_text(self.value) if self.value is not None else 'VALUE'} to "
            "release this holder's lock anyway, or --force"
        )

    def _age(self, idle: int | None) -> tuple[str, str]:
        """The age line: the caller's reading knows it best; else the idle time,
        which no read of ours resets (CLIENT NO-TOUCH, or PEEK before 7.2)."""
        if self.age_s is not None:
            return ("age", f"{format_duration(max(self.age_s, idle or 0))} (as last seen)")
        if idle is None:
            return ("age", "unknown (OBJECT IDLETIME refused)")
        return ("age", f"at least {format_duration(idle)} (idle time)")

    async def execute(self, plan: Plan, progress: Progress) -> None:
        clients = self._connect()
        for name in self.targets:
            if self.expected_sha1:
                args: tuple[Any, ...] = (self.expected_sha1, "sha1")
            elif self.value is not None:
                args = (self.value, "exact")
            else:
                idle, at = self.unread_idle.get(name, (0, time.monotonic()))
                args = (max(0, idle + int(time.monotonic() - at)), "idle")
            # Stuck for never expiring: it still must not expire when it is deleted.
            when = "no-ttl" if name in self.no_ttl_on else "any"
            keys = (self.key, self.signal) if self.signal is not None else (self.key,)
            reply = await clients[name].eval(
                CAS_DELETE, len(keys), *keys, *args, when, SIGNAL_EXPIRE_MS
            )
            self.released_at = time.monotonic()
            n = int(reply[0])
            self.deleted[name] = n
            if n == 1 and self.value is None and len(reply) > 1:
                # Not read in the plan (that would have touched it): the script says
                # what it deleted, for the audit and the watch that follows.
                self.value = reply[1]
                self.kind = kind_of(self.key, self.value, len(self.targets) > 1)
                progress(f"{name}: its owner was {display_text(self.value)} ({self.kind})")
            what = {
                1: "deleted",
                0: "holds another value, left in place",
                -3: "expires now (its holder set a TTL since the plan), left in place",
                -4: "touched since the plan (a holder is using it), left in place",
            }
            progress(f"{name}: {what.get(n, 'no such key any more (expired or released)')}")
        results = set(self.deleted.values())
        if 1 in results:
            return
        if -3 in results:
            raise ActionRefused(
                f"{plan.target} expires now (its holder set a TTL since the plan): it is "
                "no longer stuck and was left in place; nothing was deleted"
            )
        if -4 in results:
            raise ActionRefused(
                f"{plan.target} was touched since the plan (its holder is using it, or "
                "it was taken again): it was left in place; nothing was deleted"
            )
        if results == {-1}:
            raise ActionRefused(
                f"{plan.target} was gone before the delete (expired or released by its "
                "holder): nothing was deleted"
            )
        raise ActionRefused(
            f"{plan.target} holds another value since the plan: that lock was left in "
            "place; nothing was deleted"
        )

    async def verify(self, plan: Plan, progress: Progress) -> Outcome:
        seen = {s.master: s for s in await self._read()}
        # A master that could not be read back shows nothing: never count it released.
        unread = [(m, seen[m].error if m in seen else "not read") for m in self.targets]
        unread = [(m, why) for m, why in unread if why]
        if unread:
            return Outcome(
                Result.NOT_VERIFIED,
                f"could not read {plan.target} back on "
                + "; ".join(f"{m} ({why})" for m, why in unread)
                + ": its release there was not seen",
                [("released on", ", ".join(m for m, n in self.deleted.items() if n == 1))],
            )
        released = [m for m, n in self.deleted.items() if n == 1]
        still = [m for m in released if self._same(seen[m])]
        details = [("released on", ", ".join(released))]
        if still:
            return Outcome(
                Result.NOT_VERIFIED,
                f"{plan.target} still holds the old value on {', '.join(still)}",
                details,
            )
        retaken, back = await self._watch(plan, released, seen, progress)
        if retaken:
            details.append(("taken again since", ", ".join(retaken)))
        skipped = [m for m, n in self.deleted.items() if n == 0]
        if skipped:
            details.append(("changed before delete, left alone", ", ".join(skipped)))
        gone = [m for m, n in self.deleted.items() if n == -1]
        if gone:
            details.append(("gone before delete", ", ".join(gone)))
        if back:
            return Outcome(
                Result.NOT_VERIFIED,
                f"not verified: the holder re-took the lock ({plan.target} holds the "
                f"released owner again on {', '.join(back)}): it is alive; stop it, or "
                "release it where it runs",
                details,
            )
        owner = display_text(self.value) if self.value is not None else plan.params["owner"]
        return Outcome(Result.VERIFIED, f"released {plan.target} (owner {owner})", details)

    def _same(self, s: _Seen) -> bool:
        """Does this read show the released value (or, unread, an untouched key)?"""
        if s.value is None and s.read:
            return False  # no such key
        if self.value is not None:
            return s.value == self.value
        if self.expected_sha1 is not None and s.value is not None:
            return _sha1(s.value) == self.expected_sha1
        return False  # the released value was never read: a key there now is new

    async def _watch(
        self, plan: Plan, released: list[str], seen: dict[str, _Seen], progress: Progress
    ) -> tuple[list[str], list[str]]:
        """Watch the released key for a few seconds: the masters where someone took
        it, and those where the released owner re-created it (a live holder)."""
        if self.watch_s is not None:
            window = self.watch_s
        elif self.holder_may_renew:
            window = min(WATCH_MAX, self.ttl_ms / 1000 + 0.5)
        else:
            window = WATCH_SHORT
        retaken: dict[str, float] = {}
        back: set[str] = set()
        pending = set(released)
        deadline = self.released_at + window
        if window >= 2:
            progress(
                f"watching {plan.target} for {format_duration(window)}: does its holder re-take it?"
            )
        while True:
            for m in sorted(pending):
                s = seen[m]
                if s.error or (s.value is None and s.read):
                    continue
                retaken[m] = s.at - self.released_at
                if self._same(s):
                    back.add(m)
                pending.discard(m)
            if not pending or time.monotonic() >= deadline:
                break
            await asyncio.sleep(WATCH_EVERY)
            seen = {s.master: s for s in await self._read()}
        for m, after in sorted(retaken.items()):
            who = "its holder (the same owner)" if m in back else "another holder"
            progress(
                f"{m}: taken again by {who} {format_duration(max(0.0, after))} after the release"
            )
        self.retaken_after = retaken
        return sorted(retaken), sorted(back)

    async def close(self) -> None:
        clients, self.clients = self.clients, {}
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()


def _sha1(value: bytes | None) -> str | None:
    return hashlib.sha1(value).hexdigest() if value is not None else None


def from_cli(config: Config, args: argparse.Namespace) -> ReleaseLock:
    owner = getattr(args, "owner", None)
    return ReleaseLock(
        config,
        args.key,
        owner,
        expected_sha1=getattr(args, "owner_sha1", None),
        force=bool(getattr(args, "force", False)),
    )
