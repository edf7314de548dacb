"""RelayTransport against a scripted raw TCP server (tests/transport_server.py).

The server writes exactly the bytes each test scripts and records every request's raw bytes
and the connection it came on, so the tests see what went over the wire and how connections
were pooled. The core scenarios also run under uvloop, which is what uvicorn runs the relay
on (its transports do not subclass asyncio.Transport).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from relay.net.transport import BODY_LIMIT, RESENDABLE, SURE_IDLE, TOTAL_TIMEOUT, RelayTransport
from tests.net.transport_server import Conn, RawServer, replies, response

# --------------------------------------------------------------------------- helpers


async def send(transport: RelayTransport, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One exchange straight through the transport, the way relay/delivery.py does it.
    A hang fails the test (TimeoutError) rather than the run."""
    async with asyncio.timeout(3):
        resp = await transport.handle_async_request(httpx.Request(method, url, **kwargs))
        await resp.aread()
    return resp


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


# ------------------------------------------------- the core scenarios (asyncio and uvloop)


async def check_get() -> None:
    answer = (
        b"HTTP/1.1 200 Fine\r\nX-Thing: a b\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b"Content-Length: 5\r\n\r\nhello"
    )
    async with RawServer(replies(answer)) as server:
        transport = RelayTransport()
        try:
            resp = await send(transport, "GET", server.url + "/path/x?a=1&b=two%20words&c=")
        finally:
            await transport.aclose()

    assert resp.status_code == 200
    assert resp.reason_phrase == "Fine"
    assert resp.http_version == "HTTP/1.1"
    assert resp.headers.multi_items() == [
        ("x-thing", "a b"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
        ("content-length", "5"),
    ]
    assert resp.content == b"hello"

    [req] = server.requests
    assert req.request_line == b"GET /path/x?a=1&b=two%20words&c= HTTP/1.1"
    assert req.header("host") == [f"127.0.0.1:{server.port}".encode()]
    assert req.header("content-length") == []  # no body, no length
    assert req.header("transfer-encoding") == []
    assert req.body == b""


async def check_post() -> None:
    body = b'{"event":"video.completed","n":1}'
    async with RawServer(replies(response(201, b"created"))) as server:
        transport = RelayTransport()
        try:
            resp = await send(
                transport,
                "POST",
                server.url + "/hooks?id=7",
                content=body,
                headers={"Content-Type": "application/json"},
            )
        finally:
            await transport.aclose()

    assert resp.status_code == 201
    assert resp.content == b"created"
    [req] = server.requests
    assert req.request_line == b"POST /hooks?id=7 HTTP/1.1"
    assert req.header("host") == [f"127.0.0.1:{server.port}".encode()]
    assert req.header("content-length") == [str(len(body)).encode()]
    assert req.header("content-type") == [b"application/json"]
    assert req.header("transfer-encoding") == []
    assert req.body == body


async def check_keepalive_three_requests_one_connection() -> None:
    answers = [response(200, b"one"), response(200, b"two"), response(200, b"three")]
    async with RawServer(replies(*answers)) as server:
        transport = RelayTransport()
        try:
            bodies = [(await send(transport, "GET", f"{server.url}/{i}")).content for i in range(3)]
        finally:
            await transport.aclose()
    assert bodies == [b"one", b"two", b"three"]
    assert [r.request_line for r in server.requests] == [
        b"GET /0 HTTP/1.1",
        b"GET /1 HTTP/1.1",
        b"GET /2 HTTP/1.1",
    ]
    assert [r.conn for r in server.requests] == [0, 0, 0]
    assert len(server.conns) == 1


async def check_a_create_never_goes_on_a_connection_the_server_may_be_closing() -> None:
    # Idle past SURE_IDLE: a GET (sent again if the connection turns out closed) reuses it,
    # a POST (which must not be sent twice) takes a new one; a POST right after reuses.
    answers = [response(200, b"1"), response(200, b"2"), response(200, b"3"), response(200, b"4")]
    async with RawServer(replies(*answers)) as server:
        transport = RelayTransport()
        try:
            await send(transport, "GET", f"{server.url}/a")
            await asyncio.sleep(SURE_IDLE + 0.2)
            await send(transport, "GET", f"{server.url}/b")
            await asyncio.sleep(SURE_IDLE + 0.2)
            await send(transport, "POST", f"{server.url}/c", content=b"{}")
            await send(transport, "POST", f"{server.url}/d", content=b"{}")
        finally:
            await transport.aclose()
    assert [r.conn for r in server.requests] == [0, 0, 1, 1]


async def check_connection_close_opens_new_connection() -> None:
    answers = [response(200, b"bye", ("Connection", "close")), response(200, b"again")]
    async with RawServer(replies(*answers)) as server:
        transport = RelayTransport()
        try:
            first = await send(transport, "GET", server.url + "/a")
            second = await send(transport, "GET", server.url + "/b")
        finally:
            await transport.aclose()
    assert (first.content, second.content) == (b"bye", b"again")
    assert [r.conn for r in server.requests] == [0, 1]


async def check_server_closing_idle_connection() -> None:
    # The server closes each connection right after its response (without saying
    # "Connection: close"), and the test yields to the loop for a moment so the FIN is
    # processed (connection_lost marks the pooled connection unusable) before the next
    # request. Without that pause there is an inherent race, in this transport as in any
    # HTTP/1.1 client: a close that arrives after the pooled connection was picked up
    # again surfaces as a RemoteProtocolError on that request.
    async with RawServer(
        replies(response(200, b"1"), response(200, b"2"), close_after=True)
    ) as server:
        transport = RelayTransport()
        try:
            first = await send(transport, "GET", server.url + "/")
            await asyncio.sleep(0.05)
            second = await send(transport, "GET", server.url + "/")
        finally:
            await transport.aclose()
    assert (first.status_code, first.content) == (200, b"1")
    assert (second.status_code, second.content) == (200, b"2")
    assert [r.conn for r in server.requests] == [0, 1]


async def check_chunked_response() -> None:
    async def handler(conn: Conn) -> None:
        await conn.read_request()
        # Split across writes, mid-chunk and mid-size-line, to exercise the parser.
        data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(
            b"hello", b", ", b"world" * 3
        )
        for piece in (data[:20], data[20:50], data[50:57], data[57:]):
            await conn.send(piece)
            await asyncio.sleep(0.01)
        await conn.read_request()
        await conn.send(response(200, b"next"))
        await conn.wait_eof()

    async with RawServer(handler) as server:
        transport = RelayTransport()
        try:
            resp = await send(transport, "GET", server.url + "/")
            after = await send(transport, "GET", server.url + "/")
        finally:
            await transport.aclose()
    assert resp.status_code == 200
    assert resp.content == b"hello, worldworldworld"
    assert after.content == b"next"
    assert [r.conn for r in server.requests] == [0, 0]  # chunked end kept the connection


async def check_eof_delimited_response() -> None:
    async def handler(conn: Conn) -> None:
        if await conn.read_request() is None:
            return
        if conn.number > 0:
            await conn.send(response(200, b"fresh"))
            await conn.wait_eof()
            return
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        for piece in (b"first part, ", b"second part, ", b"last part"):
            await asyncio.sleep(0.01)
            await conn.send(piece)
        conn.close()

    async with RawServer(handler) as server:
        transport = RelayTransport()
        try:
            resp = await send(transport, "GET", server.url + "/")
            after = await send(transport, "GET", server.url + "/")
        finally:
            await transport.aclose()
    assert resp.status_code == 200
    assert resp.content == b"first part, second part, last part"
    assert after.content == b"fresh"
    assert [r.conn for r in server.requests] == [0, 1]


async def check_total_timeout() -> None:
    async def handler(conn: Conn) -> None:
        if await conn.read_request() is None:
            return
        if conn.number > 0:
            await conn.send(response(200, b"quick"))
            await conn.wait_eof()
            return
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        while not conn.reader.at_eof():
            await conn.send(b"x")
            await asyncio.sleep(0.05)
        conn.eof.set()

    async with RawServer(handler) as server:
        transport = RelayTransport()
        try:
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await send(
                    transport,
                    "POST",
                    server.url + "/slow",
                    content=b"{}",
                    extensions={TOTAL_TIMEOUT: 0.3},
                )
            elapsed = time.monotonic() - started
            await server.wait_eof(0)  # the timed-out connection was closed...
            after = await send(transport, "GET", server.url + "/")
        finally:
            await transport.aclose()
    assert 0.28 <= elapsed < 1.0  # uvloop timers run on libuv's millisecond clock
    assert after.content == b"quick"
    assert [r.conn for r in server.requests] == [0, 1]  # ...and not reused


async def check_total_timeout_on_a_silent_server() -> None:
    # Unlike the dripping server, nothing arrives after the deadline that could make the
    # connection notice it is no longer wanted: the transport must close it itself.
    async def handler(conn: Conn) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await conn.wait_eof()

    async with RawServer(handler) as server:
        transport = RelayTransport()
        try:
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await send(transport, "GET", server.url + "/", extensions={TOTAL_TIMEOUT: 0.2})
            elapsed = time.monotonic() - started
            await server.wait_eof(0)
        finally:
            await transport.aclose()
    assert 0.18 <= elapsed < 0.9


async def check_connection_refused() -> None:
    transport = RelayTransport()
    try:
        with pytest.raises(httpx.ConnectError):
            await send(transport, "GET", f"http://127.0.0.1:{free_port()}/")
    finally:
        await transport.aclose()


CORE: list[Callable[[], Awaitable[None]]] = [
    check_get,
    check_post,
    check_keepalive_three_requests_one_connection,
    check_connection_close_opens_new_connection,
    check_a_create_never_goes_on_a_connection_the_server_may_be_closing,
    check_server_closing_idle_connection,
    check_chunked_response,
    check_eof_delimited_response,
    check_total_timeout,
    check_total_timeout_on_a_silent_server,
    check_connection_refused,
]


@pytest.mark.parametrize("scenario", CORE, ids=lambda f: f.__name__.removeprefix("check_"))
async def test_core_asyncio(scenario: Callable[[], Awaitable[None]]) -> None:
    await scenario()


@pytest.mark.parametrize("scenario", CORE, ids=lambda f: f.__name__.removeprefix("check_"))
def test_core_uvloop(scenario: Callable[[], Awaitable[None]]) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        await scenario()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


# ------------------------------------------------------------------ request serialization


async def test_bytestream_request_gets_host_and_content_length() -> None:
    # How relay/delivery.py builds its POSTs: raw header pairs and stream=, which httpx
    # leaves without Host (and here without Content-Length).
    async with RawServer(replies(response(204))) as server:
        transport = RelayTransport()
        try:
            resp = await send(
                transport,
                "POST",
                server.url + "/in?x=%2F",
                headers=[(b"content-type", b"application/json")],
                stream=httpx.ByteStream(b'{"a":1}'),
            )
        finally:
            await transport.aclose()
    assert resp.status_code == 204
    [req] = server.requests
    assert req.request_line == b"POST /in?x=%2F HTTP/1.1"
    assert req.header("host") == [f"127.0.0.1:{server.port}".encode()]
    assert req.header("content-length") == [b"7"]
    assert req.header("transfer-encoding") == []
    assert req.body == b'{"a":1}'


async def test_bytestream_request_with_its_own_content_length_sends_it_once() -> None:
    body = b'{"type":"video.completed"}'
    async with RawServer(replies(response(200))) as server:
        transport = RelayTransport()
        try:
            await send(
                transport,
                "POST",
                server.url + "/",
                headers=[(b"content-length", b"%d" % len(body))],
                stream=httpx.ByteStream(body),
            )
        finally:
            await transport.aclose()
    [req] = server.requests
    assert req.header("content-length") == [b"26"]
    assert req.header("host") == [f"127.0.0.1:{server.port}".encode()]
    assert req.body == body


async def test_streamed_request_body_is_sent_with_a_length_not_chunked() -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"defg"

    async with RawServer(replies(response(200))) as server:
        transport = RelayTransport()
        try:
            request = httpx.Request("PUT", server.url + "/up", content=parts())
            assert request.headers["transfer-encoding"] == "chunked"  # what httpx sets
            await (await transport.handle_async_request(request)).aread()
        finally:
            await transport.aclose()
    [req] = server.requests
    assert req.header("transfer-encoding") == []
    assert req.header("content-length") == [b"7"]
    assert req.body == b"abcdefg"


async def test_header_value_with_crlf_raises_and_sends_nothing() -> None:
    async with RawServer(replies(response(200))) as server:
        transport = RelayTransport()
        try:
            with pytest.raises(httpx.LocalProtocolError):
                await send(
                    transport, "GET", server.url + "/", headers={"X-Evil": "a\r\nX-Injected: 1"}
                )
            await asyncio.sleep(0.05)
        finally:
            await transport.aclose()
    assert server.conns == []
    assert server.requests == []


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/file", "ws://127.0.0.1/socket"])
async def test_unsupported_scheme(url: str) -> None:
    transport = RelayTransport()
    try:
        with pytest.raises(httpx.UnsupportedProtocol):
            await send(transport, "GET", url)
    finally:
        await transport.aclose()


async def test_head_is_unsupported() -> None:
    async with RawServer(replies(response(200))) as server:
        transport = RelayTransport()
        try:
            with pytest.raises(httpx.UnsupportedProtocol):
                await send(transport, "HEAD", server.url + "/")
            await asyncio.sleep(0.02)
        finally:
            await transport.aclose()
    assert server.conns == []


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
async def test_ipv6_literal_host() -> None:
    async with RawServer(replies(response(200, b"six")), host="::1") as server:
        transport = RelayTransport()
        try:
            resp = await send(transport, "GET", server.url + "/v6")
        finally:
            await transport.aclose()
    assert resp.content == b"six"
    [req] = server.requests
    assert req.request_line == b"GET /v6 HTTP/1.1"
    assert req.header("host") == [f"[::1]:{server.port}".encode()]


# --------------------------------------------------------------------------- pooling


async def test_keepalive_expiry() -> None:
    answers = [response(200, b"1"), response(200, b"2"), response(200, b"3")]
    async with RawServer(replies(*answers)) as server:
        transport = RelayTransport(keepalive_expiry=0.2)
        try:
            await send(transport, "GET", server.url + "/")
            await asyncio.sleep(0.05)
            await send(transport, "GET", server.url + "/")  # still fresh: reused
            await asyncio.sleep(0.3)
            await send(transport, "GET", server.url + "/")  # expired: a new connection
            await server.wait_eof(0)  # and the expired one was closed, not leaked
        finally:
            await transport.aclose()
    assert [r.conn for r in server.requests] == [0, 0, 1]


async def test_expired_idle_connections_of_other_origins_are_closed() -> None:
    # A one-off callback host must not keep its socket open forever: once the expiry has
    # passed, a request to any origin closes the expired idle connections of all of them.
    async with (
        RawServer(replies(response(200, b"a"))) as one,
        RawServer(replies(response(200, b"b"), response(200, b"c"))) as two,
    ):
        transport = RelayTransport(keepalive_expiry=0.1)
        try:
            await send(transport, "GET", one.url + "/")
            await send(transport, "GET", two.url + "/")
            await asyncio.sleep(0.15)
            assert not one.conns[0].eof.is_set()
            await send(transport, "GET", two.url + "/")
            await one.wait_eof(0)
        finally:
            await transport.aclose()
    assert [r.conn for r in two.requests] == [0, 1]


async def test_max_connections_bounds_requests_in_flight() -> None:
    state = {"now": 0, "peak": 0}

    async def handler(conn: Conn) -> None:
        while (req := await conn.read_request()) is not None:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            await asyncio.sleep(0.1)
            state["now"] -= 1
            await conn.send(response(200, req.request_line.split()[1]))

    async with RawServer(handler) as server:
        transport = RelayTransport(max_connections=2)
        try:
            started = time.monotonic()
            results = await asyncio.gather(
                *(send(transport, "GET", f"{server.url}/{i}") for i in range(6))
            )
            elapsed = time.monotonic() - started
        finally:
            await transport.aclose()
    assert [r.status_code for r in results] == [200] * 6
    assert [r.content for r in results] == [f"/{i}".encode() for i in range(6)]
    assert state["peak"] == 2
    assert len(server.conns) == 2
    assert len(server.requests) == 6
    assert elapsed >= 0.29  # three waves of 0.1 s


async def test_aclose_closes_idle_connections_and_refuses_new_requests() -> None:
    async with RawServer(replies(response(200, b"a"), response(200, b"b"))) as server:
        transport = RelayTransport()
        await send(transport, "GET", server.url + "/")
        await transport.aclose()
        await server.wait_eof(0)
        with pytest.raises(RuntimeError, match="closed"):
            await send(transport, "GET", server.url + "/")
    assert len(server.requests) == 1
    assert len(server.conns) == 1


async def test_aclose_fails_a_request_in_flight() -> None:
    async def handler(conn: Conn) -> None:
        await conn.read_request()
        await conn.wait_eof()  # never answers

    async with RawServer(handler) as server:
        transport = RelayTransport()
        task = asyncio.create_task(send(transport, "GET", server.url + "/"))
        await asyncio.sleep(0.05)
        await transport.aclose()
        with pytest.raises(httpx.RemoteProtocolError):
            await asyncio.wait_for(task, 1.0)
        await server.wait_eof(0)


# ----------------------------------------------------------------------- response bodies


async def test_body_limit_keeps_first_bytes_and_the_connection() -> None:
    big = bytes(range(256)) * 4096  # 1 MiB
    async with RawServer(replies(response(200, big), response(200, big))) as server:
        transport = RelayTransport()
        try:
            limited = await send(
                transport, "POST", server.url + "/", content=b"{}", extensions={BODY_LIMIT: 10}
            )
            whole = await send(transport, "GET", server.url + "/")
        finally:
            await transport.aclose()
    assert limited.status_code == 200
    assert limited.content == big[:10]
    assert whole.content == big  # the default limit (8 MiB) keeps it all
    # The rest of the limited body was read off the wire, so the connection was reusable.
    assert [r.conn for r in server.requests] == [0, 0]


async def test_a_second_unasked_for_response_does_not_leak_into_the_first() -> None:
    # A broken server sends a second response in the same packet as the first. The first
    # must come back with exactly its own status, reason, headers and body, and the
    # connection, out of step with the server, must not carry another request.
    extra = b"HTTP/1.1 404 Evil\r\nX-Evil: 1\r\nContent-Length: 4\r\n\r\nevil"
    answers = [response(200, b"hi", ("X-A", "1")) + extra, response(200, b"next")]
    async with RawServer(replies(*answers)) as server:
        transport = RelayTransport()
        try:
            resp = await send(transport, "GET", server.url + "/")
            await asyncio.sleep(0.02)
            after = await send(transport, "GET", server.url + "/")
        finally:
            await transport.aclose()
    assert (resp.status_code, resp.reason_phrase, resp.content) == (200, "OK", b"hi")
    assert resp.headers.multi_items() == [("x-a", "1"), ("content-length", "2")]
    assert after.content == b"next"
    assert [r.conn for r in server.requests] == [0, 1]


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"NOT HTTP AT ALL\r\n\r\n", id="garbage"),
        pytest.param(b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n", id="bad-status"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", id="bad-length"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", id="bad-chunk"
        ),
    ],
)
async def test_malformed_response(answer: bytes) -> None:
    async with RawServer(replies(answer)) as server:
        transport = RelayTransport()
        try:
            with pytest.raises(httpx.RemoteProtocolError):
                await send(transport, "GET", server.url + "/")
            await server.wait_eof(0)  # the broken connection was closed
        finally:
            await transport.aclose()


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Le", id="mid-headers"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", id="short-body"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            id="unfinished-chunked",
        ),
    ],
)
async def test_server_closes_before_the_response_is_complete(answer: bytes) -> None:
    async with RawServer(replies(answer, close_after=True)) as server:
        transport = RelayTransport()
        try:
            with pytest.raises(httpx.RemoteProtocolError):
                await send(transport, "GET", server.url + "/")
        finally:
            await transport.aclose()


@pytest.mark.parametrize("interim", [b"100 Continue", b"103 Early Hints"])
async def test_an_interim_response_is_skipped_for_the_final_one(interim: bytes) -> None:
    # RFC 9110 §15.2: a client must accept unexpected 1xx answers before the final one (a
    # CDN may send 103 Early Hints); failing the delivery on them would be wrong.
    answer = (
        b"HTTP/1.1 "
        + interim
        + b"\r\nLink: </style.css>; rel=preload\r\n\r\n"
        + response(200, b"final")
    )
    async with RawServer(replies(answer)) as server:
        transport = RelayTransport()
        try:
            reply = await send(transport, "POST", server.url + "/", content=b"x")
            assert (reply.status_code, reply.content) == (200, b"final")
            assert "link" not in reply.headers  # the interim answer's headers are not kept
        finally:
            await transport.aclose()


# --------------------------------------------------------------- through httpx.AsyncClient


async def test_async_client_json_round_trip() -> None:
    async def echo(conn: Conn) -> None:
        while (req := await conn.read_request()) is not None:
            await conn.send(response(200, req.body, ("Content-Type", "application/json")))

    payload = {"task": "cgt-123", "status": "succeeded", "tags": ["a", "ü"], "n": 1.5}
    async with (
        RawServer(echo) as server,
        httpx.AsyncClient(transport=RelayTransport(), base_url=server.url) as client,
    ):
        resp = await client.post("/v1/echo", params={"q": "1 2"}, json=payload)
    assert resp.status_code == 200
    assert resp.json() == payload
    [req] = server.requests
    assert req.request_line == b"POST /v1/echo?q=1+2 HTTP/1.1"
    assert req.header("content-type") == [b"application/json"]
    assert req.header("content-length") == [str(len(req.body)).encode()]
    assert json.loads(req.body) == payload
    assert req.header("host") == [f"127.0.0.1:{server.port}".encode()]


async def test_async_client_returns_redirects_as_is() -> None:
    answer = response(302, b"", ("Location", "/elsewhere"))
    async with (
        RawServer(replies(answer, response(200, b"followed"))) as server,
        httpx.AsyncClient(transport=RelayTransport(), follow_redirects=False) as client,
    ):
        resp = await client.get(server.url + "/start")
    assert resp.status_code == 302
    assert resp.headers["location"] == "/elsewhere"
    assert resp.is_redirect
    assert [r.request_line for r in server.requests] == [b"GET /start HTTP/1.1"]


# ------------------------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting a throwaway CA) made with trustme."""
    trustme = pytest.importorskip(
        "trustme", reason="the TLS tests need trustme (pip install trustme)"
    )
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


async def test_https_get(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    answers = [response(200, b"secret"), response(200, b"again")]
    async with RawServer(replies(*answers), ssl_context=server_ctx) as server:
        transport = RelayTransport(verify=client_ctx)
        try:
            first = await send(transport, "GET", server.url + "/s?x=1")
            second = await send(transport, "GET", server.url + "/s")
        finally:
            await transport.aclose()
    assert server.url.startswith("https://")
    assert (first.status_code, first.content) == (200, b"secret")
    assert second.content == b"again"
    assert server.requests[0].request_line == b"GET /s?x=1 HTTP/1.1"
    assert server.requests[0].header("host") == [f"127.0.0.1:{server.port}".encode()]
    assert [r.conn for r in server.requests] == [0, 0]  # keep-alive over TLS too


async def test_https_untrusted_certificate_is_a_connect_error(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_ctx, _ = tls
    async with RawServer(replies(response(200, b"secret")), ssl_context=server_ctx) as server:
        transport = RelayTransport()  # default verification: the throwaway CA is unknown
        try:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await send(transport, "GET", server.url + "/")
        finally:
            await transport.aclose()
    assert server.requests == []


def closes_on_second_request() -> tuple[Callable[[Conn], Awaitable[None]], list[int]]:
    """The first connection answers once, then closes as the next request arrives without
    answering it (a server whose keep-alive timeout crossed ours); later ones answer."""
    answered: list[int] = []

    async def handler(conn: Conn) -> None:
        while await conn.read_request() is not None:
            if conn.number == 0 and answered.count(0) == 1:
                conn.close()
                return
            answered.append(conn.number)
            await conn.send(response(200, b"ok %d" % conn.number))
        await conn.wait_eof()

    return handler, answered


@pytest.mark.parametrize(
    ("method", "extensions"), [("GET", {}), ("DELETE", {}), ("POST", {RESENDABLE: True})]
)
async def test_a_stale_kept_alive_connection_is_retried_once_when_resending_is_safe(
    method: str, extensions: dict[str, Any]
) -> None:
    handler, answered = closes_on_second_request()
    async with RawServer(handler) as server:
        transport = RelayTransport()
        try:
            first = await send(transport, method, server.url + "/", extensions=extensions)
            second = await send(transport, method, server.url + "/", extensions=extensions)
        finally:
            await transport.aclose()
    assert (first.content, second.content) == (b"ok 0", b"ok 1")
    assert [r.conn for r in server.requests] == [0, 0, 1]  # the stale one, then a new one
    assert answered == [0, 1]


async def test_a_post_that_is_not_resendable_is_not_sent_twice() -> None:
    handler, _ = closes_on_second_request()
    async with RawServer(handler) as server:
        transport = RelayTransport()
        try:
            await send(transport, "POST", server.url + "/", content=b"{}")
            with pytest.raises(httpx.RemoteProtocolError):
                await send(transport, "POST", server.url + "/", content=b"{}")
        finally:
            await transport.aclose()
    assert [r.conn for r in server.requests] == [0, 0]  # a provider's create goes once
