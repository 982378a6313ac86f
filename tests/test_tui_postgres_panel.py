"""The PostgreSQL panel renders the judged checks: its colours follow the config's
thresholds through the judge, never thresholds of its own (issue 12)."""

from __future__ import annotations

from textual.content import Content

from collectors.config import Config, parse_config
from collectors.core.model import Status
from collectors.rules import Rules
from dashboard.tui.app import UltrawatchApp
from dashboard.tui.widgets.base import Line
from dashboard.tui.widgets.postgres import PostgresPanel
from tests import tui_data as td

WIDE = (200, 60)


def config_with(postgres: str = "", order_budget: int = 5) -> Config:
    """tui_data's config with lines added to [postgres] and order-service's budget set."""
    text = td.CONFIG_TOML.replace(
        "connection_budget = 20\n", f"connection_budget = 20\n{postgres}\n", 1
    ).replace(
        'url = "http://127.0.0.1:3002"\nconnection_budget = 5',
        f'url = "http://127.0.0.1:3002"\nconnection_budget = {order_budget}',
        1,
    )
    return parse_config(text, "test.toml")


def styles_of(content: Content, text: str) -> set[str]:
    """The styles of the spans that cover `text` in `content`."""
    start = content.plain.index(text)
    end = start + len(text)
    return {str(s.style) for s in content.spans if s.start <= start and s.end >= end}


async def panel_shows(config: Config) -> tuple[Content, Content, str, Status | None]:
    """The same round (12 of 97 usable connections, order-service 3 connections)
    judged with `config` and shown: gauge line, budgets line, panel title, status."""
    app = UltrawatchApp(config, poll=False)
    async with app.run_test(size=WIDE) as pilot:
        app.absorb(Rules(config).evaluate(td.snapshot(0)))
        app.render_now()
        await pilot.pause()
        panel = app.query_one(PostgresPanel)
        gauge = app.query_one("#pg-gauge", Line).render()
        budgets = app.query_one("#pg-budgets", Line).render()
        title = Content(str(panel.border_title)).plain
        return gauge, budgets, title, app.model.status_of("postgres")


async def test_connections_warn_from_the_config_colours_the_gauge() -> None:
    gauge, budgets, title, status = await panel_shows(config_with())
    assert "12/97 usable (12%)" in gauge.plain
    bar = gauge.plain.split()[1]  # the gauge's blocks
    assert styles_of(gauge, bar) == {"green"}
    assert status is Status.OK and "OK" in title
    assert "order-service 3/5" in budgets.plain
    assert "bold red" not in styles_of(budgets, "order-service 3/5")

    # The same readings with a lower threshold: the judge says warning, and so does
    # the panel; the numbers it shows are the same.
    gauge, _, title, status = await panel_shows(config_with("connections_warn = 0.1"))
    assert "12/97 usable (12%)" in gauge.plain
    assert styles_of(gauge, bar) == {"yellow"}
    assert status is Status.WARNING and "WARNING" in title

    crit = "connections_warn = 0.05\nconnections_crit = 0.1"
    gauge, _, _, status = await panel_shows(config_with(crit))
    assert styles_of(gauge, bar) == {"red"}
    assert status is Status.CRITICAL


async def test_service_budget_from_the_config_colours_the_budgets_line() -> None:
    # order-service holds 3 connections: over a budget of 2, the panel shows the
    # config's budget (not the one recorded in the reading) in the alarm colour.
    _, budgets, _, status = await panel_shows(config_with(order_budget=2))
    assert "order-service 3/2" in budgets.plain
    assert "bold red" in styles_of(budgets, "order-service 3/2")
    assert "bold red" not in styles_of(budgets, "user-service 3/5")
    assert status is Status.WARNING
