"""Drain and undrain a service: a graceful restart that loses no in-flight work.

Drain, per the service's `drain` config: POST `drain.path` with a short-lived admin
JWT (HS256, role=admin, exp 60 s, signed with the secret the service holds now), or
send `drain.signal` (default SIGTERM) to the local process. Then follow it: the
draining state, active operations falling to zero, the process exiting (or the
service coming back fresh under its supervisor), until `drain.timeout`; on timeout
the engineer is told what is still running. Undrain POSTs `drain.undrain_path` and
verifies `draining` is false again. Never imports textual.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

import psutil

from collectors.config import Config, DrainConfig, ServiceConfig
from collectors.core.http import Fetched, HttpClient
from collectors.services.health_formats import parse_details, parse_health
from dashboard.actions.base import ActionRefused, Outcome, Plan, Progress, Result
from dashboard.actions.signals import (
    Target,
    admin_token,
    alive,
    local_targets,
    redact_tokens,
    signal_number,
)

UNDRAIN_TIMEOUT = 10.0


@dataclass(frozen=True)
class _Seen:
    """One look at the service: its health answer, or that it did not answer."""

    reachable: bool
    draining: bool | None = None
    active: int | None = None
    status: str = "unknown"
    error: str | None = None

    def describe(self) -> str:
        if not self.reachable:
            return f"not answering ({self.error})"
        parts = [f"health {self.status}"]
        if self.draining is not None:
            parts.append("draining" if self.draining else "not draining")
        if self.active is not None:
            parts.append(f"{self.active} active operation{'s' if self.active != 1 else ''}")
        return ", ".join(parts)


class DrainAction:
    def __init__(
        self,
        config: Config,
        service: str,
        *,
        undrain: bool = False,
        http: HttpClient | None = None,
        poll_interval: float = 0.25,
    ) -> None:
        self.config = config
        self.service_name = service
        self.undrain = undrain
        self.name = "undrain" if undrain else "drain"
        self.poll_interval = poll_interval
        self._own_http = http is None
        self.http = http or HttpClient(config.http)
        self._pids: list[Target] = []  # (pid, create_time) signalled
        self._before: _Seen | None = None

    @property
    def audit_target(self) -> str:
        """What a run refused before its plan is audited under."""
        return self.service_name

    @property
    def audit_params(self) -> dict[str, Any]:
        return {"service": self.service_name}

    # ----------------------------------------------------------------- helpers

    def _service(self) -> tuple[ServiceConfig, DrainConfig]:
        svc = self.config.service(self.service_name)
        if svc is None:
            known = ", ".join(s.name for s in self.config.services) or "none configured"
            raise ActionRefused(f"no service named {self.service_name!r} (configured: {known})")
        if svc.drain is None:
            raise ActionRefused(
                f"service {svc.name!r} has no drain configured "
                '(services[].drain = { path = "/admin/drain" } or { signal = "SIGTERM" })'
            )
        return svc, svc.drain

    async def _look(self, svc: ServiceConfig, timeout: float | None = None) -> _Seen:
        f = await self.http.get(svc.url + svc.health_path, timeout=timeout)
        if f.error is not None:
            return _Seen(False, error=f.error)
        h = parse_health(f.status, f.content_type, f.body, f.truncated)
        return _Seen(
            True,
            draining=h.fields.get("draining"),
            active=h.fields.get("activeOperations"),
            status=h.status,
        )

    def _secret(self, service_fp: str | None) -> tuple[str, str]:
        """(secret, which key) to sign with: the one the service holds now."""
        from collectors.secrets.store import StoreError, fingerprint, open_store

        s = self.config.secrets
        if s is None or not s.keys:
            raise ActionRefused(
                "draining over HTTP needs [secrets] (the store and key) to mint an admin token"
            )
        key = s.keys[0]
        try:
            store = open_store(s.store)
            current = store.get(key)
            previous = store.get(key + "_PREVIOUS")
        except StoreError as e:
            raise ActionRefused(f"cannot read the secrets store: {e}") from None
        # During a rotation the service may still hold the previous secret.
        if previous and service_fp and fingerprint(previous) == service_fp:
            return previous, key + "_PREVIOUS"
        if not current:
            raise ActionRefused(f"{key} is not in the secrets store: cannot mint an admin token")
        return current, key

    async def _service_fingerprint(self, svc: ServiceConfig) -> str | None:
        if "/health/security" not in svc.detail_paths:
            return None
        f = await self.http.get(svc.url + "/health/security")
        sec = parse_details(f.status, f.body, f.truncated).get("security") or {}
        return sec.get("accessKeyFingerprint")

    async def _signal_targets(self, svc: ServiceConfig) -> list[Target]:
        m = svc.process
        if m is None:
            raise ActionRefused(
                f"drain by signal needs services[{svc.name}].process to find the process"
            )
        # Walking /proc blocks: off the event loop, so the TUI keeps drawing.
        targets, why = await asyncio.to_thread(local_targets, m)
        if not targets:
            raise ActionRefused(f"no process to signal: {why}")
        return targets

    # ---------------------------------------------------------------- protocol

    async def plan(self) -> Plan:
        svc, drain = self._service()
        seen = await self._look(svc)
        self._before = seen
        url = svc.url + svc.health_path
        details = [("service", svc.name), ("url", url), ("now", seen.describe())]
        params: dict[str, Any] = {"service": svc.name, "url": svc.url}
        if self.undrain:
            if drain.path is None:
                raise ActionRefused(
                    f"{svc.name} drains by signal: its process exits; restart it instead"
                )
            if not seen.reachable:
                raise ActionRefused(f"{svc.name} is not answering: {seen.error}")
            if seen.draining is False:
                # Nothing to undo: no POST, and the outcome says so rather than
                # "verified" as if an undrain had happened.
                details.append(("will", "nothing: it was not draining (no POST sent)"))
                params.update(method="none", noop=True)
                return Plan(
                    "undrain",
                    svc.name,
                    f"{svc.name} was not draining: nothing to undrain",
                    details,
                    params,
                    confirm_name=svc.name,
                    dangerous=False,
                )
            details.append(("will", f"POST {drain.undrain_path} with a 60 s admin token"))
            params.update(method="http", path=drain.undrain_path)
            return Plan(
                "undrain",
                svc.name,
                f"let {svc.name} take work again (POST {drain.undrain_path})",
                details,
                params,
                confirm_name=svc.name,
                dangerous=False,
            )
        if drain.path is not None:
            if not seen.reachable:
                raise ActionRefused(f"{svc.name} is not answering, cannot drain it: {seen.error}")
            how = f"POST {drain.path} with a 60 s admin token"
            params.update(method="http", path=drain.path)
            if svc.process is not None:
                # Follow the process too when we know it: its exit is the proof.
                try:
                    self._pids = await self._signal_targets(svc)
                except ActionRefused:
                    self._pids = []
                if self._pids:
                    params["pids"] = [p for p, _ in self._pids]
        else:
            sig = signal_number(drain.signal or "SIGTERM", "drain.signal")
            self._pids = await self._signal_targets(svc)
            pids = ", ".join(str(p) for p, _ in self._pids)
            how = f"send {sig.name} to pid {pids}"
            params.update(method="signal", signal=sig.name, pids=[p for p, _ in self._pids])
        details += [
            ("will", how),
            ("then", f"wait up to {drain.timeout:g} s for in-flight work to finish and exit"),
        ]
        if self._pids:
            details.append(("process", "pid " + ", ".join(str(p) for p, _ in self._pids)))
        if seen.active is not None:
            params["active_operations"] = seen.active
        return Plan(
            "drain",
            svc.name,
            f"drain {svc.name}: stop taking work, finish in-flight work, exit ({how})",
            details,
            params,
            confirm_name=svc.name,
            dangerous=True,
        )

    async def execute(self, plan: Plan, progress: Progress) -> None:
        svc, drain = self._service()
        if plan.params.get("noop"):
            progress(f"{svc.name} was not draining: no POST sent")
            return
        if plan.params.get("method") == "signal":
            sig = signal_number(drain.signal or "SIGTERM", "drain.signal")
            for pid, created in self._pids:
                try:
                    if psutil.Process(pid).create_time() != created:
                        raise ActionRefused(f"pid {pid} is now another process; not signalled")
                except psutil.NoSuchProcess:
                    progress(f"pid {pid} already exited")
                    continue
                os.kill(pid, sig)
                progress(f"sent {sig.name} to pid {pid}")
            return
        path = plan.params["path"]
        service_fp = await self._service_fingerprint(svc)
        secret, key = await asyncio.to_thread(self._secret, service_fp)  # a file read
        token = admin_token(
            secret, self.config.secrets.algorithm if self.config.secrets else "HS256"
        )
        del secret
        f = await self.http.post(svc.url + path, headers={"Authorization": f"Bearer {token}"})
        _raise_for(f, path)
        progress(f"POST {path}: HTTP {f.status} (token signed with {key})")

    async def verify(self, plan: Plan, progress: Progress) -> Outcome:
        svc, drain = self._service()
        if self.undrain:
            if plan.params.get("noop"):
                return Outcome(
                    Result.VERIFIED,
                    f"{svc.name} was not draining: nothing to undrain (no POST sent)",
                    [("now", self._before.describe() if self._before else "unknown")],
                )
            return await self._verify_undrain(svc, progress)
        deadline = time.monotonic() + drain.timeout
        ops = _Ops()
        if self._before is not None:
            ops.note(self._before)
        saw_draining = False
        last = ""
        seen = _Seen(False, error="not looked yet")
        exits: dict[int, str] = {}  # pid -> how it ended, read while it was a zombie
        t0 = time.monotonic()
        while True:
            seen = await self._look(svc, timeout=min(2.0, self.config.http.timeout))
            running = None
            if self._pids:
                running, found = await asyncio.to_thread(_alive_and_exits, self._pids)
                exits.update(found)
            if seen.reachable and seen.draining:
                saw_draining = True
            if not (saw_draining and seen.draining is False):
                ops.note(seen)  # not a fresh process's count after a restart
            line = seen.describe() + (f"; {len(running)} process(es) alive" if running else "")
            if line != last:
                progress(line)
                last = line
            took = f"{time.monotonic() - t0:.1f} s"
            done = self._drained(svc.name, ops, seen, running, saw_draining, exits, took)
            if done is not None:
                return done
            if time.monotonic() >= deadline:
                still = [seen.describe()]
                if running:
                    still.append("pid " + ", ".join(str(p) for p in running) + " still running")
                return Outcome(
                    Result.NOT_VERIFIED,
                    f"{svc.name} not drained within {drain.timeout:g} s: " + "; ".join(still),
                    [
                        ("draining seen", "yes" if saw_draining else "no"),
                        ("active operations", ops.sequence()),
                    ],
                )
            await asyncio.sleep(self.poll_interval)

    def _drained(
        self,
        name: str,
        ops: _Ops,
        seen: _Seen,
        running: list[int] | None,
        saw_draining: bool,
        exits: dict[int, str],
        took: str,
    ) -> Outcome | None:
        """The outcome once the service has gone (its processes exited, it stopped
        answering, or it came back fresh after draining); None while it is still at it."""
        if running is not None and not running:
            pids = ", ".join(str(p) for p, _ in self._pids)
            codes = [exits.get(p) for p, _ in self._pids]
            return ops.outcome(name, f"pid {pids} exited after {took}", codes)
        if running is None and not seen.reachable and saw_draining:
            return ops.outcome(
                name,
                f"stopped answering after {took}",
                None,
                extra=[("last", seen.describe())],
            )
        if running is None and seen.reachable and saw_draining and seen.draining is False:
            # Back under its supervisor: what it had in flight before going away counts.
            return ops.outcome(name, f"came back fresh after {took} (draining false)", None)
        return None

    async def _verify_undrain(self, svc: ServiceConfig, progress: Progress) -> Outcome:
        deadline = time.monotonic() + UNDRAIN_TIMEOUT
        while True:
            seen = await self._look(svc, timeout=2.0)
            progress(seen.describe())
            if seen.reachable and seen.draining is False:
                return Outcome(Result.VERIFIED, f"{svc.name} is taking work: {seen.describe()}")
            if time.monotonic() >= deadline:
                return Outcome(
                    Result.NOT_VERIFIED,
                    f"{svc.name} still not taking work after {UNDRAIN_TIMEOUT:g} s: "
                    + seen.describe(),
                )
            await asyncio.sleep(self.poll_interval)

    async def close(self) -> None:
        if self._own_http:
            await self.http.aclose()


class _Ops:
    """Active operations as the service reported them, from before the drain to its
    last answer: only a last count of 0 shows that no in-flight work was dropped."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    def note(self, seen: _Seen) -> None:
        active = seen.active
        if not seen.reachable or not isinstance(active, int) or isinstance(active, bool):
            return
        if not self.counts or self.counts[-1] != active:
            self.counts.append(active)

    def sequence(self) -> str:
        c: list[object] = list(self.counts)
        if not c:
            return "not reported"
        shown = c if len(c) <= 12 else [*c[:5], "...", *c[-6:]]
        return " -> ".join(str(x) for x in shown)

    def outcome(
        self,
        name: str,
        ended: str,
        exits: list[str | None] | None,
        extra: list[tuple[str, str]] | None = None,
    ) -> Outcome:
        """VERIFIED only when the last count seen was 0, or (never reported) every
        exit code is known and 0; a known bad exit is never verified. An unknown exit
        code or count never reads as success. `exits` is None when no process was
        followed."""
        last = self.counts[-1] if self.counts else None
        details = [("active operations", self.sequence())]
        if exits is None:
            details.append(("exit", "not followed (no process configured): unknown"))
        else:
            details.append(("exit", "; ".join(e or EXIT_UNKNOWN for e in exits)))
        details += extra or []
        bad = [e for e in exits or [] if e is not None and e != EXIT_CLEAN]
        all_clean = bool(exits) and all(e == EXIT_CLEAN for e in exits or [])
        if last is not None and last > 0:
            ops = f"{last} operation{'s' if last != 1 else ''}"
            how = f" ({'; '.join(bad)})" if bad else ""
            return Outcome(
                Result.NOT_VERIFIED,
                f"{name} {ended} with {ops} in flight{how}: work may be lost",
                details,
            )
        if bad:
            return Outcome(
                Result.NOT_VERIFIED,
                f"{name} {ended}, not cleanly ({'; '.join(bad)}): work may be lost",
                details,
            )
        if last is None and not all_clean:
            return Outcome(
                Result.NOT_VERIFIED,
                f"{name} {ended}, but it never reported 0 active operations and its exit "
                "code is not known: in-flight work may be lost",
                details,
            )
        return Outcome(Result.VERIFIED, f"{name} drained: {ended}", details)


EXIT_CLEAN = "exit code 0"
EXIT_UNKNOWN = "exit code unknown (not visible to ultrawatch: reaped by its parent)"


def _exit_of(pid: int) -> str | None:
    """How a zombie ended, from /proc/<pid>/stat (field 52, the raw wait status, since
    Linux 3.5): readable until its parent reaps it, without reaping it ourselves (which
    would steal the status from a parent that waits). None when not a zombie or gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = text[text.rfind(")") + 2 :].split()  # comm may hold spaces and ")"
    if not rest or rest[0] != "Z" or len(rest) < 50:
        return None
    status = int(rest[49])
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    code = os.WEXITSTATUS(status)
    return EXIT_CLEAN if code == 0 else f"exit code {code}"


def _alive_and_exits(targets: list[Target]) -> tuple[list[int], dict[int, str]]:
    """Which targets still run, and the exit of each one seen as a zombie. Blocking."""
    running = alive(targets)
    exits: dict[int, str] = {}
    for pid, created in targets:
        if pid in running:
            continue
        try:
            same = psutil.Process(pid).create_time() == created
        except psutil.Error:
            continue  # reaped already: its exit code is gone with it
        if same:
            how = _exit_of(pid)
            if how is not None:
                exits[pid] = how
    return running, exits


def _raise_for(f: Fetched, path: str) -> None:
    # What the service sent back may echo our request (the bearer token): redacted.
    if f.error is not None:
        raise RuntimeError(redact_tokens(f"POST {path} failed: {f.error}"))
    if f.status in (401, 403):
        raise RuntimeError(f"POST {path}: the service refused the admin token (HTTP {f.status})")
    if f.status is None or not 200 <= f.status < 300:
        text = f.body[:200].decode("utf-8", "replace").strip()
        raise RuntimeError(redact_tokens(f"POST {path}: HTTP {f.status} {text}".strip()))


def from_cli(config: Config, args: argparse.Namespace) -> DrainAction:
    return DrainAction(config, args.service, undrain=args.command == "undrain")
