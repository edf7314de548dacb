"""The httpx transport the relay sends everything through: httpx-aiohttp's, with its hot path
trimmed for small request/response exchanges.

httpx stays the API (``httpx.Request`` in, ``httpx.Response`` out, one transport shared by the
provider client and the delivery engine); aiohttp does the I/O. Against the upstream
``handle_async_request`` this one hands aiohttp plain header pairs instead of an
``httpx.Headers`` (whose per-key lookups showed up first in profiles), reuses timeout
objects, never keeps cookies, and reads the (bounded) body before returning, so responses
need no stream wrapper. Measured in benchmarks/delivery.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions

BODY_LIMIT = "relay.body_limit"
"""Request extension: read at most this many bytes of the response body (the rest of a larger
body is dropped with its connection). Webhook attempts keep only a snippet."""

DEFAULT_BODY_LIMIT = 8 * 1024 * 1024

TOTAL_TIMEOUT = "relay.total_timeout"
"""Request extension: seconds the whole exchange may take (httpx's timeouts are per phase,
so a receiver dripping one byte at a time would otherwise hold an attempt forever)."""


class RelayTransport(AiohttpTransport):
    def __init__(self, *, max_connections: int, keepalive_expiry: float = 30.0) -> None:
        super().__init__(
            limits=httpx.Limits(max_connections=max_connections,
                                keepalive_expiry=keepalive_expiry),
            trust_env=False, client=self._new_session)
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self.limits.max_connections or 0,
                                         keepalive_timeout=self.limits.keepalive_expiry,
                                         ssl=self.ssl_context)
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                     auto_decompress=True, trust_env=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        session = self.client
        limit = int(request.extensions.get(BODY_LIMIT, DEFAULT_BODY_LIMIT))
        with map_aiohttp_exceptions(), _total_timeout():
            async with session.request(
                request.method, str(request.url), headers=request.headers.multi_items(),
                data=request.content or None, allow_redirects=False,
                timeout=self._timeout(request.extensions.get("timeout", {}),
                                      request.extensions.get(TOTAL_TIMEOUT)),
            ) as response:
                body = await _read_at_most(response, limit)
                return httpx.Response(status_code=response.status,
                                      headers=_plain_headers(response), content=body,
                                      request=request)

    def _timeout(self, spec: dict[str, Any], total: float | None) -> aiohttp.ClientTimeout:
        key = (spec.get("connect"), spec.get("read"), spec.get("pool"), total)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                sock_connect=key[0], sock_read=key[1], connect=key[2], total=total)
        return timeout


@contextlib.contextmanager
def _total_timeout() -> Iterator[None]:
    """aiohttp's total timeout surfaces as a bare ``TimeoutError``: make it httpx's."""
    try:
        yield
    except TimeoutError as exc:
        raise httpx.ReadTimeout("the exchange took longer than its total timeout") from exc


def _plain_headers(response: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    # aiohttp already decompressed the body: the encoding headers no longer describe it.
    return [(k, v) for k, v in response.raw_headers
            if k.lower() not in (b"content-encoding", b"content-length",
                                 b"transfer-encoding")]


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
