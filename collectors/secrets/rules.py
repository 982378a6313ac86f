"""Judge a secrets Reading: strength, distinct, age, services' fingerprints, the probe.

A pure function of the reading and the `[secrets]` section (so recordings judge the
same, and a replay with another config judges with that config's max_age and grace
period). Summaries hold lengths, fingerprints and reasons; never a value.
"""

from __future__ import annotations

from collections.abc import Sequence

from collectors.core.model import CheckResult, Reading, Status
from collectors.core.thresholds import failure, not_read, why_unread
from collectors.core.units import format_duration
from collectors.secrets.config import KeyService, SecretsConfig, grace_period
from collectors.secrets.data import KeyInfo, Probe, Rotation, SecretsData, ServiceKeys

_STRENGTH_STATUS = {
    "ok": Status.OK,
    "low-entropy": Status.WARNING,
    "short": Status.CRITICAL,
    "known-weak": Status.CRITICAL,
    "missing": Status.CRITICAL,
}


def check_ids(settings: SecretsConfig, services: Sequence[KeyService] = ()) -> list[str]:
    """Every check id a reading judged with this config has (secrets.store first),
    whether or not the store could be read."""
    ids = ["secrets.store", *(f"secrets.{key}.strength" for key in settings.keys)]
    if settings.wordlist:
        ids.append("secrets.wordlist")
    if len(settings.keys) >= 2:
        ids.append("secrets.distinct")
    ids.append("secrets.age")
    ids += [f"service.{s.name}.secret_fingerprint" for s in services if s.publishes_keys]
    if settings.probe is not None:
        ids.append("secrets.forged_token")
    return ids


def judge_secrets(
    reading: Reading, settings: SecretsConfig | None, services: Sequence[KeyService] = ()
) -> list[CheckResult]:
    """`services`: the configured services (those publishing /health/security have a
    secret_fingerprint check, read or not)."""
    if not reading.ok:
        if settings is None:
            return [failure(reading, "secrets.store", "secret store")]
        why = why_unread(reading, "secret store")
        unread = not_read(reading, check_ids(settings, services)[1:], why)
        # a service's fingerprint check belongs to the service
        unread = [_as_service(c) for c in unread]
        return [failure(reading, "secrets.store", "secret store"), *unread]
    assert settings is not None, "a secrets reading needs the [secrets] section"
    d: SecretsData = reading.data
    t = reading.target
    where = f"{d.store.kind} store" + (f" {d.store.path}" if d.store.path else "")
    out = [_store(d, where, t)]
    out += [_strength(key, info, where, t) for key, info in d.keys.items()]
    out += [
        _missing(f"secrets.{k}.strength", t, "not in the reading")
        for k in settings.keys
        if k not in d.keys
    ]
    if settings.wordlist or (d.wordlist is not None and d.wordlist.error):
        out.append(_wordlist(d, t))
    if len(settings.keys) >= 2:
        out.append(_distinct(d.distinct, settings.keys[0], settings.keys[1], t))
    out.append(_age(d.keys, float(settings.max_age), t, where))
    out.extend(_services(d, _grace_ends(d.rotation, settings), reading.taken_at))
    for svc in services:
        if svc.publishes_keys and svc.name not in d.services:
            cid = f"service.{svc.name}.secret_fingerprint"
            out.append(_as_service(_missing(cid, svc.name, "fingerprints not read")))
    if d.probe is not None:
        out.append(_probe(d.probe, t, d.services))
    elif settings.probe is not None:
        out.append(_missing("secrets.forged_token", t, "the probe has not run yet"))
    return out


def _missing(cid: str, t: str, why: str) -> CheckResult:
    return CheckResult(cid, "secrets", t, Status.UNKNOWN, why)


def _as_service(c: CheckResult) -> CheckResult:
    """A service's fingerprint check is filed under the service (component, target)."""
    if not c.id.endswith(".secret_fingerprint"):
        return c
    name = c.id.removeprefix("service.").removesuffix(".secret_fingerprint")
    return CheckResult(c.id, "services", name, c.status, c.summary, unread=c.unread)


def _store(d: SecretsData, where: str, t: str) -> CheckResult:
    n = sum(1 for info in d.keys.values() if info.present)
    return CheckResult(
        "secrets.store", "secrets", t, Status.OK, f"{where} read: {n} of {len(d.keys)} keys present"
    )


def _wordlist(d: SecretsData, t: str) -> CheckResult:
    wl = d.wordlist
    if wl is None:
        return _missing("secrets.wordlist", t, "known-weak wordlist not read")
    if wl.error:
        return CheckResult(
            "secrets.wordlist",
            "secrets",
            t,
            Status.UNKNOWN,
            f"known-weak wordlist {wl.path} unreadable: {wl.error}",
        )
    return CheckResult(
        "secrets.wordlist",
        "secrets",
        t,
        Status.OK,
        f"known-weak wordlist {wl.path}: {wl.entries} entries",
        value=wl.entries,
        unit="count",
    )


def _strength(key: str, info: KeyInfo, where: str, t: str) -> CheckResult:
    strength = info.strength
    if strength == "missing":
        summary = f"{key} is missing from the {where}"
    else:
        reason = strength if info.reason is None else info.reason
        summary = f"{key} ({info.length} bytes, {info.fingerprint}): {reason}"
    status = _STRENGTH_STATUS.get(strength, Status.UNKNOWN)
    if info.previous_weak:
        # The old weak secret still signs valid tokens until --finish.
        summary += (
            f"; previous {info.previous_fingerprint} ({info.previous_weak}) is "
            "still accepted: finish the rotation once the grace period is over"
        )
        status = Status.worst([status, Status.WARNING])
    return CheckResult(
        f"secrets.{key}.strength",
        "secrets",
        t,
        status,
        summary,
        value=info.length,
        unit="bytes",
        crit=info.required_bytes,
        below=True,  # too few bytes is the alert
    )


def _distinct(distinct: bool | None, a: str, b: str, t: str) -> CheckResult:
    if distinct is None:
        status, summary = Status.UNKNOWN, f"cannot compare {a} and {b}: one is missing"
    elif distinct:
        status, summary = Status.OK, f"{a} and {b} differ"
    else:
        status = Status.CRITICAL
        summary = f"{a} and {b} are the same secret: a refresh token works as an access token"
    return CheckResult("secrets.distinct", "secrets", t, status, summary)


# How far ahead of this clock a rotation stamp may be before it is not believed
# (hosts' clocks differ by seconds; NTP keeps them within this).
CLOCK_SKEW = 300.0


def _age(keys: dict[str, KeyInfo], max_age: float, t: str, where: str) -> CheckResult:
    present = {key: info for key, info in keys.items() if info.present}
    aged = [(info.age_s, key, info) for key, info in present.items() if info.age_s is not None]
    blind = [key for key, info in present.items() if info.age_s is None]
    if not aged:
        hint = " (set <KEY>_ROTATED_AT to an ISO time)" if where.startswith("env") else ""
        return CheckResult(
            "secrets.age",
            "secrets",
            t,
            Status.UNKNOWN,
            f"age not known ({where} has no rotation time or modification time){hint}",
            unit="s",
            warn=max_age,
        )
    future = [(age, key, info) for age, key, info in aged if age < -CLOCK_SKEW]
    if future:
        # A stamp years ahead (a typo, a wrong clock) would keep the secret "young"
        # for ever: its age is not known, and that is said.
        age, key, info = min(future, key=lambda x: x[0])
        what = f"{key}_ROTATED_AT ({info.rotated_at})" if info.rotated_at else f"{key}'s file"
        return CheckResult(
            "secrets.age",
            "secrets",
            t,
            Status.UNKNOWN,
            f"{what} is {format_duration(-age)} in the future: a wrong clock or a typo; "
            "its age is not known",
            unit="s",
            warn=max_age,
        )
    age, key, info = max(aged, key=lambda x: x[0])
    age = max(0.0, age)  # within the clock skew allowed: just now
    source = "rotated" if info.age_source == "rotated_at" else "file last modified"
    summary = f"{key} {source} {format_duration(age)} ago"
    if age > max_age:
        status = Status.WARNING
        summary += f" (older than max_age {format_duration(max_age)})"
    elif blind:
        # another key's rotation rewrote the file: this key's age is not known
        status = Status.UNKNOWN
        summary = (
            f"age of {', '.join(blind)} not known (no <KEY>_ROTATED_AT, and the file was "
            f"rewritten when another key was rotated); {summary}"
        )
    else:
        status = Status.OK
    return CheckResult(
        "secrets.age", "secrets", t, status, summary, value=age, unit="s", warn=max_age
    )


def _grace_ends(rotation: Rotation | None, settings: SecretsConfig) -> float | None:
    """When the rotation's grace period ends, by this config's grace period."""
    if rotation is None:
        return None
    if rotation.started_at is None:
        return rotation.grace_ends_at
    return rotation.started_at + grace_period(settings)


def _services(d: SecretsData, ends: float | None, taken_at: float) -> list[CheckResult]:
    return [_service(name, svc, ends, taken_at) for name, svc in d.services.items()]


def _service(name: str, svc: ServiceKeys, ends: float | None, taken_at: float) -> CheckResult:
    cid = f"service.{name}.secret_fingerprint"
    if svc.error:
        return CheckResult(
            cid,
            "services",
            name,
            Status.UNKNOWN,
            f"cannot read {name}'s key fingerprints: {svc.error}",
        )
    in_grace = ends is not None and taken_at < ends
    fp = svc.fingerprint
    if svc.matches:
        status, summary = Status.OK, f"{name} uses the store's current key ({fp})"
    elif svc.on_previous and ends is not None and in_grace:
        status = Status.WARNING
        summary = (
            f"{name} still on the previous key ({fp}); grace period ends in "
            f"{format_duration(max(0.0, ends - taken_at))}"
        )
    elif svc.on_previous:
        status = Status.CRITICAL
        summary = f"{name} still on the previous key ({fp}) after the grace period"
    elif in_grace:
        status = Status.WARNING
        summary = f"{name} reports key {fp}, not the store's; rotation in progress"
    else:
        status = Status.CRITICAL
        summary = f"{name} reports key {fp}, which is not the store's current key"
    return CheckResult(cid, "services", name, status, summary)


def _not_tried(probe: Probe, services: dict[str, ServiceKeys]) -> list[str]:
    """Forgeries the probe could not try: its own notes, and the key confusion when
    the service says it signs with a public key but no public_key_path is set."""
    notes = list(probe.skipped)
    svc = services.get(probe.service or "")
    alg = svc.algorithm if svc is not None else None
    if probe.public_key_path is None and alg and alg[:2] in ("RS", "PS", "ES"):
        notes.append(
            f"RS256->HS256 key confusion not tried: {probe.service} reports {alg}; "
            "set public_key_path in probe"
        )
    return notes


def _probe(probe: Probe, t: str, services: dict[str, ServiceKeys] | None = None) -> CheckResult:
    svc, path = probe.service, probe.path
    notes = _not_tried(probe, services or {})
    also = "".join(f"; {note}" for note in notes)
    if probe.accepted:
        return CheckResult(
            "secrets.forged_token",
            "secrets",
            t,
            Status.CRITICAL,
            f"{svc} accepted forged admin tokens on {path}: {', '.join(probe.accepted)}{also}",
            value=len(probe.accepted),
            unit="count",
            crit=0,
        )
    err = probe.error
    if err:
        # a wrong/unprotected path is a configuration problem; anything else means
        # we do not know whether forgeries would work
        wrong_path = probe.error_kind == "not_protected" or "without any token" in err
        status = Status.WARNING if wrong_path else Status.UNKNOWN
        return CheckResult(
            "secrets.forged_token", "secrets", t, status, f"probe of {svc} {path}: {err}{also}"
        )
    tried = max(0, probe.tried - 1)  # minus the baseline request
    # a configured public key the probe could not use is a configuration problem
    return CheckResult(
        "secrets.forged_token",
        "secrets",
        t,
        Status.WARNING if probe.skipped else Status.OK,
        f"{svc} rejected all {tried} forged tokens on {path}{also}",
        value=0,
        unit="count",
        crit=0,
    )
