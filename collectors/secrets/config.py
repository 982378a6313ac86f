"""The [secrets] section."""

from __future__ import annotations

from typing import Literal

import msgspec

from collectors.core.settings import Name, SecretKey, Section, UrlPath
from collectors.core.units import Duration, PositiveDuration


class SecretStoreConfig(Section):
    kind: Literal["dotenv", "dir", "env"] = "dotenv"
    path: str | None = None


class ProbeConfig(Section):
    service: Name
    path: UrlPath


class SecretsConfig(Section):
    store: SecretStoreConfig = SecretStoreConfig()
    keys: list[SecretKey] = msgspec.field(
        default_factory=lambda: [SecretKey("JWT_SECRET"), SecretKey("JWT_REFRESH_SECRET")]
    )
    algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    max_age: Duration = Duration(90 * 86400)
    probe: ProbeConfig | None = None
    probe_every: PositiveDuration = Duration(300)  # forged-token probe re-runs at most this often
    wordlist: str | None = None
    access_token_lifetime: PositiveDuration | None = None
    grace_period: Duration | None = None  # default: access_token_lifetime, else 15m
    # rotation waits this long for services' new key
    verify_timeout: PositiveDuration = Duration(10)
