"""Everything known about one row (session, lock, service, process, secret, alert)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for k, v in data.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping) and v and len(v) <= 12:
            out += _flatten(v, name + ".")
        elif isinstance(v, list | tuple | Mapping):
            out.append((name, json.dumps(v, default=str, ensure_ascii=False)[:2000]))
        else:
            out.append((name, "—" if v is None else str(v)))
    return out


class DetailScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    DetailScreen { align: center middle; }
    DetailScreen > VerticalScroll {
        width: 90%; height: 80%; border: round $accent; background: $surface; padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("enter", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    def __init__(self, title: str, data: Mapping[str, Any]) -> None:
        super().__init__()
        self.title_text = title
        self.data = data

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = Content(self.title_text)
            for k, v in _flatten(self.data):
                yield Static(Content.assemble((f"{k}: ", "bold"), v), markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
