"""Streamed downloads of provider output files, through the same network guard as webhooks.

The relay's own transport (``relay.net.transport``) reads bodies whole, which suits webhook
replies and provider JSON; a video of up to gigabytes must flow through in chunks. Downloads
use httpcore (httpx's engine) directly, with a network backend that resolves each new
connection's host, checks every address against the network policy (``relay.net.guard``) and
connects to a checked address, never to the name again; TLS still speaks to the name (SNI
and the certificate check). An output URL comes from a provider's answer, so a provider (or
whoever tampers with its answers) must not be able to point the relay at its own network.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpcore
import httpx

from relay.net.guard import DestinationGuard, DestinationRefused, Refused


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses the guard allows."""

    def __init__(self, guard: DestinationGuard | None) -> None:
        self._guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        targets: tuple[str, ...] = (host,)
        if self._guard is not None:
            try:
                checked = await self._guard.resolve(host, port)
            except OSError as exc:
                raise httpcore.ConnectError(f"could not resolve {host}: {exc}") from None
            if isinstance(checked, Refused):
                raise DestinationRefused(checked.message)
            targets = checked.addresses
        failure: Exception | None = None
        for target in targets:
            try:
                return await self._inner.connect_tcp(
                    target, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("downloads go over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def download_pool(
    guard: DestinationGuard | None, *, max_connections: int = 16
) -> httpcore.AsyncConnectionPool:
    """A connection pool for downloads: HTTP/1.1, keep-alive, the system's CA certificates
    (as httpx's), every connection checked by ``guard`` (None: not checked)."""
    return httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=max_connections,
        keepalive_expiry=30.0,
        network_backend=GuardedBackend(guard),
    )
