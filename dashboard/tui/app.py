"""The Textual console: one screen an on-call engineer trusts at 3 a.m.

Polling runs in an async worker and hands each judged round to the app as a
`RoundDone` message; the view model absorbs every round, the panels are
re-rendered at most every RENDER_EVERY seconds, and tables change in place by
stable row keys. Actions run the CLI's Action classes through ActionRunner.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual import events, on
from textual.actions import SkipAction
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.content import Content
from textual.geometry import Size
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import DataTable, Input, TabbedContent, TabPane

from collectors.config import Config
from collectors.core.model import Report, Snapshot, Status
from collectors.core.units import format_duration, iso_time
from collectors.pgbouncer.config import instances
from dashboard.memory import limit_heaps, trim_now_and_then
from dashboard.tui.keys import NEEDS, bound_keys, palette_keys
from dashboard.tui.screens.log import Note
from dashboard.tui.viewmodel import STATUS_ICON, STATUS_STYLE, ViewModel, clock
from dashboard.tui.widgets.alerts import AlertsPanel
from dashboard.tui.widgets.base import Line, Panel, SyncTable, new_cell_generation
from dashboard.tui.widgets.footer import KeyFooter
from dashboard.tui.widgets.pgbouncer import PgBouncerPanel
from dashboard.tui.widgets.postgres import SORTS, PostgresPanel
from dashboard.tui.widgets.processes import ProcessesPanel
from dashboard.tui.widgets.redis import RedisPanel
from dashboard.tui.widgets.security import SecurityPanel
from dashboard.tui.widgets.services import ServicesPanel

if TYPE_CHECKING:
    from dashboard.actions.backend import Mode
    from dashboard.actions.base import Action, Outcome, Plan
    from dashboard.alertmanager import Silenced
    from dashboard.tui.replay import Replayer

RENDER_EVERY = 0.25  # seconds between renders at most: a burst of rounds cannot pile up
# Keys first: a round's render waits until no key or click came for INPUT_FIRST s
# (so the engineer's key is painted before a round's repaint), but never more
# than INPUT_WAIT_MAX s after the round arrived.
INPUT_FIRST = 0.08
INPUT_WAIT_MAX = 0.5
INPUT_EVENTS = (events.Key, events.MouseDown, events.MouseScrollDown, events.MouseScrollUp)
NOTES_KEPT = 200  # notifications the log (`l`) keeps
NARROW_WIDTH = 150  # below this (or NARROW_HEIGHT) the panels become tabs
NARROW_HEIGHT = 40


@dataclass(frozen=True)
class PanelSpec:
    """One panel: its widget's id (its tab is `tab-<id>`), its class (whose COMPONENT
    names the target whose readings it shows; none for the alerts) and its place in
    the wide grid (spans in app.tcss: the big tables get two columns)."""

    id: str
    cls: type[Panel]
    grid: int
    # Composed only for configs that watch its target (the others keep their layout).
    wanted: Callable[[Config], bool] = lambda config: True


# The one panel map, in tab order: composing, rendering, tabs and the action keys'
# rows all go through it.
PANELS: tuple[PanelSpec, ...] = (
    PanelSpec("alerts", AlertsPanel, grid=4),
    PanelSpec("postgres", PostgresPanel, grid=0),
    PanelSpec("redis", RedisPanel, grid=1),
    PanelSpec("services", ServicesPanel, grid=2),
    PanelSpec("processes", ProcessesPanel, grid=3),
    PanelSpec("security", SecurityPanel, grid=5),
    PanelSpec("pgbouncer", PgBouncerPanel, grid=6, wanted=lambda c: c.pgbouncer is not None),
)
PANEL = {p.id: p for p in PANELS}


class RoundDone(Message):
    """A poll round, judged. Posted by the polling worker (or a replay)."""

    def __init__(self, report: Report) -> None:
        super().__init__()
        self.report = report


class AlertmanagerView(Message):
    """What Alertmanager says of this platform's open alerts (silenced by whom, until
    when; inhibited), or why it could not be read. Posted by the reading worker."""

    def __init__(self, states: dict[str, Silenced] | None, error: str | None = None) -> None:
        super().__init__()
        self.states = states
        self.error = error


# How often the console asks Alertmanager which alerts it silences, at most.
ALERTMANAGER_READ_EVERY = 2.0


class UltrawatchApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "ultrawatch"
    ENABLE_COMMAND_PALETTE = True
    # Made from keys.KEYS, like the palette's commands and the help.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(k.key, k.action, k.label, show=k.footer) for k in bound_keys()
    ]

    def __init__(
        self,
        config: Config,
        *,
        read_only: bool = False,
        replay: Replayer | None = None,
        poll: bool = True,
        send_alerts: bool = False,
    ) -> None:
        limit_heaps()  # before Textual's threads allocate: see dashboard/memory.py
        super().__init__()
        self.config = config
        # Alerts to [alertmanager] from the console too (--alertmanager or `tui = true`).
        am = config.alertmanager
        self.send_alerts = am is not None and (send_alerts or am.tui) and replay is None
        self._am_wake = asyncio.Event()
        self.read_only = read_only
        self.replay = replay
        self.poll = poll and replay is None
        self.model = ViewModel()
        self.paused = False
        self.bells = 0  # how often the bell rang (visible to tests; headless has no bell)
        self.renders = 0
        self._wake = asyncio.Event()
        self._render_pending = False
        self._render_wanted = 0.0  # when the pending render was asked for
        self._last_render = 0.0
        self._last_input = 0.0  # when the last key or click arrived
        self._narrow: bool | None = None
        self._next_size: Size | None = None
        self._dirty: set[str] = set()  # panels not rendered since their data changed
        self._relayout_pending = False  # a resize crossed the grid/tabs line under a modal
        self._action_busy = False
        # The PostgreSQL collector lends its connection to backend actions: it is already
        # in when every slot is taken, which is when terminate is most needed.
        self._pg_lender: Any = None
        self._thread = 0
        self.last_outcome: Any = None  # the last action's Outcome (shown as a notification)
        self._stale_note: str | None = None  # "3m" while the header says the round is old
        self.notes: deque[Note] = deque(maxlen=NOTES_KEPT)  # every toast, for `l`

    # --------------------------------------------------------------- layout

    @property
    def panels(self) -> tuple[PanelSpec, ...]:
        """The panels this config shows, in tab order."""
        return tuple(p for p in PANELS if p.wanted(self.config))

    @property
    def actions_enabled(self) -> bool:
        return not self.read_only and self.config.actions.enabled and self.replay is None

    def _is_narrow(self, size: Size | None = None) -> bool:
        w, h = size or self.size
        return w < NARROW_WIDTH or h < NARROW_HEIGHT

    def get_default_screen(self) -> Screen[Any]:
        from dashboard.tui.screens.main import MainScreen

        return MainScreen(id="_default")

    def compose(self) -> ComposeResult:
        self._narrow = self._is_narrow(self._next_size)
        self._next_size = None
        yield Line(id="header")
        panels = self.panels
        if self._narrow:
            with TabbedContent(id="tabs"):
                for p in panels:
                    with TabPane(p.cls.TAB_TITLE or p.cls.TITLE, id=f"tab-{p.id}"):
                        yield p.cls(id=p.id)
        else:
            # one more row for the PgBouncer panel when it is there
            extra = "-with-pgbouncer" if "pgbouncer" in {p.id for p in panels} else ""
            with Grid(id="grid", classes=extra):
                for p in sorted(panels, key=lambda p: p.grid):
                    yield p.cls(id=p.id)
        yield Input(
            placeholder="filter: text in any row (enter to keep, escape to clear)", id="filter"
        )
        yield Line(id="progress")
        yield KeyFooter(compact=self._narrow)

    async def on_mount(self) -> None:
        import threading

        self._thread = threading.get_ident()
        self.query_one("#filter", Input).display = False
        self.query_one("#progress", Line).display = False
        self.render_now()
        self._focus_first()
        self.call_after_refresh(settle_gc)
        if self.replay is not None:
            self._replay_rebuild()
        elif self.poll:
            self.run_worker(self._poll_loop(), name="poll", group="poll", exit_on_error=False)
            if self.config.alertmanager is not None:
                self.run_worker(
                    self._alertmanager_view(), name="am", group="am", exit_on_error=False
                )
        if self.replay is None:
            self.set_interval(1.0, self._stale_tick)

    def _focus_first(self, panel: str | None = None) -> None:
        """Focus the first table of `panel` (its tab shown when narrow), else the
        first table there is."""
        mine = self.screen.query(f"#{panel} SyncTable") if panel else None
        if mine:
            tabs = self.query(TabbedContent)
            if tabs:
                tabs.first().active = f"tab-{panel}"
            mine.first().focus()
            return
        tables = self.screen.query(SyncTable)
        if tables:
            tables.first().focus()

    def _focused_panel(self) -> str | None:
        node = self.focused
        while node is not None and not isinstance(node, Panel):
            node = node.parent  # type: ignore[assignment]
        return node.id if node is not None else None

    async def on_resize(self, event: events.Resize) -> None:
        # The event carries the new size; self.size catches up a moment later.
        if self._narrow is not None and self._is_narrow(event.size) != self._narrow:
            self._next_size = event.size
            await self._relayout()
        self.call_after_refresh(self._header_refit)  # once the new width is laid out

    def _header_refit(self) -> None:
        if self.query("#header"):
            self._render_header()  # full or compact for the new width

    async def _relayout(self) -> None:
        """Grid <-> tabs. Not under a modal (recompose works on the active screen):
        then it waits until the modal is gone (see render_now)."""
        if len(self.screen_stack) > 1:
            self._relayout_pending = True
            return
        self._relayout_pending = False
        if self._next_size is None:
            self._next_size = self.size
        # A resize keeps the engineer where they were: the same panel has the focus.
        panel = self._focused_panel()
        await self.recompose()
        box = self.query_one("#filter", Input)
        box.value = self.model.filter
        box.display = bool(self.model.filter)
        self.query_one("#progress", Line).display = self._action_busy
        self.render_now()
        self._focus_first(panel)

    # --------------------------------------------------------------- polling

    async def _poll_loop(self) -> None:
        from collectors.poller import Poller, build_collectors
        from collectors.rules import Rules

        d = self.config.dashboard
        poller = Poller(build_collectors(self.config), deadline=d.collector_timeout)
        self._pg_lender = next((c for c in poller.collectors if c.component == "postgres"), None)
        rules = Rules(self.config, raise_after=d.raise_after, clear_after=d.clear_after)
        alerter = None
        if self.send_alerts:
            from dashboard.alertmanager import Alerter, with_self_check

            # The same labels as `serve`'s: Alertmanager makes one alert of the two.
            alerter = Alerter(self.config)
            self.run_worker(alerter.run(), name="alerts", group="alerts", exit_on_error=False)

        def judged(snapshot: Snapshot) -> None:
            report = rules.evaluate(snapshot)
            if alerter is not None:
                report = with_self_check(report, alerter)
                alerter.observe(report)
            self.post_message(RoundDone(report))

        def failed(e: Exception) -> None:  # keep polling; say what broke
            self.notify(
                f"poll round failed: {type(e).__name__}: {e}", severity="error", markup=False
            )

        try:
            await poller.run(
                d.interval, judged, wake=self._wake, paused=lambda: self.paused, on_error=failed
            )
        finally:
            await poller.aclose()
            if alerter is not None:
                await alerter.aclose()

    async def _alertmanager_view(self) -> None:
        """Ask Alertmanager which of this platform's alerts it silences or inhibits
        (every few seconds, and at once after a silence is made here)."""
        from dashboard.alertmanager import AlertmanagerApi, AlertmanagerError, alert_states

        api = AlertmanagerApi.from_config(self.config)
        every = max(ALERTMANAGER_READ_EVERY, float(self.config.dashboard.interval))
        try:
            while True:
                self._am_wake.clear()
                try:
                    states = await alert_states(api, self.config.platform)
                    self.post_message(AlertmanagerView(states))
                except AlertmanagerError as e:
                    self.post_message(AlertmanagerView(None, str(e)))
                try:
                    await asyncio.wait_for(self._am_wake.wait(), every)
                except TimeoutError:
                    pass
        finally:
            await api.aclose()

    def on_alertmanager_view(self, message: AlertmanagerView) -> None:
        if message.states is not None:
            self.model.am_states = message.states
        self.model.am_error = message.error
        self.render_now(only=("alerts",))

    def on_round_done(self, message: RoundDone) -> None:
        self.absorb(message.report)
        trim_now_and_then()

    def absorb(self, report: Report) -> None:
        """Take one round into the model; render soon (throttled)."""
        fresh = self.model.apply(report)
        self._remedies(report)
        if fresh:
            self.bells += 1
            self.bell()
            names = ", ".join(c.id for c in fresh[:3]) + (
                f" (+{len(fresh) - 3})" if len(fresh) > 3 else ""
            )
            self.notify(
                f"{fresh[0].summary}" if len(fresh) == 1 else names,
                title=f"new critical: {fresh[0].id}" if len(fresh) == 1 else "new critical alerts",
                severity="error",
                markup=False,
                timeout=10,
            )
        self._schedule_render()

    def _remedies(self, report: Report) -> None:
        """The remedy of each open alert (the Alerts panel's fix column), when `f` works."""
        if not self.actions_enabled:
            return
        from dashboard.actions.fix import remedy_for, why_no_remedy

        readings = report.snapshot.readings
        found = {}
        why: dict[str, str] = {}
        for alert in self.model.alerts.values():
            remedy = remedy_for(alert.check, readings, self.config, report.snapshot.started_at)
            if remedy is not None:
                found[alert.check.id] = remedy
            elif (said := why_no_remedy(alert.check, readings, self.config)) is not None:
                why[alert.check.id] = said
        self.model.remedies = found
        self.model.no_remedy = why

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, INPUT_EVENTS):
            self._last_input = time.monotonic()
        await super().on_event(event)

    def _schedule_render(self) -> None:
        if self._render_pending:
            return
        self._render_pending = True
        self._render_wanted = now = time.monotonic()
        delay = max(0.0, self._last_render + RENDER_EVERY - now)
        self.set_timer(max(0.01, delay), self._render_timer)  # 0 would divide by zero

    def _render_timer(self) -> None:
        now = time.monotonic()
        quiet = now - self._last_input
        if quiet < INPUT_FIRST and now - self._render_wanted < INPUT_WAIT_MAX:
            self.set_timer(max(0.01, INPUT_FIRST - quiet), self._render_timer)
            return
        self._render_pending = False
        self.render_now()

    def render_now(self, only: tuple[str, ...] | None = None) -> None:
        """Render the header and the panels (`only` some, after a key that changes
        one panel). With tabs, hidden panels wait until their tab is shown."""
        self._last_render = time.monotonic()
        if not self.is_running or not self.query("#header"):
            return  # starting, recomposing or shutting down
        if self._relayout_pending and len(self.screen_stack) == 1:
            self.call_later(self._relayout)
        self.renders += 1
        if only is None:
            new_cell_generation()  # cells shown by neither this render nor the last: gone
        self._render_header()
        self._render_panels(only)

    def _render_panels(self, only: tuple[str, ...] | None) -> None:
        narrow = bool(self._narrow)
        active = None
        if narrow:
            try:
                active = self.query_one("#tabs", TabbedContent).active
            except Exception:
                active = None
        for p in self.panels:
            try:
                panel = self.query_one(f"#{p.id}", p.cls)
            except Exception:
                continue  # recomposing
            if narrow:
                self._label_tab(p.id, p.cls.TAB_TITLE or p.cls.TITLE, panel)
            if only is not None and p.id not in only:
                continue
            if narrow and active is not None and active != f"tab-{p.id}":
                self._dirty.add(p.id)
                continue
            self._dirty.discard(p.id)
            panel.show(self.model)
            panel.note_cap()

    @on(TabbedContent.TabActivated)
    def _tab_shown(self, event: TabbedContent.TabActivated) -> None:
        pane_id = (event.pane.id or "").removeprefix("tab-")
        if pane_id in self._dirty:
            self.render_now(only=(pane_id,))

    def _label_tab(self, pane_id: str, title: str, panel: Panel) -> None:
        status = self.model.status_of(panel.COMPONENT) if panel.COMPONENT else None
        if pane_id == "alerts":
            n = len(self.model.alerts)
            status = self.model.report.status if self.model.report else None
            title = f"{title} {n}" if n else title
        icon = STATUS_ICON[status] if status else "·"
        style = STATUS_STYLE[status] if status else "dim"
        try:
            tab = self.query_one("#tabs", TabbedContent).get_tab(f"tab-{pane_id}")
        except Exception:
            return
        label = Content.assemble((icon, style), " ", title)
        if tab.label != label:
            tab.label = label

    def _render_header(self) -> None:
        full = self._header(compact=False)
        width = self.query_one("#header", Line).content_region.width or self.size.width - 2
        # Too wide for the terminal: the compact form keeps what matters most in
        # front (status, PAUSED / READ-ONLY, the round's time), zero counts dropped.
        line = full if full.cell_length <= width else self._header(compact=True)
        self.query_one("#header", Line).set(line)

    def _header(self, *, compact: bool) -> Content:
        m = self.model
        parts: list[Any] = [] if compact else [("ultrawatch ", "bold")]
        st = m.report.status if m.report is not None else None
        if st is not None:
            parts.append((f" {STATUS_ICON[st]} {st.value.upper()} ", f"{STATUS_STYLE[st]} reverse"))
        # The modes come first so a narrow terminal never cuts them off.
        if self.replay is not None:
            r = self.replay
            state = "▶" if r.playing else "❚❚"
            parts.append((f" REPLAY {r.pos + 1}/{len(r)} ×{r.speed:g} {state}", "bold cyan"))
        elif self.paused:
            parts.append((" PAUSED ", "bold black on yellow"))
        if self.read_only or not self.config.actions.enabled:
            parts.append((" READ-ONLY ", "bold cyan"))
        if m.report is None:
            parts.append(("  waiting for the first round…", "dim"))
        elif compact:
            counts, snap = m.report.counts, m.report.snapshot
            parts.append(f" {clock(snap.started_at)} {snap.duration_ms:.0f}ms")
            for name, short, style in (
                ("critical", "crit", "bold red"),
                ("warning", "warn", "yellow"),
                ("unknown", "unkn", "magenta"),
            ):
                if counts[name]:
                    parts += [" · ", (f"{counts[name]} {short}", style)]
        else:
            counts, snap = m.report.counts, m.report.snapshot
            parts += [
                " ",
                (f"{counts['critical']} critical", "bold red" if counts["critical"] else "dim"),
                " · ",
                (f"{counts['warning']} warning", "yellow" if counts["warning"] else "dim"),
                " · ",
                (f"{counts['unknown']} unknown", "magenta" if counts["unknown"] else "dim"),
                f" │ {clock(snap.started_at)} in {snap.duration_ms:.0f} ms",
            ]
        parts += self._header_notes()
        return Content.assemble(*parts)

    def _header_notes(self) -> list[Any]:
        """What follows the counts: the round's age when old, the filter, the modes."""
        m = self.model
        parts: list[Any] = []
        sep = " │ "
        stale = self._stale_for()
        if stale is not None:
            # No round for two intervals: what is shown is old, and the header says so.
            parts += [sep, (f"last round {format_duration(stale)} ago", "bold black on yellow")]
        if m.filter:
            parts.append(f"{sep}filter: {m.filter}")
        if m.hide_idle:
            parts.append(f"{sep}idle hidden")
        if m.session_sort != "interest":
            parts.append(f"{sep}sort: {m.session_sort}")
        return parts

    def _stale_for(self) -> float | None:
        """How long ago the last live round ended, when that is more than two
        intervals (rounds stopped, hang, or the interval is absurd); else None."""
        report = self.model.report
        if report is None or self.replay is not None:
            return None
        snap = report.snapshot
        age = time.time() - (snap.started_at + snap.duration_ms / 1000)
        return age if age > 2 * float(self.config.dashboard.interval) else None

    def _stale_tick(self) -> None:
        """Every second: redraw the header when its staleness note appears or changes."""
        age = self._stale_for()
        note = None if age is None else format_duration(age)
        if note != self._stale_note and self.query("#header"):
            self._stale_note = note
            self._render_header()

    # ------------------------------------------------------- notifications

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        # Kept for the notification log (`l`): a toast vanishes after seconds.
        text = message
        if markup:
            try:
                text = Content.from_markup(message).plain
            except Exception:  # not valid markup: the log keeps the raw text
                text = message
        self.notes.append(Note(time.time(), severity, title, text))
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def action_notifications(self) -> None:
        from dashboard.tui.screens.log import LogScreen

        self.push_screen(LogScreen(list(self.notes)))

    # ------------------------------------------------------------ bindings

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that cannot work now are hidden (footer, palette) and do nothing."""
        needs = NEEDS.get(action)
        if action in ("toggle_mark", "thaw"):
            return self._table_can(action)
        if needs == "actions":
            return self.actions_enabled
        if needs == "replay":
            return self.replay is not None
        if needs == "live":
            return self.replay is None
        return True

    def _table_can(self, action: str) -> bool:
        """Space marks only in a markable table (else it polls); escape unfreezes
        only a frozen table (else it is free for the filter box and the modals)."""
        table = self.focused
        if not isinstance(table, SyncTable):
            return False
        if action == "toggle_mark":
            return self.actions_enabled and table.markable and table.row_count > 0
        return table.frozen

    def action_toggle_mark(self) -> None:
        table = self.focused
        if not isinstance(table, SyncTable) or not table.toggle_mark():
            raise SkipAction()  # no row to mark: space polls now, as elsewhere

    def action_thaw(self) -> None:
        table = self.focused
        if isinstance(table, SyncTable):
            table.thaw()
            self.render_now()  # re-sorted now, not at the next round

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for k in palette_keys():
            if self.check_action(k.action, ()) is False:
                continue
            yield SystemCommand(
                f"{k.palette_name} ({k.key})", k.about or k.label, self._palette(k.action)
            )

    def _palette(self, name: str) -> Callable[[], Any]:
        async def run() -> None:
            await self.run_action(name)

        return run

    def action_help(self) -> None:
        from dashboard.tui.screens.help import HelpScreen, help_text

        why = None
        if not self.actions_enabled:
            why = (
                "replay"
                if self.replay is not None
                else "read-only mode"
                if self.read_only
                else "actions.enabled = false in the config"
            )
        self.push_screen(HelpScreen(help_text(self.config.dashboard.snooze, why)))

    def action_pause(self) -> None:
        if self.replay is not None:
            self.replay.playing = not self.replay.playing
            if self.replay.playing:
                self._replay_schedule()
        else:
            self.paused = not self.paused
        self.render_now(only=())  # only the header says it

    def action_poll_now(self) -> None:
        self._wake.set()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.model.filter = event.value.strip()
        # At once: the typed character and the filtered panels in one frame (a
        # re-filter reuses each round's prepared rows and takes ~10 ms at 10,000 locks).
        self.render_now()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        box = self.query_one("#filter", Input)
        box.display = bool(box.value.strip())
        self._focus_first()

    def on_key(self, event: Any) -> None:
        box = self.query_one("#filter", Input)
        if event.key == "escape" and box.has_focus:
            box.value = ""
            box.display = False
            self._focus_first()
            event.stop()

    def action_hide_idle(self) -> None:
        self.model.hide_idle = not self.model.hide_idle
        self.render_now(only=("postgres",))

    def action_sort(self) -> None:
        i = SORTS.index(self.model.session_sort)
        self.model.session_sort = SORTS[(i + 1) % len(SORTS)]
        self.render_now(only=("postgres",))

    def _picks(self, panel_id: str, noun: str) -> list[dict[str, Any]] | None:
        """The rows marked in that panel's table (when it has focus), else the one
        selected; None (and the engineer is told why) when there is none."""
        panel = self.query_one(f"#{panel_id}", PANEL[panel_id].cls)
        table = panel.query_one(SyncTable)
        if panel.screen.focused is table and table.marks:
            return table.marked()
        record = self._pick(panel_id, noun)
        return None if record is None else [record]

    def _marks_done(self, panel_id: str) -> None:
        """A confirmed action on the marked rows ran: the marks are spent."""
        panel = self.query_one(f"#{panel_id}", PANEL[panel_id].cls)
        panel.query_one(SyncTable).clear_marks()

    def _pick(self, panel_id: str, noun: str) -> dict[str, Any] | None:
        """The row the engineer selected in that panel's table, or None (and they are
        told why). Only the focused table counts: every other table has its cursor
        on some row too (row 0 by default) that nobody chose."""
        cls = PANEL[panel_id].cls
        panel = self.query_one(f"#{panel_id}", cls)
        table = panel.query_one(SyncTable)
        # The panel's own screen: a modal (help, palette) on top does not move it.
        if panel.screen.focused is not table:
            self.notify(
                f"select {'an' if noun[0] in 'aeiou' else 'a'} {noun} in {cls.TITLE} first"
                " (tab to that panel, move to the row)",
                severity="warning",
            )
            return None
        if table.lost is not None:
            self.notify(
                f"the selected {noun} is gone ({table.lost}); nothing done. "
                "Move the cursor to choose another.",
                severity="warning",
                markup=False,
            )
            return None
        record = table.selected()
        if record is None:
            self.notify(f"no {noun} selected in {cls.TITLE}", severity="warning")
        return record

    def _selected_alert(self) -> str | None:
        record = self._pick("alerts", "alert")
        return None if record is None else str(record["check"])

    def action_acknowledge(self) -> None:
        from dashboard.actions.audit import os_user

        check_id = self._selected_alert()
        alert = self.model.alerts.get(check_id or "")
        if alert is None or check_id is None:
            return

        def acked(silence_id: str | None = None) -> None:
            alert.acked_by, alert.acked_at = os_user(), time.time()
            alert.silence_id = silence_id or alert.silence_id
            self.render_now(only=("alerts",))

        am = self.config.alertmanager
        if am is not None and self._silences_here(check_id):
            # The rota sees one truth: the acknowledgement is a silence in Alertmanager.
            self._silence(check_id, float(am.ack_for), "acknowledged", acked)
            return
        acked()
        self.notify(f"acknowledged {check_id} as {alert.acked_by}", markup=False)

    def action_snooze(self) -> None:
        check_id = self._selected_alert()
        alert = self.model.alerts.get(check_id or "")
        if alert is None or check_id is None:
            return
        if alert.snoozed(self.model.now):
            if alert.silence_id and self._silences_here(check_id):
                self._unsilence(alert.silence_id)
            alert.snoozed_until = None
            self.notify(f"{check_id}: snooze ended", markup=False)
            self.render_now(only=("alerts",))
            return
        seconds = float(self.config.dashboard.snooze)

        def snoozed(silence_id: str | None = None) -> None:
            alert.snoozed_until = self.model.now + seconds
            alert.silence_id = silence_id or alert.silence_id
            self.render_now(only=("alerts",))

        if self._silences_here(check_id):
            self._silence(check_id, seconds, "snoozed", snoozed)
            return
        snoozed()
        self.notify(f"{check_id}: snoozed until {clock(alert.snoozed_until)}", markup=False)

    def _silences_here(self, check_id: str) -> bool:
        """Acknowledge and snooze make Alertmanager silences when [alertmanager] is
        configured and actions may run; in read-only mode they stay in this console."""
        if self.config.alertmanager is None:
            return False
        if not self.actions_enabled:
            self.notify(
                f"{check_id}: only in this console (actions are off: no silence in Alertmanager)",
                severity="warning",
                markup=False,
            )
            return False
        return True

    def _silence(
        self, check_id: str, seconds: float, verb: str, done: Callable[[str | None], None]
    ) -> None:
        holder: list[Any] = []

        def make() -> Action:
            from dashboard.actions.silence import SilenceAction

            action = SilenceAction(
                self.config,
                {"alertname": check_id},
                duration=seconds,
                comment=f"{verb} in the ultrawatch console",
            )
            holder.append(action)
            return action

        def then(outcome: Outcome) -> None:
            if outcome.ok and holder:
                done(holder[0].silence_id)
            self._am_wake.set()  # show Alertmanager's word on it at once

        self._start_action("silence", make, then=then)

    def _unsilence(self, silence_id: str) -> None:
        def make() -> Action:
            from dashboard.actions.silence import UnsilenceAction

            return UnsilenceAction(self.config, silence_id)

        self._start_action("unsilence", make, then=lambda _: self._am_wake.set())

    def action_handoff(self) -> None:
        path = os.path.expanduser(self.config.dashboard.handoff_file)
        try:
            from collectors.core.files import atomic_write

            # 0600: it names what is broken and who acknowledged it.
            atomic_write(path, handoff_text(self.model), mode=0o600, make_parents=True)
        except OSError as e:
            self.notify(f"handoff not written: {e}", severity="error", markup=False)
            return
        self.notify(f"handoff written to {path}", markup=False)

    # ------------------------------------------------------------- details

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        table = event.data_table
        if not isinstance(table, SyncTable):
            return
        key = event.row_key.value
        record = table.records.get(key or "")
        panel = next((a for a in table.ancestors if isinstance(a, Panel)), None)
        if record is None:
            return
        from dashboard.tui.screens.detail import DetailScreen

        title = f"{panel.TITLE if panel else 'row'}: {key}"
        self.push_screen(DetailScreen(title, record))

    # ------------------------------------------------------------- actions

    def action_rotate_secret(self) -> None:
        # Once a rotation's grace period is over and every service has the new key,
        # the same key finishes it (drops the previous secret).
        rotation = next(
            (r.data.rotation for r in self.model.readings("secrets") if r.data is not None), None
        )
        finish = bool(rotation and rotation.in_progress and rotation.can_finish)

        def make() -> Action:
            from dashboard.actions.rotate_secret import RotateSecret

            action = RotateSecret(self.config, finish=finish)
            # The same key finishes it here: no CLI command to remember.
            action.finish_hint = (
                "press r again once the grace period is over (drops the previous secret)",
                "press r to finish",
            )
            return action

        self._start_action("finish rotation" if finish else "rotate secrets", make)

    def _selected_service(self) -> str | None:
        record = self._pick("services", "service")
        return None if record is None else str(record["service"])

    def action_drain(self) -> None:
        self._drain(undrain=False)

    def action_undrain(self) -> None:
        self._drain(undrain=True)

    def _drain(self, *, undrain: bool) -> None:
        if not self.actions_enabled:
            return
        service = self._selected_service()
        if service is None:
            return

        def make() -> Action:
            from dashboard.actions.drain import DrainAction

            return DrainAction(self.config, service, undrain=undrain)

        self._start_action("undrain" if undrain else "drain", make)

    def action_release_lock(self) -> None:
        if not self.actions_enabled:
            return
        records = self._picks("redis", "lock")
        if not records:
            return
        makers = [self._release_maker(r) for r in records]
        if len(records) == 1:
            self._start_action("release-lock", makers[0])
            return

        def make() -> Action:
            from dashboard.actions.bulk import Bulk, Step

            steps = [
                Step(str(r.get("key")), f"owner {r.get('owner')}", m, {"key": r.get("key")})
                for r, m in zip(records, makers, strict=True)
            ]
            return Bulk(
                self.config,
                name="release-lock",
                target=f"{len(steps)} marked locks",
                summary=f"release the {len(steps)} marked locks, each only if it still "
                "holds the owner shown",
                steps=steps,
                noun="locks",
                done="released",
                read_only=self.read_only,
            )

        self._start_action("release-lock", make, marked="redis")

    def _release_maker(self, record: dict[str, Any]) -> Callable[[], Action]:
        # What the engineer saw: this key with this owner; a changed owner is refused.
        # `owner_exact` is the lossless value; `owner` is only for display.
        key, owner = str(record.get("key")), record.get("owner_exact")
        # The age the console saw (a plan's own idle-time read may have been reset) and,
        # for values too long to carry, the SHA-1 the release compares.
        age, sha1 = record.get("age_s"), record.get("owner_sha1")
        # Its owner was seen extending its TTL: the plan warns that it may re-take it.
        renewed = record.get("renewed_ago_s")

        def make() -> Action:
            from dashboard.actions.release_lock import ReleaseLock

            return ReleaseLock(
                self.config, key, owner, age_s=age, expected_sha1=sha1, renewed_ago_s=renewed
            )

        return make

    def action_cancel_query(self) -> None:
        self._backend("cancel")

    def action_terminate_session(self) -> None:
        self._backend("terminate")

    def _backend(self, mode: Mode) -> None:
        if not self.actions_enabled:
            return
        records = self._picks("postgres", "session")
        if not records:
            return
        makers = [self._backend_maker(r, mode) for r in records]
        if len(records) == 1:
            self._start_action(mode, makers[0])
            return
        verb = "cancel the running queries of" if mode == "cancel" else "terminate"

        def make() -> Action:
            from dashboard.actions.bulk import Bulk, Step

            steps = [
                Step(
                    f"pid {r['pid']}",
                    f"{r.get('service')}, {r.get('state')}, backend started "
                    f"{_iso(r.get('backend_start'))}",
                    m,
                    {"pid": r["pid"], "backend_start": r.get("backend_start")},
                )
                for r, m in zip(records, makers, strict=True)
            ]
            return Bulk(
                self.config,
                name=mode,
                target=f"{len(steps)} marked sessions",
                summary=f"{verb} the {len(steps)} marked sessions, each only if it still "
                "has the backend start shown",
                steps=steps,
                noun="sessions",
                done="cancelled" if mode == "cancel" else "terminated",
                read_only=self.read_only,
            )

        self._start_action(mode, make, marked="postgres")

    def _backend_maker(self, record: dict[str, Any], mode: Mode) -> Callable[[], Action]:
        # Identity of the backend the engineer saw: a reused pid is refused.
        pid, started = int(record["pid"]), record.get("backend_start")

        def make() -> Action:
            from dashboard.actions.backend import BackendAction

            action = BackendAction(
                self.config, pid, mode=mode, backend_start=started, lender=self._pg_lender
            )
            # An Action (its `name` is the mode, which mypy types as the Literal).
            return cast("Action", action)

        return make

    def _pgbouncer_database(self) -> tuple[str, bool, bool, str | None] | None:
        """(database, paused, from an alert, instance) the PgBouncer keys act on: the
        row selected in the PgBouncer panel, or the database a selected
        pgbouncer.pool.<database> or pgbouncer.paused alert names (the key is that
        alert's remedy); the instance is None with a single [pgbouncer]."""
        if not self.actions_enabled:
            return None
        paused: dict[str | None, set[str]] = {}
        several = len(instances(self.config.pgbouncer)) > 1
        for reading in self.model.readings("pgbouncer"):
            data = reading.data if reading.ok else None
            names = {d.name for d in getattr(data, "databases", []) if d.paused}
            paused[reading.target if several else None] = names
        alerts = self.query_one("#alerts", AlertsPanel).query_one(SyncTable)
        if alerts.screen.focused is alerts:
            record = self._pick("alerts", "alert")  # says why when none is selected
            if record is None:
                return None
            check = str(record.get("check", ""))
            where, rest = self._pgbouncer_instance_of(check, several)
            held = paused.get(where, set())
            if rest.startswith("pool."):
                db = rest.removeprefix("pool.")
                return db, db in held, True, where
            if rest == "paused" and held:
                return sorted(held)[0], True, True, where
            self.notify(
                f"{check} has no PgBouncer remedy: select a pgbouncer.pool.* or "
                "pgbouncer.paused alert, or a database in PgBouncer",
                severity="warning",
                markup=False,
            )
            return None
        if "pgbouncer" not in {p.id for p in self.panels}:
            self.notify("no [pgbouncer] section in the configuration", severity="warning")
            return None
        record = self._pick("pgbouncer", "database")
        if record is None:
            return None
        db = str(record["database"])
        where = str(record["instance"]) if several and "instance" in record else None
        return db, db in paused.get(where, set()), False, where

    def _pgbouncer_instance_of(self, check: str, several: bool) -> tuple[str | None, str]:
        """A pgbouncer check id split into (instance, the rest after it): ids carry
        the instance only when the config has several (`pgbouncer.<name>.pool.x`)."""
        rest = check.removeprefix("pgbouncer.") if check.startswith("pgbouncer.") else ""
        if not several:
            return None, rest
        for pb in instances(self.config.pgbouncer):
            if rest.startswith(pb.name + "."):
                return pb.name, rest.removeprefix(pb.name + ".")
        return None, ""

    def action_pgbouncer_pause(self) -> None:
        picked = self._pgbouncer_database()
        if picked is None:
            return
        db, paused, from_alert, where = picked
        if from_alert and not paused:
            # A queue's remedy is never to make every client wait.
            self.notify(
                f"{db} is not paused: PAUSE is no remedy for a queue; K drops its "
                "connections, n replaces its server connections (or pause it from the "
                "PgBouncer panel)",
                severity="warning",
                markup=False,
            )
            return
        self._pgbouncer(db, "resume" if paused else "pause", where)

    def action_pgbouncer_reconnect(self) -> None:
        picked = self._pgbouncer_database()
        if picked is not None:
            self._pgbouncer(picked[0], "reconnect", picked[3])

    def action_pgbouncer_kill(self) -> None:
        picked = self._pgbouncer_database()
        if picked is not None:
            self._pgbouncer(picked[0], "kill", picked[3])

    def _pgbouncer(self, database: str, command: str, instance: str | None = None) -> None:
        def make() -> Action:
            from dashboard.actions.pgbouncer import PgBouncerAction

            return PgBouncerAction(self.config, database, command, instance)

        label = f"pgbouncer {command}" + (f" ({instance})" if instance else "")
        self._start_action(label, make)

    def action_fix(self) -> None:
        if not self.actions_enabled:
            return
        check_id = self._selected_alert()
        if check_id is None:
            return
        # The round the engineer sees: the plan lists its exact targets, each of which
        # is checked again when its turn comes.
        report = self.model.report

        def make() -> Action:
            from dashboard.actions.fix import FixAction

            return FixAction(
                self.config,
                check_id,
                report=report,
                lender=self._pg_lender,
                read_only=self.read_only,
            )

        self._start_action(f"fix {check_id}", make)

    def _start_action(
        self,
        label: str,
        make: Callable[[], Action],
        then: Callable[[Outcome], None] | None = None,
        *,
        marked: str | None = None,
    ) -> None:
        """`then`: called with the outcome; `marked`: the panel whose marked rows the
        action is on (its marks are spent once the action ran)."""
        if not self.actions_enabled:
            return
        if self._action_busy:
            self.notify("another action is still running", severity="warning")
            return
        self._action_busy = True
        self.run_worker(
            self._run_action(label, make, then, marked), group="action", exit_on_error=False
        )

    async def _run_action(
        self,
        label: str,
        make: Callable[[], Action],
        then: Callable[[Outcome], None] | None = None,
        marked: str | None = None,
    ) -> None:
        from dashboard.actions.base import ActionRunner, Result
        from dashboard.tui.screens.confirm import ConfirmScreen

        try:
            try:
                action = make()
            except ImportError:
                self.notify(f"{label} is not available in this build", severity="warning")
                return
            except Exception as e:
                self.notify(f"{label}: {type(e).__name__}: {e}", severity="error", markup=False)
                return

            async def confirm(plan: Plan) -> bool:
                screen = ConfirmScreen(plan, production=self.config.dashboard.production)
                answer = await self.push_screen_wait(screen)
                return bool(answer)

            self._progress(f"{label}: reading the current state…")
            runner = ActionRunner(self.config, read_only=self.read_only)
            outcome = await runner.run(action, confirm, self._progress)
            severity = {
                Result.VERIFIED: "information",
                Result.CANCELLED: "information",
                Result.NOT_VERIFIED: "warning",
                Result.REFUSED: "warning",
            }.get(outcome.result, "error")
            self.notify(
                outcome.message,
                title=f"{label}: {outcome.result.value}",
                severity=severity,  # type: ignore[arg-type]
                markup=False,
                timeout=8,
            )
            self.last_outcome = outcome
            if then is not None:
                then(outcome)
            if marked is not None and outcome.result in (Result.VERIFIED, Result.NOT_VERIFIED):
                self._marks_done(marked)
        finally:
            self._action_busy = False
            self._progress(None)
            self._wake.set()  # show the effect at once

    def _progress(self, message: str | None) -> None:
        import threading

        if threading.get_ident() != self._thread:
            self.call_from_thread(self._progress, message)
            return
        line = self.query_one("#progress", Line)
        line.display = message is not None
        line.set(Content.assemble(("⏳ ", "bold"), message or ""))

    # -------------------------------------------------------------- replay

    def _replay_rebuild(self) -> None:
        assert self.replay is not None
        # Judged from the first round on, so first-seen times match forward play.
        self.model = self.replay.rebuild(self.model)
        self.render_now()

    def _replay_schedule(self) -> None:
        assert self.replay is not None
        self.set_timer(max(0.01, self.replay.delay()), self._replay_tick)

    def _replay_tick(self) -> None:
        r = self.replay
        if r is None or not r.playing:
            return
        report = r.advance()
        if report is None:
            r.playing = False
            self.render_now()
            return
        self.absorb(report)
        self._replay_schedule()

    def action_step(self) -> None:
        assert self.replay is not None
        report = self.replay.advance()
        if report is not None:
            self.model.apply(report)
        self.render_now()

    def action_step_back(self) -> None:
        assert self.replay is not None
        if self.replay.step(-1):
            self._replay_rebuild()

    def action_faster(self) -> None:
        assert self.replay is not None
        self.replay.speed = min(1000.0, self.replay.speed * 2)
        self.render_now()

    def action_slower(self) -> None:
        assert self.replay is not None
        self.replay.speed = max(0.125, self.replay.speed / 2)
        self.render_now()

    def action_seek(self) -> None:
        from dashboard.tui.screens.prompt import PromptScreen

        def done(answer: str | None) -> None:
            if answer and self.replay is not None:
                try:
                    self.replay.seek(answer)
                except ValueError as e:
                    self.notify(str(e), severity="error", markup=False)
                    return
                self._replay_rebuild()

        self.push_screen(
            PromptScreen("Go to (ISO time, or seconds from the start):", "2026-11-24T10:00:00Z"),
            done,
        )


def _iso(epoch: Any) -> str:
    return iso_time(epoch, "microseconds") if isinstance(epoch, int | float) else "?"


def handoff_text(model: ViewModel) -> str:
    """`check --format text` of what is open, then who acknowledged what."""
    from dashboard.headless import format_text

    if model.report is None:
        return "ultrawatch: no round seen yet\n"
    open_checks = tuple(c for c in model.report.checks if c.status is not Status.OK)
    text = format_text(Report(snapshot=model.report.snapshot, checks=open_checks))
    lines = ["", "Alerts (first seen, last seen, acknowledged):"]
    for a in model.open_alerts():
        note = (
            f"acknowledged by {a.acked_by} at {clock(a.acked_at)}"
            if a.acked_by
            else "not acknowledged"
        )
        if a.snoozed(model.now):
            note += f", snoozed until {clock(a.snoozed_until)}"
        lines.append(
            f"  {a.check.id}: since {clock(a.first_seen)}, last {clock(a.last_seen)}; {note}"
        )
    if not model.alerts:
        lines.append("  none open")
    return text + "\n".join(lines) + "\n"


_gc_settled = False


def settle_gc() -> None:
    """Once per process, when the console is up: what exists then (Textual,
    Rich, the widgets, the config) lives until exit, so it is frozen out of the
    collector's scans; and young objects are collected less often, so a round's
    short-lived data dies young instead of being promoted. Full collections
    scanned all of it and paused the console 40-230 ms every few rounds (a key
    pressed then waited) at 10,000 locks."""
    global _gc_settled
    if _gc_settled:
        return
    _gc_settled = True
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# gen0 at 20,000 allocations (700 by default): a round's row data is garbage
# before it is collected; measured with bench/tui.py (gen2 runs 47 -> 8, 62 -> 33 ms).
GC_THRESHOLDS = (20_000, 20, 10)


def run_tui(config: Config, *, read_only: bool = False, alerts: bool = False) -> int:
    app = UltrawatchApp(config, read_only=read_only, send_alerts=alerts)
    app.run()
    return app.return_code or 0
