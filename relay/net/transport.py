"""The relay's httpx transport: HTTP/1.1 with keep-alive pooling on asyncio protocols, with
responses parsed by httptools (llhttp, the C parser uvicorn uses).

httpx stays the API: ``httpx.Request`` in, ``httpx.Response`` out, one transport shared by
the provider client and the delivery engine. Underneath, the relay only ever makes small,
buffered exchanges (a webhook POST, a provider's JSON call), so each one is a single write
of the serialized request and a parse of the reply with no streaming layers; in
benchmarks/delivery.py this is what lets durable deliveries keep pace with a bare aiohttp
loop, where httpx's default transport or httpx-aiohttp cost two to four times as much CPU
per request.

What it does not do, on purpose: proxies, HTTP/2, ``Expect: 100-continue``, ``HEAD``, and
following redirects (the relay never follows them). Bodies are read whole, up to a bound.

With a ``guard`` (the delivery engine's transport: webhooks go where callers say), each new
connection first resolves the host and checks every address against the network policy
(``relay.net.guard``), then connects to a checked address, never to the name again (so DNS
rebinding cannot slip a private address in between); the Host header and TLS (SNI and the
certificate check) still use the name. A refused host raises ``DestinationRefused`` and
nothing is sent. Provider calls go through a transport without a guard: their base URLs are
the operator's own configuration.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Sequence

import httptools
import httpx

from relay.net.guard import DestinationGuard, DestinationRefused, Refused

BODY_LIMIT = "relay.body_limit"
"""Request extension: keep at most this many bytes of the response body (a webhook attempt
keeps a snippet). Past it the rest is read and dropped, up to ``DISCARD_LIMIT``."""

RESENDABLE = "relay.resendable"
"""Request extension: a non-idempotent request that may still be sent twice, so a stale
kept-alive connection is retried once. Webhooks do not use it: a receiver that read the
request and died before answering would get it twice within one recorded attempt; a failed
attempt is recorded and retried on the schedule instead, where it is visible."""

TOTAL_TIMEOUT = "relay.total_timeout"
"""Request extension: seconds the whole exchange may take. httpx's timeouts are per phase,
so a receiver dripping one byte at a time would otherwise hold an attempt forever."""

DEFAULT_BODY_LIMIT = 8 * 1024 * 1024
DISCARD_LIMIT = 64 * 1024 * 1024
"""A response larger than this is cut off with its connection."""

Origin = tuple[bytes, str, int]

SURE_IDLE = 1.0
"""Seconds a kept-alive connection may have been idle and still take a request that must
not be sent twice."""


class RelayTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_expiry: float = 30.0,
        verify: ssl.SSLContext | bool = True,
        guard: DestinationGuard | None = None,
    ) -> None:
        self._guard = guard
        self._slots = asyncio.Semaphore(max_connections)
        self._keepalive = keepalive_expiry
        self._ssl = (
            verify
            if isinstance(verify, ssl.SSLContext)
            else httpx.create_ssl_context(verify=verify)
        )
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._closed = False
        self._swept = time.monotonic()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        url = request.url
        scheme = url.raw_scheme
        if scheme not in (b"http", b"https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
        if request.method == "HEAD":
            raise httpx.UnsupportedProtocol("HEAD is not supported by this transport")
        # The IDNA-encoded host httpx computed: what the Host header names is exactly where
        # the connection goes (asyncio would re-encode a Unicode name under IDNA 2003).
        host = url.raw_host.decode("ascii")
        origin: Origin = (scheme, host, url.port or (443 if scheme == b"https" else 80))
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        total = request.extensions.get(TOTAL_TIMEOUT) or timeouts.get("read")
        limit = int(request.extensions.get(BODY_LIMIT, DEFAULT_BODY_LIMIT))
        payload = _serialize(request, await request.aread())
        if self._slots.locked():  # the timeout costs only when there is a wait
            try:
                async with asyncio.timeout(timeouts.get("pool")):
                    await self._slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout(
                    "no connection slot came free in time", request=request
                ) from None
        else:
            await self._slots.acquire()
        try:
            if self._closed:  # closed while this request waited for a slot
                raise RuntimeError("the transport is closed")
            conn, reused = await self._connect(origin, timeouts.get("connect"), request)
            try:
                reply = await conn.exchange(payload, limit, request, total)
            except httpx.TransportError:
                conn.close()
                if not (reused and not conn.answered and self._may_resend(request)):
                    raise
                # A kept-alive connection the server closed just as it was reused (its
                # keep-alive timeout and ours crossed): nothing was answered, so the request
                # goes once more on a new connection.
                conn, _ = await self._connect(origin, timeouts.get("connect"), request, fresh=True)
                try:
                    reply = await conn.exchange(payload, limit, request, total)
                except BaseException:
                    conn.close()
                    raise
            except BaseException:
                conn.close()
                raise
            if reply.keep_alive and conn.usable and not self._closed:
                conn.idle_since = time.monotonic()
                self._idle.setdefault(origin, []).append(conn)
            else:
                conn.close()
        finally:
            self._slots.release()
        return httpx.Response(
            status_code=reply.status,
            headers=reply.headers,
            stream=httpx.ByteStream(reply.body),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reply.reason},
        )

    @staticmethod
    def _may_resend(request: httpx.Request) -> bool:
        """Whether sending twice is harmless: idempotent methods, and requests that say so;
        never a provider's create."""
        return request.method in ("GET", "PUT", "DELETE", "OPTIONS") or bool(
            request.extensions.get(RESENDABLE)
        )

    async def _connect(
        self,
        origin: Origin,
        connect_timeout: float | None,
        request: httpx.Request,
        *,
        fresh: bool = False,
    ) -> tuple[_Connection, bool]:
        """A connection to ``origin``, and whether it is a kept-alive one being reused."""
        now = time.monotonic()
        if now - self._swept > self._keepalive:
            self._sweep(now)
        idle = None if fresh else self._idle.get(origin)
        # A request that may not be sent twice (a create, a webhook) goes only on a connection
        # idle so briefly that the server cannot have closed it meanwhile: servers close idle
        # ones after a few seconds (uvicorn 5 s), and a request that crosses such a close
        # cannot tell whether it was processed.
        fresh_for = (
            self._keepalive if self._may_resend(request) else min(self._keepalive, SURE_IDLE)
        )
        while idle:
            conn = idle[-1]  # the most recently idle
            if not conn.usable or now - conn.idle_since >= self._keepalive:
                idle.pop().close()
                continue
            if now - conn.idle_since < fresh_for:
                return idle.pop(), True
            break  # too long idle for this request, and the others longer still
        scheme, host, port = origin
        try:
            async with asyncio.timeout(connect_timeout):
                targets: Sequence[str] = (host,)
                if self._guard is not None:
                    checked = await self._guard.resolve(host, port)
                    if isinstance(checked, Refused):
                        raise DestinationRefused(checked.message, request=request)
                    targets = checked.addresses
                conn = await self._open_to(
                    targets,
                    host,
                    port,
                    scheme == b"https",
                    request,
                    numeric=self._guard is not None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"could not connect to {host}:{port} within {connect_timeout:g} s", request=request
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(
                f"could not connect to {host}:{port}: {exc}", request=request
            ) from None
        return conn, False

    async def _open_to(
        self,
        targets: Sequence[str],
        host: str,
        port: int,
        tls: bool,
        request: httpx.Request,
        *,
        numeric: bool,
    ) -> _Connection:
        """A connection to the first of ``targets`` that answers, speaking TLS for ``host``.
        ``numeric``: the targets are checked addresses, which must never be resolved (as a
        name) again."""
        loop = asyncio.get_running_loop()
        failure: OSError | None = None
        for target in targets:
            try:
                _, conn = await loop.create_connection(
                    lambda: _Connection(self._open, request),
                    target,
                    port,
                    ssl=self._ssl if tls else None,
                    server_hostname=host if tls else None,
                    flags=socket.AI_NUMERICHOST if numeric else 0,
                )
            except OSError as exc:  # ssl.SSLError included
                failure = exc
                continue
            return conn
        assert failure is not None
        raise failure

    def _sweep(self, now: float) -> None:
        """Close idle connections past their expiry, whatever origin they belong to (a
        one-off callback host must not keep a socket open forever)."""
        self._swept = now
        for origin, idle in list(self._idle.items()):
            keep = [c for c in idle if c.usable and now - c.idle_since < self._keepalive]
            for conn in idle:
                if conn not in keep:
                    conn.close()
            if keep:
                self._idle[origin] = keep
            else:
                del self._idle[origin]

    async def aclose(self) -> None:
        self._closed = True
        self._idle.clear()
        for conn in list(self._open):
            conn.close()


class _Reply:
    __slots__ = ("body", "headers", "keep_alive", "reason", "status")

    def __init__(
        self,
        status: int,
        reason: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        keep_alive: bool,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; one exchange at a time."""

    def __init__(self, registry: set[_Connection], request: httpx.Request) -> None:
        self._registry = registry
        self._request = request
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[_Reply] | None = None
        self.usable = False
        self.idle_since = 0.0
        self.answered = False
        """Whether any byte of a reply to the current request has arrived."""
        self._reset(0)

    def _reset(self, limit: int) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._limit = limit
        self._new_message()

    def _new_message(self) -> None:
        self._complete = False
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._kept = 0
        self._seen = 0
        self._headers_done = False
        self._delimited = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = transport  # type: ignore[assignment]
        self.usable = True
        self._registry.add(self)

    def data_received(self, data: bytes) -> None:
        self.answered = True
        if self._waiter is None:
            # Bytes while idle: the server broke the protocol; this connection is done.
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(
                httpx.RemoteProtocolError(
                    "the server switched protocols (101)", request=self._request
                )
            )
        except httptools.HttpParserError as exc:
            self._fail(
                httpx.RemoteProtocolError(f"malformed HTTP response: {exc}", request=self._request)
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self._registry.discard(self)
        if self._waiter is None or self._waiter.done():
            return
        if self._headers_done and not self._delimited:
            # A body delimited by the end of the connection (no length, not chunked).
            self._finish(keep_alive=False)
        else:
            self._fail(
                httpx.RemoteProtocolError(
                    "the server closed the connection before the response was complete",
                    request=self._request,
                )
            )

    # the exchange

    async def exchange(
        self, payload: bytes, limit: int, request: httpx.Request, total: float | None
    ) -> _Reply:
        """Send ``payload`` and read the reply, all within ``total`` seconds (one timer
        handle: asyncio.timeout() per request showed up in profiles)."""
        assert self._transport is not None
        self._request = request
        self._reset(limit)
        self.answered = False
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        timer = None if total is None else loop.call_later(total, self._time_out, total)
        self._transport.write(payload)
        try:
            return await self._waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _time_out(self, total: float) -> None:
        self._fail(
            httpx.ReadTimeout(f"no complete answer within {total:g} s", request=self._request)
        )

    def close(self) -> None:
        self.usable = False
        if self._transport is not None:
            self._transport.close()

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self._complete:
            # A second response nobody asked for: the server broke the protocol, so this
            # connection must not carry another request. The reply already returned stays
            # as it was (its fields are copies).
            self.usable = False

    def on_status(self, status: bytes) -> None:
        if not self._complete:
            self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._complete:
            return
        self._headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" or (
            lowered == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self._delimited = True

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        if self._complete:
            return
        self._seen += len(body)
        if self._kept < self._limit:
            part = body[: self._limit - self._kept]
            self._body.append(part)
            self._kept += len(part)
        if self._seen > DISCARD_LIMIT:
            self._finish(keep_alive=False)
            self.close()

    def on_message_complete(self) -> None:
        if not self._complete:
            self._finish(keep_alive=self._parser.should_keep_alive())

    def _finish(self, *, keep_alive: bool) -> None:
        self._complete = True
        if self._waiter is not None and not self._waiter.done():
            status = self._parser.get_status_code()
            if status < 200 and status != 101:
                # An interim answer (100 Continue, 103 Early Hints): RFC 9110 has clients
                # skip it and read on for the final response on the same connection.
                self._new_message()
                return
            self._waiter.set_result(
                _Reply(status, self._reason, list(self._headers), b"".join(self._body), keep_alive)
            )

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()


def _serialize(request: httpx.Request, body: bytes) -> bytes:
    target = request.url.raw_path or b"/"
    head = [b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), target)]
    has_length = has_host = False
    for name, value in request.headers.raw:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            continue  # the body is buffered whole: it is sent with a Content-Length
        if lowered == b"content-length":
            has_length = True
        elif lowered == b"host":
            has_host = True
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name:
            raise httpx.LocalProtocolError(f"invalid header {name!r}", request=request)
        head.append(b"%s: %s\r\n" % (name, value))
    if not has_host:  # httpx adds Host only to requests it encodes itself
        head.append(b"Host: %s\r\n" % request.url.netloc)
    if body and not has_length:
        head.append(b"Content-Length: %d\r\n" % len(body))
    head.append(b"\r\n")
    head.append(body)
    return b"".join(head)
