"""The one shared HTTP client: bounded concurrency, per-request timeout, a
response size cap, a redirect limit, TLS verification on by default."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from collectors.config import HttpConfig


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
    """Owns one httpx.AsyncClient and a semaphore shared by every collector."""

    def __init__(self, settings: HttpConfig) -> None:
        self.settings = settings
        self._client: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None

    def _ensure(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        if self._client is None or self._sem is None:
            s = self.settings
            verify: Any = s.verify
            if s.verify and s.ca_file:
                verify = ssl.create_default_context(cafile=s.ca_file)
            if s.client_cert:
                ctx = verify if isinstance(verify, ssl.SSLContext) else ssl.create_default_context()
                if not s.verify:
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                ctx.load_cert_chain(s.client_cert, s.client_key)
                verify = ctx
            self._client = httpx.AsyncClient(
                verify=verify,
                timeout=httpx.Timeout(s.timeout),
                follow_redirects=True,
                max_redirects=s.max_redirects,
                limits=httpx.Limits(
                    max_connections=s.concurrency, max_keepalive_connections=s.concurrency
                ),
                headers={"User-Agent": "ultrawatch"},
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
        async with sem:
            t0 = time.perf_counter()
            try:
                # The whole exchange, trickling bodies included, is bounded.
                return await asyncio.wait_for(
                    self._read(client, method, url, headers, json, cap, t0), limit
                )
            except TimeoutError:
                return Fetched(url, error=f"timed out after {limit:g}s", elapsed_ms=_ms(t0))
            except httpx.TooManyRedirects:
                return Fetched(url, error="too many redirects", elapsed_ms=_ms(t0))
            except httpx.HTTPError as e:
                return Fetched(url, error=_describe(e), elapsed_ms=_ms(t0))
            except (ssl.SSLError, OSError, ValueError) as e:
                return Fetched(url, error=f"{type(e).__name__}: {e}", elapsed_ms=_ms(t0))

    async def _read(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        headers: dict[str, str] | None,
        json: Any,
        cap: int,
        t0: float,
    ) -> Fetched:
        async with client.stream(method, url, headers=headers, json=json) as resp:
            chunks: list[bytes] = []
            size = 0
            truncated = False
            async for chunk in resp.aiter_bytes():  # decoded: the cap bounds memory
                chunks.append(chunk)
                size += len(chunk)
                if size > cap:
                    truncated = True
                    break  # the rest is never read
            body = b"".join(chunks)[:cap]
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
            await client.aclose()


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)


def _describe(e: httpx.HTTPError) -> str:
    """One line naming the failure and its root cause ("ReadError: connection reset by
    peer"): httpx often wraps the useful OS error a few levels down with empty text."""
    parts = [str(e).strip()]
    cause: BaseException | None = e.__cause__ or e.__context__
    for _ in range(6):
        if cause is None:
            break
        text = str(cause).strip()
        if isinstance(cause, OSError) and cause.strerror:
            text = cause.strerror.lower()
        if text and not any(text in p for p in parts):
            parts.append(text)
        cause = cause.__cause__ or cause.__context__
    text = ": ".join(p for p in parts if p) or "no details"
    return f"{type(e).__name__}: {text}".splitlines()[0][:300]
