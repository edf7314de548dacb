"""A provider's video streamed through the relay to a door's caller (``/content``), fetched
the way the copier fetches it (``relay.net.downloads``): every connection checked by the
network policy, no credentials sent, the body passed on chunk by chunk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import httpcore
import httpx
from starlette.responses import StreamingResponse

from relay.errors import ProviderUnavailable
from relay.net.downloads import download_pool
from relay.net.guard import DestinationGuard

TIMEOUTS: Final = {"connect": 10.0, "read": 60.0, "write": 60.0, "pool": 10.0}
_PASSED_ON: Final = ("content-type", "content-length", "etag", "last-modified")


async def relayed(url: str, guard: DestinationGuard) -> StreamingResponse:
    """The file at ``url``, streamed; ``ProviderUnavailable`` (502) when it cannot be had."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https"):
        raise ProviderUnavailable("the provider's link is not an http(s) URL")
    target = httpcore.URL(
        scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path
    )
    # One pool per download, closed with it: a door's downloads are rare, and nothing is
    # left open for the app's shutdown to find.
    pool = download_pool(guard, max_connections=1)
    try:
        response = await pool.handle_async_request(
            httpcore.Request(
                "GET",
                target,
                headers=[(b"Host", parsed.netloc), (b"User-Agent", b"seedance-relay/0.1")],
                extensions={"timeout": TIMEOUTS},
            )
        )
    except Exception as exc:
        await pool.aclose()
        raise ProviderUnavailable(
            f"the provider's video could not be fetched ({type(exc).__name__})"
        ) from None
    if response.status != 200:
        await response.aclose()
        await pool.aclose()
        raise ProviderUnavailable(f"the provider's video link answered HTTP {response.status}")
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in response.headers
        if name.decode("latin-1").lower() in _PASSED_ON
    }

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_stream():
                yield chunk
        finally:
            await response.aclose()
            await pool.aclose()

    return StreamingResponse(body(), 200, headers=headers)
