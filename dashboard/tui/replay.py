"""`ultrawatch replay FILE`: the console on a recording. Replayer is the position
the TUI shows and how to move it (speed, play), on recording.JudgedRounds, with
the screen's view model judged and kept beside the rules."""

from __future__ import annotations

import argparse
import copy
import dataclasses
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collectors.config import Config, load_config
from collectors.core.model import Report
from collectors.core.settings import ConfigError
from dashboard.recording import JudgedRounds, Recording
from dashboard.tui.viewmodel import ViewModel

if TYPE_CHECKING:
    from dashboard.tui.app import UltrawatchApp


class Replayer(JudgedRounds):
    """The position in a recording the TUI shows, and how to move it.

    Every round is judged in order from the first, like forward play, so alerts'
    first-seen times and hysteresis at any position are those play would have
    shown (see JudgedRounds).
    """

    def __init__(
        self,
        rec: Recording,
        config: Config,
        *,
        speed: float = 1.0,
        start: int = 0,
        only: Iterable[str] | None = None,
    ):
        self.speed = speed if speed > 0 else 1.0
        self.playing = False
        self._model = ViewModel()
        super().__init__(rec, config, start=start, only=only)

    # ---------------------------------------- the view model beside the rules

    def _fresh(self) -> None:
        super()._fresh()
        self._model = ViewModel()

    def _absorb(self, report: Report) -> None:
        super()._absorb(report)
        self._model.apply(report)

    def _carry(self) -> tuple[Any, ...]:
        m = self._model
        return (m.alerts, m.pg_used, m.rounds, m.now)

    def _restore(self, carried: tuple[Any, ...]) -> None:
        alerts, pg_used, rounds, now = carried
        self._model = ViewModel(alerts=alerts, pg_used=pg_used, rounds=rounds, now=now)

    def _cut(self, i: int, why: str) -> None:
        super()._cut(i, why)
        self.playing = False

    # ------------------------------------------------------- the TUI's calls

    def rebuild(self, keep: ViewModel | None = None) -> ViewModel:
        """The screen's model at the current position: judged from the first
        round, with `keep`'s view settings (filter, idle, sort)."""
        self._goto(self.pos)
        self._tell()
        m = copy.copy(self._model)
        # The screen changes its model (acknowledgements, history): give it copies.
        m.alerts = {k: dataclasses.replace(a) for k, a in m.alerts.items()}
        m.pg_used = {k: deque(v, maxlen=v.maxlen) for k, v in m.pg_used.items()}
        if keep is not None:
            m.filter, m.hide_idle, m.session_sort = keep.filter, keep.hide_idle, keep.session_sort
        return m

    def delay(self) -> float:
        """Seconds until the next round at the current speed."""
        if self.pos + 1 >= len(self.index):
            return 0.0
        gap = self.index[self.pos + 1][1] - self.index[self.pos][1]
        return max(0.02, gap / self.speed)

    def describe(self) -> dict[str, Any]:
        return {"pos": self.pos + 1, "of": len(self.index), "speed": self.speed}


def replay_app(replayer: Replayer) -> UltrawatchApp:
    """The read-only TUI on a recording; damage found while moving through it is
    told as a notification (text from the file system: never markup)."""
    from dashboard.tui.app import UltrawatchApp

    app = UltrawatchApp(replayer.config, read_only=True, replay=replayer)
    replayer.warn = lambda text: app.notify(text, severity="error", markup=False, timeout=30)
    return app


def run_replay(args: argparse.Namespace) -> int:
    """`ultrawatch replay FILE [--config F] [--speed X]`: the TUI on a recording."""
    if not Path(args.file).is_file():
        raise ConfigError(args.file, "", "no such recording")
    rec = Recording(args.file, keep=None)
    try:
        config = load_config(args.config) if getattr(args, "config", None) else rec.config()
        replayer = Replayer(rec, config or Config(), speed=args.speed)
        if not len(replayer):
            raise ConfigError(args.file, "", rec.damage or "the recording holds no rounds")
        rec.load(replayer.index[0][0])  # a first round that cannot be read: say so here
    except BaseException:
        rec.close()
        raise
    app = replay_app(replayer)
    try:
        app.run()
    finally:
        rec.close()
    return app.return_code or 0
