"""A minimal, fast webhook receiver for benchmarks: answers every POST with 204 and counts.

It is a bare asyncio protocol (on uvloop when installed), so that the receiver is never
what limits a benchmark: it parses just enough HTTP/1.1 (keep-alive, Content-Length).
Run: ``python benchmarks/receiver.py PORT``; it prints "ready" when listening.
"""

from __future__ import annotations

import asyncio
import sys

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

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (request := take_request(self.buffer)) is not None:
            self.buffer = request[2]
            Receiver.count += 1
            self.transport.write(RESPONSE)


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
