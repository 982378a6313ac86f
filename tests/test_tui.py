"""The TUI driven with Pilot: what the engineer sees and what each key does.

Panels are fed judged Snapshots built from the collectors' data contracts
(tests/tui_data.py) or read live from the real embedded PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import html
import re
from pathlib import Path

import msgspec
from textual.widgets import TabbedContent

from collectors.config import parse_config
from collectors.core.model import Reading, Report, Snapshot
from collectors.redis.data import Lock, RedisData
from collectors.rules import Rules
from dashboard.tui.app import UltrawatchApp
from dashboard.tui.screens.confirm import ConfirmScreen
from dashboard.tui.screens.detail import DetailScreen
from dashboard.tui.widgets.base import SyncTable
from tests import tui_data as td

WIDE = (200, 60)


def screen_text(app: UltrawatchApp) -> str:
    """The characters on screen, as the engineer reads them."""
    svg = app.export_screenshot()
    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(float(m.group(2)), []).append(
            (float(m.group(1)), html.unescape(m.group(3)).replace("\xa0", " "))
        )
    return "\n".join("".join(t for _, t in sorted(rows[y])) for y in sorted(rows))


def judged(snapshot: Snapshot, config=None) -> Report:
    return Rules(config or td.config()).evaluate(snapshot)


def with_locks(n: int, locks: list[dict]) -> Snapshot:
    snap = td.snapshot(n)
    readings = tuple(
        td.redis(snap.started_at, locks=locks) if r.component == "redis" else r
        for r in snap.readings
    )
    return dataclasses.replace(snap, readings=readings)


def make_app(**kw) -> UltrawatchApp:
    return UltrawatchApp(kw.pop("config", None) or td.config(), poll=False, **kw)


async def test_target_text_is_never_markup() -> None:
    evil = [
        td.lock("[b]x[/b]", "[@click=app.quit]boom[/]", -1, 100.0),
        td.lock("[@click=app.quit]boom[/]", "[red]owner", 20_000, 1.0),
    ]
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        app.absorb(judged(with_locks(0, evil)))
        app.render_now()
        await pilot.pause()
        text = screen_text(app)
        assert "[b]x[/b]" in text
        assert "[@click=app.quit]boom[/]" in text
        assert "[red]owner" in text
        table = app.query_one("#redis-locks", SyncTable)
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        assert "[@click=app.quit]boom[/]" in screen_text(app)
        # Clicking where the "link" is shown does nothing: the app is still running.
        await pilot.click(offset=(20, 5))
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running
        assert not isinstance(app.screen, DetailScreen)


async def test_read_only_hides_actions() -> None:
    app = make_app(read_only=True)
    async with app.run_test(size=WIDE) as pilot:
        app.absorb(judged(td.snapshot(0, kind="incident")))
        app.render_now()
        await pilot.pause()
        shown = {b.binding.action for b in app.screen.active_bindings.values()}
        for action in (
            "release_lock",
            "terminate_session",
            "cancel_query",
            "drain",
            "rotate_secret",
        ):
            assert app.check_action(action, ()) is False
            assert action not in shown or app.check_action(action, ()) is False
        footer = screen_text(app).splitlines()[-1]
        assert "Release" not in footer and "Terminate" not in footer
        assert "READ-ONLY" in screen_text(app).splitlines()[0]
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert not any("Terminate" in t or "Release lock" in t for t in titles)
        assert any("Acknowledge" in t or "Ack" in t for t in titles)
        for key in "xkcdur":
            await pilot.press(key)
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)


async def test_actions_are_listed_when_enabled(tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        footer = screen_text(app).splitlines()[-1]
        assert "x Release" in footer and "k Terminate" in footer
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert any("Terminate" in t for t in titles)
        assert any("Release lock" in t for t in titles)


async def test_cursor_stays_on_its_row_when_rows_arrive() -> None:
    base = [td.lock(f"lock:inventory:sku-{i}", f"w{i}", 20_000, 10.0 - i) for i in range(6)]
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        app.absorb(judged(with_locks(0, base)))
        app.render_now()
        await pilot.pause()
        table = app.query_one("#redis-locks", SyncTable)
        table.focus()
        table.move_cursor(row=3)
        seen = table.selected()
        assert seen is not None and seen["key"] == "lock:inventory:sku-3"
        # A no-TTL lock arrives: it sorts to the top, pushing every row down.
        newer = [td.lock("lock:inventory:stuck", "w9", -1, 500.0), *base[:3], *base[4:]]
        newer.insert(2, msgspec.structs.replace(base[3], age_s=9.5))  # and its row moves
        app.absorb(judged(with_locks(1, newer)))
        app.render_now()
        await pilot.pause()
        assert table.selected()["key"] == "lock:inventory:sku-3"
        # (the first column holds the marks)
        assert table.get_row_at(0)[2].plain == "lock:inventory:stuck"
        assert table.get_row_at(0)[1].plain == "NO TTL"


async def test_hide_idle_sort_and_filter() -> None:
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        app.absorb(judged(td.snapshot(0, kind="incident")))
        app.render_now()
        await pilot.pause()
        sessions = app.query_one("#pg-sessions", SyncTable)
        states = lambda: [sessions.get_row_at(i)[3].plain for i in range(sessions.row_count)]  # noqa: E731
        assert "idle" in states()
        await pilot.press("i")
        assert "idle" not in states() and "idle in transaction" in states()
        assert "idle hidden" in screen_text(app).splitlines()[0]
        await pilot.press("s")  # sort by age: the oldest transaction first
        assert sessions.get_row_at(0)[2].plain == "4002"
        await pilot.press("slash", *"sku-A", "enter")
        locks = app.query_one("#redis-locks", SyncTable)
        assert locks.row_count == 1 and locks.get_row_at(0)[2].plain == "lock:inventory:sku-A-7"
        services = app.query_one("#svc-table", SyncTable)
        assert services.row_count == 0
        await pilot.press("slash", *["backspace"] * 5, *"pay", "enter")
        assert [services.get_row_at(i)[0].plain for i in range(services.row_count)] == [
            "payment-service"
        ]
        assert locks.row_count == 0
        await pilot.press("slash", "escape")
        assert locks.row_count == 6 and services.row_count == 4


async def test_alerts_bell_acknowledge_snooze_and_handoff(tmp_path: Path) -> None:
    handoff = tmp_path / "handoff.txt"
    cfg = _with_handoff(td.config(), handoff)
    app = make_app(config=cfg)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        app.absorb(judged(td.snapshot(0), cfg))
        await pilot.pause()
        assert app.bells == 0
        rules = Rules(cfg)
        app.absorb(rules.evaluate(td.snapshot(1, kind="incident")))
        await pilot.pause()
        assert app.bells == 1  # one bell for the round that raised criticals
        assert any("critical" in (n.title or "") for n in app._notifications)
        app.absorb(rules.evaluate(td.snapshot(2, kind="incident")))
        await pilot.pause(0.3)
        assert app.bells == 1  # still critical: no new bell
        alerts = app.query_one("#alerts-table", SyncTable)
        alerts.focus()
        alerts.move_cursor(row=0)
        first = alerts.selected()["check"]
        await pilot.press("a")
        assert app.model.alerts[first].acked_by
        assert f"ack {app.model.alerts[first].acked_by}" in screen_text(app)
        alerts.move_cursor(row=1)
        second = alerts.selected()["check"]
        await pilot.press("z")
        assert app.model.alerts[second].snoozed(app.model.now)
        await pilot.press("w")
        text = handoff.read_text()
        assert text.startswith("ULTRAWATCH CRITICAL")
        assert first in text and f"acknowledged by {app.model.alerts[first].acked_by}" in text
        assert "snoozed until" in text
        # Alerts show first seen / last seen and duration, newest first.
        seen = [alerts.get_cell(first, column).plain for column in ("first", "last", "for")]
        assert seen == ["10:00:02Z", "10:00:04Z", "2s"]


def _with_handoff(cfg, path: Path):

    return msgspec.structs.replace(
        cfg, dashboard=msgspec.structs.replace(cfg.dashboard, handoff_file=str(path))
    )


async def test_down_target_shows_error_and_staleness_then_recovers() -> None:
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        app.absorb(judged(td.snapshot(0)))
        app.render_now()
        await pilot.pause()
        assert "12/97 usable" in screen_text(app)
        app.absorb(judged(td.snapshot(6, kind="down")))
        app.render_now()
        await pilot.pause()
        text = screen_text(app)
        assert "connection refused (127.0.0.1:5432)" in text
        assert "stale for 24s" in text  # down since T0-12, round at T0+12
        assert "usable" not in text  # no old numbers presented as fresh
        svc = next(line for line in text.splitlines() if "payment-service" in line)
        assert "stale for 12s: unreachable" in svc  # the service that is down
        assert app.query_one("#pg-sessions", SyncTable).row_count == 0
        app.absorb(judged(td.snapshot(7)))
        app.render_now()
        await pilot.pause()
        assert "usable" in screen_text(app) and "stale for" not in screen_text(app)


async def test_narrow_terminal_uses_tabs_wide_uses_grid() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.absorb(judged(td.snapshot(0, kind="incident")))
        app.render_now()
        await pilot.pause()
        tabs = app.query_one(TabbedContent)
        assert tabs.active == "tab-alerts"
        labels = screen_text(app).splitlines()[1]
        assert "Alerts" in labels and "Postgres" in labels and "Security" in labels
        await pilot.resize_terminal(200, 60)
        await pilot.pause()
        assert not app.query(TabbedContent)
        assert app.query_one("#grid")
        # The resize keeps the focus where it was: the Alerts panel's table.
        assert app.focused is app.query_one("#alerts-table")
        assert "PostgreSQL" in screen_text(app) and "Redis locks" in screen_text(app)
        await pilot.press("slash", *"sku", "enter")
        await pilot.press("question_mark")  # a modal is open while the terminal shrinks
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert "Keys" in screen_text(app)  # the help is untouched
        await pilot.press("escape")
        app.render_now()
        await pilot.pause()
        assert app.query(TabbedContent)
        assert app.query_one("#filter").value == "sku"  # the filter survives the relayout


class Restartable:
    """A real HTTP health endpoint on a fixed port that can go down and come back."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                body = b'{"status":"pass","draining":false,"activeOperations":2}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._cls, self._handler, self._threading = ThreadingHTTPServer, Handler, threading
        self.port = 0
        self.server = None
        self.start()

    def start(self) -> None:
        self.server = self._cls(("127.0.0.1", self.port), self._handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_live_polling_a_target_going_down_and_coming_back(tmp_path: Path) -> None:
    svc = Restartable()
    cfg = parse_config(
        f'[dashboard]\ninterval = "200ms"\nraise_after = 1\nclear_after = 1\n'
        f'[[services]]\nname = "orders"\nurl = "http://127.0.0.1:{svc.port}"\n'
        f'[actions]\naudit_log = "{tmp_path / "audit.jsonl"}"\n',
        "live.toml",
    )
    app = UltrawatchApp(cfg)
    try:
        async with app.run_test(size=WIDE, notifications=True) as pilot:
            table = app.query_one("#svc-table", SyncTable)

            def row() -> str:
                return " ".join(c.plain for c in table.get_row("orders")) if table.row_count else ""

            await _until(pilot, lambda: "● ok" in row())
            await pilot.press("p")
            assert "PAUSED" in screen_text(app).splitlines()[0]
            rounds = app.model.rounds
            await pilot.press("space")  # poll now works while paused
            await _until(pilot, lambda: app.model.rounds > rounds)
            await pilot.press("p")
            svc.stop()
            await _until(pilot, lambda: "stale for" in row())
            assert "unreachable" in row()
            svc.start()  # back quickly: the poller's retry backoff is still short
            await _until(pilot, lambda: "● ok" in row())
            assert "stale" not in row()
    finally:
        svc.stop()


async def _until(pilot, cond, tries: int = 100) -> None:
    for _ in range(tries):
        await pilot.pause(0.1)
        if cond():
            return
    raise AssertionError("the screen never showed it")


async def test_detail_view_on_every_panel() -> None:
    kind = "incident"
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        app.absorb(judged(td.snapshot(0, kind=kind)))
        app.render_now()
        await pilot.pause()
        for table_id, expect in (
            ("#pg-sessions", "backend_start"),
            ("#svc-table", "latency_p95_ms"),
            ("#proc-table", "rss_bytes"),
            ("#sec-table", "fingerprint"),
        ):
            table = app.query_one(table_id, SyncTable)
            table.focus()
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, DetailScreen), table_id
            shown = [str(w.render()) for w in app.screen.query("Static")]
            assert any(line.startswith(expect + ":") for line in shown), shown
            await pilot.press("escape")
            await pilot.pause()


async def test_reading_contract_gaps_show_dashes() -> None:
    """A reading missing most keys still renders (tolerant panels)."""
    from collectors.postgres.data import PostgresData
    from collectors.secrets.data import KeyInfo, SecretsData

    async def run() -> str:
        app = make_app()
        snap = Snapshot(
            1,
            td.T0,
            5.0,
            (
                Reading("postgres", "main", td.T0, PostgresData(connections_used=3)),
                Reading("redis", "main", td.T0, RedisData(locks=[Lock(key="lock:a")])),
                Reading("services", "order-service", td.T0, {}),
                Reading("processes", "worker", td.T0, {}),
                Reading("secrets", "store", td.T0, SecretsData(keys={"JWT_SECRET": KeyInfo()})),
            ),
        )
        async with app.run_test(size=WIDE) as pilot:
            app.absorb(judged(snap))
            app.render_now()
            await pilot.pause()
            return screen_text(app)

    text = await run()
    assert "lock:a" in text and "order-service" in text and "—" in text


async def test_acknowledge_and_snooze_need_the_alerts_panel_focused() -> None:
    app = make_app()
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        app.absorb(judged(td.snapshot(0, kind="incident")))
        app.render_now()
        await pilot.pause()
        assert app.model.alerts
        app.query_one("#pg-sessions", SyncTable).focus()  # the alerts' cursor sits on row 0
        await pilot.press("a", "z")
        await pilot.pause()
        assert not any(a.acked_by or a.snoozed_until for a in app.model.alerts.values())
        assert "select an alert in Alerts first" in screen_text(app)
        # From the command palette, with the Alerts panel focused, it acts on its row.
        alerts = app.query_one("#alerts-table", SyncTable)
        alerts.focus()
        alerts.move_cursor(row=1)
        chosen = alerts.selected()["check"]
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"Ack (a)")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert [c for c, a in app.model.alerts.items() if a.acked_by] == [chosen]


async def test_80x24_header_keeps_clock_and_modes_footer_shows_action_keys() -> None:
    for read_only in (False, True):
        app = make_app(read_only=read_only)
        async with app.run_test(size=(80, 24)) as pilot:
            app.absorb(judged(td.snapshot(0, kind="incident")))
            app.render_now()
            await pilot.pause()
            await pilot.press("p")
            await pilot.pause()
            lines = screen_text(app).splitlines()
            header, footer = lines[0], lines[-1]
            assert "PAUSED" in header and "10:00:00Z" in header, header
            assert re.search(r"10:00:00Z \d+ms", header), header  # the round's duration
            assert "CRITICAL" in header and "4 crit" in header, header
            assert ("READ-ONLY" in header) is read_only, header
            # How to learn the keys and how to leave come first, at any width.
            assert footer.replace(" ", "").startswith("?HelpqQuit"), footer
            if not read_only:  # then the keys that act
                for word in ("r Rotate", "d Drain", "u Undrain", "x Release", "k Terminate"):
                    assert word.split()[1] in footer, footer
            await pilot.resize_terminal(50, 24)
            await pilot.pause(0.3)
            assert screen_text(app).splitlines()[-1].replace(" ", "").startswith("?HelpqQuit")
            await pilot.resize_terminal(200, 60)
            await pilot.pause(0.3)
            header = screen_text(app).splitlines()[0]
            assert "4 critical · 5 warning · 0 unknown │ 10:00:00Z in" in header, header


async def test_help_shows_the_configured_snooze_and_disabled_actions() -> None:
    cfg = td.config()

    from collectors.core.units import Duration

    cfg = msgspec.structs.replace(
        cfg, dashboard=msgspec.structs.replace(cfg.dashboard, snooze=Duration(1800))
    )
    for read_only in (False, True):
        app = make_app(config=cfg, read_only=read_only)
        async with app.run_test(size=WIDE) as pilot:
            await pilot.press("question_mark")
            await pilot.pause()
            text = screen_text(app)
            assert "snooze the selected alert for 30m" in text and "15 minutes" not in text
            assert ("Actions: DISABLED (read-only mode)" in text) is read_only
            assert "x      release the selected Redis lock" in text  # listed either way


async def test_queries_health_messages_and_errors_are_never_markup() -> None:
    query = "select '[bold red]x[/]' [link=https://e.io]c[/link]"
    message = "[@click=app.quit]slow[/] [link=https://e.io]see[/link]"
    error = "[b]refused[/] [@click=app.quit]q[/]"
    snap = td.snapshot(0, kind="incident")
    readings = []
    for r in snap.readings:
        if r.component == "postgres":
            import msgspec

            sessions = [msgspec.structs.replace(r.data.sessions[0], query=query)]
            sessions += r.data.sessions[1:]
            r = dataclasses.replace(r, data=msgspec.structs.replace(r.data, sessions=sessions))
        elif r.component == "services" and r.target == "order-service":
            r = dataclasses.replace(r, data=msgspec.structs.replace(r.data, message=message))
        elif r.component == "services" and r.target == "user-service":
            r = dataclasses.replace(r, data={}, error=error, error_kind="unreachable")
        readings.append(r)
    app = make_app()
    async with app.run_test(size=(240, 60)) as pilot:
        app.absorb(judged(dataclasses.replace(snap, readings=tuple(readings))))
        app.render_now()
        await pilot.pause()
        text = screen_text(app)
        assert query in text
        assert message in text
        assert error in text
        sessions = app.query_one("#pg-sessions", SyncTable)
        sessions.focus()
        sessions.move_cursor(
            row=next(
                i for i in range(sessions.row_count) if "[link=" in sessions.get_row_at(i)[7].plain
            )
        )
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        assert f"query: {query}" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        for table_id in ("#pg-sessions", "#svc-table"):
            app.query_one(table_id, SyncTable).focus()
            for y in range(8, 40, 3):  # clicking where the "links" are does nothing
                await pilot.click(offset=(150, y))
            await pilot.pause()
            while isinstance(app.screen, DetailScreen):
                await pilot.press("escape")
                await pilot.pause()
        assert app.is_running


async def test_rounds_render_throttled_after_keys_and_never_starved(monkeypatch) -> None:
    import dashboard.tui.app as app_module
    from dashboard.tui.app import RoundDone

    # Wide windows so the test does not depend on the machine's speed.
    monkeypatch.setattr(app_module, "INPUT_FIRST", 0.5)
    monkeypatch.setattr(app_module, "INPUT_WAIT_MAX", 1.0)
    app = UltrawatchApp(td.config(), poll=False)
    async with app.run_test(size=WIDE) as pilot:
        # A burst of rounds is folded into a few renders, the last round shown.
        start = app.renders
        for n in range(1, 21):
            app.post_message(RoundDone(judged(td.snapshot(n))))
        await pilot.pause(0.5)
        assert app.model.rounds == 20
        assert 1 <= app.renders - start <= 4, app.renders - start
        assert app.query_one("#svc-table", SyncTable).records  # rendered
        # A round that arrives while keys are being pressed waits for them...
        app.query_one("#svc-table", SyncTable).focus()
        await pilot.press("down")
        before = app.renders
        app.post_message(RoundDone(judged(td.snapshot(21))))
        await pilot.pause(0.15)
        assert app.model.rounds == 21 and app.renders == before
        # ...but not for ever: keys every 0.2 s never starve it.
        for n in range(12):
            await pilot.press("up" if n % 2 else "down")
            await pilot.pause(0.15)
            if app.renders > before:
                break
        assert app.renders > before
        # and with no keys a round renders at once
        await pilot.pause(0.6)
        before = app.renders
        app.post_message(RoundDone(judged(td.snapshot(22))))
        await pilot.pause(0.3)
        assert app.renders > before
