"""The shape every remediation follows: plan -> confirm -> execute -> verify -> audit.

The same Action object runs from a TUI key and from a CLI subcommand; only the
`confirm` and `progress` callbacks differ. Nothing here imports textual.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from collectors.config import Config
from dashboard.actions.audit import AuditLog, redact_tokens


class ActionRefused(Exception):
    """The action will not run (switched off, target changed, unsafe); says why."""


class ActionError(Exception):
    """The action cannot be made at all (e.g. it names a check this config does not
    have): an error (exit 3), its message said as it is."""


class Result(enum.StrEnum):
    VERIFIED = "verified"  # done, and its effect was seen
    NOT_VERIFIED = "not_verified"  # done, but the effect was not seen
    REFUSED = "refused"
    CANCELLED = "cancelled"
    ERROR = "error"

    @property
    def exit_code(self) -> int:
        """Action subcommands: 0 done and verified, 1 refused or not verified, 3 error."""
        return {Result.VERIFIED: 0, Result.ERROR: 3}.get(self, 1)


@dataclass(frozen=True)
class Plan:
    action: str  # "terminate", "release-lock", ...
    target: str  # what it acts on, as the engineer knows it: "pid 4242", "lock:inventory:7"
    summary: str  # one sentence: what will happen
    details: list[tuple[str, str]] = field(default_factory=list)  # shown for confirmation
    params: dict[str, Any] = field(default_factory=dict)  # audited; never secret values
    confirm_name: str = ""  # what to type when production = true (default: target)
    dangerous: bool = True
    # The action in words for the confirmation ("Finish rotation: drop
    # JWT_SECRET_PREVIOUS"); default: the action's name in words and the target.
    title: str = ""

    @property
    def heading(self) -> str:
        return self.title or f"{self.verb} {self.target}"

    @property
    def verb(self) -> str:
        """What the confirming button says: "Terminate session", "Finish rotation"."""
        if self.title:
            return self.title.split(":", 1)[0]
        return ACTION_WORDS.get(self.action, self.action.replace("-", " ").capitalize())


# Each action's name in words, for confirmations.
ACTION_WORDS = {
    "terminate": "Terminate session",
    "cancel": "Cancel query",
    "release-lock": "Release lock",
    "drain": "Drain",
    "undrain": "Undrain",
    "rotate-secret": "Rotate secret",
}


@dataclass(frozen=True)
class Outcome:
    result: Result
    message: str
    details: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.result is Result.VERIFIED


Progress = Callable[[str], None]
Confirm = Callable[[Plan], Awaitable[bool]]


class Action(Protocol):
    @property
    def name(self) -> str:
        """The action's word in plans and the audit log: "drain", "terminate", ...
        (read-only here, so an action may narrow it to a Literal)."""
        ...

    async def plan(self) -> Plan:
        """Read the current state and say exactly what would be done. May raise ActionRefused."""
        ...

    async def execute(self, plan: Plan, progress: Progress) -> None: ...

    async def verify(self, plan: Plan, progress: Progress) -> Outcome: ...

    async def close(self) -> None: ...


def refusal(config: Config, read_only: bool) -> str | None:
    """Why every action is refused right now, or None when actions may run."""
    if read_only:
        return "read-only mode (--read-only): actions are switched off"
    if not config.actions.enabled:
        return "actions are switched off in the configuration (actions.enabled = false)"
    return None


class ActionRunner:
    def __init__(self, config: Config, *, read_only: bool = False) -> None:
        self.config = config
        self.read_only = read_only
        self.audit = AuditLog(config.audit_log_path)

    @property
    def enabled(self) -> bool:
        return refusal(self.config, self.read_only) is None

    async def run(
        self,
        action: Action,
        confirm: Confirm,
        progress: Progress = lambda _msg: None,
    ) -> Outcome:
        why = refusal(self.config, self.read_only)
        if why is not None:
            return Outcome(Result.REFUSED, why)
        t0 = time.perf_counter()
        plan: Plan | None = None
        outcome: Outcome | None = None
        try:
            try:
                plan = await action.plan()
                if not await confirm(plan):
                    outcome = Outcome(Result.CANCELLED, "cancelled: nothing was done")
                else:
                    # Audited before anything is done: an action that cannot be
                    # recorded does not run, and an interrupted one leaves a trace.
                    problem = await self._append(plan, action, "started", "", t0)
                    if problem is not None:
                        outcome = Outcome(Result.ERROR, problem)
                    else:
                        await action.execute(plan, progress)
                        outcome = await action.verify(plan, progress)
            except ActionRefused as e:
                outcome = Outcome(Result.REFUSED, str(e))
            except ActionError as e:
                outcome = Outcome(Result.ERROR, str(e))
            except Exception as e:
                outcome = Outcome(Result.ERROR, f"{type(e).__name__}: {e}")
            finally:
                try:
                    await action.close()
                except Exception:  # closing is best effort
                    pass
        finally:
            # Also on CancelledError / KeyboardInterrupt (outcome None): recorded, re-raised.
            final = outcome or Outcome(Result.ERROR, "interrupted before it finished")
            label = final.result.value if outcome is not None else "interrupted"
            problem = await self._append(
                plan, action, label, final.message, t0, in_thread=outcome is not None
            )
        if problem is not None and not final.message.startswith("audit log not writable"):
            final = Outcome(final.result, f"{final.message} ({problem})", final.details)
        # Last line of defence: a token echoed by a target never reaches the engineer.
        details = [(k, redact_tokens(v) if isinstance(v, str) else v) for k, v in final.details]
        return Outcome(final.result, redact_tokens(final.message), details)

    async def _append(
        self,
        plan: Plan | None,
        action: Action,
        outcome: str,
        message: str,
        t0: float,
        *,
        in_thread: bool = True,
    ) -> str | None:
        """Write one audit line; None when written, else why not (never raises).
        In a thread (fsync must not freeze the TUI), except while being interrupted,
        when a second cancellation must not lose the line."""
        write = functools.partial(
            self.audit.append,
            action=plan.action if plan else action.name,
            # Refused before a plan: audit what was asked for, where the action says.
            target=plan.target if plan else str(getattr(action, "audit_target", "")),
            params=plan.params if plan else dict(getattr(action, "audit_params", {})),
            outcome=outcome,
            message=message,
            duration_ms=(time.perf_counter() - t0) * 1000,
        )
        try:
            if in_thread:
                await asyncio.to_thread(write)
            else:
                write()
        except OSError as e:
            return f"audit log not writable: {self.audit.path}: {e.strerror or e}"
        return None
