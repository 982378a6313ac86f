"""Keys, what they do, and the rules the console follows."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from dashboard.tui.keys import help_lines

# Said once under the keys and at the end; the key lines come from keys.KEYS.
ROW_NOTE = "  a, z and the action keys act on the focused panel's selected row only"
IDENTITY_NOTE = """\
An action applies to the row you selected, identified by what you saw
(pid and backend start, lock key and owner): if it changed, it is refused;
if the row went away, nothing is selected until you move the cursor.
"""

ACTIONS_ON = "Actions (each asks first: y confirms, n or Esc cancels; Cancel is focused)"


def help_text(snooze_s: float, disabled: str | None = None) -> str:
    """The help for this session: the configured snooze, and whether the action
    keys work (`disabled` says why not: read-only, replay)."""
    from dashboard.tui.viewmodel import duration

    snooze = duration(snooze_s)
    title = (
        ACTIONS_ON if disabled is None else f"Actions: DISABLED ({disabled}); the keys do nothing"
    )
    lines = ["Keys", *help_lines("keys", snooze), ROW_NOTE, ""]
    lines += [title, *help_lines("actions", snooze), ""]
    lines += ["Replay", *help_lines("replay", snooze), ""]
    return "\n".join(lines) + "\n" + IDENTITY_NOTE


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 80; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    def __init__(self, text: str | None = None) -> None:
        super().__init__()
        self.text = text if text is not None else help_text(900)

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Content(self.text), markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
