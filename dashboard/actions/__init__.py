"""Remediation actions. One module per action, plus the audit log. Never imports textual."""

from dashboard.actions.base import (
    Action,
    ActionRefused,
    ActionRunner,
    Outcome,
    Plan,
    Result,
    refusal,
)

__all__ = ["Action", "ActionRefused", "ActionRunner", "Outcome", "Plan", "Result", "refusal"]
