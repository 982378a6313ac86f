"""Record, replay and judge a past moment: with real targets where they exist."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from textual.widgets import Input

from collectors.config import parse_config
from collectors.core.model import Status
from dashboard import recording
from dashboard.recording import Recording, parse_at, report_at
from dashboard.tui.app import UltrawatchApp
from dashboard.tui.replay import Replayer, replay_app
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
        assert pg.ok and pg.data.max_connections == 60
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


async def test_replay_steps_seeks_and_plays(tmp_path: Path) -> None:
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

    await run()


def test_replay_cli_rejects_missing_and_empty_files(tmp_path: Path) -> None:
    r = run_cli("replay", str(tmp_path / "nope.db"))
    assert r.returncode == 3 and "no such recording" in r.stderr
    Recording(tmp_path / "empty.db").close()
    r = run_cli("replay", str(tmp_path / "empty.db"))
    assert r.returncode == 3 and "holds no rounds" in r.stderr


# ------------------------------------------------ history across step/seek

# ok, a long incident, a short recovery, the incident again: alerts raise
# (raise_after = 2), clear (clear_after = 2) and raise again with new first-seen times.
PHASES = ["ok"] * 5 + ["incident"] * 35 + ["ok"] * 3 + ["incident"] * 17


def _phases(path: Path) -> Path:
    cfg = parse_config(
        td.CONFIG_TOML.replace("raise_after = 1", "raise_after = 2").replace(
            "clear_after = 1", "clear_after = 2"
        ),
        "test.toml",
    )
    with Recording(path, keep=None) as rec:
        rec.set_config(cfg)
        for n, kind in enumerate(PHASES):
            rec.append(td.snapshot(n, kind=kind))
    return path


def _seen(model) -> dict[str, tuple]:
    """What the alerts panel and sparklines show of a model."""
    return {
        "alerts": {
            k: (a.first_seen, a.last_seen, a.check.status, a.check.summary)
            for k, a in model.alerts.items()
        },
        "pg_used": {k: list(v) for k, v in model.pg_used.items()},
        "round": model.report.snapshot.round,
    }


def _forward(path: Path) -> list[dict[str, tuple]]:
    with Recording(path, keep=None) as rec:
        rp = Replayer(rec, rec.config())
        seen = [_seen(rp.rebuild())]
        while rp.advance() is not None:
            seen.append(_seen(rp.rebuild()))
    return seen


@pytest.mark.parametrize("budget", [recording.MARK_BUDGET, 1])
def test_seek_and_step_back_judge_like_forward_play(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    # budget 1: the marks thin out to one; the answers must not change, only the cost.
    monkeypatch.setattr(recording, "MARK_EVERY", 4)
    monkeypatch.setattr(recording, "MARK_BUDGET", budget)
    path = _phases(tmp_path / "phases.db")
    forward = _forward(path)
    assert len(forward) == len(PHASES)
    t = lambda n: td.T0 + 2 * n  # noqa: E731
    # the long incident raised at round 6 (index), still open at 39 (30+ rounds on)
    assert {a[0] for a in forward[39]["alerts"].values()} == {t(6)}
    assert forward[42]["alerts"] == {}  # cleared
    assert {a[0] for a in forward[50]["alerts"].values()} == {t(44)}  # raised again
    with Recording(path, keep=None) as rec:
        rp = Replayer(rec, rec.config(), start=len(PHASES) - 1)
        rp.rebuild()
        for p in reversed(range(len(PHASES))):  # step back, one round at a time
            assert rp.step(-1) or p == 0
            if p:
                assert _seen(rp.rebuild()) == forward[p - 1], p - 1
        for p in (39, 7, 58, 41, 44, 0, 39):  # seeks, forth and back
            rp.seek(str(2.0 * p))
            assert rp.pos == p
            assert _seen(rp.rebuild()) == forward[p], p
            assert rp.advance() is not None or p == len(PHASES) - 1
            assert _seen(rp.rebuild()) == forward[min(p + 1, len(PHASES) - 1)]
        if budget == 1:
            assert len(rp._marks) <= 1 and rp._every > 4  # memory stays bounded
        else:
            assert len(rp._marks) == (len(PHASES) - 1) // 4


async def test_tui_step_back_and_seek_show_first_seen_of_forward_play(tmp_path: Path) -> None:
    from tests.test_tui import screen_text

    path = _phases(tmp_path / "phases.db")

    def no_ttl_row(app: UltrawatchApp) -> str:
        return next(line for line in screen_text(app).splitlines() if "redis.locks.no_ttl" in line)

    async def run() -> None:
        rec = Recording(path, keep=None)
        app = replay_app(Replayer(rec, rec.config()))
        async with app.run_test(size=(200, 60)) as pilot:
            await pilot.pause()
            for _ in range(38):  # the key's own path is in test_replay_steps_seeks_and_plays
                app.action_step()
            await pilot.press("full_stop")
            await pilot.pause()
            assert app.model.report.snapshot.round == 40
            row = no_ttl_row(app)
            assert "10:00:12Z" in row and "10:01:18Z" in row  # first seen, last seen
            await pilot.press("comma")  # one step back: 30+ rounds after it was raised
            await pilot.pause()
            row = no_ttl_row(app)
            assert "10:00:12Z" in row and "10:01:16Z" in row
            await pilot.press("g")
            await pilot.pause()
            app.screen.query_one(Input).value = "2026-11-25T10:01:50Z"
            await pilot.press("enter")  # round 56, 2nd incident
            await pilot.pause()
            assert app.model.report.snapshot.round == 56
            assert "10:01:28Z" in no_ttl_row(app)
            await pilot.press("g")
            await pilot.pause()
            app.screen.query_one(Input).value = "2026-11-25T10:01:00Z"
            await pilot.press("enter")  # back into the 1st
            await pilot.pause()
            assert app.model.report.snapshot.round == 31
            assert "10:00:12Z" in no_ttl_row(app)
        rec.close()

    await run()


# ------------------------------------------- check --replay FILE --at TIME


def _no_ttl(r) -> dict:
    doc = json.loads(r.stdout)
    assert r.returncode == Status(doc["status"]).exit_code
    return next(c for c in doc["checks"] if c["id"] == "redis.locks.no_ttl")


def test_check_replay_judges_with_the_recordings_config_and_history(
    tmp_path: Path, redis_url: str, write_config
) -> None:
    import redis

    prefix = f"rec8:{tmp_path.name}:"
    cfg = write_config(
        '[dashboard]\ninterval = "100ms"\nraise_after = 2\nclear_after = 2\n'
        f'[redis]\nurl = "{redis_url}"\nlock_patterns = ["{prefix}*"]\n'
    )
    out = tmp_path / "rec.db"
    r = run_cli("record", str(out), "--config", str(cfg), "--rounds", "2")
    assert r.returncode == 0, r.stderr
    client = redis.Redis.from_url(redis_url)
    client.set(prefix + "stuck", "worker-1")  # no TTL from round 3 on
    try:
        r = run_cli("record", str(out), "--config", str(cfg), "--rounds", "3")
        assert r.returncode == 0, r.stderr
    finally:
        client.delete(prefix + "stuck")
        client.close()
    with Recording(out, keep=None) as rec:
        times = [t for _, t in rec.index()]
    assert len(times) == 5

    def at(i: int) -> str:  # between round i and the next: no float edge
        return str((times[i] + times[i + 1]) / 2 - times[0])

    # No configuration anywhere but in the recording (and one that would judge
    # differently in the environment): the recording's own thresholds judge.
    other = write_config(
        f'[dashboard]\nraise_after = 1\n[redis]\nurl = "{redis_url}"\n'
        f'lock_patterns = ["{prefix}*"]\n',
        name="other.toml",
    )
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    for extra in ({"ULTRAWATCH_CONFIG": ""}, {"ULTRAWATCH_CONFIG": str(other)}):
        r = run_cli("check", "--replay", str(out), "--at", at(2), env={**env, **extra})
        assert r.stderr == ""
        # round 3 is the lock's first: raise_after = 2 holds it, as the TUI did then
        check = _no_ttl(r)
        assert check["status"] == "ok" and "raising to critical: 1/2" in check["summary"]
    r = run_cli("check", "--replay", str(out), "--at", at(3), env=env)
    assert _no_ttl(r)["status"] == "critical"  # the second round raises it
    r = run_cli("check", "--replay", str(out), env=env, input="")  # no --at: the last
    assert _no_ttl(r)["status"] == "critical"
    # An explicit --config judges with its thresholds.
    r = run_cli("check", "--config", str(other), "--replay", str(out), "--at", at(2))
    assert _no_ttl(r)["status"] == "critical"
    # --only judges those collectors' readings of the moment, nothing else.
    r = run_cli("check", "--replay", str(out), "--at", at(3), "--only", "postgres", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["checks"] == []


def test_check_replay_options_that_cannot_apply_are_usage_errors(
    tmp_path: Path, write_config
) -> None:
    path = td.record(tmp_path / "r.db", "ok", 3)
    cfg = write_config('[dashboard]\ninterval = "1s"\n')
    r = run_cli("check", "--config", str(cfg), "--at", "5")
    assert r.returncode == 3 and r.stdout == ""  # no live check ran instead
    assert "--at" in r.stderr and "needs --replay FILE" in r.stderr
    r = run_cli("check", "--replay", str(path), "--watch", "1")
    assert r.returncode == 3 and r.stdout == "" and "--watch" in r.stderr
    r = run_cli("check", "--replay", str(path), "--at", "yesterday")
    assert r.returncode == 3 and f"{path}: --at: expected an ISO time" in r.stderr


# ------------------------------------------------------- damaged recordings


def test_truncated_recording_names_the_damage_and_keeps_what_is_before(
    tmp_path: Path,
) -> None:
    whole = td.record(tmp_path / "whole.db", "incident", 200)
    cut = tmp_path / "cut.db"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # a copy cut short, mid-page
    with Recording(cut, keep=None) as rec:
        good = len(rec.index())
    assert 0 < good < 200
    where = f"{cut}: damaged after round {good} ("
    before, after = str(2.0 * (good - 1)), str(2.0 * (good + 5))
    r = run_cli("check", "--replay", str(cut), "--at", before, "--format", "json")
    assert where in r.stderr and "rounds before it are usable" in r.stderr
    same = run_cli("check", "--replay", str(whole), "--at", before, "--format", "json")
    assert r.stdout == same.stdout and r.returncode == same.returncode == 2
    assert json.loads(r.stdout)["started_at"] == "2026-11-25T" + parse_clock(good - 1)
    # past the damage: what was then is unknown, so no answer rather than a wrong one
    r = run_cli("check", "--replay", str(cut), "--at", after)
    assert r.returncode == 3 and r.stdout == ""
    assert f"{cut}: --at: {after} is past the damage: damaged after round {good}" in r.stderr
    # no --at: the last round that can be read, said so
    r = run_cli("check", "--replay", str(cut), "--format", "json")
    assert r.returncode == 2 and where in r.stderr
    assert json.loads(r.stdout)["started_at"] == "2026-11-25T" + parse_clock(good - 1)
    # a damaged file is not recorded to (that would hide the damage)
    r = run_cli("record", str(cut), "--rounds", "1", "--config", str(td_config(tmp_path)))
    assert r.returncode == 3 and f"{cut}: damaged" in r.stderr and "new file" in r.stderr
    # cut before its first round: nothing to replay, and it says why
    cut.write_bytes(data[:4096])
    for args in (("replay", str(cut)), ("check", "--replay", str(cut))):
        r = run_cli(*args)
        assert r.returncode == 3 and str(cut) in r.stderr and "Traceback" not in r.stderr
    cut.write_text("not a recording\n")
    r = run_cli("check", "--replay", str(cut))
    assert r.returncode == 3 and f"{cut}: not a readable recording" in r.stderr


def parse_clock(n: int) -> str:
    """The ISO clock (to ms) of tui_data round n."""
    s = 2 * n
    return f"10:{s // 60:02d}:{s % 60:02d}.000Z"


def td_config(tmp_path: Path) -> Path:
    path = tmp_path / "td.toml"
    path.write_text(td.CONFIG_TOML)
    return path


async def test_damaged_round_ends_the_replay_there_and_says_so(tmp_path: Path) -> None:
    path = td.record(tmp_path / "rot.db", "incident", 12)
    db = sqlite3.connect(path)
    with db:  # bytes rotted inside round 8's row: the file's structure is intact
        db.execute("update rounds set data = x'789c0badbeef' where round = 8")
    db.close()

    async def run() -> None:
        rec = Recording(path, keep=None)
        app = replay_app(Replayer(rec, rec.config()))
        async with app.run_test(size=(200, 60), notifications=True) as pilot:
            await pilot.pause()
            for _ in range(11):
                await pilot.press("full_stop")
            await pilot.pause()
            assert app.model.report.snapshot.round == 7  # the last readable round
            assert "REPLAY 7/7" in str(app.query_one("#header").render())
            (told,) = [n.message for n in app._notifications]  # once, naming where
            assert told.startswith(f"{path}: damaged after round 7 (2026-11-25T10:00:12Z): ")
            assert "round (row 8) is damaged" in told and "7 rounds before it are usable" in told
            await pilot.press("comma", "comma")
            assert app.model.report.snapshot.round == 5  # what is before stays usable
        rec.close()

    await run()


def test_recorder_killed_mid_write_leaves_a_readable_file(
    tmp_path: Path, redis_url: str, write_config
) -> None:
    import signal
    import subprocess

    from tests.conftest import ULTRAWATCH

    cfg = write_config(f'[dashboard]\ninterval = "100ms"\n[redis]\nurl = "{redis_url}"\n')
    out = tmp_path / "killed.db"
    proc = subprocess.Popen(
        [ULTRAWATCH, "record", str(out), "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        n = 0
        for _ in range(600):  # until it has written a few rounds (it writes ~10/s)
            if out.exists():
                try:
                    with Recording(out, keep=None) as rec:
                        n = len(rec.index())
                except Exception:
                    n = 0  # created but not yet initialised
            if n >= 5:
                break
            time.sleep(0.05)
        assert n >= 5, "the recorder wrote nothing"
    finally:
        proc.send_signal(signal.SIGKILL)  # no clean shutdown: whatever it was doing
        proc.wait()
    with Recording(out, keep=None) as rec:
        rounds = len(rec.index())
        assert rec.damage is None and rounds >= n
        rec.load(rec.index()[-1][0])
    r = run_cli("check", "--replay", str(out), "--format", "json")
    assert r.stderr == "" and json.loads(r.stdout)["checks"]


def test_recording_loads_neither_the_tui_nor_textual() -> None:
    """`record` and `check --replay` need no UI: the TUI's replay is dashboard/tui/replay.py."""
    import subprocess
    import sys

    probe = (
        "import sys, dashboard.recording\n"
        "print(sorted({n for n in sys.modules if n.split('.')[0] in ('textual', 'rich')"
        " or n.startswith('dashboard.tui')}))"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
