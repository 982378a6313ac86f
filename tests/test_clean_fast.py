"""`clean` decides in C (one JSON encoding) that a reading needs no escaping; it must
give exactly what the walk over every string gives, and the very same object when
nothing changes."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.core.redact import _clean, clean
from collectors.core.settings import Name
from collectors.postgres.data import Session


class Row(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str
    note: str | None = None
    items: list[str] = msgspec.field(default_factory=list)


# Mostly plain text, with the characters that must be escaped mixed in: C0 and C1
# controls, DEL, format characters (U+202E, U+200B, U+FEFF), line separators, a
# backslash (which JSON escapes too) and non-ASCII that is fine as it is.
_CHARS = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.sampled_from(
        [
            *("\x00", "\x07", "\t", "\n", "\x1b", "\x7f", "\x85", "\u00a0", "\u2028", "\u2029"),
            *("\u202e", "\u200b", "\ufeff", "\\", "é", "日", "\U0001f600", "\U000e0001"),
        ]
    ),
)
_TEXT = st.text(_CHARS, max_size=12)
_LEAF = st.one_of(_TEXT, st.integers(-(2**70), 2**70), st.floats(), st.none(), st.booleans())
_VALUES = st.recursive(
    _LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(_TEXT, inner, max_size=4),
        st.builds(Row, name=_TEXT, note=st.none() | _TEXT, items=st.lists(_TEXT, max_size=3)),
    ),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    return msgspec.json.encode(a) == msgspec.json.encode(b)


@settings(max_examples=400, deadline=None)
@given(_VALUES)
def test_the_fast_path_gives_what_the_walk_gives(value: Any) -> None:
    fast, slow = clean(value), _clean(value)
    assert _same(fast, slow)
    assert (fast is value) == (slow is value)


def test_nothing_to_escape_returns_the_same_object_and_escapes_are_found() -> None:
    session = Session(
        pid=1,
        backend_start=0.0,
        service=Name("order-service"),  # a str subclass from the config
        application_name="order-service",
        user="app",
        database="shop",
        state="idle",
        query="select 1",
    )
    data = {"sessions": [session] * 3, "by_state": {"idle": 3}}
    assert clean(data) is data
    evil = msgspec.structs.replace(session, query="select '\x1b]0;owned\x07'")
    cleaned = clean({"sessions": [session, evil]})
    assert cleaned["sessions"][0] is session
    assert cleaned["sessions"][1].query == "select '\\x1b]0;owned\\x07'"
    assert clean({"q": "a\u202eb"}) == {"q": "a\\u202eb"}
    assert clean({"q": "del\x7f"}) == {"q": "del\\x7f"}
