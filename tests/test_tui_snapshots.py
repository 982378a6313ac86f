"""SVG snapshots of replayed recordings: fixed times and data, so deterministic.

Regenerate after an intended change: `uv run pytest tests/test_tui_snapshots.py
--snapshot-update`, then look at the SVGs before committing them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.recording import Recording
from dashboard.tui.app import UltrawatchApp
from dashboard.tui.replay import Replayer
from tests import tui_data as td


def replay_app(path: Path, kind: str, rounds: int = 4) -> UltrawatchApp:
    td.record(path, kind, rounds)
    rec = Recording(path, keep=None)
    config = rec.config()
    assert config is not None
    return UltrawatchApp(config, read_only=True, replay=Replayer(rec, config, start=rounds - 1))


@pytest.mark.parametrize(
    ("kind", "size"),
    [
        ("ok", (200, 60)),
        ("ok", (80, 24)),
        ("incident", (200, 60)),
        ("incident", (80, 24)),
        ("down", (200, 60)),
    ],
)
def test_replay_snapshot(snap_compare, tmp_path: Path, kind: str, size: tuple[int, int]) -> None:
    app = replay_app(tmp_path / f"{kind}.db", kind)
    assert snap_compare(app, terminal_size=size)


def test_incident_postgres_tab_at_80x24(snap_compare, tmp_path: Path) -> None:
    app = replay_app(tmp_path / "incident.db", "incident")

    async def show_postgres(pilot) -> None:
        await pilot.pause()  # let the tabs mount before switching
        app.query_one("#tabs").active = "tab-postgres"
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=show_postgres)
