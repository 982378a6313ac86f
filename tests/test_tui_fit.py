"""Nothing that explains is cut (issue 13): columns as wide as their content, the
free width to the summary / query / reason, the summary under the check id when
the terminal is narrow; the footer keeps `?` and `q`; focus has its own border."""

from __future__ import annotations

import re

from collectors.rules import Rules
from dashboard.tui.widgets.base import SyncTable
from tests import tui_data as td
from tests.test_tui import WIDE, make_app, screen_text


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text)


async def _incident(size: tuple[int, int]):
    cfg = td.config()
    app = make_app(config=cfg)
    rules = Rules(cfg)
    return app, [rules.evaluate(td.snapshot(i, kind="incident")) for i in range(3)]


async def test_80x24_the_first_screen_says_what_is_wrong_for_each_alert_shown() -> None:
    app, reports = await _incident((80, 24))
    async with app.run_test(size=(80, 24)) as pilot:
        for r in reports:
            app.absorb(r)
        app.render_now()
        await pilot.pause(0.3)
        lines = screen_text(app).splitlines()
        alerts = app.model.open_alerts()
        shown = [a for a in alerts if any(a.check.id in line for line in lines)]
        assert len(shown) >= 3, "\n".join(lines)
        whole = 0
        for a in shown:
            i = next(i for i, line in enumerate(lines) if a.check.id in line)
            below = lines[i + 1] if i + 1 < len(lines) else ""
            if below.lstrip().startswith(("┗", "╰")):
                continue  # the panel's last line: a row cut by its edge (it scrolls)
            whole += 1
            # The check id whole on its line, the summary's start under it.
            words = a.check.summary.split()[:3]
            assert " ".join(words) in _words(below), (a.check.id, below)
        assert whole >= 3, "\n".join(lines)


async def test_wide_alert_ids_and_summaries_are_whole() -> None:
    app, reports = await _incident(WIDE)
    async with app.run_test(size=WIDE) as pilot:
        for r in reports:
            app.absorb(r)
        app.render_now()
        await pilot.pause(0.3)
        table = app.query_one("#alerts-table", SyncTable)
        ids = [a.check.id for a in app.model.open_alerts()]
        # Every column at least as wide as its widest cell: no id is clipped.
        id_col = next(c for c in table.columns.values() if c.key.value == "id")
        assert id_col.width >= max(len(i) for i in ids)
        # Each row is as tall as its summary needs, so nothing is cut off.
        for key in ids:
            cell = table.get_cell(key, "id")
            lines = cell.wrap(app.console, id_col.width)
            assert table.rows[key].height == min(6, len(lines)), key
            assert cell.plain.endswith(app.model.alerts[key].check.summary)
        text = _words(screen_text(app))
        first = app.model.open_alerts()[0].check
        assert first.id in text and _words(first.summary)[:40] in text


async def test_growth_and_reasons_are_not_cut_and_the_focus_border_is_its_own() -> None:
    app, reports = await _incident(WIDE)
    async with app.run_test(size=WIDE) as pilot:
        for r in reports:
            app.absorb(r)
        app.render_now()
        await pilot.pause(0.3)
        text = screen_text(app)
        assert re.search(r"\+\d+(\.\d)? KiB/s", text), text  # the growth figure whole
        assert "in the list of known weak" in text  # Security's reason, under the secret
        focused = app.screen.focused
        panel = next(a for a in focused.ancestors if a.__class__.__name__.endswith("Panel"))
        critical = next(
            p for p in app.query("Panel.-critical") if p is not panel and not p.has_focus_within
        )
        assert panel.styles.border_top[0] == "heavy"
        assert critical.styles.border_top[0] == "round"
        assert panel.styles.border_top[1] != critical.styles.border_top[1]
