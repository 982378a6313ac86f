"""Write the README's screenshots: `uv run python screenshots/make.py`.

Each is the TUI replaying a recording built from the collectors' data
contracts (tests/tui_data.py) at fixed times, so the SVGs are reproducible.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.core.files import atomic_write  # noqa: E402
from dashboard.recording import Recording  # noqa: E402
from dashboard.tui.app import UltrawatchApp  # noqa: E402
from dashboard.tui.replay import Replayer  # noqa: E402
from tests import tui_data as td  # noqa: E402

SHOTS = [
    # (file, scenario, size, tab shown when narrow)
    ("incident-200x60.svg", "incident", (200, 60), None),
    ("incident-80x24.svg", "incident", (80, 24), None),
    ("incident-80x24-postgres.svg", "incident", (80, 24), "tab-postgres"),
    ("all-ok-200x60.svg", "ok", (200, 60), None),
    ("target-down-200x60.svg", "down", (200, 60), None),
]


async def shoot(out: Path, kind: str, size: tuple[int, int], tab: str | None, tmp: Path) -> None:
    path = td.record(tmp / f"{out.stem}.db", kind, 4)
    rec = Recording(path, keep=None)
    config = rec.config()
    assert config is not None
    app = UltrawatchApp(config, read_only=True, replay=Replayer(rec, config, start=3))
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        if tab:
            app.query_one("#tabs").active = tab
            await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        atomic_write(out, app.export_screenshot(title=f"ultrawatch: {kind}"), mode=0o644)
    rec.close()


async def main() -> None:
    here = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as tmp:
        for name, kind, size, tab in SHOTS:
            await shoot(here / name, kind, size, tab, Path(tmp))
            print(f"wrote screenshots/{name}")


if __name__ == "__main__":
    asyncio.run(main())
