"""A minimal, fast webhook receiver for benchmarks: answers every POST with 204 and counts.

It is a bare asyncio protocol (on uvloop when installed), so that the receiver is never
what limits a benchmark: it parses just enough HTTP/1.1 (keep-alive, Content-Length).
Run: ``python benchmarks/receiver.py PORT``; it prints "ready" when listening.

It is also how a benchmark knows its work is done without measuring on the loop under test:
``GET /stats`` answers ``{"posts": n, "last": t}`` (POSTs so far, the ``time.time()`` of the
last one), and ``GET /wait/N`` answers the same once ``n >= N``: one request left open,
instead of counting rows in the relay's database every few milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

RESPONSE = b"HTTP/1.1 204 No Content\r\nServer: bench\r\n\r\n"


def take_request(buffer: bytes) -> tuple[bytes, bytes, bytes] | None:
    """The first whole request in ``buffer`` as (head, body, what follows it), or None until
    all of it has arrived. Enough HTTP/1.1 for the relay's webhooks and the benchmarks' own
    requests: a head, then a Content-Length body (none without one); the other benchmark
    receivers parse with it too."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end]
    lower = head.lower()
    at = lower.find(b"content-length:")
    length = 0
    if at >= 0:
        line_end = lower.find(b"\r\n", at)
        length = int(lower[at + 15 : line_end if line_end > 0 else None].strip())
    total = end + 4 + length
    if len(buffer) < total:
        return None
    return head, buffer[end + 4 : total], buffer[total:]


class Receiver(asyncio.Protocol):
    count = 0
    last = 0.0
    waiting: list[tuple[int, Receiver]] = []  # noqa: RUF012 - one per process, on purpose
    """``GET /wait/N`` requests not answered yet: (N, the connection to answer on)."""
    soonest = sys.maxsize
    """The smallest N waited for: a POST checks this one number."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (request := take_request(self.buffer)) is not None:
            head, _, self.buffer = request
            if head.startswith(b"POST "):
                Receiver.count += 1
                Receiver.last = time.time()
                self.transport.write(RESPONSE)
                if Receiver.count >= Receiver.soonest:
                    Receiver.answer_waiting()
                continue
            path = head.split(b" ", 2)[1] if b" " in head else b""
            if path.startswith(b"/wait/") and Receiver.count < int(path[6:]):
                Receiver.waiting.append((int(path[6:]), self))
                Receiver.soonest = min(Receiver.soonest, int(path[6:]))
            else:
                self.answer()

    def answer(self) -> None:
        payload = json.dumps({"posts": Receiver.count, "last": Receiver.last}).encode()
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
        )

    @classmethod
    def answer_waiting(cls) -> None:
        done = [conn for n, conn in cls.waiting if n <= cls.count]
        cls.waiting = [(n, conn) for n, conn in cls.waiting if n > cls.count]
        cls.soonest = min((n for n, _ in cls.waiting), default=sys.maxsize)
        for conn in done:
            if not conn.transport.is_closing():
                conn.answer()


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Receiver, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1])))
