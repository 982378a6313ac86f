"""The [secrets] section, and what the secrets target needs to know of the rest of
the configuration (the services it reads key fingerprints from and probes), as
small typed refs built by `collectors.registry` from the whole Config."""

from __future__ import annotations

from typing import Literal

import msgspec

from collectors.core.settings import Name, SecretKey, Section, UrlPath
from collectors.core.units import Duration, Interval, PositiveDuration, Timeout

# Where a service publishes its key fingerprints (the UltraMarket health contract).
SECURITY_PATH = "/health/security"
DEFAULT_GRACE = 15 * 60.0


class SecretStoreConfig(Section, frozen=True):
    kind: Literal["dotenv", "dir", "env"] = "dotenv"
    path: str | None = None


class ProbeConfig(Section, frozen=True):
    service: Name
    path: UrlPath
    # where the service publishes its public key (a JWKS, a JWK or a PEM): the probe
    # then also tries RS256->HS256 key confusion with it
    public_key_path: UrlPath | None = None


class SecretsConfig(Section, frozen=True):
    store: SecretStoreConfig = SecretStoreConfig()
    keys: list[SecretKey] = msgspec.field(
        default_factory=lambda: [SecretKey("JWT_SECRET"), SecretKey("JWT_REFRESH_SECRET")]
    )
    algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    max_age: Duration = Duration(90 * 86400)
    probe: ProbeConfig | None = None
    # forged-token probe re-runs at most this often
    probe_every: Interval = Interval(300)
    wordlist: str | None = None
    access_token_lifetime: PositiveDuration | None = None
    grace_period: Duration | None = None  # default: access_token_lifetime, else 15m
    # rotation waits this long for services' new key
    verify_timeout: Timeout = Timeout(10)


def grace_period(s: SecretsConfig) -> float:
    """How long the previous secret stays valid after a rotation."""
    if s.grace_period is not None:
        return float(s.grace_period)
    if s.access_token_lifetime is not None:
        return float(s.access_token_lifetime)
    return DEFAULT_GRACE


class KeyService(msgspec.Struct, frozen=True, kw_only=True):
    """A configured service as the secrets target sees it (a ref built from
    `[[services]]` by the registry): where it answers and which detail paths it has."""

    name: str
    url: str
    detail_paths: tuple[str, ...] = ()

    @property
    def publishes_keys(self) -> bool:
        """Does it publish its key fingerprints (detail_paths has /health/security)?"""
        return SECURITY_PATH in self.detail_paths
