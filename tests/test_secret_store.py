"""Secret stores on real files: parsing, atomic writes, modes, crash safety, weak lists."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from collectors.config import SecretStoreConfig
from collectors.secrets.store import (
    StoreError,
    StoreLocked,
    StoreReadOnly,
    fingerprint,
    open_store,
    parse_dotenv,
)
from collectors.secrets.weak import entropy_bits, known_weak, load_wordlist, low_entropy


def dotenv(path: Path):
    return open_store(SecretStoreConfig(kind="dotenv", path=str(path)))


def test_fingerprint_is_sha256_prefix() -> None:
    # sha256("secret") = 2bb80d537b1da3e3...
    assert fingerprint("secret") == "sha256:2bb80d537b1d"


def test_dotenv_reads_the_usual_forms(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        textwrap.dedent(
            """\
            # UltraMarket secrets
            export JWT_SECRET=abc.def-123  # trailing comment
            JWT_REFRESH_SECRET="with space \\"quoted\\" and \\\\ backslash"
            SINGLE='lit$eral # not a comment'
            EMPTY=

            DUP=first
            DUP=second
            """
        )
    )
    store = dotenv(env)
    assert store.get("JWT_SECRET") == "abc.def-123"
    assert store.get("JWT_REFRESH_SECRET") == 'with space "quoted" and \\ backslash'
    assert store.get("SINGLE") == "lit$eral # not a comment"
    assert store.get("EMPTY") == ""
    assert store.get("DUP") == "second"
    assert store.get("NOPE") is None


def test_dotenv_write_keeps_other_lines_and_mode(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text('# keep me\nexport A=1\nOTHER="x y"\nB=2\nB=3\n')
    env.chmod(0o640)
    store = dotenv(env)
    store.write({"A": 'new "value"\nline', "B": None, "C": "added"})
    text = env.read_text()
    assert text.startswith("# keep me\nexport A=")
    assert 'OTHER="x y"' in text
    assert "B=" not in text
    assert store.items() == {"A": 'new "value"\nline', "OTHER": "x y", "C": "added"}
    assert stat.S_IMODE(env.stat().st_mode) == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_new_dotenv_file_is_0600(tmp_path: Path) -> None:
    env = tmp_path / "new.env"
    dotenv(env).write({"JWT_SECRET": "x" * 40})
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert dotenv(env).get("JWT_SECRET") == "x" * 40


def test_unparseable_dotenv_names_the_line_not_the_value(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text('OK=1\nJWT_SECRET="hunter2-unterminated\n')
    with pytest.raises(StoreError) as e:
        dotenv(env).items()
    assert "line 2" in str(e.value) and "JWT_SECRET" in str(e.value)
    assert "hunter2" not in str(e.value)
    with pytest.raises(StoreError):  # never rewrites a file it cannot parse
        dotenv(env).write({"OK": "2"})
    assert "hunter2-unterminated" in env.read_text()


def test_dir_store_reads_and_writes_one_file_per_secret(tmp_path: Path) -> None:
    d = tmp_path / "secrets"
    d.mkdir()
    (d / "JWT_SECRET").write_text("from-docker\n")
    (d / "JWT_SECRET").chmod(0o640)
    (d / ".hidden").write_text("x")
    store = open_store(SecretStoreConfig(kind="dir", path=str(d)))
    assert store.items() == {"JWT_SECRET": "from-docker"}
    store.write({"JWT_SECRET": "next", "JWT_SECRET_PREVIOUS": "from-docker", "GONE": None})
    assert store.get("JWT_SECRET") == "next"
    assert store.get("JWT_SECRET_PREVIOUS") == "from-docker"
    assert stat.S_IMODE((d / "JWT_SECRET").stat().st_mode) == 0o640
    assert stat.S_IMODE((d / "JWT_SECRET_PREVIOUS").stat().st_mode) == 0o600
    store.write({"JWT_SECRET_PREVIOUS": None})
    assert not (d / "JWT_SECRET_PREVIOUS").exists()
    with pytest.raises(StoreError):
        store.get("../etc/passwd")


def test_env_store_is_read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UW_TEST_SECRET", "from-env")
    store = open_store(SecretStoreConfig(kind="env"))
    assert store.get("UW_TEST_SECRET") == "from-env"
    assert not store.writable
    with pytest.raises(StoreReadOnly):
        store.write({"UW_TEST_SECRET": "x"})


def test_lock_is_exclusive(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    store = dotenv(env)
    with store.lock():
        # a second process trying to write at the same time is told at once
        code = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from collectors.secrets.store import *; "
                "from collectors.config import SecretStoreConfig as C\n"
                f"s = open_store(C(kind='dotenv', path={str(env)!r}))\n"
                "try:\n  s.lock().__enter__()\nexcept StoreLocked: sys.exit(7)\n",
            ],
            cwd=Path(__file__).parent.parent,
        ).returncode
    assert code == 7
    assert StoreLocked  # imported for the subprocess' sake


@pytest.mark.parametrize("step", ["temp-written", "renamed"])
def test_sigkill_while_writing_leaves_old_or_new_file(tmp_path: Path, step: str) -> None:
    env = tmp_path / ".env"
    old = secrets.token_urlsafe(48)
    env.write_text(f"# comment\nJWT_SECRET={old}\nOTHER=1\n")
    new = secrets.token_urlsafe(64)
    script = (
        "from collectors.secrets.store import open_store\n"
        "from collectors.config import SecretStoreConfig as C\n"
        f"open_store(C(kind='dotenv', path={str(env)!r})).write("
        f"{{'JWT_SECRET_PREVIOUS': {old!r}, 'JWT_SECRET': {new!r}}})\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "ULTRAWATCH_FAULT": f"store:{step}"},
        cwd=Path(__file__).parent.parent,
    )
    assert proc.returncode == -9
    values = parse_dotenv(env.read_text())
    if step == "temp-written":
        assert values == {"JWT_SECRET": old, "OTHER": "1"}
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        dotenv(env).write({"OTHER": "2"})  # the next writer cleans the leftover up
        assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    else:
        assert values == {"JWT_SECRET": new, "JWT_SECRET_PREVIOUS": old, "OTHER": "1"}


# ------------------------------------------------------------ weak secrets


def test_known_weak_builtin_and_wordlist(tmp_path: Path) -> None:
    assert known_weak("your-secret-key")
    assert known_weak("your-256-bit-secret")
    assert known_weak("ChangeMe")
    assert known_weak(secrets.token_urlsafe(64)) is None
    words = tmp_path / "jwt-secrets.txt"
    lines = [f"weak-{i:06d}-{i * 7919 % 100003}" for i in range(100_000)]
    words.write_text("\n".join(lines) + "\r\n")
    loaded = load_wordlist(str(words))
    assert len(loaded) == 100_000
    assert load_wordlist(str(words)) is loaded  # cached by path + mtime + size
    assert known_weak(lines[54321], str(words)) == "listed in the known-weak wordlist"
    assert known_weak(lines[-1], str(words))  # the last line, despite the CRLF
    assert known_weak("not-in-the-list", str(words)) is None
    words.write_text("fresh-weak-one\n")
    os.utime(words, ns=(1, 1))  # a new mtime even within the same clock tick
    assert known_weak("fresh-weak-one", str(words))
    assert known_weak("whatever", str(tmp_path / "missing.txt")) is None


@pytest.mark.parametrize(
    "value,why",
    [
        ("a" * 64, "distinct"),
        ("abcd" * 16, "distinct"),
        ("0123456789" * 5, "pattern"),
        ("password12345", "word"),
        ("Summer2024!", "word"),
        ("correct-horse-battery-staple-2024", "words"),
        ("thisismysupersecretkeyforourjwtservice!", "dictionary"),
        ("abcdefghijklmnopqrstuvwxyz0123456789", "consecutive"),
        ("Kq7-0123456789-zW4pX9mLb2Vn8Rt5Yc1", "consecutive"),
        ("zyxwvutsrqponm!Q7wE3rT9yU1iO5pA2sD6", "consecutive"),
        ("correcthorsebatterystaplecorrecthorse", "12-character sequence repeated"),
    ],
)
def test_low_entropy_is_flagged(value: str, why: str) -> None:
    reason = low_entropy(value)
    assert reason is not None and why in reason


def test_random_secrets_are_not_flagged() -> None:
    for _ in range(300):
        assert low_entropy(secrets.token_urlsafe(64)) is None
        assert low_entropy(secrets.token_hex(32)) is None
    assert entropy_bits(secrets.token_urlsafe(64)) > 300
