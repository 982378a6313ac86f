"""The secrets target's typed data: what one round saw of the store and the services.

Field names are the keys recordings have always had (so old recordings read back);
every field a recording or a hand-built reading may lack has a default. Lengths,
fingerprints, reasons and times only: never a secret value.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Strength = Literal["ok", "low-entropy", "short", "known-weak", "missing"]
AgeSource = Literal["rotated_at", "mtime", "unknown"]
ProbeErrorKind = Literal["not_protected", "inconclusive"]


class StoreInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Which store was read (kind and path; the environment has no path)."""

    kind: str = "?"
    path: str | None = None


class KeyInfo(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One configured key: present?, length, fingerprint, how strong, how old."""

    present: bool = True
    length: int | None = None  # bytes (UTF-8)
    fingerprint: str | None = None
    required_bytes: int | None = None  # the algorithm's minimum (RFC 7518)
    strength: Strength = "missing"
    reason: str | None = None  # why that strength
    entropy_bits: float | None = None
    age_s: float | None = None
    age_source: AgeSource | None = None
    rotated_at: str | None = None  # <KEY>_ROTATED_AT as written in the store
    previous_fingerprint: str | None = None  # <KEY>_PREVIOUS, kept during a rotation
    previous_weak: str | None = None  # why the previous secret is weak, if it is


class Rotation(msgspec.Struct, frozen=True, kw_only=True):
    """A rotation the store records (<KEY>_ROTATED_AT): when, and whether the previous
    secret is still kept."""

    in_progress: bool = False
    started_at: float | None = None
    grace_period_s: float | None = None  # as configured when it was read
    grace_ends_at: float | None = None
    # the TUI's `r` offers "finish": grace over, every service on the current key
    can_finish: bool = False


class Wordlist(msgspec.Struct, frozen=True, kw_only=True):
    """The known-weak wordlist file: how many entries, or why it is unreadable."""

    path: str | None = None
    entries: int = 0
    error: str | None = None


class ServiceKeys(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The key fingerprints one service reports, compared with the store's."""

    fingerprint: str | None = None  # its access key
    refresh_fingerprint: str | None = None
    algorithm: str | None = None
    loaded_at: str | None = None
    matches: bool | None = None  # on the store's current keys (None: unreadable)
    on_previous: bool | None = None  # on a key's <KEY>_PREVIOUS instead
    error: str | None = None


class Probe(msgspec.Struct, frozen=True, kw_only=True):
    """The forged-token probe's last run: what was tried and what was accepted."""

    service: str | None = None
    path: str | None = None
    tried: int = 0  # requests sent, the baseline without a token included
    accepted: list[str] = msgspec.field(default_factory=list)  # forgeries, by label
    at: float | None = None
    error: str | None = None
    error_kind: ProbeErrorKind | None = None
    unclear: list[str] = msgspec.field(default_factory=list)  # neither 401/403 nor 2xx
    public_key_path: str | None = None  # configured: the key confusion is tried with it
    # forgeries that could not be tried, and why (the public key unreadable)
    skipped: list[str] = msgspec.field(default_factory=list)


class SecretsData(msgspec.Struct, frozen=True, kw_only=True):
    """One round of the secrets target (target "store")."""

    store: StoreInfo = StoreInfo()
    algorithm: str | None = None
    keys: dict[str, KeyInfo] = msgspec.field(default_factory=dict)
    distinct: bool | None = None  # access != refresh (None: one is missing)
    rotation: Rotation | None = None
    wordlist: Wordlist | None = None
    services: dict[str, ServiceKeys] = msgspec.field(default_factory=dict)
    probe: Probe | None = None
