"""One confirmation for many targets: terminate the idle sessions beyond a budget,
release every stuck lock, act on the rows marked in the TUI.

The plan lists every exact target (a pid with its backend_start, a key with its
owner). Once confirmed, each target runs as its own action through the same
runner: planned again (its re-check: the same pid and start, still idle; the same
owner), executed, verified and audited on its own. The result says how many
succeeded, and which did not and why. Never imports textual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from collectors.config import Config
from dashboard.actions.base import (
    Action,
    ActionRefused,
    ActionRunner,
    Outcome,
    Plan,
    Progress,
    Result,
)

# The verb of a bulk plan's heading and confirming button, before its count and noun.
BULK_VERBS = {"terminate": "Terminate", "cancel": "Cancel", "release-lock": "Release"}


@dataclass(frozen=True)
class Step:
    """One target of a bulk action."""

    label: str  # how the plan names it: "pid 4242", "lock:inventory:3"
    shown: str  # what the plan says about it: its identity and why it is chosen
    make: Callable[[], Action]  # its own action, planned again when its turn comes
    params: dict[str, Any] = field(default_factory=dict)  # audited with the bulk's plan


async def _confirmed(plan: Plan) -> bool:
    return True  # the bulk's plan, which lists this target, was confirmed


class Bulk:
    """An Action over `steps`, one after the other (each re-checks its own target, so
    a target that changed meanwhile is refused alone and the others go on)."""

    def __init__(
        self,
        config: Config,
        *,
        name: str,
        target: str,
        summary: str,
        steps: Sequence[Step],
        head: Sequence[tuple[str, str]] = (),
        noun: str = "targets",
        done: str = "done",
        read_only: bool = False,
        confirm_name: str = "",
        params: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self.target = target
        self.summary = summary
        self.steps = list(steps)
        self.head = list(head)
        self.noun = noun  # "sessions", "locks"
        self.done = done  # the verb of a verified target: "terminated", "released"
        self.read_only = read_only
        self.confirm_name = confirm_name
        self.params = dict(params or {})
        self.results: list[tuple[Step, Outcome]] = []

    @property
    def audit_target(self) -> str:
        return self.target

    @property
    def audit_params(self) -> dict[str, Any]:
        return {**self.params, "targets": [s.params or s.label for s in self.steps]}

    async def plan(self) -> Plan:
        if not self.steps:
            raise ActionRefused(f"{self.summary}: nothing to do")
        return Plan(
            action=self.name,
            target=self.target,
            # "Release 2 locks", not the single action's words ("Release lock 2 locks")
            title=f"{BULK_VERBS.get(self.name, self.name.capitalize())} {self.target}",
            summary=self.summary,
            details=[*self.head, *((s.label, s.shown) for s in self.steps)],
            params={**self.audit_params, "count": len(self.steps)},
            confirm_name=self.confirm_name,
        )

    async def execute(self, plan: Plan, progress: Progress) -> None:
        runner = ActionRunner(self.config, read_only=self.read_only)
        n = len(self.steps)
        for i, step in enumerate(self.steps, 1):
            progress(f"{i}/{n} {step.label}")
            try:
                action = step.make()
            except Exception as e:  # one target's problem is its own
                self.results.append((step, Outcome(Result.ERROR, f"{type(e).__name__}: {e}")))
                continue
            self.results.append((step, await runner.run(action, _confirmed, progress)))

    async def verify(self, plan: Plan, progress: Progress) -> Outcome:
        """Each target was verified by its own action: count them, name the others."""
        n = len(self.steps)
        ok = [s for s, o in self.results if o.ok]
        failed = [(s, o) for s, o in self.results if not o.ok]
        details = [(s.label, f"{o.result.value}: {o.message}") for s, o in failed]
        if not failed:
            names = ", ".join(s.label for s in ok[:5]) + (f" (+{n - 5})" if n > 5 else "")
            return Outcome(
                Result.VERIFIED,
                f"{n} of {n} {self.noun} {self.done} and verified: {names}",
                [(s.label, o.message) for s, o in self.results],
            )
        errors = all(o.result is Result.ERROR for _, o in failed)
        result = Result.ERROR if errors and not ok else Result.NOT_VERIFIED
        names = "; ".join(f"{s.label} ({o.result.value}: {o.message})" for s, o in failed)
        return Outcome(
            result,
            f"{len(ok)} of {n} {self.noun} {self.done} and verified; not: {names}",
            details,
        )

    async def close(self) -> None:
        return None
