"""A table row's record (what the detail view shows and actions read) built from a
reading's typed data only when someone looks at it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import msgspec


class StructRecord(Mapping[str, Any]):
    """`head`, then the fields of a msgspec Struct as plain JSON values (nested Structs
    as dicts), then `tail`; later keys win. Converted on first use: a round builds a
    record for every row (hundreds), and the engineer opens one now and then."""

    __slots__ = ("_data", "_head", "_items", "_tail")

    def __init__(
        self, head: Mapping[str, Any], data: msgspec.Struct | None, tail: Mapping[str, Any]
    ) -> None:
        self._head, self._data, self._tail = head, data, tail
        self._items: dict[str, Any] | None = None

    def _built(self) -> dict[str, Any]:
        if self._items is None:
            body = msgspec.to_builtins(self._data) if self._data is not None else {}
            self._items = {**self._head, **body, **self._tail}
        return self._items

    def __getitem__(self, key: str) -> Any:
        return self._built()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())

    def __repr__(self) -> str:
        return f"StructRecord({self._built()!r})"
