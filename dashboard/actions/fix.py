"""The remedy an alert carries, and applying it: the TUI's `f` and `ultrawatch fix CHECK_ID`.

`remedy_for` says, from a judged check and the round's readings, what would fix it
(a hint for the Alerts panel, a sentence for the plan); it does no I/O, so the
TUI asks it for every open alert on every round. `FixAction` plans that remedy
with every exact target from a round's readings (the TUI's last round, or a
fresh one-shot round on the command line) and hands over to the actions that
already exist:

- `postgres.budget.<service>`: terminate the idle sessions of the service beyond its
  budget, oldest idle first, never an active or in-transaction one (each re-checked
  when its turn comes: the same pid and backend_start, still idle);
- `redis.locks.no_ttl` / `redis.locks.stale`: release those locks, each only if it
  still holds the owner shown;
- `secrets.<KEY>.strength`, `secrets.distinct`, `secrets.age`, `secrets.forged_token`,
  `service.<name>.secret_fingerprint`: rotate; once the grace period is over the
  same alert finishes the rotation (until then it says how long is left);
- `service.<name>.listeners`, `service.<name>.heap`, `process.<name>.memory_growth`,
  `process.<name>.memory`:
  drain that service (a graceful restart), when it has a drain configured;
- `pgbouncer.budget.<service>`, and `pgbouncer.pool.<database>` when its waiting
  clients belong to services over budget: end those services' pooler clients that
  hold a server idle in a transaction (dashboard.actions.pooled_storm).

Never imports textual.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from collectors.config import Config
from collectors.core.model import CheckResult, Reading, Report, Status
from collectors.core.units import format_duration, format_elapsed, iso_time
from dashboard.actions.base import Action, ActionError, ActionRefused, Outcome, Plan, Progress

if TYPE_CHECKING:
    import psycopg

    from collectors.postgres.data import PostgresData, Session
    from collectors.redis.data import Lock, RedisData
    from collectors.secrets.data import SecretsData
    from dashboard.actions.backend import ConnectionLender
    from dashboard.actions.bulk import Step

Kind = Literal["terminate-idle", "release-locks", "rotate", "drain", "end-pooled"]

_ROTATE_IDS = ("secrets.distinct", "secrets.age", "secrets.forged_token")
_DRAIN_SUFFIXES = {
    "service": (".listeners", ".heap"),  # a leak: a graceful restart frees it
    "process": (".memory_growth", ".memory"),
}


@dataclass(frozen=True)
class Remedy:
    """What would fix one alert."""

    check_id: str
    kind: Kind
    subject: str  # the service (terminate, drain), the check's word (locks), the keys
    hint: str  # short, for the Alerts panel: "f: terminate 15 idle sessions"
    description: str  # one sentence, for the detail view and the plan
    wait_s: float | None = None  # it cannot run yet for this long (a grace period)


def remedy_kind(check_id: str, config: Config) -> tuple[Kind, str] | None:
    """Which remedy a check id has in this config, and its subject; None: none."""
    if check_id.startswith("postgres.budget."):
        name = check_id.removeprefix("postgres.budget.")
        svc = config.service(name)
        if config.postgres is not None and svc is not None and svc.connection_budget:
            return "terminate-idle", name
        return None
    if check_id in ("redis.locks.no_ttl", "redis.locks.stale"):
        return ("release-locks", check_id.rsplit(".", 1)[1]) if config.redis else None
    if check_id.startswith("pgbouncer."):
        return _pooled_kind(check_id, config)
    if config.secrets is not None and (
        check_id in _ROTATE_IDS
        or (check_id.startswith("secrets.") and check_id.endswith(".strength"))
        or (check_id.startswith("service.") and check_id.endswith(".secret_fingerprint"))
    ):
        return "rotate", ", ".join(config.secrets.keys)
    return _drain_kind(check_id, config)


def _pooled_kind(check_id: str, config: Config) -> tuple[Kind, str] | None:
    from collectors.registry import pgbouncer_services
    from dashboard.actions.pooled_storm import parse_check

    found = parse_check(check_id, config)
    if found is None or config.postgres is None:
        return None
    _pb, kind, name = found
    if kind == "budget":
        svc = next((s for s in pgbouncer_services(config) if s.name == name), None)
        return ("end-pooled", name) if svc is not None and svc.budget is not None else None
    return "end-pooled", name


def why_no_remedy(check: CheckResult, readings: Sequence[Reading], config: Config) -> str | None:
    """For an open alert that has no remedy here, why, when it is worth saying (the
    detail view); None otherwise."""
    if check.id == "postgres.idle_in_transaction" and config.pgbouncer is not None:
        # Behind a pooler these backends are its server connections, held by a client:
        # ending one here drops that client; the pooler's alert names whose they are.
        return (
            "behind PgBouncer these are the pooler's server connections: f on the "
            "pgbouncer.budget.<service> (or pgbouncer.pool.<database>) alert ends the "
            "clients that hold them idle; k ends one session in the PostgreSQL panel"
        )
    if check.id.startswith("pgbouncer.") and check.status in (Status.WARNING, Status.CRITICAL):
        from dashboard.actions.pooled_storm import parse_check, unable

        found = parse_check(check.id, config)
        if found is None:
            return None
        d = next(
            (r.data for r in readings if r.component == "pgbouncer" and r.target == found[0].name),
            None,
        )
        why = unable(config, getattr(d, "version", None))
        if why is not None:
            return why
        if found[1] == "pool":
            return (
                "no remedy here: the clients waiting belong to no service over its budget "
                "(see the PgBouncer panel: K drops the database's connections)"
            )
    return None


def _drain_kind(check_id: str, config: Config) -> tuple[Kind, str] | None:
    head, _, rest = check_id.partition(".")
    for suffix in _DRAIN_SUFFIXES.get(head, ()):
        if rest.endswith(suffix):
            svc = config.service(rest.removesuffix(suffix))
            if svc is not None and svc.drain is not None:
                return "drain", svc.name
            return None
    return None


def remedy_for(
    check: CheckResult,
    readings: Sequence[Reading],
    config: Config,
    now: float | None = None,
) -> Remedy | None:
    """The remedy of an open alert (warning or critical), from the round's readings;
    None when it has none (or it is ok, or its target could not be read)."""
    if check.status not in (Status.WARNING, Status.CRITICAL) or check.unread:
        return None
    found = remedy_kind(check.id, config)
    if found is None:
        return None
    kind, subject = found
    at = time.time() if now is None else now
    if kind == "terminate-idle":
        return _terminate_remedy(check.id, subject, readings, config)
    if kind == "release-locks":
        return _locks_remedy(check, subject, readings)
    if kind == "rotate":
        return _rotate_remedy(check.id, subject, readings, at)
    if kind == "end-pooled":
        return _pooled_remedy(check.id, readings, config)
    return Remedy(
        check.id,
        "drain",
        subject,
        f"f: drain {subject}",
        f"drain {subject}: it stops taking work, finishes what is in flight and "
        "restarts fresh (a graceful restart)",
    )


def _reading(readings: Sequence[Reading], component: str) -> Any:
    return next((r.data for r in readings if r.component == component and r.ok), None)


# ------------------------------------------------------------- sessions


def idle_beyond_budget(
    d: PostgresData, service: str, budget: int
) -> tuple[list[Session], int, int]:
    """(the idle sessions to end, oldest idle first; the service's count; how many
    are over its budget). Never an active or in-transaction session, nor one whose
    state or start this role cannot see."""
    info = d.by_service.get(service)
    count = info.count if info is not None else 0
    over = max(0, count - budget)
    idle = [
        s
        for s in d.sessions
        if s.service == service and s.state == "idle" and s.backend_start is not None
    ]
    idle.sort(key=lambda s: -(s.state_age_s or 0.0))
    return idle[:over], count, over


def _terminate_remedy(
    check_id: str, service: str, readings: Sequence[Reading], config: Config
) -> Remedy | None:
    svc = config.service(service)
    d = _reading(readings, "postgres")
    if svc is None or svc.connection_budget is None or d is None:
        return None
    budget = svc.connection_budget
    chosen, _count, over = idle_beyond_budget(d, service, budget)
    if not over:
        return None
    n = len(chosen)
    left = over - n
    also = (
        f"; the other {left} over budget are active or in a transaction and are left alone"
        if left
        else ""
    )
    return Remedy(
        check_id,
        "terminate-idle",
        service,
        f"f: terminate {n} idle session{_s(n)}",
        f"terminate the {n} idle session{_s(n)} of {service} beyond its budget of {budget}, "
        f"oldest idle first, never an active or in-transaction one{also}",
    )


# ------------------------------------------------------ pooled storm


def pooled_targets(
    check_id: str, readings: Sequence[Reading], config: Config
) -> tuple[list[str], str | None] | None:
    """(the services over their pooler budget the remedy ends the stuck clients of, the
    database it is limited to) for a pgbouncer.budget / pgbouncer.pool alert; None when
    the remedy has nothing to act on (or cannot run: no [postgres], an old PgBouncer)."""
    from collectors.pgbouncer.config import app_services
    from collectors.pgbouncer.rules import waiting_services
    from collectors.registry import pgbouncer_services
    from dashboard.actions.pooled_storm import over_budget, parse_check, unable

    found = parse_check(check_id, config)
    if found is None:
        return None
    pb, kind, name = found
    d = next(
        (r.data for r in readings if r.component == "pgbouncer" and r.target == pb.name and r.ok),
        None,
    )
    if d is None or unable(config, d.version) is not None:
        return None
    services = pgbouncer_services(config)
    over = over_budget(d, services)
    if kind == "budget":
        return ([name], None) if name in over else None
    waiting = waiting_services(d, name, app_services(services))
    named = [s for s in waiting if s in over]
    return (named, name) if named else None


def _pooled_remedy(check_id: str, readings: Sequence[Reading], config: Config) -> Remedy | None:
    from dashboard.actions.pooled_storm import description

    found = pooled_targets(check_id, readings, config)
    if found is None:
        return None
    services, database = found
    who = ", ".join(services)
    return Remedy(
        check_id,
        "end-pooled",
        who,
        f"f: end {who}'s stuck pooled clients",
        description(services, database),
    )


# ---------------------------------------------------------------- locks


def stuck_locks(d: RedisData, which: str, stale_after: float) -> list[Lock]:
    """The locks a `redis.locks.<which>` alert is about: those that never expire
    (no_ttl), or those held longer than `stale_after` (stale), oldest first."""
    from collectors.redis.rules import is_stale

    no_ttl = set(d.no_ttl)
    if which == "no_ttl":
        locks = [lk for lk in d.locks if lk.ttl_ms == -1 or lk.key in no_ttl]
    else:
        locks = [lk for lk in d.locks if is_stale(lk, stale_after)]
    return sorted(locks, key=lambda lk: -(lk.age_s or 0.0))


def _locks_remedy(check: CheckResult, which: str, readings: Sequence[Reading]) -> Remedy | None:
    d = _reading(readings, "redis")
    stale_after = check.warn if check.warn is not None else float("inf")
    if d is None:
        return None
    # Asked every round for an open alert, over up to 10,000 locks: one pass, no sort.
    no_ttl = set(d.no_ttl)
    if which == "no_ttl":
        keys = [lk.key for lk in d.locks if lk.ttl_ms == -1 or lk.key in no_ttl]
    else:
        keys = [lk.key for lk in d.locks if lk.age_s is not None and lk.age_s > stale_after]
    if not keys:
        return None
    n = len(keys)
    why = (
        f"that never expire{'s' if n == 1 else ''}"
        if which == "no_ttl"
        else "held longer than stale_after"
    )
    return Remedy(
        check.id,
        "release-locks",
        which,
        f"f: release {n} lock{_s(n)}" + (" (no TTL)" if which == "no_ttl" else " (stale)"),
        f"release the {n} lock{_s(n)} {why} ({', '.join(keys[:5])}"
        f"{', ...' if n > 5 else ''}), each only if it still holds the owner shown",
    )


# -------------------------------------------------------------- secrets


def _rotation_helps(check_id: str, d: SecretsData) -> bool:
    """With no rotation under way: does the reading still show what a rotation fixes?"""
    if check_id == "secrets.distinct":
        return d.distinct is False
    if check_id == "secrets.forged_token":
        # A probe from before the last rotation speaks of the old secrets.
        began = d.rotation.started_at if d.rotation is not None else None
        probe = d.probe
        return bool(
            probe and probe.accepted and (began is None or probe.at is None or probe.at > began)
        )
    if check_id == "secrets.age":
        return True
    if check_id.endswith(".strength"):
        info = d.keys.get(check_id.removeprefix("secrets.").removesuffix(".strength"))
        return info is None or info.strength != "ok" or bool(info.previous_weak)
    return False  # a service's key fingerprint: only a rotation under way is resumed


def _rotate_remedy(
    check_id: str, keys: str, readings: Sequence[Reading], now: float
) -> Remedy | None:
    d = _reading(readings, "secrets")
    rotation = d.rotation if d is not None else None
    if rotation is None or not rotation.in_progress:
        if d is None or not _rotation_helps(check_id, d):
            return None  # e.g. an alert held open for a round after the fix (clearing)
        return Remedy(
            check_id,
            "rotate",
            keys,
            "f: rotate the secrets",
            f"rotate {keys}: new random secrets, the previous ones still accepted for "
            "the grace period, every service told and checked",
        )
    ends = rotation.grace_ends_at
    if ends is not None and now < ends:
        left = ends - now
        return Remedy(
            check_id,
            "rotate",
            keys,
            f"f: finish rotation in {format_duration(math.ceil(left))}",
            f"finish the rotation (drop the previous secret of {keys}) once its grace "
            f"period is over, at {iso_time(ends, 'seconds')}: {format_elapsed(left)} from now",
            wait_s=left,
        )
    if rotation.can_finish:
        return Remedy(
            check_id,
            "rotate",
            keys,
            "f: finish the rotation",
            f"finish the rotation: drop the previous secret of {keys}, then tell the "
            "services to reload",
        )
    return Remedy(
        check_id,
        "rotate",
        keys,
        "f: resume the rotation",
        "resume the rotation: tell the services still on the previous key to reload",
    )


def _s(n: int) -> str:
    return "" if n == 1 else "s"


# --------------------------------------------------------------- action


def components_for(check_id: str) -> list[str] | None:
    """The targets whose round judges this check (None: every target)."""
    if check_id.startswith("service.") and check_id.endswith(".secret_fingerprint"):
        return ["secrets"]
    head = check_id.partition(".")[0]
    word = {
        "postgres": "postgres",
        "redis": "redis",
        "service": "services",
        "process": "processes",
        "secrets": "secrets",
        "pgbouncer": "pgbouncer",
    }
    return [word[head]] if head in word else None


async def one_round(config: Config, only: list[str] | None) -> Report:
    """A fresh one-shot round of those targets, judged (what `check --only` sees)."""
    from collectors.poller import Poller, build_collectors
    from collectors.rules import Rules

    deadline = float(config.dashboard.collector_timeout)
    poller = Poller(build_collectors(config, only, one_shot=True), deadline=deadline)
    try:
        snapshot = await poller.poll()
    finally:
        await poller.aclose()
    return Rules(config).evaluate(snapshot)


class FixAction:
    """`ultrawatch fix CHECK_ID` and the TUI's `f`: plan the alert's remedy with every
    exact target, then run it through the actions that already exist."""

    name = "fix"

    def __init__(
        self,
        config: Config,
        check_id: str,
        *,
        report: Report | None = None,
        lender: ConnectionLender | None = None,
        read_only: bool = False,
    ) -> None:
        """`report`: the round the engineer saw (the TUI); without it a fresh one-shot
        round is read. `lender`: the TUI's PostgreSQL connection, for terminating."""
        self.config = config
        self.check_id = check_id
        self.report = report
        self.lender = lender
        self.read_only = read_only
        self.inner: Action | None = None
        self.remedy: Remedy | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None

    @property
    def audit_target(self) -> str:
        return self.check_id

    @property
    def audit_params(self) -> dict[str, Any]:
        return {"check": self.check_id}

    async def plan(self) -> Plan:
        found = remedy_kind(self.check_id, self.config)
        report = self.report
        if report is None:
            report = await one_round(self.config, components_for(self.check_id))
        check = report.check(self.check_id)
        if check is None:
            raise ActionError(
                f"no check {self.check_id!r} in this configuration's round "
                "(see `ultrawatch check` for the ids)"
            )
        if check.status is Status.OK:
            raise ActionRefused(f"{self.check_id} is ok now: nothing to fix")
        readings = report.snapshot.readings
        remedy = remedy_for(check, readings, self.config)
        if remedy is None:
            why = why_no_remedy(check, readings, self.config) or (
                "ultrawatch has no remedy for it" if found is None else "nothing to act on"
            )
            raise ActionRefused(f"{self.check_id} is {check.status.value} ({check.summary}): {why}")
        self.remedy = remedy
        self.inner = await self._inner(remedy, readings)
        plan = await self.inner.plan()
        return replace(
            plan,
            details=[("fixes", f"{check.id} ({check.status.value})"), *plan.details],
            params={**plan.params, "fixes": check.id},
        )

    async def _inner(self, remedy: Remedy, readings: Sequence[Reading]) -> Action:
        if remedy.kind == "terminate-idle":
            return await self._terminate(remedy, readings)
        if remedy.kind == "release-locks":
            return await self._release(remedy, readings)
        if remedy.kind == "end-pooled":
            return self._pooled(readings)
        if remedy.kind == "rotate":
            from dashboard.actions.rotate_secret import RotateSecret

            # None: the store decides (rotate, resume, or finish once the grace is over)
            return RotateSecret(self.config, finish=None)
        from dashboard.actions.drain import DrainAction

        return DrainAction(self.config, remedy.subject)

    async def _terminate(self, remedy: Remedy, readings: Sequence[Reading]) -> Action:
        from dashboard.actions.backend import BackendAction, action_connection
        from dashboard.actions.bulk import Bulk, Step

        service = remedy.subject
        svc = self.config.service(service)
        d = _reading(readings, "postgres")
        assert svc is not None and svc.connection_budget is not None and d is not None
        pg = self.config.postgres
        assert pg is not None
        chosen, count, over = idle_beyond_budget(d, service, svc.connection_budget)
        if self.lender is None and chosen:
            # One connection for every target (the command line), closed at the end.
            self._conn = await action_connection(pg)
        conn, lender = self._conn, self.lender

        def step(s: Session) -> Step:
            start = s.backend_start
            assert start is not None

            def make() -> Action:
                return BackendAction(
                    self.config,
                    s.pid,
                    "terminate",
                    start,
                    conn=conn,
                    lender=lender,
                    only_idle=True,
                )

            return Step(
                f"pid {s.pid}",
                f"idle {format_elapsed(s.state_age_s)}, backend_start "
                f"{iso_time(start, 'microseconds')}",
                make,
                {"pid": s.pid, "backend_start": start},
            )

        head = [
            ("service", f"{service}: {count} connections, budget {svc.connection_budget}"),
            ("chosen", f"{len(chosen)} idle, oldest idle first; each only if still idle"),
        ]
        if over > len(chosen):
            head.append(("left alone", f"{over - len(chosen)} active or in a transaction"))
        return Bulk(
            self.config,
            name="terminate",
            target=f"{len(chosen)} idle sessions of {service}",
            summary=remedy.description,
            steps=[step(s) for s in chosen],
            head=head,
            noun="sessions",
            done="terminated",
            read_only=self.read_only,
            confirm_name=service,
            params={"service": service, "budget": svc.connection_budget},
        )

    def _pooled(self, readings: Sequence[Reading]) -> Action:
        from collectors.registry import pgbouncer_services
        from dashboard.actions.pooled_storm import PooledStorm, parse_check

        found = pooled_targets(self.check_id, readings, self.config)
        parsed = parse_check(self.check_id, self.config)
        assert found is not None and parsed is not None
        names, database = found
        services = [s for s in pgbouncer_services(self.config) if s.name in names]
        return PooledStorm(self.config, services, parsed[0], database=database, lender=self.lender)

    async def _release(self, remedy: Remedy, readings: Sequence[Reading]) -> Action:
        from dashboard.actions.bulk import Bulk

        d = _reading(readings, "redis")
        rc = self.config.redis
        assert d is not None and rc is not None
        steps: list[Step] = []
        head: list[tuple[str, str]] = []
        for lk in stuck_locks(d, remedy.subject, float(rc.stale_after)):
            step = await self._lock_step(lk)
            if isinstance(step, str):
                head.append(("left alone", f"{lk.key}: {step}"))
            else:
                steps.append(step)
        return Bulk(
            self.config,
            name="release-lock",
            target=f"{len(steps)} lock{_s(len(steps))}",
            summary=remedy.description,
            steps=steps,
            head=head,
            noun="locks",
            done="released",
            read_only=self.read_only,
            confirm_name=remedy.check_id,
            params={"check": remedy.check_id},
        )

    async def _lock_step(self, lk: Lock) -> Step | str:
        """A lock's step: the owner the reading shows, or (a one-shot round on Redis
        < 7.2 reads no values) the owner read now, which its release then requires.
        A lock that cannot be released (gone, not stuck any more): why, as text."""
        from collectors.redis.text import display_text
        from dashboard.actions.bulk import Step
        from dashboard.actions.release_lock import ReleaseLock

        owner: str | bytes | None = lk.owner_exact if lk.owner_read else None
        sha1 = lk.owner_sha1 if lk.owner_read and owner is None else None
        if owner is None and sha1 is None:
            look = ReleaseLock(self.config, lk.key, age_s=lk.age_s)
            try:
                await look.plan()  # reads the value; refuses a lock that is not stuck
            except ActionRefused as e:
                return str(e)
            finally:
                await look.close()
            owner = look.value
        key, age = lk.key, lk.age_s
        ttl = "no TTL" if lk.ttl_ms == -1 else f"TTL {format_elapsed((lk.ttl_ms or 0) / 1000)}"
        text = display_text(owner) if isinstance(owner, bytes) else owner
        if text is not None:
            who = f"owner {text}"
        elif sha1 is not None:
            who = f"owner with SHA-1 {sha1}"
        else:  # Redis < 7.2 read no value (reading it would reset the lock's age)
            who = "owner not read: released only if untouched since this plan"

        def make() -> Action:
            return ReleaseLock(self.config, key, owner, age_s=age, expected_sha1=sha1)

        return Step(
            key,
            f"{who}, {ttl}, held {format_elapsed(age)}",
            make,
            {"key": key, **({"owner_sha1": sha1} if sha1 else {"owner": text})},
        )

    def _inner_action(self) -> Action:
        if self.inner is None:
            raise RuntimeError("fix: plan() first")
        return self.inner

    async def execute(self, plan: Plan, progress: Progress) -> None:
        await self._inner_action().execute(plan, progress)

    async def verify(self, plan: Plan, progress: Progress) -> Outcome:
        return await self._inner_action().verify(plan, progress)

    async def close(self) -> None:
        try:
            if self.inner is not None:
                await self.inner.close()
        finally:
            conn, self._conn = self._conn, None
            if conn is not None and not conn.closed:
                await asyncio.shield(conn.close())


def from_cli(config: Config, args: Any) -> FixAction:
    return FixAction(config, args.check_id, read_only=bool(getattr(args, "read_only", False)))
