"""Known-weak JWT secrets and a cheap entropy estimate.

The built-in list holds the defaults that tutorials, frameworks and .env
examples ship with. An optional wordlist file (one secret per line, e.g. the
~100,000-line wallarm/jwt-secrets list) is read once into a frozenset of
bytes and cached by path, mtime and size, so each poll round costs one stat().
Nothing here returns or logs a secret value: callers get reasons, not values.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import threading
from collections import Counter

BUILTIN: frozenset[str] = frozenset(
    {
        "your-secret-key",
        "your_secret_key",
        "yoursecretkey",
        "your-256-bit-secret",
        "your-384-bit-secret",
        "your-512-bit-secret",
        "your-jwt-secret",
        "your_jwt_secret",
        "your-secret",
        "your-refresh-secret",
        "your-refresh-secret-key",
        "secret",
        "secretkey",
        "secret-key",
        "secret_key",
        "secret123",
        "mysecret",
        "my-secret",
        "my_secret",
        "mysecretkey",
        "my-secret-key",
        "supersecret",
        "super-secret",
        "supersecretkey",
        "super-secret-key",
        "topsecret",
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "change-this",
        "changeit",
        "jwt",
        "jwt_secret",
        "jwt-secret",
        "jwtsecret",
        "jwt_secret_key",
        "jwt-secret-key",
        "jwtkey",
        "jwt-key",
        "refresh_secret",
        "refresh-secret",
        "refreshsecret",
        "jwt_refresh_secret",
        "jwt-refresh-secret",
        "access_secret",
        "access-secret",
        "token",
        "tokensecret",
        "secrettoken",
        "default",
        "defaultsecret",
        "password",
        "password123",
        "passw0rd",
        "123456",
        "12345678",
        "qwerty",
        "admin",
        "test",
        "testing",
        "development",
        "dev",
        "key",
        "private",
        "privatekey",
        "shhhhh",
        "keyboard cat",
        "s3cr3t",
        "notasecret",
        "ultramarket",
        "ultramarket-secret",
    }
)

# What the forged-token probe signs with: a handful, never a brute force.
PROBE_SECRETS: tuple[str, ...] = (
    "your-secret-key",
    "secret",
    "your-256-bit-secret",
    "changeme",
    "secretkey",
    "supersecret",
)

# RFC 7518 3.2: an HMAC key at least as long as the hash output.
MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}

# Human words that make a secret guessable when they appear in it. Only words of
# six or more letters: a random 86-character token contains one by chance with a
# probability far below one in a million.
_WORDS = (
    "secret",
    "password",
    "passwd",
    "changeme",
    "default",
    "example",
    "letmein",
    "qwerty",
    "welcome",
    "ultramarket",
    "private",
    "monkey",
    "dragon",
    "master",
    "access",
    "refresh",
    "summer",
    "winter",
)
_WORD_DIGITS = re.compile(r"[A-Za-z]{3,}[\W_]*\d{1,8}[\W_]*|\d{1,8}[\W_]*[A-Za-z]{3,}[\W_]*")
_WORDISH = re.compile(r"[A-Z]?[a-z]{2,}|[A-Z]{2,}|\d+")

_cache_lock = threading.Lock()
_cache: dict[str, tuple[tuple[int, int], frozenset[bytes]]] = {}


def load_wordlist(path: str) -> frozenset[bytes]:
    """The wordlist as a frozenset of lines (bytes), cached by path + mtime + size.

    Splitting the whole file at once keeps the work in C: 100,000 lines load in
    tens of milliseconds. Raises OSError when the file cannot be read.
    """
    full = os.path.expanduser(path)
    st = os.stat(full)
    stamp = (st.st_mtime_ns, st.st_size)
    with _cache_lock:
        hit = _cache.get(full)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    with open(full, "rb") as f:
        data = f.read()
    words = frozenset(data.splitlines())  # handles \n and \r\n, no trailing empty line
    if b"" in words:  # blank lines: rare, so only then pay for a copy
        words = words - {b""}
    with _cache_lock:
        _cache[full] = (stamp, words)
    return words


def known_weak(value: str, wordlist: str | None = None) -> str | None:
    """Why `value` is a known weak secret ("built-in list", "wordlist"), or None."""
    if value in BUILTIN or value.lower() in BUILTIN or value.strip() in BUILTIN:
        return "a known default secret (built-in list)"
    if wordlist:
        try:
            words = load_wordlist(wordlist)
        except OSError:
            return None  # the caller reports the unreadable wordlist separately
        if value.encode("utf-8") in words:
            return "listed in the known-weak wordlist"
    return None


def entropy_bits(value: str) -> float:
    """Shannon estimate of the bits in `value`: length x bits per character seen.

    An underestimate for short random strings, a gross overestimate for
    passphrases; good enough to flag repetition and tiny alphabets.
    """
    if not value:
        return 0.0
    n = len(value)
    counts = Counter(value)
    per_char = -sum(c / n * math.log2(c / n) for c in counts.values())
    return round(per_char * n, 1)


def low_entropy(value: str) -> str | None:
    """Why `value` looks guessable even though it is long enough, or None."""
    n = len(value)
    if n == 0:
        return "empty"
    distinct = len(set(value))
    if distinct < min(10, max(2, n // 3)):
        return f"only {distinct} distinct characters"
    period = _period(value)
    if period:
        return f"a {period}-character pattern repeated"
    longest_run = max(len(m.group(0)) for m in re.finditer(r"(.)\1*", value, re.S))
    if longest_run >= max(6, n // 4):
        return f"a run of {longest_run} identical characters"
    sequence = _longest_sequence(value)
    if sequence >= 8:
        return f"a run of {sequence} consecutive characters (like abcdef or 0123)"
    repeated = _longest_repeat(value)
    if repeated >= 8:
        return f"a {repeated}-character sequence repeated"
    if _WORD_DIGITS.fullmatch(value):
        return "a dictionary word with digits"
    parts = [p for p in re.split(r"[\s\-_.:/+]+", value) if p]
    if len(parts) >= 2 and all(_WORDISH.fullmatch(p) for p in parts):
        return "words and digits (human-memorable)"
    lower = value.lower()
    for word in _WORDS:
        if word in lower:
            return "contains a dictionary word"
    bits = entropy_bits(value)
    if bits < 100:
        return f"about {bits:.0f} bits of estimated entropy"
    return None


def _period(value: str) -> int | None:
    """The shortest p with value[i] == value[i + p] for nearly every i ("abcabcab..")."""
    n = len(value)
    for p in range(1, min(n // 2, 64) + 1):
        same = sum(1 for i in range(n - p) if value[i] == value[i + p])
        if same >= 0.9 * (n - p):
            return p
    return None


# Both thresholds are 8: in a random hex secret (16 symbols, the smallest alphabet we
# expect) an 8-long run or repeat turns up by chance far below once in a million.
_SCAN = 512  # longer secrets: the first 512 characters tell enough


def _longest_sequence(value: str) -> int:
    """The longest run of consecutive code points, up or down ("abcdef", "9876")."""
    text = value[:_SCAN]
    best = run = 1
    step = 0
    for a, b in itertools.pairwise(text):
        d = ord(b) - ord(a)
        if d in (1, -1) and (run == 1 or d == step):
            run, step = run + 1, d
        elif d in (1, -1):
            run, step = 2, d
        else:
            run, step = 1, 0
        best = max(best, run)
    return best if text else 0


def _longest_repeat(value: str) -> int:
    """Length of the longest substring that occurs twice without overlapping
    ("correcthorse...correcthorse"), 0 when none of 8 or more characters does."""
    text = value[:_SCAN]
    best = 0
    length = 8
    while length <= len(text) // 2:
        first: dict[str, int] = {}
        found = False
        for i in range(len(text) - length + 1):
            chunk = text[i : i + length]
            j = first.setdefault(chunk, i)
            if i - j >= length:
                found = True
                break
        if not found:
            break  # no repeat of this length: none longer either
        best = length
        length += 1
    return best
