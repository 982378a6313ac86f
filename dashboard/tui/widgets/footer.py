"""The key footer, rebuilt only when the keys it shows change."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

# First in the footer, so no width cuts them: how to learn the other keys, and
# how to leave.
KEPT = ("help", "quit")


class KeyFooter(Footer):
    """Textual's Footer recomposes (about 20 key widgets, then a layout of the whole
    screen) whenever bindings may have changed, which includes every focus change:
    `tab` between two tables with the same keys cost 200 ms at 10,000 locks. Here
    it recomposes only when what it would show differs from what it shows."""

    _shown: Any = None

    def compose(self) -> ComposeResult:
        # A FooterKey (Textual's key widget in the footer) carries its action.
        widgets = list(super().compose())
        if self.compact:
            # Narrow: the palette's key gives its cells to the keys that act (the
            # help lists ctrl+p).
            widgets = [w for w in widgets if not w.has_class("-command-palette")]
        kept = [w for a in KEPT for w in widgets if getattr(w, "action", None) == a]
        yield from kept
        yield from (w for w in widgets if w not in kept)

    def _signature(self, screen: Screen[Any]) -> Any:
        return (
            self.compact,
            self.show_command_palette,
            tuple(
                (
                    key,
                    binding.key,
                    binding.key_display,
                    binding.description,
                    binding.action,
                    binding.show,
                    binding.group,
                    enabled,
                    tooltip,
                )
                for key, (_node, binding, enabled, tooltip) in screen.active_bindings.items()
            ),
        )

    def bindings_changed(self, screen: Screen[Any]) -> None:
        if self.is_attached and screen is self.screen and screen.app.app_focus:
            signature = self._signature(screen)
            if signature == self._shown:
                return
            self._shown = signature
        super().bindings_changed(screen)
