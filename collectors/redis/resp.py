"""Batched RESP2 I/O for the collector's hot path, on hiredis (packing and parsing in C)."""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


def pack(*parts: Any) -> bytes:
    return hiredis.pack_command(parts)


class Replies:
    """Replies read from the connection's stream in large chunks, parsed by hiredis:
    no per-reply timeout or parser call in Python beyond one gets()."""

    def __init__(self, stream: asyncio.StreamReader, timeout: float) -> None:
        self.stream = stream
        self.timeout = timeout
        self.reader = hiredis.Reader(replyError=ResponseError)

    async def reply(self) -> Any:
        while (answer := self.reader.gets()) is False:
            try:
                async with asyncio.timeout(self.timeout):
                    data = await self.stream.read(1 << 16)
            except TimeoutError:
                raise RedisTimeoutError(f"no reply within {self.timeout:g}s") from None
            if not data:
                raise ConnectionError("connection closed by the server")
            self.reader.feed(data)
        return answer
