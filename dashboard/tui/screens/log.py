"""The notification log: the toasts of this session (new alerts, action results,
warnings), newest first, so one that vanished after a few seconds can be read."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from dashboard.tui.viewmodel import clock

STYLE = {"error": "bold red", "warning": "yellow", "information": ""}


class Note:
    """One notification as shown: when, how severe, its title and text."""

    __slots__ = ("at", "message", "severity", "title")

    def __init__(self, at: float, severity: str, title: str, message: str) -> None:
        self.at, self.severity, self.title, self.message = at, severity, title, message


def log_content(notes: list[Note]) -> Content:
    if not notes:
        return Content.styled("no notifications yet in this session", "dim")
    parts: list[Content] = []
    for n in reversed(notes):
        head = Content.assemble(
            (f"{clock(n.at)} ", "dim"),
            (f"{n.severity:<11} ", STYLE.get(n.severity, "")),
            (n.title + ": " if n.title else "", "bold"),
        )
        parts.append(head + Content(n.message))  # plain text: never markup
    return Content("\n").join(parts)


class LogScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    LogScreen { align: center middle; }
    LogScreen > VerticalScroll {
        width: 110; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("l", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    def __init__(self, notes: list[Note]) -> None:
        super().__init__()
        self.notes = notes

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = "Notifications, newest first (Esc closes)"
            yield Static(log_content(self.notes), markup=False, id="log-text")

    def action_close(self) -> None:
        self.dismiss(None)
