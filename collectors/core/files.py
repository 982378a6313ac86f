"""Writing a file so that a reader, a crash or a power cut never sees half of it.

One writer for every file ultrawatch replaces (the secret store, `check --output`,
the TUI's hand-off note, the demo's config and .env): the new content goes to a
temp file beside the target, is fsynced, takes the target's mode and owner, and is
renamed over it; the directory is fsynced after the rename. A temp file is never
left behind by an error, and one left by a writer that was killed (it may hold a
secret) is removed by the next writer.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes | str,
    *,
    mode: int | None = None,
    default_mode: int = 0o600,
    make_parents: bool = False,
    clean_stale: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> None:
    """Replace `path` with `data` (str is written as UTF-8): readers see the old file
    or the new one, never a mix, and after return the new one survives a crash.

    - `mode`: the new file's permission bits, always. Without it, an existing file
      keeps its own (and its owner, when we may set it); a new file gets
      `default_mode` (0600: what we write often holds a DSN or a secret).
    - A symlink at `path` is followed: the file it points to is replaced.
    - `make_parents`: create missing parent directories first.
    - `clean_stale`: remove temp files of this target left by a killed writer. Pass
      False where two writers may replace the same file at once without a lock
      (each would remove the other's temp file).
    - `on_step`: called with "temp-written" (before the rename) and "renamed" (before
      the directory fsync); the crash tests kill the process there.
    """
    target = Path(os.path.realpath(path))
    parent = target.parent
    if make_parents:
        parent.mkdir(parents=True, exist_ok=True)
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    if clean_stale:
        for stale in parent.glob(f".{target.name}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        try:
            _prepare(fd, st, mode, default_mode)
            _write_all(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        if on_step is not None:
            on_step("temp-written")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if on_step is not None:
        on_step("renamed")
    fsync_dir(parent)


def _prepare(fd: int, st: os.stat_result | None, mode: int | None, default_mode: int) -> None:
    """The temp file gets its final mode and owner before any byte is written to it."""
    if mode is not None:
        os.fchmod(fd, mode)
    else:
        os.fchmod(fd, stat.S_IMODE(st.st_mode) if st else default_mode)
    if st is not None and (st.st_uid != os.geteuid() or st.st_gid != os.getegid()):
        with contextlib.suppress(PermissionError):
            os.fchown(fd, st.st_uid, st.st_gid)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename (or a new file) in `path` durable."""
    dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
