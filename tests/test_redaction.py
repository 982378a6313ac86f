"""Passwords stay out of readings and output; target text never drives the terminal."""

from __future__ import annotations

import time

from collectors.core.model import Reading, Snapshot
from collectors.core.redact import mask_dsn, mask_url, printable
from collectors.poller import Poller
from dashboard.demo.embedded import free_port
from tests.conftest import run_cli


def test_malformed_dsn_error_never_shows_the_password(write_config) -> None:
    # libpq quotes the token it cannot parse: here, the password itself.
    path = write_config(
        f'[postgres]\ndsn = "postgresql://mon:S3CRET%ZZpw@127.0.0.1:{free_port()}/x"\n'
    )
    result = run_cli("check", "--config", str(path))
    # A DSN libpq cannot parse is a configuration error (UNKNOWN), said on one line.
    assert result.returncode == 3 and result.stdout == ""
    assert "postgres.dsn: expected a libpq connection string" in result.stderr
    assert "***" in result.stderr
    assert "S3CRET" not in result.stdout + result.stderr


def test_masking() -> None:
    assert mask_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert mask_url("redis://h:6379/0") == "redis://h:6379/0"
    assert mask_dsn("postgresql://u:p@h/db") == "postgresql://u:***@h/db"
    assert mask_dsn("host=h password='a b' user=u") == "host=h password=*** user=u"


class Hostile:
    """A real collector shape returning what a hostile target could send."""

    component = "services"

    def targets(self) -> list[str]:
        return ["svc"]

    async def collect(self) -> list[Reading]:
        return [
            Reading(
                "services",
                "svc",
                time.time(),
                data={"message": "ok\x1b]52;c;cHduZWQ=\x07\x1b[2J", "ids": ["a\nb", 3]},
                error=None,
            )
        ]

    async def close(self) -> None:
        pass


async def test_control_characters_from_targets_are_escaped_once_for_everyone() -> None:
    snap: Snapshot = await Poller([Hostile()], deadline=1).poll()
    (r,) = snap.readings
    assert r.data["message"] == "ok\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J"
    assert r.data["ids"] == ["a b", 3]
    # A recording read back is escaped the same way.
    raw = {**r.to_dict(), "data": {"message": "\x1b[31mred"}}
    assert Reading.from_dict(raw).data["message"] == "\\x1b[31mred"
    assert printable("plain text stays") == "plain text stays"
