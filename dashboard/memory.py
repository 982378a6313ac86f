"""Handing freed memory back to the system in long runs (glibc only).

A console left open for a shift allocates and frees the same few megabytes every
round. glibc keeps what is freed inside its heaps, and each thread that mallocs
(the processes collector's worker, Textual's driver) may get a heap of its own,
so the resident size crept up ~80 KiB a minute although Python's own objects
stayed flat (tracemalloc). Two heaps at most, and a trim once a minute, keep it
flat (bench/soak.py). Elsewhere (musl, macOS) both are no-ops."""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from typing import Any

M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h
TRIM_EVERY = 60.0  # seconds between trims: each costs a few ms at the console's size

_libc: Any = None
_looked = False
_last_trim = 0.0


def _glibc() -> Any:
    global _libc, _looked
    if not _looked:
        _looked = True
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt"):
                _libc = libc
        except OSError:
            _libc = None
    return _libc


def limit_heaps(count: int = 2) -> None:
    """At start, before threads allocate: at most `count` malloc heaps."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, count)


def trim_now_and_then(now: float | None = None) -> bool:
    """After a round: give freed heap pages back, at most once a minute."""
    global _last_trim
    libc = _glibc()
    now = time.monotonic() if now is None else now
    if libc is None or now - _last_trim < TRIM_EVERY:
        return False
    _last_trim = now
    libc.malloc_trim(0)
    return True
