"""Every secret a target's config can hold stays out of every way ultrawatch speaks.

Driven by the registry: each target names the config fragment that plants secrets in
every place its section can hold one. A target added to the registry without an entry
here fails `test_every_target_is_covered`, so no new target's password can slip into a
recording unnoticed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from collectors.config import parse_config
from collectors.core.model import Reading
from collectors.poller import Collectors, Poller, build_collectors
from collectors.registry import TARGETS, config_without_passwords
from dashboard.demo.embedded import free_port
from dashboard.recording import Recording
from tests.conftest import run_cli


@dataclass(frozen=True)
class Planted:
    fragment: Callable[[dict[str, str]], str]  # TOML, given the live servers' addresses
    secrets: tuple[str, ...]  # secrets the config holds: must be known to the spec
    also_hidden: tuple[str, ...] = ()  # secrets the target reads (never in output either)


def _with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    user, at, host = rest.rpartition("@")
    user = user.split(":", 1)[0] if at else ""
    return f"{scheme}://{user}:{password}@{host}"


PG_PW = "Pg-Planted-Passw0rd"
REDIS_PW = "Redis-Planted-Passw0rd"
JWT_VALUE = "Planted-Jwt-Secret-0123456789-abcdefghijklmnop"
REFRESH_VALUE = "Planted-Refresh-Secret-9876543210-zyxwvutsrqpo"
PGB_PW = "Pgb-Planted-Passw0rd"

PLANTED: dict[str, Planted] = {
    # The embedded PostgreSQL trusts local connections: the password is accepted and
    # ignored, so the reading is real and still must not carry it.
    "postgres": Planted(
        lambda s: f'[postgres]\ndsn = "{_with_password(s["pg"], PG_PW)}"\n', (PG_PW,)
    ),
    # Redis has no password set: AUTH fails and the error text is where it could leak.
    "redis": Planted(
        lambda s: f'[redis]\nurl = "{_with_password(s["redis"], REDIS_PW)}"\n', (REDIS_PW,)
    ),
    # The admin console's DSN, at a port nobody listens on: the error is where it could leak.
    "pgbouncer": Planted(
        lambda s: (
            f'[pgbouncer]\ndsn = "postgresql://monitor:{PGB_PW}@127.0.0.1:{s["closed"]}'
            '/pgbouncer"\n'
        ),
        (PGB_PW,),
    ),
    # Service URLs refuse credentials at load (config test); nothing to plant.
    "services": Planted(
        lambda s: f'[[services]]\nname = "svc"\nurl = "http://127.0.0.1:{s["closed"]}"\n', ()
    ),
    "processes": Planted(
        lambda s: '[[processes]]\nname = "nothing"\ncmdline = "no-such-process-xyz"\n', ()
    ),
    # The store's values are the secrets this target reads; its config holds a path.
    "secrets": Planted(
        lambda s: f'[secrets]\nstore = {{ kind = "dotenv", path = "{s["env"]}" }}\n',
        (),
        (JWT_VALUE, REFRESH_VALUE),
    ),
}


def test_every_target_is_covered() -> None:
    assert {t.name for t in TARGETS} == set(PLANTED)


@pytest.fixture
def planted_config(tmp_path: Path, pg_dsn: str, redis_url: str, write_config) -> Path:
    env = tmp_path / ".env"
    env.write_text(f"JWT_SECRET={JWT_VALUE}\nJWT_REFRESH_SECRET={REFRESH_VALUE}\n")
    servers = {"pg": pg_dsn, "redis": redis_url, "closed": str(free_port()), "env": str(env)}
    text = "".join(PLANTED[t.name].fragment(servers) for t in TARGETS)
    return write_config(text)


def _json(config: object) -> str:
    # The config's value types (Duration, ByteSize...) are float/int/str subclasses.
    def plain(obj: object) -> object:
        for base in (int, float, str):
            if isinstance(obj, base):
                return base(obj)
        raise NotImplementedError(type(obj))

    return msgspec.json.encode(config, enc_hook=plain).decode()


def _all_secrets() -> list[str]:
    return [s for p in PLANTED.values() for s in (*p.secrets, *p.also_hidden)]


def _leaks(text: str) -> list[str]:
    return [s for s in _all_secrets() if s in text]


def test_each_spec_knows_the_secrets_its_config_holds(planted_config: Path) -> None:
    config = parse_config(planted_config.read_text(), str(planted_config))
    for spec in TARGETS:
        assert spec.enabled(config), spec.name
        known = set(spec.secrets(config))
        assert set(PLANTED[spec.name].secrets) <= known, spec.name
    stored = _json(config_without_passwords(config))
    assert _leaks(stored) == []


@pytest.mark.parametrize("fmt", ["json", "text", "nagios", "prometheus"])
def test_no_output_format_carries_a_secret(planted_config: Path, fmt: str) -> None:
    r = run_cli("check", "--config", str(planted_config), "--format", fmt, "--timeout", "8")
    assert r.returncode in (0, 1, 2), r.stderr
    assert _leaks(r.stdout + r.stderr) == []
    if fmt == "json":
        components = {c["component"] for c in json.loads(r.stdout)["checks"]}
        assert components == {t.name for t in TARGETS}  # every target was really read
        ids = {c["id"] for c in json.loads(r.stdout)["checks"]}
        assert "redis.reachable" in ids and "postgres.reachable" in ids


def test_no_recording_or_audit_entry_carries_a_secret(planted_config: Path, tmp_path: Path) -> None:
    rec = tmp_path / "rec.db"
    r = run_cli("record", str(rec), "--config", str(planted_config), "--rounds", "2")
    assert r.returncode == 0, r.stderr
    assert _leaks(r.stdout + r.stderr) == []
    with Recording(rec, keep=None) as recording:
        config = recording.config()
        rounds = [recording.load(row).to_dict() for row, _ in recording.index()]
    assert len(rounds) == 2
    assert _leaks(json.dumps(rounds)) == []
    assert _leaks(_json(config)) == []
    # An action against each secret-bearing target: refused or failed, it is audited.
    audit = tmp_path / "audit.jsonl"
    for args in (["release-lock", "lock:planted", "--yes"], ["terminate", "1", "--yes"]):
        r = run_cli(*args, "--config", str(planted_config))
        assert _leaks(r.stdout + r.stderr) == [], args
    assert audit.exists() and audit.read_text().strip()
    assert _leaks(audit.read_text()) == []


class _Leaky:
    """A collector whose client library quoted the connection strings in its error."""

    component = "services"

    def __init__(self, text: str) -> None:
        self.text = text

    def targets(self) -> list[str]:
        return ["svc"]

    async def collect(self) -> list[Reading]:
        return [Reading("services", "svc", time.time(), error=self.text, error_kind="internal")]

    async def close(self) -> None:
        pass


async def test_the_poller_scrubs_every_config_secret_from_errors(planted_config: Path) -> None:
    config = parse_config(planted_config.read_text(), str(planted_config))
    built = build_collectors(config, ["processes"])  # opens nothing
    assert set(built.secrets) >= {PG_PW, REDIS_PW}
    assert config.postgres is not None and config.redis is not None
    leaky = Collectors([_Leaky(f"failed: {config.postgres.dsn} and {config.redis.url}")])
    leaky.shared, leaky.secrets = [], built.secrets
    (reading,) = (await Poller(leaky, deadline=2).poll()).readings
    assert reading.error is not None and "failed:" in reading.error
    assert _leaks(reading.error) == []
