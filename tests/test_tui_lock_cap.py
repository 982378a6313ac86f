"""Tables hold a bounded number of rows: the lock table the most alarming locks,
every table at most MAX_ROWS. A line or the panel's border says so, and the filter
and the detail view still reach every row."""

from __future__ import annotations

import dataclasses

from collectors.config import parse_config
from collectors.redis.data import Lock
from dashboard.tui.screens.detail import DetailScreen
from dashboard.tui.widgets.base import SyncTable
from dashboard.tui.widgets.redis import LOCK_ROWS
from tests import tui_data as td
from tests.test_tui import WIDE, judged, make_app, screen_text, with_locks

N = LOCK_ROWS + 300


def many_locks() -> list[Lock]:
    locks = [
        td.lock(f"lock:inventory:sku-{i}", f"worker-{i % 7}", 25_000, float(N - i))
        for i in range(N)
    ]
    # The youngest lock, ranked last: far beyond what the table holds.
    locks.append(td.lock("lock:inventory:needle-42", "[b]owner[/b]", 25_000, 0.5))
    locks.append(td.lock("lock:inventory:sku-stuck", "order-service:7f3a", -1, 3.0))
    return locks


async def test_lock_table_cap_line_and_filter_beyond_the_cap() -> None:
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        app.absorb(judged(with_locks(0, many_locks())))
        app.render_now()
        await pilot.pause()
        table = app.query_one("#redis-locks", SyncTable)
        assert table.row_count == LOCK_ROWS
        text = screen_text(app)
        assert f"showing {LOCK_ROWS} of {N + 2} locks; / filters all of them" in text
        assert f"held {N + 2}" in text  # the summary counts every lock
        # The no-TTL lock is first even though it is young; the needle is not held.
        assert table.ordered_rows[0].key.value == "lock:inventory:sku-stuck"
        assert "lock:inventory:needle-42" not in table.records
        assert "needle-42" not in text
        # The filter searches every lock, not only the rows the table holds.
        table.focus()
        await pilot.press("slash", *"needle", "enter")
        await pilot.pause()
        text = screen_text(app)
        assert "lock:inventory:needle-42" in text
        # still literal, not markup (the owner column gets what width is left: the
        # whole token is in the details)
        assert "[b]owner[/" in text
        assert "showing" not in text  # one match: nothing is left out
        assert [r.key.value for r in table.ordered_rows] == ["lock:inventory:needle-42"]
        table.focus()
        await pilot.press("up", "enter")  # the engineer picks the row (the old one went)
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        assert "lock:inventory:needle-42" in screen_text(app)
        assert "[b]owner[/b]" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        # A filter matching more than the table holds says how many match.
        await pilot.press("slash", *["backspace"] * 6, *"sku-", "enter")
        await pilot.pause()
        assert f"showing {LOCK_ROWS} of {N + 1} matching locks" in screen_text(app)
        # Few locks: no cap line at all.
        await pilot.press("slash", *["backspace"] * 4, "enter")
        await pilot.pause()
        app.absorb(judged(with_locks(1, many_locks()[:10])))
        app.render_now()
        await pilot.pause()
        assert "showing" not in screen_text(app)
        assert table.row_count == 10


async def test_a_table_given_more_rows_than_it_holds_says_so_on_its_border() -> None:
    from dashboard.tui.widgets.base import MAX_ROWS

    snap = td.snapshot(0)
    extra = [td.service(snap.started_at, f"svc-{i:04d}", i=i) for i in range(MAX_ROWS + 120)]
    many = dataclasses.replace(snap, readings=(*snap.readings, *extra))
    total = MAX_ROWS + 120 + len(td.SERVICES)
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        app.absorb(judged(many))
        app.render_now()
        await pilot.pause()
        table = app.query_one("#svc-table", SyncTable)
        assert table.row_count == MAX_ROWS
        text = screen_text(app)
        assert f"showing {MAX_ROWS} of {total} rows; / filters all of them" in text
        assert f"{total} services" in text  # the summary counts every one
        assert "svc-0610" not in table.records
        # the filter reaches rows beyond what the table holds, and the note goes
        table.focus()
        await pilot.press("slash", *"svc-061", "enter")
        await pilot.pause()
        assert sorted(table.records) == [f"svc-{i:04d}" for i in range(610, 620)]
        assert "showing" not in screen_text(app)
        # back to a few services: no note
        await pilot.press("slash", *["backspace"] * 7, "enter")
        await pilot.pause()
        app.absorb(judged(td.snapshot(1)))
        app.render_now()
        await pilot.pause()
        assert "showing" not in screen_text(app) and table.row_count == len(td.SERVICES)


async def test_stale_locks_are_marked_by_the_judged_threshold() -> None:
    """The panel marks as stale the locks older than the threshold the judge used
    (the warn of redis.locks.stale), so another config's stale_after moves the marks."""
    locks = [
        td.lock("lock:inventory:old", "w1", 25_000, 400.0),
        td.lock("lock:inventory:mid", "w2", 25_000, 95.0),
        td.lock("lock:inventory:new", "w3", 25_000, 5.0),
    ]
    for extra, stale in (("", {"old", "mid"}), ('stale_after = "5m"\n', {"old"})):
        section = '[redis]\nurl = "redis://127.0.0.1:1/0"\n'
        cfg = parse_config(td.CONFIG_TOML.replace(section, section + extra), "test.toml")
        app = make_app(config=cfg)
        async with app.run_test(size=WIDE) as pilot:
            app.absorb(judged(with_locks(0, locks), cfg))
            app.render_now()
            await pilot.pause()
            table = app.query_one("#redis-locks", SyncTable)
            cols = [c.key.value for c in table.ordered_columns]  # a mark column may lead
            rows = [table.get_row_at(i) for i in range(table.row_count)]
            flags = {
                row[cols.index("key")].plain.rsplit(":", 1)[1]: row[cols.index("flag")].plain
                for row in rows
            }
            assert {k for k, flag in flags.items() if flag == "STALE"} == stale
            assert f"stale {len(stale)}" in screen_text(app)
