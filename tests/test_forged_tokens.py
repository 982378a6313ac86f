"""The forged-token probe at jwt_tool's level, against real HTTP services on 127.0.0.1.

Each service protects /api/admin/me correctly except for exactly one weakness (the
way real verifiers get it wrong); the probe must name exactly that forgery in
`secrets.forged_token`, and a correct service (HS256 or RS256) accepts none.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from collectors.config import Config, parse_config
from collectors.core.http import HttpClient
from collectors.core.model import CheckResult, Reading, Status
from collectors.registry import secrets_collector
from collectors.rules import judge
from collectors.secrets.store import fingerprint
from tests.conftest import run_cli
from tests.helpers import http_server, respond
from tests.jwt_service import assert_no_secret

JWKS_PATH = "/.well-known/jwks.json"
PEM_PATH = "/public.pem"
HS_FORGERIES = 12  # 6 weak secrets, empty secret, empty signature, 4 `none` variants

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_PEM = _KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _mac(key: bytes, signing: str) -> bytes:
    return hmac.new(key, signing.encode(), hashlib.sha256).digest()


@dataclass
class Service:
    """A JWT-protected service. `weakness` (one at most) says how its verifier is wrong:

    - "weak-secret": also accepts tokens signed with `your-secret-key` (a dev default);
    - "empty-secret": its secret is "" (JWT_SECRET set but empty);
    - "empty-signature": compares only as many signature bytes as the token has;
    - "alg:<a>": takes an unsigned token when the header's alg is exactly <a>;
    - "confusion": RS256, but verifies HS256 tokens with its public key PEM as the
      HMAC secret (the alg is taken from the header, as old jsonwebtoken did).

    `rs256` makes a correct service RS256 instead of HS256. It publishes its public
    key at JWKS_PATH and PEM_PATH (`pem` as served there: the key confusion HMACs
    exactly those bytes).
    """

    weakness: str | None = None
    rs256: bool = False
    pem: bytes = _PEM
    security: bool = False  # answer /health/security (reporting its algorithm)
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(48))
    tokens: list[str] = field(default_factory=list)  # every bearer token received

    def accepts(self, token: str) -> bool:
        try:
            h, p, s = token.split(".")
            header, claims = json.loads(_b64decode(h)), json.loads(_b64decode(p))
            signature = _b64decode(s)
        except ValueError:
            return False
        if claims.get("role") != "admin" or not claims.get("exp", 0) > time.time():
            return False
        alg, signing = header.get("alg"), f"{h}.{p}"
        if self.weakness and self.weakness.startswith("alg:") and alg == self.weakness[4:]:
            return s == ""
        if self.rs256 or self.weakness == "confusion":
            if alg == "HS256" and self.weakness == "confusion":
                return hmac.compare_digest(_mac(self.pem, signing), signature)
            try:
                jwt.decode(token, _KEY.public_key(), algorithms=["RS256"])
            except jwt.PyJWTError:
                return False
            return True
        if alg != "HS256":
            return False
        keys = [b"" if self.weakness == "empty-secret" else self.secret]
        if self.weakness == "weak-secret":
            keys.append(b"your-secret-key")
        for key in keys:
            expected = _mac(key, signing)
            if self.weakness == "empty-signature":
                expected = expected[: len(signature)]
            if hmac.compare_digest(expected, signature):
                return True
        return False

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        auth = req.headers.get("Authorization") or ""
        if req.path == "/api/admin/me":
            if not auth.startswith("Bearer "):
                respond(req, 401, '{"error": "unauthorized"}')
                return
            self.tokens.append(auth[7:])
            ok = self.accepts(auth[7:])
            respond(req, 200 if ok else 401, '{"role": "admin"}' if ok else "{}")
        elif req.path == JWKS_PATH:
            jwk = json.loads(RSAAlgorithm.to_jwk(_KEY.public_key()))
            respond(req, 200, json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig"}]}))
        elif req.path == PEM_PATH:
            respond(req, 200, self.pem, content_type="application/x-pem-file")
        elif req.path == "/health/security" and self.security:
            alg = "RS256" if self.rs256 or self.weakness == "confusion" else "HS256"
            body = {"jwt": {"algorithm": alg, "accessKeyFingerprint": "sha256:000000000000"}}
            respond(req, 200, json.dumps(body))
        elif req.path == "/login.html":
            respond(req, 200, "<html>sign in</html>", content_type="text/html")
        else:
            respond(req, 404, "{}")


@contextlib.contextmanager
def serving(service: Service) -> Iterator[str]:
    with http_server(service.handle) as url:
        yield url


def config(tmp_path: Path, url: str, public_key_path: str | None = None) -> Config:
    env = tmp_path / ".env"
    if not env.exists():
        env.write_text(
            f"JWT_SECRET={secrets.token_urlsafe(64)}\nJWT_REFRESH_SECRET={secrets.token_urlsafe(64)}\n"
        )
    extra = f', public_key_path = "{public_key_path}"' if public_key_path else ""
    return parse_config(
        f"""
[[services]]
name = "user-service"
url = "{url}"
detail_paths = ["/health/security"]

[secrets]
store = {{ kind = "dotenv", path = "{env}" }}
probe = {{ service = "user-service", path = "/api/admin/me"{extra} }}
"""
    )


async def probe(cfg: Config) -> tuple[Reading, CheckResult]:
    http = HttpClient(cfg.http)
    try:
        (reading,) = await secrets_collector(cfg, http).collect()
    finally:
        await http.aclose()
    checks = {c.id: c for c in judge(reading, cfg)}
    return reading, checks["secrets.forged_token"]


HS_WEAKNESSES = [
    ("weak-secret", f"HS256 with known weak secret {fingerprint('your-secret-key')}"),
    ("empty-secret", "HS256 with an empty secret"),
    ("empty-signature", "HS256 with an empty signature"),
    ("alg:none", "alg none (unsigned)"),
    ("alg:None", "alg None (unsigned)"),
    ("alg:NONE", "alg NONE (unsigned)"),
    ("alg:nOnE", "alg nOnE (unsigned)"),
]


@pytest.mark.parametrize(("weakness", "label"), HS_WEAKNESSES)
async def test_each_weakness_accepts_exactly_its_forgery_and_is_named(
    tmp_path: Path, weakness: str, label: str
) -> None:
    service = Service(weakness=weakness)
    with serving(service) as url:
        reading, forged = await probe(config(tmp_path, url))
    assert forged.status is Status.CRITICAL, forged.summary
    assert forged.summary == (
        f"user-service accepted forged admin tokens on /api/admin/me: {label}"
    )
    assert reading.data.probe.accepted == [label]
    # one request per forgery, each sent once: a probe, not a brute force
    assert len(service.tokens) == HS_FORGERIES


@pytest.mark.parametrize(
    ("path", "pem", "label"),
    [
        (JWKS_PATH, _PEM, f"RS256->HS256 key confusion with RSA key 1 of {JWKS_PATH}"),
        (PEM_PATH, _PEM, f"RS256->HS256 key confusion with the PEM key of {PEM_PATH}"),
        # a service that loaded its PEM without the final newline
        (PEM_PATH, _PEM.rstrip(), f"RS256->HS256 key confusion with the PEM key of {PEM_PATH}"),
    ],
    ids=["jwks", "pem", "pem-without-newline"],
)
async def test_key_confusion_with_the_published_public_key(
    tmp_path: Path, path: str, pem: bytes, label: str
) -> None:
    service = Service(weakness="confusion", pem=pem)
    with serving(service) as url:
        reading, forged = await probe(config(tmp_path, url, path))
    assert forged.status is Status.CRITICAL, forged.summary
    assert forged.summary == f"user-service accepted forged admin tokens on /api/admin/me: {label}"
    assert reading.data.probe.accepted == [label]  # named once, whichever variant worked


async def test_the_key_confusion_needs_the_public_key(tmp_path: Path) -> None:
    # the same vulnerable service, but the probe is not told where the key is
    service = Service(weakness="confusion", security=True)
    with serving(service) as url:
        _, forged = await probe(config(tmp_path, url))
    assert forged.status is Status.OK, forged.summary
    assert forged.summary == (
        f"user-service rejected all {HS_FORGERIES} forged tokens on /api/admin/me; "
        "RS256->HS256 key confusion not tried: user-service reports RS256; "
        "set public_key_path in probe"
    )


async def test_an_hs256_service_without_a_public_key_path_says_nothing_of_it(
    tmp_path: Path,
) -> None:
    with serving(Service(security=True)) as url:
        _, forged = await probe(config(tmp_path, url))
    assert forged.status is Status.OK
    assert forged.summary == (
        f"user-service rejected all {HS_FORGERIES} forged tokens on /api/admin/me"
    )


@pytest.mark.parametrize("rs256", [False, True], ids=["hs256", "rs256"])
async def test_a_correct_service_accepts_none(tmp_path: Path, rs256: bool) -> None:
    service = Service(rs256=rs256)
    with serving(service) as url:
        cfg = config(tmp_path, url, JWKS_PATH)
        reading, forged = await probe(cfg)
    tried = HS_FORGERIES + 2  # + the JWKS key, with and without the final newline
    assert forged.status is Status.OK, forged.summary
    assert forged.summary == f"user-service rejected all {tried} forged tokens on /api/admin/me"
    assert reading.data.probe.accepted == []
    assert len(service.tokens) == tried
    # the probe signs with public material only: never with the store's secrets
    store = (tmp_path / ".env").read_text().splitlines()
    values: list[str | None] = [line.split("=", 1)[1] for line in store]
    for token in service.tokens:
        h, p, s = token.split(".")
        for value in values:
            assert value and _b64decode(s) != _mac(value.encode(), f"{h}.{p}")
    assert_no_secret(values, json.dumps(reading.to_dict()), forged.summary)


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/nope.json", "/nope.json answered HTTP 404"),
        ("/login.html", "/login.html has neither a JWKS, a JWK nor a PEM public key"),
    ],
)
async def test_a_public_key_path_that_gives_no_key_is_a_warning(
    tmp_path: Path, path: str, why: str
) -> None:
    service = Service(weakness="confusion")
    with serving(service) as url:
        _, forged = await probe(config(tmp_path, url, path))
    assert forged.status is Status.WARNING, forged.summary
    assert forged.summary == (
        f"user-service rejected all {HS_FORGERIES} forged tokens on /api/admin/me; "
        f"RS256->HS256 key confusion not tried: {why}"
    )


async def test_accepted_forgeries_keep_the_unread_key_note(tmp_path: Path) -> None:
    service = Service(weakness="alg:none")
    with serving(service) as url:
        _, forged = await probe(config(tmp_path, url, "/nope.json"))
    assert forged.status is Status.CRITICAL
    assert forged.summary == (
        "user-service accepted forged admin tokens on /api/admin/me: alg none (unsigned); "
        "RS256->HS256 key confusion not tried: /nope.json answered HTTP 404"
    )


def test_public_key_path_must_be_a_path(
    tmp_path: Path, write_config: Callable[[str], Path]
) -> None:
    env = tmp_path / ".env"
    env.write_text("JWT_SECRET=x\n")
    cfg = write_config(
        f"""
[[services]]
name = "user-service"
url = "http://127.0.0.1:9"

[secrets]
store = {{ kind = "dotenv", path = "{env}" }}
probe = {{ service = "user-service", path = "/api/admin/me", public_key_path = "jwks.json" }}
"""
    )
    proc = run_cli("config", "check", "--config", str(cfg))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "public_key_path" in line and "expected a path starting with '/'" in line, line
