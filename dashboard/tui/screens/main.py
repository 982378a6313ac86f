"""The console's own screen: the panels live on it."""

from __future__ import annotations

from textual.reactive import Reactive
from textual.screen import Screen
from textual.widget import Widget


class MainScreen(Screen[None]):
    """Textual's Screen repaints all of itself when focus moves (its `focused`
    reactive repaints by default): every table and line on a 200x60 screen, tens
    of ms at 10,000 locks, for `tab`. The two widgets whose focus changed repaint
    themselves (their :focus styles), so the rest need not."""

    focused: Reactive[Widget | None] = Reactive(None, repaint=False)
