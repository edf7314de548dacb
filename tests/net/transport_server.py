"""A scripted raw TCP (optionally TLS) server for the transport tests.

It speaks no HTTP of its own: a test gives it a handler that reads requests off the socket
and writes exactly the bytes the test wants (chunked bodies, EOF-delimited bodies, garbage,
interim responses, dripping bytes, early closes...). Every request read is recorded with
its raw bytes and the number of the connection it arrived on.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Recorded:
    conn: int
    """0-based number of the connection, in order of acceptance."""
    raw: bytes
    """The request exactly as read: head, blank line and body."""

    @property
    def head(self) -> bytes:
        return self.raw.split(b"\r\n\r\n", 1)[0]

    @property
    def body(self) -> bytes:
        return self.raw.split(b"\r\n\r\n", 1)[1]

    @property
    def request_line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    @property
    def header_lines(self) -> list[tuple[bytes, bytes]]:
        pairs = []
        for line in self.head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            pairs.append((name.strip().lower(), value.strip()))
        return pairs

    def header(self, name: str) -> list[bytes]:
        """All values of one header, in order (empty if absent)."""
        key = name.lower().encode()
        return [value for n, value in self.header_lines if n == key]


@dataclass
class Conn:
    """The server side of one accepted connection, as handed to a handler."""

    number: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    server: RawServer
    eof: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the server saw the client close (or reset) the connection."""

    async def read_request(self) -> Recorded | None:
        """Read one request (head plus a Content-Length body); None at EOF."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            self.eof.set()
            return None
        except ConnectionError:
            self.eof.set()
            return None
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        recorded = Recorded(self.number, head + body)
        self.server.requests.append(recorded)
        return recorded

    async def wait_eof(self) -> None:
        """Wait for the client to close (any bytes read meanwhile are recorded as junk)."""
        while True:
            try:
                data = await self.reader.read(65536)
            except ConnectionError:
                data = b""
            if not data:
                self.eof.set()
                return
            self.server.junk.append((self.number, data))

    async def send(self, data: bytes) -> None:
        if self.writer.transport.is_closing():
            # The client is gone (uvloop would raise RuntimeError on the write).
            raise ConnectionResetError("the connection is closed")
        self.writer.write(data)
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()


Handler = Callable[[Conn], Awaitable[None]]


class RawServer:
    """``async with RawServer(handler) as server``: listens on ``host`` (127.0.0.1 unless
    told), port 0."""

    def __init__(
        self,
        handler: Handler,
        *,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self._handler = handler
        self.host = host
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.conns: list[Conn] = []
        self.requests: list[Recorded] = []
        self.junk: list[tuple[int, bytes]] = []
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._accept, self.host, 0, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for conn in self.conns:
            conn.writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in self.conns:
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Conn(len(self.conns), reader, writer, self)
        self.conns.append(conn)
        try:
            await self._handler(conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            # The client went away mid-script (that is what some tests do); closing a
            # socket with unread data in it sends a reset rather than a FIN.
            conn.eof.set()
        except asyncio.CancelledError:
            pass  # cancelled by __aexit__; ending quietly keeps asyncio's stream callback quiet
        finally:
            writer.close()

    async def wait_eof(self, number: int) -> None:
        """Wait (up to a second) until the server has seen connection ``number`` closed by
        the client."""
        async with asyncio.timeout(1.0):
            await self.conns[number].eof.wait()


def response(
    status: int = 200, body: bytes = b"", *headers: tuple[str, str], reason: str = "OK"
) -> bytes:
    """A complete HTTP/1.1 response with a Content-Length."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def replies(*answers: bytes, close_after: bool = False) -> Handler:
    """A handler answering each request with the next scripted bytes, in order across
    connections; keeps the connection open (waiting for more) unless ``close_after``,
    which closes it right after every answer, or the answer has ``Connection: close``."""
    queue = list(answers)

    async def handler(conn: Conn) -> None:
        while queue:
            if await conn.read_request() is None:
                return
            answer = queue.pop(0)
            await conn.send(answer)
            if (
                close_after
                or b"\r\nconnection: close\r\n" in answer.split(b"\r\n\r\n", 1)[0].lower() + b"\r\n"
            ):
                conn.close()
                return
        await conn.wait_eof()

    return handler
