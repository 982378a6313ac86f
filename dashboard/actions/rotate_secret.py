"""Rotate JWT secrets without logging anyone out and without ever losing the old one.

Rotate: plan -> generate (secrets.token_urlsafe, 64 bytes) -> write the store
atomically with the old value kept as <KEY>_PREVIOUS and <KEY>_ROTATED_AT set ->
tell the services (POST reload with an admin JWT minted from the secret they
hold now, or a signal to the local process) -> verify every service reports the
new fingerprint. Finish (--finish): once the grace period is over and every
service is on the new key, drop <KEY>_PREVIOUS.

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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from collectors.config import Config, ReloadConfig, SecretsConfig, ServiceConfig
from collectors.core.http import HttpClient
from collectors.core.redact import printable
from collectors.core.units import format_duration
from collectors.secrets.collector import (
    PREVIOUS,
    ROTATED_AT,
    check_exists,
    fetch_fingerprints,
    iso_now,
    parse_time,
)
from collectors.secrets.config import SECURITY_PATH, grace_period
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


@dataclass
class _State:
    mode: str = "rotate"  # "rotate" | "resume" | "finish" | "dry-run"
    keys: list[str] = field(default_factory=list)
    gen: list[str] = field(default_factory=list)  # keys that get a new secret now
    retell: bool = False  # finish: PREVIOUS already dropped, only tell the services
    old_fp: dict[str, str | None] = field(default_factory=dict)
    prev_fp: dict[str, str | None] = field(default_factory=dict)  # <KEY>_PREVIOUS at plan
    new_fp: dict[str, str] = field(default_factory=dict)
    told: list[_Told] = field(default_factory=list)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class RotateSecret:
    name = "rotate-secret"

    def __init__(
        self,
        config: Config,
        keys: list[str] | None = None,
        finish: bool = False,
        dry_run: bool = False,
    ) -> None:
        self.config = config
        self.requested = list(keys or [])
        self.finish = finish
        self.dry_run = dry_run
        self.http = HttpClient(config.http)
        self.audit = AuditLog(config.audit_log_path)
        self.state = _State()

    @property
    def settings(self) -> SecretsConfig:
        if self.config.secrets is None:
            raise ActionRefused("no [secrets] section in the configuration: nothing to rotate")
        return self.config.secrets

    async def close(self) -> None:
        await self.http.aclose()

    # ------------------------------------------------------------------ plan

    async def plan(self) -> Plan:
        s = self.settings
        unknown = [k for k in self.requested if k not in s.keys]
        if unknown:
            raise ActionRefused(
                f"{', '.join(unknown)} is not a configured secret (secrets.keys: "
                f"{', '.join(s.keys)})"
            )
        keys = self.requested or list(s.keys)
        store = self._store()
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
        values = await asyncio.to_thread(self._read, store, list(s.keys))
        told = self._told()
        await self._observe(told)
        self.state = _State(keys=keys, told=told)
        self.state.old_fp = {k: _fp(values.get(k)) for k in keys}
        self.state.prev_fp = {k: _fp(values.get(k + PREVIOUS)) for k in keys}
        if self.finish:
            plan = self._plan_finish(store, keys, values)
        else:
            plan = self._plan_rotate(store, keys, values)
        return _printable_plan(plan)

    def _plan_rotate(self, store: SecretStore, keys: list[str], values: dict[str, str]) -> Plan:
        s = self.settings
        grace = grace_period(s)
        now = time.time()
        # A key whose current value equals its _PREVIOUS was not rotated: a write was
        # interrupted after keeping the previous (dir stores write file by file).
        interrupted = [
            k for k in keys if values.get(k + PREVIOUS) is not None and _same_as_previous(values, k)
        ]

        def recent(k: str) -> float | None:
            """When `k` was rotated, if that was within the grace period."""
            at = parse_time(values.get(k + ROTATED_AT))
            if k in interrupted or values.get(k) is None or at is None or now - at >= grace:
                return None
            return at

        rotated = [k for k in keys if _rotated(values, k)]
        # Services still on the previous key of a rotated key: the last rotation did
        # not reach them. Telling them again (resume) is safe; a new secret is not.
        lagging = [
            t.svc.name
            for t in self.state.told
            if not t.error
            and any(
                (fp := self._reported(t, k)) is not None and fp == _fp(values.get(k + PREVIOUS))
                for k in rotated
            )
        ]
        kept: list[str] = []
        if interrupted:
            mode = "rotate"
            kept = [k for k in keys if recent(k)]
            gen = [k for k in keys if k not in kept]
        elif lagging:
            mode, gen = "resume", []
            self.state.keys = keys = rotated
        else:
            for key in keys:
                rotated_at = recent(key)
                if rotated_at is None:
                    continue
                raise ActionRefused(
                    f"{key} was rotated {format_duration(now - rotated_at)} ago "
                    f"({_iso(rotated_at)}); the grace period ({format_duration(grace)}) runs "
                    f"until {_iso(rotated_at + grace)}. Tokens signed with the secret before "
                    "it may still be in use, and rotating again would drop that secret and "
                    "log those users out. Rotate again after the grace period."
                )
            mode, gen = "rotate", list(keys)
        # A new secret moves the current one to _PREVIOUS and drops the _PREVIOUS held
        # now: refuse while any service might still use a key that would go.
        dropping = [k for k in gen if k not in interrupted]
        blockers = self._blockers(values, dropping) if dropping else []
        if blockers:
            raise ActionRefused(
                "cannot generate a new secret while a service may still use a key the "
                "rotation would drop: "
                + "; ".join(blockers)
                + ". Bring it back or make it reload, then rotate again."
            )
        self.state.gen = gen
        self.state.mode = "dry-run" if self.dry_run else mode
        details: list[tuple[str, str]] = [("store", _describe(store))]
        for key in keys:
            v = values.get(key)
            now_text = f"{len(v.encode())} bytes, {_fp(v)}" if v is not None else "not set yet"
            if key in gen:
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
        details += self._seen_details()
        if mode == "resume":
            details.append(("waiting for", ", ".join(lagging)))
        details.append(("grace period", format_duration(grace)))
        details.append(("then", "ultrawatch rotate-secret --finish (drops the previous secret)"))
        if self.dry_run:
            summary = "dry run: show the rotation plan; nothing will be changed"
        elif mode == "resume":
            summary = (
                f"resume the interrupted rotation of {', '.join(keys)}: tell "
                f"{', '.join(lagging)} to reload the new secret"
            )
        elif interrupted:
            summary = (
                f"resume the interrupted rotation: generate new {', '.join(gen)}"
                + (f" ({', '.join(kept)} already rotated)" if kept else "")
                + f", tell {len(self.state.told)} service(s) to reload"
            )
        else:
            summary = (
                f"generate new {', '.join(keys)}, keep the old as previous for "
                f"{format_duration(grace)}, tell {len(self.state.told)} service(s) to reload"
            )
        return Plan(
            action=self.name,
            target=", ".join(keys),
            summary=summary,
            details=details,
            params=self._params(store, grace),
            confirm_name=keys[0],
            dangerous=not self.dry_run,
        )

    def _reported(self, t: _Told, key: str) -> str | None:
        """The fingerprint `t` reports for `key` (access or refresh), if it reports one."""
        s = self.settings
        if key == s.keys[0]:
            return t.fingerprint
        if len(s.keys) > 1 and key == s.keys[1]:
            return t.refresh
        return None

    def _blockers(self, values: dict[str, str], keys: list[str]) -> list[str]:
        """Why each verifiable service may still use a key other than the current one."""
        out = []
        for t in self.state.told:
            if not t.verifiable:
                continue
            if t.error:
                out.append(f"{t.svc.name}: cannot read which key it uses ({t.error})")
                continue
            for k in keys:
                fp, want = self._reported(t, k), _fp(values.get(k))
                if fp is not None and fp != want:
                    out.append(f"{t.svc.name} reports {fp} for {k}, not the store's {want}")
        return out

    def _plan_finish(self, store: SecretStore, keys: list[str], values: dict[str, str]) -> Plan:
        s = self.settings
        grace = grace_period(s)
        now = time.time()
        open_keys = [k for k in keys if values.get(k + PREVIOUS) is not None]
        if not open_keys:
            if not self.state.told or not any(values.get(k + ROTATED_AT) for k in keys):
                raise ActionRefused(
                    f"no rotation to finish: the store holds no "
                    f"{' / '.join(k + PREVIOUS for k in keys)}"
                )
            # Dropped already, maybe by a finish killed before it told the services:
            # they may still hold the previous secret in memory. Telling them is safe.
            return self._plan_retell(store, keys, grace)
        for key in open_keys:
            rotated = parse_time(values.get(key + ROTATED_AT))
            if rotated is not None and now - rotated < grace:
                raise ActionRefused(
                    f"the grace period of {key} runs until {_iso(rotated + grace)} "
                    f"({format_duration(rotated + grace - now)} from now): tokens signed with "
                    "the previous secret may still be valid, and dropping it would log "
                    "their users out"
                )
        not_ready = self._not_on_current(values)
        if not_ready:
            raise ActionRefused(
                "cannot drop the previous secret while a service may still use it: "
                + "; ".join(not_ready)
            )
        self.state.keys = open_keys
        self.state.mode = "dry-run" if self.dry_run else "finish"
        details = [("store", _describe(store))]
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
            params=self._params(store, grace),
            confirm_name=open_keys[0],
            dangerous=not self.dry_run,
        )

    def _plan_retell(self, store: SecretStore, keys: list[str], grace: float) -> Plan:
        self.state.retell = True
        self.state.mode = "dry-run" if self.dry_run else "finish"
        details = [("store", _describe(store))]
        details.append(("services told", self._told_text()))
        details += self._seen_details()
        summary = (
            f"no rotation to finish: the store holds no "
            f"{' / '.join(k + PREVIOUS for k in keys)} (already dropped); tell "
            f"{len(self.state.told)} service(s) to reload so none keeps the previous secret "
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
        )

    def _not_on_current(self, values: dict[str, str]) -> list[str]:
        """Why each verifiable service may still need the previous secret."""
        out = []
        for t in self.state.told:
            if not t.verifiable:
                continue
            if t.error:
                out.append(f"{t.svc.name}: cannot read its key ({t.error})")
            elif not self._matches(t, values):
                out.append(f"{t.svc.name} still reports {t.fingerprint}")
        return out

    def _matches(self, t: _Told, values: dict[str, str]) -> bool:
        s = self.settings
        if t.error or t.fingerprint != _fp(values.get(s.keys[0])):
            return False
        if len(s.keys) > 1 and t.refresh is not None:
            return t.refresh == _fp(values.get(s.keys[1]))
        return True

    # --------------------------------------------------------------- execute

    async def execute(self, plan: Plan, progress: Progress) -> None:
        st = self.state
        progress = _printable_progress(progress)
        if st.mode == "dry-run":
            progress("dry run: nothing changed")
            return
        # Store and audit writes fsync: in a thread, so the TUI keeps drawing.
        await asyncio.to_thread(self._step, "start", plan, f"{st.mode} started")
        fault_point("rotate", "planned")
        store = await asyncio.to_thread(self._store)
        if st.mode == "rotate":
            progress(await asyncio.to_thread(self._rotate_store, store, plan))
            await self._notify(store, plan, progress, use_previous=True)
            fault_point("rotate", "notified")
        elif st.mode == "resume":
            await self._notify(store, plan, progress, use_previous=True)
            fault_point("rotate", "notified")
        else:
            if not st.retell:
                progress(await asyncio.to_thread(self._finish_store, store, plan))
            # the services re-read the store and forget the previous secret
            await self._notify(store, plan, progress, use_previous=False)

    def _rotate_store(self, store: SecretStore, plan: Plan) -> str:
        """Blocking (lock, write, fsync): run in a thread. Returns the progress line."""
        st = self.state
        try:
            with store.lock():
                values = self._read(store, list(self.settings.keys))
                changed = [
                    k
                    for k in st.keys
                    if _fp(values.get(k)) != st.old_fp.get(k)
                    or _fp(values.get(k + PREVIOUS)) != st.prev_fp.get(k)
                ]
                if changed:
                    raise ActionRefused(
                        f"the store changed since the plan ({', '.join(changed)}): "
                        "run the rotation again to see the new state"
                    )
                stamp = iso_now()
                updates: dict[str, str | None] = self._stamp_untouched(store, values)
                for key in st.keys:
                    if key not in st.gen:  # already rotated by an interrupted run
                        st.new_fp[key] = st.old_fp[key] or ""
                        continue
                    old = values.get(key)
                    new = secrets.token_urlsafe(NEW_SECRET_BYTES)
                    if old is not None and values.get(key + PREVIOUS) != old:
                        updates[key + PREVIOUS] = old
                    updates[key + ROTATED_AT] = stamp
                    updates[key] = new
                    st.new_fp[key] = fingerprint(new)
                fault_point("rotate", "generated")
                store.write(updates)
                del updates, values
                fault_point("rotate", "written")
        except StoreLocked as e:
            raise ActionRefused(str(e)) from None
        text = ", ".join(
            f"{k} {st.old_fp.get(k) or 'unset'} -> {st.new_fp[k]}" for k in st.keys if k in st.gen
        )
        kept = [k for k in st.keys if k not in st.gen]
        if kept:
            text += f" ({', '.join(kept)} already rotated)"
        self._step("written", plan, f"store written: {text}; previous kept")
        return f"store written: {text}; previous kept"

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
            k + ROTATED_AT: _iso(mtime)
            for k in self.settings.keys
            if k not in self.state.gen
            and values.get(k) is not None
            and values.get(k + ROTATED_AT) is None
        }

    def _finish_store(self, store: SecretStore, plan: Plan) -> str:
        """Blocking (lock, write, fsync): run in a thread. Returns the progress line."""
        st = self.state
        try:
            with store.lock():
                values = self._read(store, st.keys)
                # re-check under the lock: a service may have fallen back meanwhile
                if any(_fp(values.get(k)) != st.old_fp.get(k) for k in st.keys):
                    raise ActionRefused("the store changed since the plan: run --finish again")
                store.write({k + PREVIOUS: None for k in st.keys})
                fault_point("finish", "written")
        except StoreLocked as e:
            raise ActionRefused(str(e)) from None
        names = ", ".join(k + PREVIOUS for k in st.keys)
        self._step("written", plan, f"dropped {names}")
        return f"dropped {names}"

    async def _notify(
        self, store: SecretStore, plan: Plan, progress: Progress, *, use_previous: bool
    ) -> None:
        """Tell each service to reload, with an admin token it can verify now."""
        st = self.state
        if not st.told:
            return
        access = self.settings.keys[0]
        values = await asyncio.to_thread(self._read, store, [access])
        signing = values.get(access + PREVIOUS) if use_previous else None
        if signing is None or access not in st.keys:
            signing = values.get(access)
        for i, t in enumerate(st.told):
            if i:
                fault_point("rotate", "notifying", i)  # told i services so far
            if t.how == "signal":
                t.result, t.told_ok = await asyncio.to_thread(self._signal, t)
            else:
                # 30 s: a reload is one request
                token = admin_token(signing, self.settings.algorithm, 30) if signing else None
                t.result, t.told_ok = await self._post_reload(t, token)
            progress(f"{t.svc.name}: {t.result}")
        del signing, values
        told = "; ".join(f"{t.svc.name}: {t.result}" for t in st.told)
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

    def _signal(self, t: _Told) -> tuple[str, bool]:
        """Blocking (walks /proc): run in a thread."""
        signo = signal_number(t.signal_name or "SIGHUP", "a service's reload config")
        if t.svc.process is None:
            return "no local process found to signal", False
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

    # ---------------------------------------------------------------- verify

    async def verify(self, plan: Plan, progress: Progress) -> Outcome:
        outcome = await self._verify(plan, _printable_progress(progress))
        return Outcome(outcome.result, printable(outcome.message), _printable(outcome.details))

    async def _verify(self, plan: Plan, progress: Progress) -> Outcome:
        st = self.state
        if st.mode == "dry-run":
            return Outcome(Result.VERIFIED, "dry run: nothing was changed", plan.details)
        store = await asyncio.to_thread(self._store)
        values = await asyncio.to_thread(self._read, store, self.settings.keys)
        if st.mode in ("rotate", "resume"):
            wrong = [k for k in st.keys if st.new_fp and _fp(values.get(k)) != st.new_fp.get(k)]
            # every key must really be rotated: a current equal to its previous is not
            wrong += [k for k in st.keys if k not in wrong and _same_as_previous(values, k)]
            lost = [
                k
                for k in st.keys
                if (expected := st.old_fp.get(k) if k in st.gen else st.prev_fp.get(k))
                and _fp(values.get(k + PREVIOUS)) != expected
            ]
            if wrong or lost:
                return Outcome(
                    Result.ERROR,
                    "the store does not hold what was written: "
                    + ", ".join(
                        [
                            *(f"{k} differs" for k in wrong),
                            *(f"{k}{PREVIOUS} differs" for k in lost),
                        ]
                    ),
                )
        if st.mode == "finish":
            left = [k + PREVIOUS for k in st.keys if values.get(k + PREVIOUS) is not None]
            if left:
                return Outcome(Result.NOT_VERIFIED, f"{', '.join(left)} still in the store")
        # Poll until every service that can tell us reports the store's current key.
        deadline = time.monotonic() + float(self.settings.verify_timeout)
        checkable = [t for t in st.told if t.verifiable]
        while True:
            await self._observe(checkable)
            behind = [t for t in checkable if not self._matches(t, values)]
            if not behind or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.3)
        fault_point("rotate", "verified")
        access = self.settings.keys[0]
        want = _fp(values.get(access))
        details: list[tuple[str, str]] = []
        for t in st.told:
            if not t.verifiable:
                details.append((t.svc.name, f"{t.result}; cannot verify (no {SECURITY_PATH})"))
            elif t in behind:
                seen = t.fingerprint or f"unreadable ({t.error})"
                details.append((t.svc.name, f"NOT on the new key: reports {seen}; {t.result}"))
            else:
                details.append((t.svc.name, f"ok: reports {want}"))
        for key in st.keys:
            prev = values.get(key + PREVIOUS)
            details.append(
                (key, f"{_fp(values.get(key))}" + (f", previous {_fp(prev)} kept" if prev else ""))
            )
        grace_end = self._grace_end(values)
        if behind:
            names = ", ".join(t.svc.name for t in behind)
            if st.mode == "finish":
                return Outcome(
                    Result.NOT_VERIFIED,
                    f"{names} is not confirmed on the current key; make it reload, then run "
                    "`ultrawatch rotate-secret --finish` again to tell it again.",
                    details,
                )
            return Outcome(
                Result.NOT_VERIFIED,
                f"{names} did not take the new key; the previous secret stays in the store so "
                "it keeps working. Make it reload, then run `ultrawatch rotate-secret` again "
                "to tell it again.",
                details,
            )
        if st.mode == "finish":
            done = (
                "no previous secret was left in the store; told the services to reload"
                if st.retell
                else f"previous secret of {', '.join(st.keys)} dropped"
            )
            return Outcome(
                Result.VERIFIED,
                f"{done}; {len(checkable)} service(s) confirmed on the current key",
                details,
            )
        if not st.told:
            return Outcome(
                Result.VERIFIED,
                f"{', '.join(st.keys)} {'finished' if st.mode == 'finish' else 'rotated'} in "
                "the store; no services are configured to be told (restart them to load it)",
                details,
            )
        after = f" after {_iso(grace_end)}" if grace_end else ""
        return Outcome(
            Result.VERIFIED,
            f"rotated {', '.join(st.keys)}: {len(checkable)} service(s) confirmed the new key; "
            f"the previous secret is kept for the grace period: run "
            f"`ultrawatch rotate-secret --finish`{after}",
            details,
        )

    # --------------------------------------------------------------- helpers

    def _store(self) -> SecretStore:
        try:
            return open_store(self.settings.store)
        except StoreError as e:
            raise ActionRefused(str(e)) from None

    def _read(self, store: SecretStore, keys: list[str]) -> dict[str, str]:
        wanted = {k + suffix for k in keys for suffix in ("", PREVIOUS, ROTATED_AT)}
        if store.kind == "dotenv":
            everything = store.items()  # one read: a consistent view of the file
            return {k: everything[k] for k in wanted if k in everything}
        return {k: v for k in wanted if (v := store.get(k)) is not None}

    def _grace_end(self, values: dict[str, str]) -> float | None:
        times = [parse_time(values.get(k + ROTATED_AT)) for k in self.state.keys]
        known = [t for t in times if t is not None]
        return max(known) + grace_period(self.settings) if known else None

    def _told(self) -> list[_Told]:
        out = []
        for svc in self.config.services:
            verifiable = SECURITY_PATH in svc.detail_paths
            if svc.reload is None and not verifiable:
                continue  # a service without JWT keys
            reload = svc.reload or ReloadConfig()
            if reload.signal:
                out.append(_Told(svc, "signal", signal_name=reload.signal, verifiable=verifiable))
            elif reload.path:
                out.append(_Told(svc, "http", path=reload.path, verifiable=verifiable))
        return out

    def _seen_details(self) -> list[tuple[str, str]]:
        """What each service reports now, so the engineer sees who is on which key."""
        out = []
        for t in self.state.told:
            if not t.verifiable:
                now = f"cannot tell (no {SECURITY_PATH})"
            elif t.error:
                now = f"key unknown: {t.error}"
            else:
                now = f"on {t.fingerprint}"
            out.append((f"{t.svc.name} now", now))
        return out

    def _told_text(self) -> str:
        parts = []
        for t in self.state.told:
            how = f"POST {t.path}" if t.how == "http" else f"{t.signal_name} to its process"
            parts.append(f"{t.svc.name} ({how})")
        return ", ".join(parts)

    async def _observe(self, told: list[_Told]) -> None:
        timeout = min(float(self.config.http.timeout), 3.0)
        checkable = [t for t in told if t.verifiable]
        got = await asyncio.gather(
            *(fetch_fingerprints(self.http, t.svc.url, timeout) for t in checkable)
        )
        for t, g in zip(checkable, got, strict=True):
            t.error = g.error
            t.fingerprint = g.access
            t.refresh = g.refresh

    def _params(self, store: SecretStore, grace: float) -> dict[str, Any]:
        st = self.state
        return {
            "mode": st.mode,
            "keys": list(st.keys),
            "store": _describe(store),
            "services": [t.svc.name for t in st.told],
            "grace_period_s": grace,
            "fingerprints_before": [f"{k}={st.old_fp.get(k) or 'unset'}" for k in st.keys],
        }

    def _step(self, step: str, plan: Plan, message: str) -> None:
        """One audit line per step, so a crash still leaves a trail (no values)."""
        self.audit.append(
            action=self.name,
            target=plan.target,
            outcome=f"step:{step}",
            params={
                "mode": self.state.mode,
                "keys": list(self.state.keys),
                "fingerprints_after": [f"{k}={v}" for k, v in self.state.new_fp.items()],
            },
            message=message,
        )


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


def _describe(store: SecretStore) -> str:
    return f"{store.kind} {store.path}" if store.path else f"{store.kind} (environment)"


def from_cli(config: Config, args: Any) -> RotateSecret:
    key = getattr(args, "key", None)
    return RotateSecret(
        config,
        keys=[key] if key else None,
        finish=bool(getattr(args, "finish", False)),
        dry_run=bool(getattr(args, "dry_run", False)),
    )
