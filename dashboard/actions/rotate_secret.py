"""Rotate JWT secrets without logging anyone out and without ever losing the old one.

Three actions, one per remediation:
- `RotateKeys`: plan -> generate (secrets.token_urlsafe, 64 bytes) -> write the store
  atomically with the old value kept as <KEY>_PREVIOUS and <KEY>_ROTATED_AT set ->
  tell the services (POST reload with an admin JWT minted from the secret they hold
  now, or a signal to the local process) -> verify every service reports the new
  fingerprint. It also completes a rotation whose write was interrupted.
- `ResumeRotation`: the store is rotated but a service is still on the previous key
  (it was not told, or did not reload): tell the services again, no new secret.
- `FinishRotation` (--finish): once the grace period is over and every service is on
  the new key, drop <KEY>_PREVIOUS (or, when that is already done, tell the services
  again so none keeps the previous secret in memory).
`RotateSecret` is what the CLI (`rotate-secret [KEY] [--finish] [--dry-run]`) and the
TUI's `r` run: it reads the store and the services once, then hands over to the
action the state calls for. They share code through `Survey` (what a plan starts
from) and the small `_RotationAction` base (telling, verifying, auditing).

Crash safety: the store is replaced by one rename (dotenv) or file by file with
the previous secret and the rotation time written first (dir), so a SIGKILL at
any step leaves a parseable store holding the old or the new secret and the
previous one. ULTRAWATCH_FAULT=rotate:<step> kills the process at <step> (tests).

Secret values live only in locals here; plans, progress, audit lines and
outcomes carry key names, lengths and fingerprints.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from collectors.config import Config, ReloadConfig, ServiceConfig
from collectors.core.http import HttpClient
from collectors.core.redact import printable
from collectors.core.units import format_duration, iso_time
from collectors.secrets.collector import (
    PREVIOUS,
    ROTATED_AT,
    check_exists,
    fetch_fingerprints,
    iso_now,
    parse_time,
    read_values,
)
from collectors.secrets.config import SECURITY_PATH, SecretsConfig, grace_period
from collectors.secrets.store import (
    SecretStore,
    StoreError,
    StoreLocked,
    fault_point,
    fingerprint,
    open_store,
)
from dashboard.actions.audit import AuditLog
from dashboard.actions.base import ActionRefused, Outcome, Plan, Progress, Result
from dashboard.actions.signals import admin_token, local_targets, redact_tokens, signal_number

NEW_SECRET_BYTES = 64  # >= the HS512 minimum; token_urlsafe makes 86 characters
FINISH_HINT = "ultrawatch rotate-secret --finish (drops the previous secret)"


@dataclass(eq=False)
class _Told:
    """One service to tell about the new secret, and what it reported."""

    svc: ServiceConfig
    how: str  # "http" | "signal"
    path: str | None = None
    signal_name: str | None = None
    verifiable: bool = False  # publishes its fingerprints at /health/security
    result: str = "not told"
    told_ok: bool = False
    fingerprint: str | None = None
    refresh: str | None = None
    error: str | None = None


def _iso(ts: float) -> str:
    return iso_time(ts)


def _fp(value: str | None) -> str | None:
    return fingerprint(value) if value is not None else None


def _same_as_previous(values: dict[str, str], key: str) -> bool:
    """True when `key` still holds its <KEY>_PREVIOUS: a rotation that never changed it."""
    prev = values.get(key + PREVIOUS)
    return prev is not None and values.get(key) == prev


def _rotated(values: dict[str, str], key: str) -> bool:
    """A new secret in place and the old one kept as <KEY>_PREVIOUS."""
    prev, cur = values.get(key + PREVIOUS), values.get(key)
    return prev is not None and cur is not None and prev != cur


def _settings(config: Config) -> SecretsConfig:
    if config.secrets is None:
        raise ActionRefused("no [secrets] section in the configuration: nothing to rotate")
    return config.secrets


def _open_store(settings: SecretsConfig) -> SecretStore:
    try:
        return open_store(settings.store)
    except StoreError as e:
        raise ActionRefused(str(e)) from None


def _describe(store: SecretStore) -> str:
    return f"{store.kind} {store.path}" if store.path else f"{store.kind} (environment)"


# ------------------------------------------------------------------ services


def services_to_tell(config: Config) -> list[_Told]:
    """The services that hold JWT keys: how each is told to reload, and whether it
    publishes the fingerprints that confirm it did."""
    out = []
    for svc in config.services:
        verifiable = SECURITY_PATH in svc.detail_paths
        if svc.reload is None and not verifiable:
            continue  # a service without JWT keys
        reload = svc.reload or ReloadConfig()
        if reload.signal:
            out.append(_Told(svc, "signal", signal_name=reload.signal, verifiable=verifiable))
        elif reload.path:
            out.append(_Told(svc, "http", path=reload.path, verifiable=verifiable))
    return out


async def observe(http: HttpClient, told: list[_Told], timeout: float) -> None:
    """Read which keys the verifiable services report now (fingerprints only)."""
    checkable = [t for t in told if t.verifiable]
    got = await asyncio.gather(
        *(fetch_fingerprints(http, t.svc.url, min(timeout, 3.0)) for t in checkable)
    )
    for t, g in zip(checkable, got, strict=True):
        t.error = g.error
        t.fingerprint = g.access
        t.refresh = g.refresh


def _on_current(t: _Told, values: dict[str, str], keys: Sequence[str]) -> bool:
    """Does `t` report the store's current keys (the refresh key if it reports one)?"""
    if t.error or t.fingerprint != _fp(values.get(keys[0])):
        return False
    if len(keys) > 1 and t.refresh is not None:
        return t.refresh == _fp(values.get(keys[1]))
    return True


# -------------------------------------------------------------------- survey


@dataclass
class Survey:
    """What a plan starts from: the store's values (every configured key with its
    _PREVIOUS and _ROTATED_AT) and the key each service reports now."""

    settings: SecretsConfig
    store: SecretStore
    keys: list[str]  # the keys asked for (every configured key by default)
    values: dict[str, str]
    told: list[_Told]

    def reported(self, t: _Told, key: str) -> str | None:
        """The fingerprint `t` reports for `key` (access or refresh), if it reports one."""
        keys = self.settings.keys
        if key == keys[0]:
            return t.fingerprint
        if len(keys) > 1 and key == keys[1]:
            return t.refresh
        return None

    def interrupted(self) -> list[str]:
        """Keys whose current value equals their _PREVIOUS: a write was interrupted
        after keeping the previous (dir stores write file by file)."""
        return [
            k
            for k in self.keys
            if self.values.get(k + PREVIOUS) is not None and _same_as_previous(self.values, k)
        ]

    def rotated(self) -> list[str]:
        return [k for k in self.keys if _rotated(self.values, k)]

    def lagging(self) -> list[str]:
        """Services still on the previous key of a rotated key: the last rotation did
        not reach them. Telling them again (resume) is safe; a new secret is not."""
        rotated = self.rotated()
        return [
            t.svc.name
            for t in self.told
            if not t.error
            and any(
                (fp := self.reported(t, k)) is not None and fp == _fp(self.values.get(k + PREVIOUS))
                for k in rotated
            )
        ]

    def blockers(self, keys: list[str]) -> list[str]:
        """Why each verifiable service may still use a key other than the current one."""
        out = []
        for t in self.told:
            if not t.verifiable:
                continue
            if t.error:
                out.append(f"{t.svc.name}: cannot read which key it uses ({t.error})")
                continue
            for k in keys:
                fp, want = self.reported(t, k), _fp(self.values.get(k))
                if fp is not None and fp != want:
                    out.append(f"{t.svc.name} reports {fp} for {k}, not the store's {want}")
        return out

    def not_on_current(self) -> list[str]:
        """Why each verifiable service may still need the previous secret."""
        out = []
        for t in self.told:
            if not t.verifiable:
                continue
            if t.error:
                out.append(f"{t.svc.name}: cannot read its key ({t.error})")
            elif not _on_current(t, self.values, self.settings.keys):
                out.append(f"{t.svc.name} still reports {t.fingerprint}")
        return out


async def survey(config: Config, requested: list[str], http: HttpClient) -> Survey:
    """Read the store and ask the services; refuse what no rotation can work on."""
    s = _settings(config)
    unknown = [k for k in requested if k not in s.keys]
    if unknown:
        raise ActionRefused(
            f"{', '.join(unknown)} is not a configured secret (secrets.keys: {', '.join(s.keys)})"
        )
    store = _open_store(s)
    if not store.writable:
        raise ActionRefused(
            f"the {store.kind!r} secret store is read-only: change the secret where the "
            "environment is defined, or configure a dotenv or dir store"
        )
    try:
        check_exists(store)
    except StoreError as e:
        # a new store would hold secrets no service reads: never create one silently
        raise ActionRefused(
            f"secret store {e}: ultrawatch does not create a store; fix secrets.store "
            "or create it with the services' current secrets first"
        ) from None
    values = await asyncio.to_thread(read_values, store, list(s.keys))
    told = services_to_tell(config)
    await observe(http, told, float(config.http.timeout))
    return Survey(s, store, list(requested or s.keys), values, told)


# ---------------------------------------------------------------------- base


class _RotationAction:
    """What the rotation actions share: the survey they plan from, telling the
    services, waiting for them to confirm, and one audit line per step."""

    name = "rotate-secret"
    mode: ClassVar[str]  # "rotate" | "resume" | "finish": audited
    # How the engineer finishes the rotation where this runs (the TUI: its key).
    finish_hint = FINISH_HINT
    finish_how = "run `ultrawatch rotate-secret --finish`"

    def __init__(
        self,
        config: Config,
        keys: list[str] | None = None,
        dry_run: bool = False,
        *,
        http: HttpClient | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.config = config
        self.requested = list(keys or [])
        self.dry_run = dry_run
        self.http = http or HttpClient(config.http)
        self.audit = audit or AuditLog(config.audit_log_path)
        self.keys: list[str] = []  # the keys this action works on
        self.told: list[_Told] = []
        self.old_fp: dict[str, str | None] = {}
        self.prev_fp: dict[str, str | None] = {}  # <KEY>_PREVIOUS at plan
        self.new_fp: dict[str, str] = {}

    @property
    def settings(self) -> SecretsConfig:
        return _settings(self.config)

    @property
    def audit_mode(self) -> str:
        return "dry-run" if self.dry_run else self.mode

    async def close(self) -> None:
        await self.http.aclose()

    # ------------------------------------------------------------------ plan

    async def plan(self) -> Plan:
        return self.plan_from(await survey(self.config, self.requested, self.http))

    def plan_from(self, sv: Survey) -> Plan:
        """The plan for the state `sv` found. May raise ActionRefused."""
        self.keys, self.told = list(sv.keys), sv.told
        self.old_fp = {k: _fp(sv.values.get(k)) for k in sv.keys}
        self.prev_fp = {k: _fp(sv.values.get(k + PREVIOUS)) for k in sv.keys}
        return _printable_plan(self._plan(sv))

    def _plan(self, sv: Survey) -> Plan:
        raise NotImplementedError

    def _params(self, store: SecretStore, grace: float) -> dict[str, Any]:
        return {
            "mode": self.audit_mode,
            "keys": list(self.keys),
            "store": _describe(store),
            "services": [t.svc.name for t in self.told],
            "grace_period_s": grace,
            "fingerprints_before": [f"{k}={self.old_fp.get(k) or 'unset'}" for k in self.keys],
        }

    def _told_text(self) -> str:
        parts = []
        for t in self.told:
            how = f"POST {t.path}" if t.how == "http" else f"{t.signal_name} to its process"
            parts.append(f"{t.svc.name} ({how})")
        return ", ".join(parts)

    def _seen_details(self) -> list[tuple[str, str]]:
        """What each service reports now, so the engineer sees who is on which key."""
        out = []
        for t in self.told:
            if not t.verifiable:
                now = f"cannot tell (no {SECURITY_PATH})"
            elif t.error:
                now = f"key unknown: {t.error}"
            else:
                now = f"on {t.fingerprint}"
            out.append((f"{t.svc.name} now", now))
        return out

    # --------------------------------------------------------------- execute

    async def execute(self, plan: Plan, progress: Progress) -> None:
        progress = _printable_progress(progress)
        if self.dry_run:
            progress("dry run: nothing changed")
            return
        # Store and audit writes fsync: in a thread, so the TUI keeps drawing.
        await asyncio.to_thread(self._step, "start", plan, f"{self.mode} started")
        fault_point("rotate", "planned")
        store = await asyncio.to_thread(_open_store, self.settings)
        await self._execute(store, plan, progress)

    async def _execute(self, store: SecretStore, plan: Plan, progress: Progress) -> None:
        raise NotImplementedError

    async def _notify(
        self, store: SecretStore, plan: Plan, progress: Progress, *, use_previous: bool
    ) -> None:
        """Tell each service to reload, with an admin token it can verify now."""
        if not self.told:
            return
        access = self.settings.keys[0]
        values = await asyncio.to_thread(read_values, store, [access])
        signing = values.get(access + PREVIOUS) if use_previous else None
        if signing is None or access not in self.keys:
            signing = values.get(access)
        for i, t in enumerate(self.told):
            if i:
                fault_point("rotate", "notifying", i)  # told i services so far
            if t.how == "signal":
                t.result, t.told_ok = await asyncio.to_thread(_signal, t)
            else:
                # 30 s: a reload is one request
                token = admin_token(signing, self.settings.algorithm, 30) if signing else None
                t.result, t.told_ok = await self._post_reload(t, token)
            progress(f"{t.svc.name}: {t.result}")
        del signing, values
        told = "; ".join(f"{t.svc.name}: {t.result}" for t in self.told)
        await asyncio.to_thread(self._step, "notified", plan, told)

    async def _post_reload(self, t: _Told, token: str | None) -> tuple[str, bool]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        f = await self.http.post(t.svc.url + (t.path or ""), headers=headers, max_body=64 * 1024)
        if f.error:
            return redact_tokens(f"reload request failed: {f.error}"), False
        if f.status is not None and 200 <= f.status < 300:
            return f"reload accepted (HTTP {f.status})", True
        if f.status in (401, 403):
            return f"reload refused our admin token (HTTP {f.status})", False
        return f"reload answered HTTP {f.status}", False

    def _step(self, step: str, plan: Plan, message: str) -> None:
        """One audit line per step, so a crash still leaves a trail (no values)."""
        self.audit.append(
            action=self.name,
            target=plan.target,
            outcome=f"step:{step}",
            params={
                "mode": self.audit_mode,
                "keys": list(self.keys),
                "fingerprints_after": [f"{k}={v}" for k, v in self.new_fp.items()],
            },
            message=message,
        )

    # ---------------------------------------------------------------- verify

    async def verify(self, plan: Plan, progress: Progress) -> Outcome:
        outcome = await self._verify(plan, _printable_progress(progress))
        return Outcome(outcome.result, printable(outcome.message), _printable(outcome.details))

    async def _verify(self, plan: Plan, progress: Progress) -> Outcome:
        if self.dry_run:
            return Outcome(Result.VERIFIED, "dry run: nothing was changed", plan.details)
        store = await asyncio.to_thread(_open_store, self.settings)
        values = await asyncio.to_thread(read_values, store, self.settings.keys)
        wrong = self._store_problem(values)
        if wrong is not None:
            return wrong
        checkable = [t for t in self.told if t.verifiable]
        behind = await self._wait_for(checkable, values)
        fault_point("rotate", "verified")
        return self._outcome(checkable, behind, values, self._details(behind, values))

    def _store_problem(self, values: dict[str, str]) -> Outcome | None:
        """Why the store does not hold what this action wrote, or None."""
        raise NotImplementedError

    def _outcome(
        self,
        checkable: list[_Told],
        behind: list[_Told],
        values: dict[str, str],
        details: list[tuple[str, str]],
    ) -> Outcome:
        raise NotImplementedError

    async def _wait_for(self, checkable: list[_Told], values: dict[str, str]) -> list[_Told]:
        """Poll until every service that can tell us reports the store's current key,
        or verify_timeout passes: the services still behind."""
        deadline = time.monotonic() + float(self.settings.verify_timeout)
        keys = self.settings.keys
        while True:
            await observe(self.http, checkable, float(self.config.http.timeout))
            behind = [t for t in checkable if not _on_current(t, values, keys)]
            if not behind or time.monotonic() >= deadline:
                return behind
            await asyncio.sleep(0.3)

    def _details(self, behind: list[_Told], values: dict[str, str]) -> list[tuple[str, str]]:
        want = _fp(values.get(self.settings.keys[0]))
        details: list[tuple[str, str]] = []
        for t in self.told:
            if not t.verifiable:
                details.append((t.svc.name, f"{t.result}; cannot verify (no {SECURITY_PATH})"))
            elif t in behind:
                seen = t.fingerprint or f"unreadable ({t.error})"
                details.append((t.svc.name, f"NOT on the new key: reports {seen}; {t.result}"))
            else:
                details.append((t.svc.name, f"ok: reports {want}"))
        for key in self.keys:
            prev = values.get(key + PREVIOUS)
            details.append(
                (key, f"{_fp(values.get(key))}" + (f", previous {_fp(prev)} kept" if prev else ""))
            )
        return details


# ----------------------------------------------------- rotate and resume share


class _Rotating(_RotationAction):
    """Rotate and resume: the services are told to load the store's new keys, with a
    token signed by the previous secret they still hold, and must confirm them."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.gen: list[str] = []  # keys that get a new secret now (none on resume)

    def _key_details(self, sv: Survey, interrupted: list[str]) -> list[tuple[str, str]]:
        """The plan's lines for the keys and the services."""
        details: list[tuple[str, str]] = [("store", _describe(sv.store))]
        for key in self.keys:
            v = sv.values.get(key)
            now_text = f"{len(v.encode())} bytes, {_fp(v)}" if v is not None else "not set yet"
            if key in self.gen:
                why = " (the interrupted rotation had not changed it)" if key in interrupted else ""
                details.append(
                    (
                        key,
                        f"{now_text} -> new random secret ({NEW_SECRET_BYTES} random bytes); "
                        f"old kept as {key}{PREVIOUS}{why}",
                    )
                )
            else:
                details.append((key, f"already rotated ({now_text}); services told again"))
        details.append(("services told", self._told_text() or "none configured"))
        return details + self._seen_details()

    async def _execute(self, store: SecretStore, plan: Plan, progress: Progress) -> None:
        await self._notify(store, plan, progress, use_previous=True)
        fault_point("rotate", "notified")

    def _store_problem(self, values: dict[str, str]) -> Outcome | None:
        """Every key really rotated: the new secret in place (when one was generated),
        not equal to its previous, and the previous it should keep."""
        keys, new_fp = self.keys, self.new_fp
        wrong = [k for k in keys if new_fp and _fp(values.get(k)) != new_fp.get(k)]
        # every key must really be rotated: a current equal to its previous is not
        wrong += [k for k in keys if k not in wrong and _same_as_previous(values, k)]
        lost = [
            k
            for k in keys
            if (expected := self.old_fp.get(k) if k in self.gen else self.prev_fp.get(k))
            and _fp(values.get(k + PREVIOUS)) != expected
        ]
        if not wrong and not lost:
            return None
        return Outcome(
            Result.ERROR,
            "the store does not hold what was written: "
            + ", ".join(
                [*(f"{k} differs" for k in wrong), *(f"{k}{PREVIOUS} differs" for k in lost)]
            ),
        )

    def _outcome(
        self,
        checkable: list[_Told],
        behind: list[_Told],
        values: dict[str, str],
        details: list[tuple[str, str]],
    ) -> Outcome:
        keys = ", ".join(self.keys)
        if behind:
            names = ", ".join(t.svc.name for t in behind)
            return Outcome(
                Result.NOT_VERIFIED,
                f"{names} did not take the new key; the previous secret stays in the store so "
                "it keeps working. Make it reload, then run `ultrawatch rotate-secret` again "
                "to tell it again.",
                details,
            )
        if not self.told:
            return Outcome(
                Result.VERIFIED,
                f"{keys} rotated in the store; no services are configured to be told (restart "
                "them to load it)",
                details,
            )
        times = [t for k in self.keys if (t := parse_time(values.get(k + ROTATED_AT))) is not None]
        grace_end = max(times) + grace_period(self.settings) if times else None
        after = f" after {_iso(grace_end)}" if grace_end else ""
        return Outcome(
            Result.VERIFIED,
            f"rotated {keys}: {len(checkable)} service(s) confirmed the new key; "
            f"the previous secret is kept for the grace period: {self.finish_how}{after}",
            details,
        )


# -------------------------------------------------------------------- rotate


class RotateKeys(_Rotating):
    """Generate new secrets, keep the old ones as <KEY>_PREVIOUS, tell the services.
    Also completes a rotation whose store write was interrupted."""

    mode = "rotate"

    def _plan(self, sv: Survey) -> Plan:
        grace = grace_period(sv.settings)
        interrupted = sv.interrupted()
        keys = self.keys
        kept: list[str] = []
        if interrupted:
            kept = [k for k in keys if _recent(sv, k, grace, interrupted) is not None]
            gen = [k for k in keys if k not in kept]
        else:
            _refuse_recent(sv, keys, grace)
            gen = list(keys)
        # A new secret moves the current one to _PREVIOUS and drops the _PREVIOUS held
        # now: refuse while any service might still use a key that would go.
        dropping = [k for k in gen if k not in interrupted]
        blockers = sv.blockers(dropping) if dropping else []
        if blockers:
            raise ActionRefused(
                "cannot generate a new secret while a service may still use a key the "
                "rotation would drop: "
                + "; ".join(blockers)
                + ". Bring it back or make it reload, then rotate again."
            )
        self.gen = gen
        details = self._key_details(sv, interrupted)
        details += [("grace period", format_duration(grace)), ("then", self.finish_hint)]
        if self.dry_run:
            summary = "dry run: show the rotation plan; nothing will be changed"
        elif interrupted:
            summary = (
                f"resume the interrupted rotation: generate new {', '.join(gen)}"
                + (f" ({', '.join(kept)} already rotated)" if kept else "")
                + f", tell {len(self.told)} service(s) to reload"
            )
        else:
            summary = (
                f"generate new {', '.join(keys)}, keep the old as previous for "
                f"{format_duration(grace)}, tell {len(self.told)} service(s) to reload"
            )
        return Plan(
            action=self.name,
            target=", ".join(keys),
            summary=summary,
            details=details,
            params=self._params(sv.store, grace),
            confirm_name=keys[0],
            dangerous=not self.dry_run,
            title=f"{'Resume rotation' if interrupted else 'Rotate'}: new {', '.join(keys)}, "
            f"previous kept for {format_duration(grace)}",
        )

    async def _execute(self, store: SecretStore, plan: Plan, progress: Progress) -> None:
        progress(await asyncio.to_thread(self._rotate_store, store, plan))
        await super()._execute(store, plan, progress)

    def _rotate_store(self, store: SecretStore, plan: Plan) -> str:
        """Blocking (lock, write, fsync): run in a thread. Returns the progress line."""
        try:
            with store.lock():
                values = read_values(store, list(self.settings.keys))
                changed = [
                    k
                    for k in self.keys
                    if _fp(values.get(k)) != self.old_fp.get(k)
                    or _fp(values.get(k + PREVIOUS)) != self.prev_fp.get(k)
                ]
                if changed:
                    raise ActionRefused(
                        f"the store changed since the plan ({', '.join(changed)}): "
                        "run the rotation again to see the new state"
                    )
                updates = self._stamp_untouched(store, values)
                updates.update(self._new_secrets(values))
                fault_point("rotate", "generated")
                store.write(updates)
                del updates, values
                fault_point("rotate", "written")
        except StoreLocked as e:
            raise ActionRefused(str(e)) from None
        text = ", ".join(
            f"{k} {self.old_fp.get(k) or 'unset'} -> {self.new_fp[k]}"
            for k in self.keys
            if k in self.gen
        )
        kept = [k for k in self.keys if k not in self.gen]
        if kept:
            text += f" ({', '.join(kept)} already rotated)"
        self._step("written", plan, f"store written: {text}; previous kept")
        return f"store written: {text}; previous kept"

    def _new_secrets(self, values: dict[str, str]) -> dict[str, str | None]:
        """The store updates that rotate the keys in `gen` (new values stay in here)."""
        # Milliseconds: a grace period of a second must not come up to a second short
        # (whole-second stamps written before still read).
        stamp = iso_now("milliseconds")
        updates: dict[str, str | None] = {}
        for key in self.keys:
            if key not in self.gen:  # already rotated by an interrupted run
                self.new_fp[key] = self.old_fp[key] or ""
                continue
            old = values.get(key)
            new = secrets.token_urlsafe(NEW_SECRET_BYTES)
            if old is not None and values.get(key + PREVIOUS) != old:
                updates[key + PREVIOUS] = old
            updates[key + ROTATED_AT] = stamp
            updates[key] = new
            self.new_fp[key] = fingerprint(new)
        return updates

    def _stamp_untouched(self, store: SecretStore, values: dict[str, str]) -> dict[str, str | None]:
        """<KEY>_ROTATED_AT for configured keys this write leaves alone, from the file's
        modification time: rewriting a dotenv file resets the mtime that is their
        only age, and an old secret must not look fresh because its neighbour rotated."""
        if store.kind != "dotenv":
            return {}  # dir stores: each key keeps its own file's mtime
        mtime = store.mtime()
        stamps = [t for k in self.settings.keys if (t := parse_time(values.get(k + ROTATED_AT)))]
        if mtime is None or (stamps and mtime >= max(stamps) - 1.0):
            return {}  # the mtime is another key's rotation: it dates nothing
        return {
            k + ROTATED_AT: iso_time(mtime, "milliseconds")
            for k in self.settings.keys
            if k not in self.gen
            and values.get(k) is not None
            and values.get(k + ROTATED_AT) is None
        }


def _recent(sv: Survey, key: str, grace: float, interrupted: list[str]) -> float | None:
    """When `key` was rotated, if that was within the grace period."""
    at = parse_time(sv.values.get(key + ROTATED_AT))
    if key in interrupted or sv.values.get(key) is None or at is None:
        return None
    return at if time.time() - at < grace else None


def _refuse_recent(sv: Survey, keys: list[str], grace: float) -> None:
    """A key rotated within the grace period must not be rotated again."""
    for key in keys:
        rotated_at = _recent(sv, key, grace, [])
        if rotated_at is None:
            continue
        raise ActionRefused(
            f"{key} was rotated {format_duration(time.time() - rotated_at)} ago "
            f"({_iso(rotated_at)}); the grace period ({format_duration(grace)}) runs "
            f"until {_iso(rotated_at + grace)}. Tokens signed with the secret before "
            "it may still be in use, and rotating again would drop that secret and "
            "log those users out. Rotate again after the grace period."
        )


# -------------------------------------------------------------------- resume


class ResumeRotation(_Rotating):
    """The store is rotated but a service still reports the previous key: tell the
    services again. No new secret."""

    mode = "resume"

    def _plan(self, sv: Survey) -> Plan:
        grace = grace_period(sv.settings)
        lagging = sv.lagging()
        if not lagging:
            raise ActionRefused("no rotation to resume: no service is on a previous key")
        self.keys = sv.rotated()
        details = self._key_details(sv, [])
        details += [
            ("waiting for", ", ".join(lagging)),
            ("grace period", format_duration(grace)),
            ("then", self.finish_hint),
        ]
        summary = (
            "dry run: show the rotation plan; nothing will be changed"
            if self.dry_run
            else f"resume the interrupted rotation of {', '.join(self.keys)}: tell "
            f"{', '.join(lagging)} to reload the new secret"
        )
        return Plan(
            action=self.name,
            target=", ".join(self.keys),
            summary=summary,
            details=details,
            params=self._params(sv.store, grace),
            confirm_name=self.keys[0],
            dangerous=not self.dry_run,
            title=f"Resume rotation: tell {', '.join(lagging)} to reload",
        )


# -------------------------------------------------------------------- finish


class FinishRotation(_RotationAction):
    """Drop <KEY>_PREVIOUS once the grace period is over and every service is on the
    current key, then tell the services to forget it. With nothing left to drop (a
    finish killed before it told them), tell them again."""

    mode = "finish"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.retell = False  # PREVIOUS already dropped: only tell the services

    def _plan(self, sv: Survey) -> Plan:
        grace = grace_period(sv.settings)
        keys, values = self.keys, sv.values
        open_keys = [k for k in keys if values.get(k + PREVIOUS) is not None]
        if not open_keys:
            if not self.told or not any(values.get(k + ROTATED_AT) for k in keys):
                raise ActionRefused(
                    f"no rotation to finish: the store holds no "
                    f"{' / '.join(k + PREVIOUS for k in keys)}"
                )
            # Dropped already, maybe by a finish killed before it told the services:
            # they may still hold the previous secret in memory. Telling them is safe.
            return self._plan_retell(sv.store, grace)
        self._refuse_in_grace(values, open_keys, grace)
        not_ready = sv.not_on_current()
        if not_ready:
            raise ActionRefused(
                "cannot drop the previous secret while a service may still use it: "
                + "; ".join(not_ready)
            )
        self.keys = open_keys
        details = [("store", _describe(sv.store))]
        for key in open_keys:
            details.append((key + PREVIOUS, f"{_fp(values[key + PREVIOUS])} will be deleted"))
        details.append(("services", self._told_text() or "none configured"))
        details += self._seen_details()
        summary = (
            "dry run: show the finish plan; nothing will be changed"
            if self.dry_run
            else f"drop the previous secret of {', '.join(open_keys)}; every service is on "
            "the new one"
        )
        return Plan(
            action=self.name,
            target=", ".join(open_keys),
            summary=summary,
            details=details,
            params=self._params(sv.store, grace),
            confirm_name=open_keys[0],
            dangerous=not self.dry_run,
            title=f"Finish rotation: drop {', '.join(k + PREVIOUS for k in open_keys)}",
        )

    @staticmethod
    def _refuse_in_grace(values: dict[str, str], open_keys: list[str], grace: float) -> None:
        now = time.time()
        for key in open_keys:
            rotated = parse_time(values.get(key + ROTATED_AT))
            if rotated is not None and now - rotated < grace:
                raise ActionRefused(
                    f"the grace period of {key} runs until {_iso(rotated + grace)} "
                    f"({format_duration(rotated + grace - now)} from now): tokens signed with "
                    "the previous secret may still be valid, and dropping it would log "
                    "their users out"
                )

    def _plan_retell(self, store: SecretStore, grace: float) -> Plan:
        self.retell = True
        keys = self.keys
        details = [("store", _describe(store))]
        details.append(("services told", self._told_text()))
        details += self._seen_details()
        summary = (
            f"no rotation to finish: the store holds no "
            f"{' / '.join(k + PREVIOUS for k in keys)} (already dropped); tell "
            f"{len(self.told)} service(s) to reload so none keeps the previous secret "
            "in memory"
        )
        return Plan(
            action=self.name,
            target=", ".join(keys),
            summary=("dry run: " if self.dry_run else "") + summary,
            details=details,
            params=self._params(store, grace),
            confirm_name=keys[0],
            dangerous=False,
            title="Finish rotation: tell the services to forget the previous secret",
        )

    async def _execute(self, store: SecretStore, plan: Plan, progress: Progress) -> None:
        if not self.retell:
            progress(await asyncio.to_thread(self._finish_store, store, plan))
        # the services re-read the store and forget the previous secret
        await self._notify(store, plan, progress, use_previous=False)

    def _finish_store(self, store: SecretStore, plan: Plan) -> str:
        """Blocking (lock, write, fsync): run in a thread. Returns the progress line."""
        try:
            with store.lock():
                values = read_values(store, self.keys)
                # re-check under the lock: a service may have fallen back meanwhile
                if any(_fp(values.get(k)) != self.old_fp.get(k) for k in self.keys):
                    raise ActionRefused("the store changed since the plan: run --finish again")
                store.write({k + PREVIOUS: None for k in self.keys})
                fault_point("finish", "written")
        except StoreLocked as e:
            raise ActionRefused(str(e)) from None
        names = ", ".join(k + PREVIOUS for k in self.keys)
        self._step("written", plan, f"dropped {names}")
        return f"dropped {names}"

    def _store_problem(self, values: dict[str, str]) -> Outcome | None:
        left = [k + PREVIOUS for k in self.keys if values.get(k + PREVIOUS) is not None]
        if left:
            return Outcome(Result.NOT_VERIFIED, f"{', '.join(left)} still in the store")
        return None

    def _outcome(
        self,
        checkable: list[_Told],
        behind: list[_Told],
        values: dict[str, str],
        details: list[tuple[str, str]],
    ) -> Outcome:
        if behind:
            names = ", ".join(t.svc.name for t in behind)
            return Outcome(
                Result.NOT_VERIFIED,
                f"{names} is not confirmed on the current key; make it reload, then run "
                "`ultrawatch rotate-secret --finish` again to tell it again.",
                details,
            )
        done = (
            "no previous secret was left in the store; told the services to reload"
            if self.retell
            else f"previous secret of {', '.join(self.keys)} dropped"
        )
        return Outcome(
            Result.VERIFIED,
            f"{done}; {len(checkable)} service(s) confirmed on the current key",
            details,
        )


# ------------------------------------------------------------------- signals


def _signal(t: _Told) -> tuple[str, bool]:
    """Send the service's reload signal to its local process. Blocking (walks /proc):
    run in a thread."""
    signo = signal_number(t.signal_name or "SIGHUP", "a service's reload config")
    if t.svc.process is None:
        return "no local process found to signal", False
    # local_targets reads only cmdline / pid / pidfile, which a ProcessMatch has; its
    # annotation (ProcessConfig) belongs to signals.py
    targets, why = local_targets(t.svc.process)
    if not targets:
        return f"no local process found to signal ({why})", False
    sent = []
    for pid, _created in targets:
        try:
            os.kill(pid, signo)
            sent.append(str(pid))
        except OSError as e:
            return f"{signal.Signals(signo).name} to pid {pid} failed: {e.strerror}", False
    return f"{signal.Signals(signo).name} sent to pid {', '.join(sent)}", True


# --------------------------------------------------------------------- entry


class RotateSecret:
    """`rotate-secret [KEY] [--finish] [--dry-run]` and the TUI's `r`: read the store
    and the services once, then hand over to the action the state calls for:
    FinishRotation with `finish`; else ResumeRotation when a rotated key has services
    still on its previous key (and no store write was interrupted); else RotateKeys."""

    name = "rotate-secret"

    def __init__(
        self,
        config: Config,
        keys: list[str] | None = None,
        finish: bool | None = False,
        dry_run: bool = False,
    ) -> None:
        """`finish` None: decide from the store, as a remedy does: finish a rotation
        whose previous secret is still kept and that every service has taken up;
        otherwise rotate (or resume one that did not reach every service)."""
        self.config = config
        self.requested = list(keys or [])
        self.finish = finish
        self.dry_run = dry_run
        self.http = HttpClient(config.http)
        self.audit = AuditLog(config.audit_log_path)
        self.chosen: _RotationAction | None = None
        # (plan's "then" line, outcome's "to finish, ..."): how the TUI says it
        self.finish_hint: tuple[str, str] | None = None

    @property
    def audit_target(self) -> str:
        """What a run refused before its plan is audited under: the keys asked for,
        or the configured ones."""
        keys = self.requested or (self.config.secrets.keys if self.config.secrets else [])
        return ", ".join(keys)

    @property
    def audit_params(self) -> dict[str, Any]:
        return {"keys": self.requested or None, "finish": self.finish}  # None: decided

    async def close(self) -> None:
        await self.http.aclose()

    async def plan(self) -> Plan:
        sv = await survey(self.config, self.requested, self.http)
        kind: type[_RotationAction]
        if self.finish or (self.finish is None and _finishable(sv)):
            kind = FinishRotation
        elif not sv.interrupted() and sv.lagging():
            kind = ResumeRotation
        else:
            kind = RotateKeys
        self.chosen = kind(
            self.config, self.requested, self.dry_run, http=self.http, audit=self.audit
        )
        if self.finish_hint is not None:
            self.chosen.finish_hint, self.chosen.finish_how = self.finish_hint
        return self.chosen.plan_from(sv)

    def _action(self) -> _RotationAction:
        if self.chosen is None:
            raise RuntimeError("rotate-secret: plan() first")
        return self.chosen

    async def execute(self, plan: Plan, progress: Progress) -> None:
        await self._action().execute(plan, progress)

    async def verify(self, plan: Plan, progress: Progress) -> Outcome:
        return await self._action().verify(plan, progress)


def _finishable(sv: Survey) -> bool:
    """A rotation is open (a <KEY>_PREVIOUS kept, no write interrupted) and no
    service lags behind it: what is left to do is the finish."""
    open_keys = [k for k in sv.keys if sv.values.get(k + PREVIOUS) is not None]
    return bool(open_keys) and not sv.interrupted() and not sv.lagging()


def from_cli(config: Config, args: Any) -> RotateSecret:
    key = getattr(args, "key", None)
    return RotateSecret(
        config,
        keys=[key] if key else None,
        finish=bool(getattr(args, "finish", False)),
        dry_run=bool(getattr(args, "dry_run", False)),
    )


# ------------------------------------------------------------------ printing


def _printable(details: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # service answers (errors, names) end up here: never let them drive a terminal
    return [(printable(k), printable(v)) for k, v in details]


def _printable_plan(plan: Plan) -> Plan:
    return replace(
        plan,
        target=printable(plan.target),
        summary=printable(plan.summary),
        details=_printable(plan.details),
    )


def _printable_progress(progress: Progress) -> Progress:
    return lambda message: progress(printable(message))
