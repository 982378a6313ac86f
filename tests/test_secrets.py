"""The secrets collector and its checks against real store files and real HTTP services."""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path

import pytest

from collectors.config import Config, parse_config
from collectors.core.http import HttpClient
from collectors.core.model import CheckResult, Reading, Status
from collectors.poller import Collector
from collectors.registry import secrets_collector
from collectors.rules import judge
from collectors.secrets.store import fingerprint
from tests.conftest import run_cli
from tests.helpers import http_server, respond
from tests.jwt_service import JwtService, assert_no_secret, running


def strong() -> str:
    return secrets.token_urlsafe(64)


def make_config(store: Path, extra: str = "", services: str = "") -> Config:
    return parse_config(
        f"""
{services}
[secrets]
store = {{ kind = "dotenv", path = "{store}" }}
{extra}
"""
    )


def service_block(name: str, url: str) -> str:
    return f"""
[[services]]
name = "{name}"
url = "{url}"
detail_paths = ["/health/security"]
"""


async def _collect(config: Config, collector: Collector | None = None) -> Reading:
    http = HttpClient(config.http)
    try:
        c = collector or secrets_collector(config, http)
        c.http = http  # type: ignore[attr-defined]
        (reading,) = await c.collect()
        return reading
    finally:
        await http.aclose()


async def audit(
    config: Config, collector: Collector | None = None
) -> tuple[Reading, dict[str, CheckResult]]:
    reading = await _collect(config, collector)
    checks = {c.id: c for c in judge(reading, config)}
    return reading, checks


def everything(reading: Reading, checks: dict[str, CheckResult]) -> str:
    return json.dumps(reading.to_dict()) + json.dumps([c.to_dict() for c in checks.values()])


async def test_default_secret_and_shared_refresh_are_critical(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("JWT_SECRET=your-secret-key\nJWT_REFRESH_SECRET=your-secret-key\n")
    config = make_config(env)
    reading, checks = await audit(config)
    strength = checks["secrets.JWT_SECRET.strength"]
    assert strength.status is Status.CRITICAL
    assert "known default" in strength.summary
    assert fingerprint("your-secret-key") in strength.summary
    assert reading.data.keys["JWT_SECRET"].strength == "known-weak"
    assert reading.data.keys["JWT_SECRET"].length == 15
    assert checks["secrets.distinct"].status is Status.CRITICAL
    assert_no_secret(["your-secret-key"], everything(reading, checks))


async def test_short_low_entropy_and_strong_secrets(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    short = "k" + secrets.token_hex(10)  # 21 bytes: below HS256's 32
    lowent = "ab" * 24  # long enough, but two characters
    env.write_text(f"JWT_SECRET={short}\nJWT_REFRESH_SECRET={lowent}\n")
    reading, checks = await audit(make_config(env))
    s = checks["secrets.JWT_SECRET.strength"]
    assert s.status is Status.CRITICAL and "HS256 needs at least 32" in s.summary
    assert s.value == 21 and s.crit == 32
    r = checks["secrets.JWT_REFRESH_SECRET.strength"]
    assert r.status is Status.WARNING and "entropy" in r.summary
    assert checks["secrets.distinct"].status is Status.OK
    assert_no_secret([short, lowent], everything(reading, checks))

    good_a, good_b = strong(), strong()
    env.write_text(f"JWT_SECRET={good_a}\nJWT_REFRESH_SECRET={good_b}\n")
    reading, checks = await audit(make_config(env, 'algorithm = "HS512"'))
    assert checks["secrets.JWT_SECRET.strength"].status is Status.OK
    assert checks["secrets.JWT_REFRESH_SECRET.strength"].status is Status.OK
    assert checks["secrets.age"].status is Status.OK
    assert_no_secret([good_a, good_b], everything(reading, checks))

    # 48 random bytes pass HS256 and HS384 but not HS512's 64
    mid = secrets.token_hex(24)
    env.write_text(f"JWT_SECRET={mid}\nJWT_REFRESH_SECRET={good_b}\n")
    _, checks = await audit(make_config(env, 'algorithm = "HS512"'))
    assert checks["secrets.JWT_SECRET.strength"].status is Status.CRITICAL


async def test_wordlist_secret_and_missing_key(tmp_path: Path) -> None:
    words = tmp_path / "words.txt"
    listed = "ultramarket-prod-jwt-2019-q3-x1"  # long, not built in, but leaked
    words.write_text("\n".join(["foo", listed, "bar"]))
    env = tmp_path / ".env"
    env.write_text(f"JWT_SECRET={listed}\n")
    reading, checks = await audit(make_config(env, f'wordlist = "{words}"'))
    s = checks["secrets.JWT_SECRET.strength"]
    assert s.status is Status.CRITICAL and "wordlist" in s.summary
    missing = checks["secrets.JWT_REFRESH_SECRET.strength"]
    assert missing.status is Status.CRITICAL and "missing" in missing.summary
    assert checks["secrets.distinct"].status is Status.UNKNOWN
    assert reading.data.wordlist.entries == 3
    assert_no_secret([listed], everything(reading, checks))


async def test_age_from_rotated_at_else_mtime(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    a, b = strong(), strong()
    env.write_text(
        f"JWT_SECRET={a}\nJWT_SECRET_ROTATED_AT=2020-01-01T00:00:00Z\nJWT_REFRESH_SECRET={b}\n"
    )
    _, checks = await audit(make_config(env))
    age = checks["secrets.age"]
    assert age.status is Status.WARNING and "JWT_SECRET rotated" in age.summary
    assert age.value > 5 * 365 * 86400

    env.write_text(f"JWT_SECRET={a}\nJWT_REFRESH_SECRET={b}\n")
    old = time.time() - 100 * 86400
    os.utime(env, (old, old))
    _, checks = await audit(make_config(env))
    assert checks["secrets.age"].status is Status.WARNING
    assert "last modified" in checks["secrets.age"].summary
    _, checks = await audit(make_config(env, 'max_age = "200d"'))
    assert checks["secrets.age"].status is Status.OK


async def test_unreadable_store_is_unknown(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text('JWT_SECRET="unterminated\n')
    _, checks = await audit(make_config(env))
    assert checks["secrets.store"].status is Status.UNKNOWN
    assert "line 1" in checks["secrets.store"].summary


async def test_service_fingerprints_against_the_store(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    old_a, a, b = strong(), strong(), strong()
    env.write_text(f"JWT_SECRET={old_a}\nJWT_REFRESH_SECRET={b}\n")
    lagging = JwtService(env)  # loads the old key now
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    env.write_text(
        f"JWT_SECRET={a}\nJWT_SECRET_PREVIOUS={old_a}\nJWT_SECRET_ROTATED_AT={stamp}\n"
        f"JWT_REFRESH_SECRET={b}\n"
    )
    current = JwtService(env)
    with running(current) as url_ok, running(lagging) as url_lag:
        services = (
            service_block("order-service", url_ok)
            + service_block("user-service", url_lag)
            + service_block("gone-service", "http://127.0.0.1:9")
        )
        config = make_config(env, 'grace_period = "10m"', services)
        reading, checks = await audit(config)
        ok = checks["service.order-service.secret_fingerprint"]
        assert ok.status is Status.OK and ok.component == "services"
        assert ok.target == "order-service"
        lag = checks["service.user-service.secret_fingerprint"]
        assert lag.status is Status.WARNING and "previous key" in lag.summary
        assert checks["service.gone-service.secret_fingerprint"].status is Status.UNKNOWN
        assert reading.data.rotation.in_progress is True
        assert reading.data.services["user-service"].matches is False
        assert reading.data.rotation.can_finish is False

        # once the grace period is over, a service on the old key is critical
        config = make_config(env, 'grace_period = "1s"', services)
        time.sleep(1.1)
        reading, checks = await audit(config)
        lag = checks["service.user-service.secret_fingerprint"]
        assert lag.status is Status.CRITICAL and "after the grace period" in lag.summary
    assert_no_secret([old_a, a, b], everything(reading, checks))


def probe_config(env: Path, url: str, path: str = "/api/admin/me") -> Config:
    return make_config(
        env,
        f'probe = {{ service = "user-service", path = "{path}" }}\nprobe_every = "5m"',
        service_block("user-service", url),
    )


async def test_forged_token_probe_catches_a_vulnerable_service(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    a, b = strong(), strong()
    env.write_text(f"JWT_SECRET={a}\nJWT_REFRESH_SECRET={b}\n")
    bad = JwtService(env, vulnerable=True)
    with running(bad) as url:
        config = probe_config(env, url)
        http = HttpClient(config.http)
        collector = secrets_collector(config, http)
        reading, checks = await audit(config, collector)
        forged = checks["secrets.forged_token"]
        assert forged.status is Status.CRITICAL
        assert "user-service accepted forged admin tokens" in forged.summary
        assert "alg none" in forged.summary
        assert fingerprint("your-secret-key") in forged.summary
        probe_requests = [r for r in bad.requests if r[1] == "/api/admin/me"]
        assert 2 <= len(probe_requests) <= 13  # a dozen, never a brute force
        # cached: the next round does not probe again before probe_every
        reading2, checks2 = await audit(config, collector)
        assert len([r for r in bad.requests if r[1] == "/api/admin/me"]) == len(probe_requests)
        assert checks2["secrets.forged_token"].status is Status.CRITICAL
        # ...but a key change (a rotation) makes the cached answer stale: probed again
        c = strong()
        env.write_text(f"JWT_SECRET={c}\nJWT_REFRESH_SECRET={b}\nJWT_SECRET_PREVIOUS={a}\n")
        reading3, _ = await audit(config, collector)
        assert len([r for r in bad.requests if r[1] == "/api/admin/me"]) > len(probe_requests)
    assert_no_secret(
        [a, b, c],
        everything(reading, checks),
        everything(reading2, checks2),
        everything(reading3, {}),
    )


async def test_forged_token_probe_passes_a_correct_service(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    a, b = strong(), strong()
    env.write_text(f"JWT_SECRET={a}\nJWT_REFRESH_SECRET={b}\n")
    good = JwtService(env)
    with running(good) as url:
        reading, checks = await audit(probe_config(env, url))
        forged = checks["secrets.forged_token"]
        assert forged.status is Status.OK, forged.summary
        assert "rejected all 12 forged tokens" in forged.summary
        # a path that answers without any token cannot prove anything
        _, checks = await audit(probe_config(env, url, "/health"))
        assert checks["secrets.forged_token"].status is Status.WARNING
        assert "without any token" in checks["secrets.forged_token"].summary
    assert_no_secret([a, b], everything(reading, checks))


async def test_store_secret_that_is_weak_is_forgeable_but_never_shown(tmp_path: Path) -> None:
    # The incident: the services really use `your-secret-key`.
    env = tmp_path / ".env"
    b = strong()
    env.write_text(f"JWT_SECRET=your-secret-key\nJWT_REFRESH_SECRET={b}\n")
    with running(JwtService(env)) as url:
        reading, checks = await audit(probe_config(env, url))
    assert checks["secrets.forged_token"].status is Status.CRITICAL
    assert checks["secrets.JWT_SECRET.strength"].status is Status.CRITICAL
    assert_no_secret(["your-secret-key", b], everything(reading, checks))


def test_check_cli_reports_secrets_without_values(tmp_path: Path, write_config) -> None:
    env = tmp_path / ".env"
    b = strong()
    env.write_text(f"JWT_SECRET=your-256-bit-secret\nJWT_REFRESH_SECRET={b}\n")
    cfg = write_config(f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\n')
    proc = run_cli("check", "--config", str(cfg), "--only", "secrets", "--format", "json")
    assert proc.returncode == 2, proc.stderr
    doc = json.loads(proc.stdout)
    by_id = {c["id"]: c for c in doc["checks"]}
    assert by_id["secrets.JWT_SECRET.strength"]["status"] == "critical"
    text = run_cli("check", "--config", str(cfg), "--only", "secrets", "--format", "text")
    assert_no_secret(["your-256-bit-secret", b], proc.stdout, proc.stderr, text.stdout, text.stderr)


@pytest.mark.parametrize("kind", ["dir", "env"])
async def test_dir_and_env_stores(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = strong(), strong()
    if kind == "dir":
        d = tmp_path / "secrets"
        d.mkdir()
        (d / "JWT_SECRET").write_text(a + "\n")
        (d / "JWT_REFRESH_SECRET").write_text(b)
        store = f'{{ kind = "dir", path = "{d}" }}'
    else:
        monkeypatch.setenv("UW_ACCESS", a)
        monkeypatch.setenv("UW_REFRESH", b)
        store = '{ kind = "env" }'
    names = ("JWT_SECRET", "JWT_REFRESH_SECRET") if kind == "dir" else ("UW_ACCESS", "UW_REFRESH")
    keys = f'["{names[0]}", "{names[1]}"]'
    config = parse_config(f"[secrets]\nstore = {store}\nkeys = {keys}\n")
    reading, checks = await audit(config)
    strengths = [c for c in checks.values() if c.id.endswith(".strength")]
    assert len(strengths) == 2 and all(c.status is Status.OK for c in strengths)
    assert checks["secrets.distinct"].status is Status.OK
    assert reading.data.keys[strengths[0].id.split(".")[1]].fingerprint == fingerprint(a)
    assert_no_secret([a, b], everything(reading, checks))
    if kind == "dir":
        assert checks["secrets.age"].status is Status.OK
        return
    # the environment has no modification time: age unknown, not silently ok...
    age = checks["secrets.age"]
    assert age.status is Status.UNKNOWN and "set <KEY>_ROTATED_AT" in age.summary
    # ...until the rotation time is given alongside the secrets
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    monkeypatch.setenv("UW_ACCESS_ROTATED_AT", stamp)
    monkeypatch.setenv("UW_REFRESH_ROTATED_AT", stamp)
    _, checks = await audit(config)
    assert checks["secrets.age"].status is Status.OK
    assert "UW_ACCESS rotated" in checks["secrets.age"].summary


async def test_weak_previous_secret_still_accepted_is_a_warning(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    a, b = strong(), strong()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    env.write_text(
        f"JWT_SECRET={a}\nJWT_SECRET_PREVIOUS=your-secret-key\nJWT_SECRET_ROTATED_AT={stamp}\n"
        f"JWT_REFRESH_SECRET={b}\n"
    )
    reading, checks = await audit(make_config(env))
    s = checks["secrets.JWT_SECRET.strength"]
    assert s.status is Status.WARNING
    assert "still accepted" in s.summary and fingerprint("your-secret-key") in s.summary
    assert checks["secrets.JWT_REFRESH_SECRET.strength"].status is Status.OK
    assert reading.data.rotation.in_progress is True
    assert_no_secret([a, b, "your-secret-key"], everything(reading, checks))


def test_a_hostile_security_answer_is_no_reading_at_all() -> None:
    from collectors.secrets.collector import parse_security

    assert parse_security(b"[" * 60_000) is None  # deep nesting: no RecursionError escapes
    long = b'{"jwt": {"accessKeyFingerprint": "' + b"a" * 100_000 + b'"}}'
    parsed = parse_security(long)
    assert parsed.access is None
    assert "malformed fingerprint in accessKeyFingerprint (100000 characters" in parsed.error
    good = parse_security(b'{"accessKeyFingerprint": "sha256:0123456789ab"}')
    assert good.access == "sha256:0123456789ab" and good.error is None
    for bad in ("SHA256:0123456789AB", "sha256:0123456789abc", r"sha256:0123456789a\u001b"):
        doc = b'{"accessKeyFingerprint": "' + bad.encode() + b'"}'
        assert "malformed fingerprint" in parse_security(doc).error, bad


ESCAPES = "sha256:\x1b]2;PWNED\x07\x1b[2J\x1b[31mevil"


def escape_service(req) -> None:  # type: ignore[no-untyped-def]
    """A service whose /health/security answers terminal escape sequences."""
    if req.path == "/health/security":
        body = {"jwt": {"algorithm": "HS256\x1b[5m", "accessKeyFingerprint": ESCAPES}}
        respond(req, 200, json.dumps(body))
    else:
        respond(req, 401, "{}")


async def test_a_service_answering_escape_sequences_never_reaches_the_terminal(
    tmp_path: Path, write_config
) -> None:
    env = tmp_path / ".env"
    a, b = strong(), strong()
    env.write_text(f"JWT_SECRET={a}\nJWT_REFRESH_SECRET={b}\n")
    with http_server(escape_service) as url:
        config = make_config(env, "", service_block("evil", url))
        reading, checks = await audit(config)
        fp = checks["service.evil.secret_fingerprint"]
        assert fp.status is Status.UNKNOWN and "malformed fingerprint" in fp.summary
        assert "\x1b" not in everything(reading, checks)
        cfg = write_config(
            service_block("evil", url)
            + f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\nverify_timeout = "1s"\n'
        )
        dry = run_cli("rotate-secret", "--config", str(cfg), "--dry-run")
        rot = run_cli("rotate-secret", "--config", str(cfg), "--yes")
        text = run_cli("check", "--config", str(cfg), "--only", "secrets", "--format", "text")
    # a service whose key cannot be read blocks a new secret; the refusal says why
    for out in (dry, rot):
        assert out.returncode == 1, out.stdout + out.stderr
        assert "evil: cannot read which key it uses (/health/security: malformed" in out.stderr
    assert "malformed fingerprint" in text.stdout
    for out in (dry, rot, text):
        assert "\x1b" not in out.stdout + out.stderr and "PWNED" not in out.stdout + out.stderr
    assert_no_secret([a, b], dry.stdout, dry.stderr, rot.stdout, rot.stderr, text.stdout)
    assert env.read_text() == f"JWT_SECRET={a}\nJWT_REFRESH_SECRET={b}\n"


async def test_forged_token_probe_needs_a_protected_path_and_clear_rejections(
    tmp_path: Path,
) -> None:
    env = tmp_path / ".env"
    a, b = strong(), strong()
    env.write_text(f"JWT_SECRET={a}\nJWT_REFRESH_SECRET={b}\n")
    vulnerable = JwtService(env, vulnerable=True)
    with running(vulnerable) as url:
        # a typo in the path: 404 for everything, which used to count as "rejected"
        reading, checks = await audit(probe_config(env, url, "/api/admin/mee"))
        forged = checks["secrets.forged_token"]
        assert forged.status is Status.WARNING
        assert "/api/admin/mee is not a protected path (HTTP 404)" in forged.summary
        assert reading.data.probe.tried == 1  # no forged token sent to a wrong path
    # a service that answers 500 to a forged token: neither accepted nor rejected
    broken = JwtService(env, bad_token_status=500)
    with running(broken) as url:
        reading, checks = await audit(probe_config(env, url))
    forged = checks["secrets.forged_token"]
    assert forged.status is Status.UNKNOWN, forged.summary
    assert "inconclusive: 12 forged token(s) got neither 401/403 nor 2xx" in forged.summary
    assert "alg none (unsigned): HTTP 500" in " ".join(reading.data.probe.unclear)
    assert_no_secret([a, b], everything(reading, checks))


async def test_missing_store_file_is_a_clear_reading_and_never_created(
    tmp_path: Path, write_config
) -> None:
    env = tmp_path / "no-such.env"
    _, checks = await audit(make_config(env))
    store = checks["secrets.store"]
    assert store.status is Status.CRITICAL
    assert f"file not found: {env}" in store.summary
    # no "missing" per key: each key's check is there, unknown, not read
    strengths = [c for c in checks.values() if c.id.endswith(".strength")]
    assert strengths and all(c.status is Status.UNKNOWN for c in strengths)
    assert all(c.summary == "secret store unreachable: not read" for c in strengths)
    cfg = write_config(f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\n')
    proc = run_cli("rotate-secret", "--config", str(cfg), "--yes")
    assert proc.returncode == 1
    assert f"secret store file not found: {env}: ultrawatch does not create a store" in (
        proc.stderr
    )
    assert not env.exists()
    d = tmp_path / "no-such-dir"
    config = parse_config(f'[secrets]\nstore = {{ kind = "dir", path = "{d}" }}\n')
    _, checks = await audit(config)
    assert f"directory not found: {d}" in checks["secrets.store"].summary


async def test_rotating_one_key_does_not_make_the_other_look_fresh(
    tmp_path: Path, write_config
) -> None:
    env = tmp_path / ".env"
    a, b = strong(), strong()
    env.write_text(f"JWT_SECRET={a}\nJWT_REFRESH_SECRET={b}\n")
    old = time.time() - 400 * 86400
    os.utime(env, (old, old))
    cfg = write_config(f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\n')
    config = parse_config(cfg.read_text())
    _, checks = await audit(config)
    assert checks["secrets.age"].status is Status.WARNING
    proc = run_cli("rotate-secret", "JWT_REFRESH_SECRET", "--config", str(cfg), "--yes")
    assert proc.returncode == 0, proc.stderr
    # the untouched key got its age from the file's old mtime, stamped by the write
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(old))  # then .mmmZ
    assert re.search(rf"^JWT_SECRET_ROTATED_AT={stamp}\.\d{{3}}Z$", env.read_text(), re.M)
    reading, checks = await audit(config)
    age = checks["secrets.age"]
    assert age.status is Status.WARNING and "JWT_SECRET rotated 400d" in age.summary
    assert_no_secret([a, b], everything(reading, checks), proc.stdout, proc.stderr)

    # a store rewritten by something else: one key stamped, the other not, and the
    # file's mtime is that rotation's: the other key's age is unknown, not fresh
    stamp_now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    env.write_text(
        f"JWT_SECRET={a}\nJWT_REFRESH_SECRET={b}\nJWT_REFRESH_SECRET_ROTATED_AT={stamp_now}\n"
    )
    reading, checks = await audit(config)
    age = checks["secrets.age"]
    assert age.status is Status.UNKNOWN, age.summary
    assert "age of JWT_SECRET not known" in age.summary
    assert reading.data.keys["JWT_SECRET"].age_source == "unknown"


def test_recorded_data_reads_back_and_is_judged_with_the_replay_config() -> None:
    """A reading's typed data survives a recording; the grace period that decides a
    lagging service's verdict is the judging config's, not the one recorded."""
    from collectors.core.settings import SecretKey
    from collectors.core.units import Duration
    from collectors.secrets.config import SecretsConfig
    from collectors.secrets.data import KeyInfo, Rotation, SecretsData, ServiceKeys
    from collectors.secrets.rules import judge_secrets

    t = 1_795_600_800.0
    data = SecretsData(
        keys={"JWT_SECRET": KeyInfo(length=86, fingerprint="sha256:1a2b3c4d5e6f", strength="ok")},
        rotation=Rotation(
            in_progress=True, started_at=t - 60, grace_period_s=3600.0, grace_ends_at=t + 3540
        ),
        services={"svc": ServiceKeys(fingerprint="sha256:0badc0ffee00", on_previous=True)},
    )
    reading = Reading("secrets", "store", t, data)
    back = Reading.from_dict(json.loads(json.dumps(reading.to_dict())), SecretsData)
    assert back == reading

    def lag(grace: str) -> CheckResult:
        s = SecretsConfig(keys=[SecretKey("JWT_SECRET")], grace_period=Duration.parse(grace))
        return {c.id: c for c in judge_secrets(back, s)}["service.svc.secret_fingerprint"]

    assert lag("1h").status is Status.WARNING and "grace period ends in" in lag("1h").summary
    assert lag("30s").status is Status.CRITICAL and "after the grace period" in lag("30s").summary
