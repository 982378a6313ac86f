"""Secret stores: read them, and write them atomically.

Three kinds (`[secrets] store = {kind, path}`):
- "dotenv": one KEY=VALUE file (comments, `export`, quoting preserved on rewrite);
- "dir": a directory with one file per secret (how Docker and Kubernetes mount them);
- "env": the process environment, read-only.

Writes never leave a half-written store: a temp file in the same directory,
fsync, rename over the original, fsync of the directory; mode and owner of the
original are kept (0600 for a new file). Values never leave this module except
through `get`/`items`: use `fingerprint()` for anything shown.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from collectors.core.files import atomic_write as write_file
from collectors.core.files import fsync_dir
from collectors.secrets.config import SecretStoreConfig

FAULT_ENV = "ULTRAWATCH_FAULT"


def fingerprint(value: str) -> str:
    """`sha256:` + first 12 hex digits: the only way a secret is ever shown."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]


def fault_point(area: str, step: str, n: int | None = None) -> None:
    """Fault injection for crash tests: ULTRAWATCH_FAULT=<area>:<step> SIGKILLs us here.

    Numbered points (`n`, e.g. `store:between-files:3`) let a test kill at each of a
    series of boundaries; the bare name kills at the first of them.
    Off unless the variable is set; SIGKILL (not an exception) so no cleanup runs,
    exactly like a power cut or the OOM killer.
    """
    want = os.environ.get(FAULT_ENV)
    if not want:
        return
    here = f"{area}:{step}"
    if (want == here and n in (None, 1)) or (n is not None and want == f"{here}:{n}"):
        os.kill(os.getpid(), signal.SIGKILL)


class StoreError(Exception):
    """The store cannot be read or written (message never contains a value)."""


class StoreReadOnly(StoreError):
    pass


class SecretStore(Protocol):
    # read-only for the protocol: a store's kind, path and writability never change
    @property
    def kind(self) -> str: ...

    @property
    def path(self) -> Path | None: ...

    @property
    def writable(self) -> bool: ...

    def get(self, key: str) -> str | None: ...

    def items(self) -> dict[str, str]: ...

    def write(self, updates: Mapping[str, str | None]) -> None: ...

    def mtime(self, key: str | None = None) -> float | None: ...

    def exists(self) -> bool: ...

    def describe(self) -> dict[str, str | None]: ...

    def lock(self) -> contextlib.AbstractContextManager[None]: ...


def open_store(config: SecretStoreConfig) -> SecretStore:
    if config.kind == "env":
        return EnvStore()
    if not config.path:
        raise StoreError(f"a {config.kind!r} store needs a path")
    path = Path(os.path.expanduser(config.path))
    if config.kind == "dir":
        return DirStore(path)
    return DotenvStore(path)


# ------------------------------------------------------------------ helpers


def _write_order(updates: Mapping[str, str | None]) -> list[tuple[str, str | None]]:
    """Order for stores that write key by key: keep the previous secret safe first.

    *_PREVIOUS values are set first, then *_ROTATED_AT, then the rest, deletions
    last; a crash in between leaves old-or-new current plus the previous, never a
    lost previous. A key whose current value still equals its _PREVIOUS was not
    rotated yet (whatever its _ROTATED_AT says): that is how a rerun tells an
    interrupted write from a finished one.
    """

    def rank(item: tuple[str, str | None]) -> int:
        key, value = item
        if value is None:
            return 3
        if key.endswith("_PREVIOUS"):
            return 0
        # the rotation time goes before the new value: a crash in between must
        # still stop a second rotation from overwriting the previous secret
        return 1 if key.endswith("_ROTATED_AT") else 2

    return sorted(updates.items(), key=rank)


def atomic_write(path: Path, data: bytes, default_mode: int = 0o600) -> None:
    """core's atomic writer, with the store's crash points for the fault tests."""
    write_file(path, data, default_mode=default_mode, on_step=lambda s: fault_point("store", s))


class StoreLocked(StoreError):
    pass


@contextlib.contextmanager
def _flock_dir(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on a directory: one rotation at a time, across processes.

    Non-blocking: a second writer is told at once instead of waiting behind the first.
    """
    try:
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise StoreError(f"cannot open {path} to lock it: {e.strerror}") from None
    try:
        try:
            fcntl.flock(dfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreLocked(f"{path} is locked by another process writing the store") from None
        yield
    finally:
        os.close(dfd)  # closing releases the lock


# ------------------------------------------------------------------- dotenv

_LINE = re.compile(
    r"^\s*(?P<export>export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(?P<rest>.*)$"
)
_BARE_OK = re.compile(r"[A-Za-z0-9_\-.:/+=@~,%]*")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$"}


def _parse_value(rest: str) -> str:
    rest = rest.strip()
    if rest.startswith('"'):
        out: list[str] = []
        i = 1
        while i < len(rest):
            c = rest[i]
            if c == "\\" and i + 1 < len(rest):
                out.append(_ESCAPES.get(rest[i + 1], "\\" + rest[i + 1]))
                i += 2
                continue
            if c == '"':
                return "".join(out)
            out.append(c)
            i += 1
        raise ValueError("unterminated double quote")
    if rest.startswith("'"):
        end = rest.find("'", 1)
        if end < 0:
            raise ValueError("unterminated single quote")
        return rest[1:end]
    # unquoted: an inline comment starts at whitespace + '#'
    m = re.search(r"\s#", rest)
    return (rest[: m.start()] if m else rest).strip()


def _format_value(value: str) -> str:
    if _BARE_OK.fullmatch(value):
        return value
    # Single quotes are literal for Node's dotenv, python-dotenv and sh alike;
    # double-quote escapes are not read the same by all of them, so last resort.
    if not re.search(r"['\\\n\r]", value):
        return f"'{value}'"
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("$", "\\$")
    )
    return f'"{escaped}"'


def parse_dotenv(text: str) -> dict[str, str]:
    """KEY=VALUE lines; the last of duplicate keys wins. Errors name the line, never a value."""
    values: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise StoreError(f"line {n}: expected KEY=VALUE")
        try:
            values[m.group("key")] = _parse_value(m.group("rest"))
        except ValueError as e:
            raise StoreError(f"line {n} ({m.group('key')}): {e}") from None
    return values


def render_dotenv(text: str, updates: Mapping[str, str | None]) -> str:
    """`text` with `updates` applied: lines of other keys and comments stay as they were."""
    pending = dict(updates)
    done: set[str] = set()
    out: list[str] = []
    for line in text.splitlines():
        m = _LINE.match(line) if line.strip() and not line.strip().startswith("#") else None
        key = m.group("key") if m else None
        if key is None or key not in updates:
            out.append(line)
            continue
        if key in done:  # a duplicate of a key already rewritten: drop it
            continue
        done.add(key)
        value = pending.pop(key)
        if value is not None:
            prefix = m.group("export") or "" if m else ""
            out.append(f"{prefix}{key}={_format_value(value)}")
    for key, value in pending.items():
        if value is not None:
            out.append(f"{key}={_format_value(value)}")
    return "\n".join(out) + "\n"


@dataclass
class DotenvStore:
    path: Path
    kind: str = "dotenv"
    writable: bool = True

    def _text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
        except (OSError, UnicodeDecodeError) as e:
            raise StoreError(f"cannot read {self.path}: {_reason(e)}") from None

    def items(self) -> dict[str, str]:
        return parse_dotenv(self._text())

    def get(self, key: str) -> str | None:
        return self.items().get(key)

    def exists(self) -> bool:
        return self.path.exists()

    def write(self, updates: Mapping[str, str | None]) -> None:
        # One rename swaps the whole file: every update lands together or none does.
        text = self._text()
        parse_dotenv(text)  # refuse to rewrite a file we cannot parse
        new = render_dotenv(text, updates)
        parse_dotenv(new)  # what we write must read back
        atomic_write(self.path, new.encode("utf-8"))

    def mtime(self, key: str | None = None) -> float | None:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return None

    def describe(self) -> dict[str, str | None]:
        return {"kind": self.kind, "path": str(self.path)}

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return _flock_dir(self.path.parent)


# ---------------------------------------------------------------------- dir

_KEY_FILE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


@dataclass
class DirStore:
    path: Path
    kind: str = "dir"
    writable: bool = True

    def _file(self, key: str) -> Path:
        if not _KEY_FILE.fullmatch(key):
            raise StoreError(f"{key!r} is not a usable secret file name")
        return self.path / key

    def items(self) -> dict[str, str]:
        out: dict[str, str] = {}
        try:
            entries = sorted(os.scandir(self.path), key=lambda e: e.name)
        except OSError as e:
            raise StoreError(f"cannot list {self.path}: {e.strerror}") from None
        for entry in entries:
            # skip hidden files: our temp files and Kubernetes' ..data links
            if entry.name.startswith(".") or not _KEY_FILE.fullmatch(entry.name):
                continue
            if entry.is_file():  # follows symlinks
                value = self.get(entry.name)
                if value is not None:
                    out[entry.name] = value
        return out

    def get(self, key: str) -> str | None:
        try:
            data = self._file(key).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            raise StoreError(f"cannot read secret file {key}: {_reason(e)}") from None
        # mounted secrets often end with a newline that is not part of the secret
        return data[:-1] if data.endswith("\n") else data

    def exists(self) -> bool:
        return self.path.is_dir()

    def write(self, updates: Mapping[str, str | None]) -> None:
        for i, (key, value) in enumerate(_write_order(updates)):
            if i:
                # store:between-files:<i>: killed after the i-th file of this write
                fault_point("store", "between-files", i)
            f = self._file(key)
            if value is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f)
                fsync_dir(self.path)
            else:
                atomic_write(f, value.encode("utf-8"))

    def mtime(self, key: str | None = None) -> float | None:
        try:
            return (self._file(key) if key else self.path).stat().st_mtime
        except OSError:
            return None

    def describe(self) -> dict[str, str | None]:
        return {"kind": self.kind, "path": str(self.path)}

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return _flock_dir(self.path)


# ---------------------------------------------------------------------- env


@dataclass
class EnvStore:
    """The process environment: readable for the audit, never writable."""

    path: Path | None = None
    kind: str = "env"
    writable: bool = False

    def items(self) -> dict[str, str]:
        return dict(os.environ)

    def get(self, key: str) -> str | None:
        return os.environ.get(key)

    def exists(self) -> bool:
        return True

    def write(self, updates: Mapping[str, str | None]) -> None:
        raise StoreReadOnly(
            "the 'env' secret store is read-only: change the secret where the environment "
            "is defined, or configure a dotenv or dir store"
        )

    def mtime(self, key: str | None = None) -> float | None:
        return None

    def describe(self) -> dict[str, str | None]:
        return {"kind": self.kind, "path": None}

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def _reason(e: Exception) -> str:
    """Why a store could not be read; a decode error's message quotes a secret's byte."""
    if isinstance(e, UnicodeDecodeError):
        return f"not valid UTF-8 (at byte {e.start})"
    return str(e)
