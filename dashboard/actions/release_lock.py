"""Release a stuck Redis lock safely: compare-and-delete with the exact value seen.

The plan reads the lock on every master (several for Redlock); execution runs a
Lua compare-and-delete with that exact value, so a lock that was released and
taken again by someone else in between is never deleted: the action refuses and
says so. Verification reads the key again.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from collectors.config import Config, format_duration
from collectors.redis_node import describe_error
from collectors.redis_text import display_text, exact_text, node_name, parse_exact
from dashboard.actions.base import ActionRefused, Outcome, Plan, Progress, Result

# Delete only if the value is still exactly the one the engineer saw.
CAS_DELETE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
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
        self, config: Config, key: str | bytes, expected_owner: str | bytes | None = None
    ) -> None:
        """`key` and `expected_owner` as bytes, or as the text a reading shows
        (`key`, `owner_exact`), which is decoded losslessly."""
        self.config = config
        self.key = key if isinstance(key, bytes) else parse_exact(key)
        self.expected = (
            expected_owner
            if isinstance(expected_owner, bytes | None)
            else parse_exact(expected_owner)
        )
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
            self.clients[node_name(url)] = aioredis.Redis.from_url(url, **extra)
        return self.clients

    async def _read(self) -> list[_Seen]:
        out = []
        for name, client in self._connect().items():
            try:
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
        if self.expected is None:
            # Without --owner, the value read now is the one that must still be there.
            values = [s.value for s in held]
            self.value = max(set(values), key=values.count)
        else:
            self.value = self.expected
        mine = [s for s in held if s.value == self.value]
        if not mine:
            now = display_text(held[0].value or b"")
            raise ActionRefused(
                f"{key} is now held by {now!r}, not by {display_text(self.value)!r}: it was "
                "released and taken again by another holder; nothing was done"
            )
        self.targets = [s.master for s in mine]
        first = mine[0]
        ttl = "never expires" if first.pttl == -1 else format_duration(max(0, first.pttl) / 1000)
        age = f"at least {format_duration(first.idle)}" if first.idle is not None else "unknown"
        details = [
            ("key", key),
            ("owner", display_text(self.value)),
            ("ttl", ttl),
            ("age", age),
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
        where = f" on {len(mine)} master(s)" if masters > 1 else ""
        return Plan(
            action=self.name,
            target=key,
            summary=f"delete {key}{where} only if it still holds {display_text(self.value)!r}",
            details=details,
            params={
                "key": key,
                "owner": display_text(self.value),
                "masters": self.targets,
                "ttl_ms": first.pttl,
            },
            confirm_name=key,
        )

    async def execute(self, plan: Plan, progress: Progress) -> None:
        assert self.value is not None
        clients = self._connect()
        for name in self.targets:
            n = await clients[name].eval(CAS_DELETE, 1, self.key, self.value)
            self.deleted[name] = int(n)
            progress(f"{name}: {'deleted' if n else 'value changed, left in place'}")
        if not any(self.deleted.values()):
            raise ActionRefused(
                f"{plan.target} changed after the plan (released and taken again?): "
                "its current holder's lock was left in place; nothing was deleted"
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
                [("released on", ", ".join(m for m, n in self.deleted.items() if n))],
            )
        still = [m for m in self.targets if seen[m].value == self.value]
        retaken = [m for m in self.targets if seen[m].value not in (None, self.value)]
        released = [m for m, n in self.deleted.items() if n]
        details = [("released on", ", ".join(released))]
        if retaken:
            details.append(("taken again since", ", ".join(retaken)))
        if still:
            return Outcome(
                Result.NOT_VERIFIED,
                f"{plan.target} still holds the old value on {', '.join(still)}",
                details,
            )
        skipped = [m for m, n in self.deleted.items() if not n]
        if skipped:
            details.append(("changed before delete, left alone", ", ".join(skipped)))
        owner = plan.params["owner"]
        return Outcome(Result.VERIFIED, f"released {plan.target} (owner {owner!r})", details)

    async def close(self) -> None:
        clients, self.clients = self.clients, {}
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()


def from_cli(config: Config, args: argparse.Namespace) -> ReleaseLock:
    owner = getattr(args, "owner", None)
    return ReleaseLock(config, args.key, owner)
