"""Issue 17 (C): refused actions audit their target, one "cancelled", private
recordings and handoff files, milliseconds in <KEY>_ROTATED_AT, invisible format
characters escaped, and `?password=` honoured (and masked) in Redis URLs."""

from __future__ import annotations

import json
import os
import pty
import re
import secrets
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import redis

from collectors.core.redact import clean, mask_url, printable
from collectors.secrets.collector import parse_time
from dashboard.demo.embedded import EmbeddedRedis
from tests import tui_data as td
from tests.conftest import ULTRAWATCH, run_cli
from tests.helpers import http_server, respond


def _audit(path: Path) -> list[dict]:
    return [json.loads(x) for x in (path.parent / "audit.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------- actions


def test_refused_cancel_audits_its_target(pg_dsn: str, write_config) -> None:
    path = write_config(f'[postgres]\ndsn = "{pg_dsn}"\n')
    proc = run_cli("cancel", "999999", "--yes", "--config", str(path))
    assert proc.returncode == 1 and "no backend with pid 999999" in proc.stderr
    entry = _audit(path)[-1]
    assert (entry["action"], entry["outcome"], entry["target"]) == (
        "cancel",
        "refused",
        "pid 999999",
    )
    assert entry["params"]["pid"] == 999999


def test_refused_drain_audits_its_target(write_config) -> None:
    path = write_config('[[services]]\nname = "orders"\nurl = "http://127.0.0.1:9"\n')
    proc = run_cli("drain", "nope", "--yes", "--config", str(path))
    assert proc.returncode == 1
    assert _audit(path)[-1]["target"] == "nope"


def test_cancelled_at_a_terminal_is_said_once(redis_url: str, write_config) -> None:
    r = redis.Redis.from_url(redis_url)
    r.set("lock:tty:1", "stuck")
    path = write_config(f'[redis]\nurl = "{redis_url}"\n')
    main, side = pty.openpty()
    try:
        proc = subprocess.Popen(
            [ULTRAWATCH, "release-lock", "lock:tty:1", "--config", str(path)],
            stdin=side,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(main, b"n\n")
        _out, err = proc.communicate(timeout=60)
    finally:
        os.close(main)
        os.close(side)
    assert proc.returncode == 1, err
    assert "cancelled: nothing was done" in err and "cancelled: cancelled" not in err
    assert r.get("lock:tty:1") == b"stuck"
    assert _audit(path)[-1]["outcome"] == "cancelled"
    r.delete("lock:tty:1")
    r.close()


# ------------------------------------------------------------------- files


def test_recording_is_private(redis_url: str, write_config, tmp_path: Path) -> None:
    path = write_config(f'[redis]\nurl = "{redis_url}"\n')
    rec = tmp_path / "rounds.sqlite"
    old = os.umask(0o022)
    try:
        proc = run_cli("record", str(rec), "--rounds", "1", "--config", str(path))
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr
    made = [p for p in tmp_path.iterdir() if p.name.startswith("rounds.sqlite")]
    assert rec in made
    for p in made:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


async def test_handoff_file_is_private(tmp_path: Path) -> None:
    from dashboard.tui.app import UltrawatchApp

    handoff = tmp_path / "state" / "handoff.txt"
    cfg = td.config()
    cfg = msgspec.structs.replace(
        cfg, dashboard=msgspec.structs.replace(cfg.dashboard, handoff_file=str(handoff))
    )
    app = UltrawatchApp(cfg, poll=False)
    old = os.umask(0o022)
    try:
        async with app.run_test() as pilot:
            await pilot.press("w")
            await pilot.pause()
    finally:
        os.umask(old)
    assert handoff.read_text().lower().startswith("ultrawatch")
    assert stat.S_IMODE(handoff.stat().st_mode) == 0o600


def test_rotated_at_in_milliseconds_and_whole_seconds_still_read(
    tmp_path: Path, write_config
) -> None:
    env = tmp_path / ".env"
    env.write_text(f"JWT_SECRET={secrets.token_urlsafe(48)}\n")
    path = write_config(
        f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\nkeys = ["JWT_SECRET"]\n'
    )
    proc = run_cli("rotate-secret", "JWT_SECRET", "--yes", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    stamp = re.search(r"^JWT_SECRET_ROTATED_AT=(.*)$", env.read_text(), re.M)
    assert stamp and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp.group(1))
    assert parse_time(stamp.group(1)) % 1 != 0 or stamp.group(1).endswith(".000Z")
    assert parse_time("2026-11-24T10:00:00Z") == parse_time("2026-11-24T10:00:00.000Z")
    assert parse_time("2026-11-24T10:00:00.250Z") == parse_time("2026-11-24T10:00:00Z") + 0.25


# ------------------------------------------------------------ invisible text


@pytest.mark.parametrize(
    "char", ["\u202e", "\u202d", "\u2066", "\u2069", "\u200b", "\u200d", "\u2060", "\ufeff"]
)
def test_format_characters_are_escaped(char: str) -> None:
    shown = printable(f"order{char}-service")
    assert shown == f"order\\u{ord(char):04x}-service"
    assert shown.isprintable()
    assert clean({"k": [f"a{char}"]}) == {"k": [f"a\\u{ord(char):04x}"]}


def test_text_that_is_fine_stays_as_it_is() -> None:
    for text in ("plain", "déjà vu 日本 👍", "a\u00a0b"):
        assert printable(text) == text
    assert printable("a\x1b[31mb\u2028c") == "a\\x1b[31mb c"
    assert printable("tag\U000e0041") == "tag\\U000e0041"


def test_right_to_left_override_from_a_service_reaches_no_output(write_config) -> None:
    def handle(req) -> None:
        respond(req, 503, '{"status": "fail", "output": "db \u202edown\u202c ok"}')

    with http_server(handle) as url:
        path = write_config(f'[[services]]\nname = "orders"\nurl = "{url}"\n')
        proc = run_cli("check", "--only", "services", "--format", "json", "--config", str(path))
    checks = json.loads(proc.stdout)["checks"]
    texts = json.dumps(checks, ensure_ascii=False)
    assert "\u202e" not in texts and "\u202c" not in texts
    health = next(c for c in checks if c["id"] == "service.orders.health")
    assert "\\u202e" in health["summary"] or "\\u202e" in texts


# ------------------------------------------------------------ ?password=


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    s = EmbeddedRedis(tmp_path_factory.mktemp("redis-pw")).start()
    with redis.Redis.from_url(s.url) as c:
        c.config_set("requirepass", "s3cret-pw")
    yield s
    s.stop()


def _url(server: EmbeddedRedis, password: str) -> str:
    return f"redis://127.0.0.1:{server.port}/0?password={password}"


def test_query_password_is_honoured_and_masked(
    locked_redis: EmbeddedRedis, write_config, tmp_path: Path
) -> None:
    good = write_config(f'[redis]\nurl = "{_url(locked_redis, "s3cret-pw")}"\n', name="good.toml")
    proc = run_cli("check", "--only", "redis", "--format", "json", "--config", str(good))
    reach = next(c for c in json.loads(proc.stdout)["checks"] if c["id"] == "redis.reachable")
    assert reach["status"] == "ok", reach
    # A recording keeps the config without it.
    rec = tmp_path / "r.sqlite"
    proc = run_cli("record", str(rec), "--rounds", "1", "--config", str(good))
    assert proc.returncode == 0, proc.stderr
    assert b"s3cret-pw" not in rec.read_bytes()
    wal = rec.with_name(rec.name + "-wal")
    assert not wal.exists() or b"s3cret-pw" not in wal.read_bytes()
    # A wrong one: said as a wrong password, never shown.
    bad = write_config(f'[redis]\nurl = "{_url(locked_redis, "wrong-pw-x")}"\n', name="bad.toml")
    proc = run_cli("check", "--only", "redis", "--format", "json", "--config", str(bad))
    reach = next(c for c in json.loads(proc.stdout)["checks"] if c["id"] == "redis.reachable")
    assert reach["status"] == "critical"
    assert "rejected the password" in reach["summary"], reach["summary"]
    assert "wrong-pw-x" not in proc.stdout + proc.stderr


def test_release_lock_with_query_password(locked_redis: EmbeddedRedis, write_config) -> None:
    with redis.Redis.from_url(locked_redis.url, password="s3cret-pw") as c:
        c.set("lock:pw:1", "stuck")
        path = write_config(f'[redis]\nurl = "{_url(locked_redis, "s3cret-pw")}"\n')
        proc = run_cli("release-lock", "lock:pw:1", "--yes", "--config", str(path))
        assert proc.returncode == 0, proc.stderr
        assert c.exists("lock:pw:1") == 0
        assert "s3cret-pw" not in proc.stdout + proc.stderr


def test_mask_url_masks_a_query_password() -> None:
    assert mask_url("redis://h:6379/0?password=abc&db=1") == "redis://h:6379/0?password=***&db=1"
    assert mask_url("redis://u:pw@h/0?password=x") == "redis://u:***@h/0?password=***"
