"""The confirmation dialog says its keys and names the action in words: `y`
confirms, `n` and Esc cancel, Enter presses the focused button (Cancel); in
production `y` does nothing until the target's name is typed, and the letters
typed into that box are text, not keys."""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.widgets import Button, Input

from dashboard.actions.base import Plan
from dashboard.tui.screens.confirm import ConfirmScreen
from tests.test_tui import screen_text

FINISH = Plan(
    action="rotate-secret",
    target="JWT_SECRET",
    summary="drop the previous secret of JWT_SECRET; every service is on the new one",
    details=[("JWT_SECRET_PREVIOUS", "sha256:048af2438891 will be deleted")],
    title="Finish rotation: drop JWT_SECRET_PREVIOUS",
)
TERMINATE = Plan(action="terminate", target="pid 4242", summary="end the session of pid 4242")


class Host(App[None]):
    def __init__(self, plan: Plan, production: bool = False) -> None:
        super().__init__()
        self.plan, self.production = plan, production
        self.answers: list[Any] = []

    def on_mount(self) -> None:
        self.push_screen(ConfirmScreen(self.plan, production=self.production), self.answers.append)


async def answer(plan: Plan, *keys: str, production: bool = False) -> tuple[list[Any], str]:
    app = Host(plan, production)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        return app.answers, text


async def test_the_dialog_names_the_action_and_says_its_keys() -> None:
    answers, text = await answer(FINISH)
    assert "Finish rotation: drop JWT_SECRET_PREVIOUS" in text
    assert "y finish rotation" in text and "n or Esc cancel" in text
    assert "Finish rotation (y)" in text and "Cancel (n)" in text
    assert answers == []  # nothing decided by opening it
    _answers, text = await answer(TERMINATE)
    assert "Terminate session pid 4242" in text and "Terminate session (y)" in text


async def test_y_confirms_n_escape_and_enter_cancel() -> None:
    assert (await answer(FINISH, "y"))[0] == [True]
    assert (await answer(FINISH, "n"))[0] == [False]
    assert (await answer(FINISH, "escape"))[0] == [False]
    assert (await answer(FINISH, "enter"))[0] == [False]  # Cancel is focused


async def test_production_y_waits_for_the_typed_name() -> None:
    app = Host(FINISH, production=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause()
        assert app.answers == []  # the button is disabled: y does nothing
        screen.query_one(Input).focus()
        await pilot.press("n", "y", "backspace", "backspace", *"JWT_SECRET")
        await pilot.pause()
        assert app.answers == []
        assert screen.query_one(Input).value == "JWT_SECRET"
        assert not screen.query_one("#confirm", Button).disabled
        screen.query_one("#confirm", Button).focus()
        await pilot.press("y")
        await pilot.pause()
        assert app.answers == [True]
