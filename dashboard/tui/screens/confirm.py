"""The confirmation modal: names the action in words, the exact target and what
will happen, and says its keys (`y` confirms, `n` or Esc cancels); Cancel is
focused, so Enter cancels; in production the engineer types the target's name
to enable it (and `y` does nothing until then)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from dashboard.actions.base import Plan


class ConfirmScreen(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 76; max-width: 95%; height: auto; max-height: 90%;
        border: thick $error; background: $surface; padding: 0 2;
        overflow-y: auto;  /* a plan with many targets scrolls; the buttons stay reachable */
    }
    ConfirmScreen .what { margin-bottom: 1; }
    /* Many targets (a bulk remedy) scroll here: the title, the summary and the
       buttons stay in view. */
    ConfirmScreen #confirm-details { height: auto; max-height: 30vh; }
    ConfirmScreen Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    ConfirmScreen Button { margin-left: 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("n", "cancel", "Cancel", show=False),
        Binding("y", "confirm", "Confirm", show=False),
    ]

    def __init__(self, plan: Plan, *, production: bool = False) -> None:
        super().__init__()
        self.plan = plan
        self.production = production
        self.expected = plan.confirm_name or plan.target

    def compose(self) -> ComposeResult:
        p = self.plan
        with Vertical():
            yield Static(Content.styled(p.heading, "bold"), markup=False, id="confirm-title")
            yield Static(
                Content.assemble(("target ", "dim"), (p.target, "bold reverse")),
                markup=False,
                id="confirm-target",
            )
            yield Static(Content(p.summary), markup=False, classes="what", id="confirm-summary")
            with VerticalScroll(id="confirm-details"):
                for k, v in p.details:
                    yield Static(Content.assemble((f"{k}: ", "bold"), str(v)), markup=False)
            if self.production:
                yield Static(
                    Content.assemble(
                        ("production: ", "bold red"), "type ", (self.expected, "bold"), " to enable"
                    ),
                    markup=False,
                )
                yield Input(placeholder=self.expected, id="confirm-name")
            yield Static(
                Content.assemble(
                    ("y", "bold"),
                    f" {p.verb.lower()}" + (" (once the name is typed)" if self.production else ""),
                    "  ·  ",
                    ("n", "bold"),
                    " or ",
                    ("Esc", "bold"),
                    " cancel  ·  Enter: the focused button (Cancel)",
                ),
                markup=False,
                id="confirm-keys",
            )
            with Horizontal():
                yield Button("Cancel (n)", id="cancel", variant="primary")
                yield Button(
                    f"{p.verb} (y)",
                    id="confirm",
                    variant="error",
                    disabled=self.production,
                )

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#confirm", Button).disabled = event.value.strip() != self.expected

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == self.expected:
            self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm" and not event.button.disabled)

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_confirm(self) -> None:
        # In production the button stays disabled until the name is typed; `y`
        # typed into that box is text, not this key.
        if not self.query_one("#confirm", Button).disabled:
            self.dismiss(True)
