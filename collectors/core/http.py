"""The one shared HTTP client: bounded concurrency, per-request timeout, a
response size cap, a redirect limit, TLS verification on by default."""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from collectors.core.settings import HttpConfig

__all__ = ["Fetched", "HttpClient", "HttpConfig"]

URL_CACHE_MAX = 4096


@dataclass(frozen=True, slots=True)
class Fetched:
    """A response read up to the size cap, or the reason there was none."""

    url: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    truncated: bool = False
    elapsed_ms: float = 0.0
    error: str | None = None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


class HttpClient:
    """One shared client and one semaphore for every collector and action.

    Two engines behind the same `Fetched` API: aiohttp (the default) and httpx.
    httpx's connection pool costs O(connections) per request (3-6 ms of CPU per
    request at 64 connections, see bench/services_poll.py); aiohttp polls 500
    endpoints at about 0.1 ms each, so it is the default.
    """

    def __init__(self, settings: HttpConfig) -> None:
        self.settings = settings
        self._client: Any = None
        self._sem: asyncio.Semaphore | None = None
        self._urls: dict[str, Any] = {}
        # The engine is imported here, when the collectors are built, not by the first
        # request: aiohttp's import (~0.3 s cold, with the TLS contexts it loads) was
        # counted in a one-shot check's round and delayed its first 64 requests.
        if settings.engine == "httpx":
            import httpx  # noqa: F401
        else:
            import aiohttp  # noqa: F401

    def _ssl(self) -> ssl.SSLContext | bool:
        s = self.settings
        if not s.verify and not s.client_cert:
            return False
        if s.verify and not s.ca_file and not s.client_cert and s.engine != "httpx":
            # The system's trust store, as create_default_context() loads it: aiohttp
            # loaded it once at import (True selects that context); another load costs
            # ~20 ms of a cold check and is needed by no http:// target.
            return True
        ctx = ssl.create_default_context(cafile=s.ca_file if s.verify else None)
        if not s.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if s.client_cert:
            ctx.load_cert_chain(s.client_cert, s.client_key)
        return ctx

    def _ensure(self) -> tuple[Any, asyncio.Semaphore]:
        if self._client is None or self._sem is None:
            s = self.settings
            if s.engine == "httpx":
                import httpx

                self._client = httpx.AsyncClient(
                    verify=self._ssl(),
                    timeout=httpx.Timeout(s.timeout),
                    follow_redirects=True,
                    max_redirects=s.max_redirects,
                    limits=httpx.Limits(
                        max_connections=s.concurrency, max_keepalive_connections=s.concurrency
                    ),
                    headers={"User-Agent": "ultrawatch"},
                    # Like aiohttp below: health polls go straight to the targets,
                    # never through an HTTP(S)_PROXY from the environment.
                    trust_env=False,
                )
            else:
                import aiohttp

                self._client = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=s.concurrency, ssl=self._ssl()),
                    timeout=aiohttp.ClientTimeout(total=None),  # bounded in request()
                    headers={"User-Agent": "ultrawatch"},
                    trust_env=False,
                )
            self._sem = asyncio.Semaphore(s.concurrency)
        return self._client, self._sem

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
        timeout: float | None = None,
        max_body: int | None = None,
    ) -> Fetched:
        """Never raises for network trouble: the reason is in `Fetched.error`."""
        client, sem = self._ensure()
        cap = self.settings.max_body if max_body is None else max_body
        limit = self.settings.timeout if timeout is None else timeout
        read = self._read_httpx if self.settings.engine == "httpx" else self._read_aiohttp
        async with sem:
            t0 = time.perf_counter()
            try:
                # The whole exchange, trickling bodies included, is bounded; in this
                # task (asyncio.timeout), not a new one per request as wait_for makes.
                async with asyncio.timeout(limit):
                    return await read(client, method, url, headers, json, cap, t0)
            except TimeoutError:
                return Fetched(url, error=f"timed out after {limit:g}s", elapsed_ms=_ms(t0))
            except Exception as e:  # every transport failure is a reading, not a crash
                return Fetched(url, error=_describe(e), elapsed_ms=_ms(t0))

    async def _read_aiohttp(
        self,
        client: Any,
        method: str,
        url: str,
        headers: dict[str, str] | None,
        json: Any,
        cap: int,
        t0: float,
    ) -> Fetched:
        async with client.request(
            method,
            self._url(url),
            headers=headers,
            json=json,
            allow_redirects=True,
            max_redirects=self.settings.max_redirects,
        ) as resp:
            body, truncated = await _read_capped(resp.content.iter_chunked(65536), cap)
            if truncated:
                resp.close()  # drop the connection rather than drain a huge body
            return Fetched(
                url,
                status=resp.status,
                headers={k.lower(): v for k, v in resp.headers.items()},
                body=body,
                truncated=truncated,
                elapsed_ms=_ms(t0),
            )

    def _url(self, url: str) -> Any:
        """The parsed URL, kept per URL string: yarl's own cache holds 128, so a round
        of 500 endpoints parsed every URL again (~20 us each)."""
        parsed = self._urls.get(url)
        if parsed is None:
            from yarl import URL

            if len(self._urls) >= URL_CACHE_MAX:
                self._urls.clear()  # bounded: actions may fetch URLs no round repeats
            parsed = self._urls[url] = URL(url)
        return parsed

    async def _read_httpx(
        self,
        client: Any,
        method: str,
        url: str,
        headers: dict[str, str] | None,
        json: Any,
        cap: int,
        t0: float,
    ) -> Fetched:
        async with client.stream(method, url, headers=headers, json=json) as resp:
            body, truncated = await _read_capped(resp.aiter_bytes(), cap)
            return Fetched(
                url,
                status=resp.status_code,
                headers={k.lower(): v for k, v in resp.headers.items()},
                body=body,
                truncated=truncated,
                elapsed_ms=_ms(t0),
            )

    async def get(self, url: str, **kwargs: Any) -> Fetched:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> Fetched:
        return await self.request("POST", url, **kwargs)

    async def aclose(self) -> None:
        client, self._client, self._sem = self._client, None, None
        if client is not None:
            if self.settings.engine == "httpx":
                await client.aclose()
            else:
                await client.close()


async def _read_capped(chunks: AsyncIterator[bytes], cap: int) -> tuple[bytes, bool]:
    """The body up to `cap` bytes (decoded, so the cap bounds memory), and whether
    there was more; the rest is never read."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(parts)[:cap], True
    return b"".join(parts), False


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)


_SSL_NOTE = re.compile(r" ssl:(?:<[^>]*>|\S+)")
_PLAIN = {
    "TooManyRedirects": "too many redirects",
    "ClientConnectorCertificateError": "TLS certificate not trusted",
}


def _describe(e: BaseException) -> str:
    """One line naming the failure and its root cause ("ServerDisconnectedError:
    connection reset by peer"): clients often wrap the useful OS error with empty text."""
    name = type(e).__name__
    # aiohttp names its TLS setting in every connect error, "ssl:default" on plain HTTP too.
    parts = [_PLAIN[name]] if name in _PLAIN else [_SSL_NOTE.sub("", str(e)).strip()]
    cause: BaseException | None = (
        getattr(e, "certificate_error", None) or e.__cause__ or e.__context__
    )
    for _ in range(6):
        if cause is None:
            break
        text = str(cause).strip()
        if isinstance(cause, ssl.SSLError):
            detail = getattr(cause, "verify_message", None) or ""
            text = f"{cause.reason or 'TLS error'} {detail}".strip()
        elif isinstance(cause, OSError) and cause.errno:
            text = os.strerror(cause.errno).lower()  # "connection refused", not "[Errno 111].."
        elif isinstance(cause, OSError) and cause.strerror:
            text = cause.strerror.lower()
        if text and not any(text.lower() in p.lower() for p in parts):
            parts.append(text)
        cause = cause.__cause__ or cause.__context__
    text = ": ".join(p for p in parts if p) or "no details"
    return f"{name}: {text}".splitlines()[0][:300]
