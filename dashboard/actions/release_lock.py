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
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from collectors.config import Config
from collectors.core.units import format_duration
from collectors.redis.node import describe_error
from collectors.redis.text import display_text, exact_text, node_name, parse_exact
from dashboard.actions.base import ActionRefused, Outcome, Plan, Progress, Result

# Delete only if the value is still exactly the one the engineer saw (ARGV[2] = "sha1":
# ARGV[1] is the SHA-1 of a value too long to carry exactly). ARGV[3] = "no-ttl": it
# was released for never expiring, so it must still never expire (a holder that set
# a TTL since is alive). 1 deleted, 0 another value (left in place), -1 no such key
# any more, -3 it expires now (left in place).
CAS_DELETE = """
local v = redis.call('get', KEYS[1])
if v == false then
  return -1
end
if ARGV[2] == 'sha1' then
  if redis.sha1hex(v) ~= ARGV[1] then
    return 0
  end
elseif v ~= ARGV[1] then
  return 0
end
if ARGV[3] == 'no-ttl' and redis.call('pttl', KEYS[1]) ~= -1 then
  return -3
end
return redis.call('del', KEYS[1])
"""


@dataclass
class _Seen:
    master: str
    value: bytes | None
    pttl: int
    idle: int | None
    error: str | None = None


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
    ) -> None:
        """`key` and `expected_owner` as bytes, or as the text a reading shows
        (`key`, `owner_exact`), which is decoded losslessly. A value too long for an
        exact form is named by its SHA-1 (`owner_sha1`). `age_s`: the lock's age as
        the caller's reading knows it (an idle time read now may have been reset by
        an earlier GET). Without an owner, only a stuck lock is released unless
        `force`."""
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

    async def _read(self) -> list[_Seen]:
        out = []
        cluster = bool(self.config.redis and self.config.redis.cluster)
        for name, client in self._connect().items():
            try:
                if name not in self.touch_off and not cluster:
                    try:  # Redis >= 7.2: our GET must not make the lock look fresh
                        await client.execute_command("CLIENT", "NO-TOUCH", "ON")
                        self.touch_off[name] = True
                    except ResponseError:
                        self.touch_off[name] = False
                idle = None
                with contextlib.suppress(ResponseError):
                    idle = await client.object("idletime", self.key)  # before GET resets it
                pttl = await client.pttl(self.key)
                value = await client.get(self.key)
                out.append(_Seen(name, value, int(pttl), idle))
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

    async def plan(self) -> Plan:
        seen = await self._read()
        key = exact_text(self.key)
        failed = [s for s in seen if s.error]
        held = [s for s in seen if s.value is not None]
        if not held:
            why = "; ".join(f"{s.master}: {s.error}" for s in failed)
            if failed and len(failed) == len(seen):
                raise ActionRefused(f"cannot read {key}: {why}")
            raise ActionRefused(f"{key} is not held (no such key): nothing to release")
        if self.expected_sha1 is not None:
            # A long value known by its SHA-1: the one read now must hash to it.
            match = [s.value for s in held if _sha1(s.value) == self.expected_sha1]
            self.value = match[0] if match else None
        elif self.expected is None:
            # Without --owner, the value read now is the one that must still be there.
            values = [s.value for s in held]
            self.value = max(set(values), key=values.count)
        else:
            self.value = self.expected
        mine = [s for s in held if self.value is not None and s.value == self.value]
        if not mine:
            now = display_text(held[0].value or b"")
            wanted = (
                display_text(self.value)
                if self.value is not None
                else f"a value with SHA-1 {self.expected_sha1}"
            )
            raise ActionRefused(f"{key} holds {now}, not {wanted}: nothing was done")
        assert self.value is not None
        self.targets = [s.master for s in mine]
        first = mine[0]
        if self.expected is None and self.expected_sha1 is None:
            self._judge_stuck(key, mine)
        ttl = "never expires" if first.pttl == -1 else format_duration(max(0, first.pttl) / 1000)
        details = [
            ("key", key),
            ("owner", display_text(self.value)),
            ("ttl", ttl),
            self._age(first.idle, self.touch_off.get(first.master, False)),
        ]
        masters = len(seen)
        if masters > 1:
            details.append(("masters", f"{len(mine)} of {masters} hold this value"))
            others = [s for s in held if s.value != self.value]
            if others:
                details.append(
                    ("left alone", ", ".join(f"{s.master} (another holder)" for s in others))
                )
        if failed:
            details.append(("unreadable", "; ".join(f"{s.master}: {s.error}" for s in failed)))
        if self.stuck:
            details.append(("stuck", self.stuck))
        where = f" on {len(mine)} master(s)" if masters > 1 else ""
        return Plan(
            action=self.name,
            target=key,
            summary=f"delete {key}{where} only if it still holds {display_text(self.value)}",
            details=details,
            params=self._params(key, first.pttl),
            confirm_name=key,
        )

    def _params(self, key: str, pttl: int) -> dict[str, Any]:
        assert self.value is not None
        params: dict[str, Any] = {
            "key": key,
            "owner": display_text(self.value),
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
            f"{display_text(self.value or b'')} to release this holder's lock anyway, "
            "or --force"
        )

    def _age(self, idle: int | None, no_touch: bool) -> tuple[str, str]:
        """The age line: the caller's reading knows it best; an idle time read now
        is an age only where no read resets it (CLIENT NO-TOUCH, Redis >= 7.2)."""
        if self.age_s is not None:
            return ("age", f"{format_duration(max(self.age_s, idle or 0))} (as last seen)")
        if idle is None:
            return ("age", "unknown (OBJECT IDLETIME refused)")
        if no_touch:
            return ("age", f"at least {format_duration(idle)} (idle time)")
        # Before 7.2 any GET (ours included) resets the idle time: not an age.
        return ("idle since last read", format_duration(idle))

    async def execute(self, plan: Plan, progress: Progress) -> None:
        assert self.value is not None
        clients = self._connect()
        if self.expected_sha1:
            args: tuple[Any, ...] = (self.expected_sha1, "sha1")
        else:
            args = (self.value, "exact")
        for name in self.targets:
            # Stuck for never expiring: it still must not expire when it is deleted.
            when = "no-ttl" if name in self.no_ttl_on else "any"
            n = int(await clients[name].eval(CAS_DELETE, 1, self.key, *args, when))
            self.deleted[name] = n
            what = {
                1: "deleted",
                0: "holds another value, left in place",
                -3: "expires now (its holder set a TTL since the plan), left in place",
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
        still = [m for m in self.targets if seen[m].value == self.value]
        retaken = [m for m in self.targets if seen[m].value not in (None, self.value)]
        released = [m for m, n in self.deleted.items() if n == 1]
        details = [("released on", ", ".join(released))]
        if retaken:
            details.append(("taken again since", ", ".join(retaken)))
        if still:
            return Outcome(
                Result.NOT_VERIFIED,
                f"{plan.target} still holds the old value on {', '.join(still)}",
                details,
            )
        skipped = [m for m, n in self.deleted.items() if n == 0]
        if skipped:
            details.append(("changed before delete, left alone", ", ".join(skipped)))
        gone = [m for m, n in self.deleted.items() if n == -1]
        if gone:
            details.append(("gone before delete", ", ".join(gone)))
        owner = plan.params["owner"]
        return Outcome(Result.VERIFIED, f"released {plan.target} (owner {owner})", details)

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
