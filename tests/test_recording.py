"""Record, replay and judge a past moment: with real targets where they exist."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from collectors.model import Status
from dashboard.app import UltrawatchApp
from dashboard.recording import Recording, Replayer, parse_at, report_at
from tests import tui_data as td
from tests.conftest import run_cli


def test_record_cli_writes_rounds_from_real_targets(
    tmp_path: Path, redis_url: str, pg_dsn: str, write_config
) -> None:
    # The embedded server trusts local connections, so a password in the DSN is
    # accepted and ignored: it must still never reach the recording.
    dsn = pg_dsn.replace("postgres@", "postgres:Rec0rdedPassw0rd@", 1)
    assert dsn != pg_dsn
    cfg = write_config(
        f'[dashboard]\ninterval = "100ms"\n[postgres]\ndsn = "{dsn}"\n'
        f'[redis]\nurl = "{redis_url}"\n'
    )
    out = tmp_path / "rec.db"
    r = run_cli("record", str(out), "--config", str(cfg), "--rounds", "3")
    assert r.returncode == 0, r.stderr
    assert "recorded 3 rounds" in r.stderr
    assert r.stdout == ""  # no UI
    with Recording(out, keep=None) as rec:
        assert len(rec) == 3
        snap = rec.load(rec.index()[-1][0])
        assert {x.component for x in snap.readings} == {"postgres", "redis"}
        pg = next(x for x in snap.readings if x.component == "postgres")
        assert pg.ok and pg.data["max_connections"] == 60
        # judged later with the same thresholds, without the password
        assert rec.config().postgres.dsn == dsn.replace("Rec0rdedPassw0rd", "***")
    assert b"Rec0rdedPassw0rd" not in out.read_bytes()
    # A past moment, judged like `check`: JSON on stdout and the Nagios exit code.
    r = run_cli(
        "check", "--config", str(cfg), "--replay", str(out), "--at", "0", "--format", "json"
    )
    doc = json.loads(r.stdout)
    assert doc["started_at"].startswith("20")
    assert any(c["id"] == "postgres.reachable" and c["status"] == "ok" for c in doc["checks"])
    assert r.returncode == Status(doc["status"]).exit_code


def test_retention_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "keep.db"
    with Recording(path, keep=10) as rec:
        for n in range(30):  # 2 s apart: 60 s of rounds, 10 s kept
            rec.append(td.snapshot(n))
        kept = rec.index()
    assert 5 <= len(kept) <= 6
    assert kept[-1][1] - kept[0][1] <= 10
    size_small = path.stat().st_size
    with Recording(path, keep=10) as rec:
        for n in range(30, 300):
            rec.append(td.snapshot(n))
        assert len(rec) <= 6
    db = sqlite3.connect(path)
    assert db.execute("select count(*) from rounds").fetchone()[0] <= 6
    db.close()
    assert path.stat().st_size < size_small * 20


def test_report_at_iso_time_offset_and_last(tmp_path: Path) -> None:
    path = td.record(tmp_path / "r.db", "ok", 3)
    with Recording(path, keep=None) as rec:
        index = rec.index()
    times = [t for _, t in index]
    assert parse_at(None, times) == 2
    assert parse_at("0", times) == 0
    assert parse_at("2.5", times) == 1
    assert parse_at("2026-11-25T10:00:04Z", times) == 2
    assert parse_at("2026-11-25T09:00:00Z", times) == 0
    with pytest.raises(ValueError, match="ISO time"):
        parse_at("yesterday", times)
    report = report_at(td.config(), str(path), "2")
    assert report.snapshot.started_at == td.T0 + 2
    down = td.record(tmp_path / "d.db", "down", 2)
    assert report_at(td.config(), str(down), None).status is Status.CRITICAL


def test_replay_steps_seeks_and_plays(tmp_path: Path) -> None:
    path = tmp_path / "mixed.db"
    with Recording(path, keep=None) as rec:
        rec.set_config(td.config())
        for n in range(3):
            rec.append(td.snapshot(n, kind="ok"))
        for n in range(3, 6):
            rec.append(td.snapshot(n, kind="down"))

    async def run() -> None:
        rec = Recording(path, keep=None)
        config = rec.config()
        app = UltrawatchApp(config, read_only=True, replay=Replayer(rec, config, speed=50))
        async with app.run_test(size=(200, 60)) as pilot:
            await pilot.pause()
            assert app.model.report.snapshot.round == 1
            assert app.check_action("terminate_session", ()) is False  # a recording is not live
            await pilot.press("full_stop", "full_stop", "full_stop")
            assert app.model.report.snapshot.round == 4
            assert "postgres.reachable" in app.model.alerts
            await pilot.press("comma")
            assert app.model.report.snapshot.round == 3
            assert "postgres.reachable" not in app.model.alerts
            await pilot.press("g")
            await pilot.pause()
            await pilot.press(*"2026-11-25T10:00:08Z", "enter")
            await pilot.pause()
            assert app.model.report.snapshot.round == 5
            await pilot.press("comma", "comma", "comma", "comma")
            assert app.model.report.snapshot.round == 1
            await pilot.press("p")  # play at 50x: 2 s gaps take 40 ms
            for _ in range(50):
                await pilot.pause(0.05)
                if not app.replay.playing:
                    break
            assert app.model.report.snapshot.round == 6
            assert "REPLAY 6/6" in str(app.query_one("#header").render())

    asyncio.run(run())


def test_replay_cli_rejects_missing_and_empty_files(tmp_path: Path) -> None:
    r = run_cli("replay", str(tmp_path / "nope.db"))
    assert r.returncode == 3 and "no such recording" in r.stderr
    Recording(tmp_path / "empty.db").close()
    r = run_cli("replay", str(tmp_path / "empty.db"))
    assert r.returncode == 3 and "holds no rounds" in r.stderr
