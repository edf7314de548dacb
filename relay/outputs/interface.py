"""What the relay asks of an output store, and the values it answers with.

An object is visible under its key only once it is complete: ``put`` either stores the whole
body (and says its size and SHA-256) or leaves nothing new under the key, whatever goes wrong
(the source raising, the body too large or empty, the process killed). Keys are made by the
relay (``tasks/<id>/video.mp4``); a store refuses anything else as a bug.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

from relay.errors import OutputRejected, OutputTooLarge, UnsatisfiableRange

BLOCK = 1 << 20
"""Bytes gathered from the source before a write: one thread hop (or one hand-over to the
bucket's client) per MiB, however small the source's chunks are."""

DEFAULT_CONTENT_TYPE = "application/octet-stream"

# Segments never start with "." (no "..", and the stores' own temporary and metadata files,
# which do, can never be named by a key).
_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}){0,7}$")


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise ValueError(f"not an output key: {key!r}")
    return key


@dataclass(frozen=True, slots=True)
class Stored:
    """What ``put`` stored: the SHA-256 is computed while writing, so only a put knows it
    (a bucket cannot keep it: an upload's metadata is fixed before its first byte)."""

    key: str
    size: int
    sha256: str
    """Hex digest of the whole body."""
    content_type: str


@dataclass(frozen=True, slots=True)
class OutputInfo:
    """What a store says of an object it holds."""

    key: str
    size: int
    content_type: str


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``[start, stop)`` of an object, like a slice: ``stop`` None reads to the end,
    and a negative ``start`` (with no stop) the last ``-start`` bytes (HTTP's ``bytes=-N``)."""

    start: int
    stop: int | None = None

    def __post_init__(self) -> None:
        if self.start < 0 and self.stop is not None:
            raise ValueError("a suffix range (negative start) has no stop")
        if self.stop is not None and self.stop <= self.start:
            raise ValueError(f"empty range [{self.start}, {self.stop})")

    def resolve(self, size: int) -> tuple[int, int]:
        """The concrete ``(start, stop)`` within an object of ``size`` bytes; a stop past the
        end is cut to it, a start at or past it is ``UnsatisfiableRange``."""
        if self.start < 0:
            if size == 0:
                raise UnsatisfiableRange(size)
            return max(0, size + self.start), size
        if self.start >= size:
            raise UnsatisfiableRange(size)
        return self.start, size if self.stop is None else min(self.stop, size)


async def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Opened:
    """A stored object being read: its description, the part of it ``chunks`` yields
    (``start``/``stop``, whole when no range was asked) and how to let it go. Use it as
    ``async with``, or call ``aclose``: iterating to the end releases it too."""

    info: OutputInfo
    start: int
    stop: int
    chunks: AsyncIterator[bytes]
    _release: Callable[[], Awaitable[None]] = field(default=_nothing, repr=False)

    @property
    def length(self) -> int:
        return self.stop - self.start

    async def aclose(self) -> None:
        await self._release()

    async def __aenter__(self) -> Opened:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class OutputStore(Protocol):
    async def put(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        *,
        content_type: str,
        max_bytes: int,
    ) -> Stored:
        """Stream ``chunks`` into a new object at ``key`` (replacing one there, at once).

        ``OutputRejected`` for an empty body, ``OutputTooLarge`` as soon as it passes
        ``max_bytes``; an exception of ``chunks`` itself passes through as it is;
        ``OutputStorageUnavailable`` when the storage fails. In every one of these cases
        nothing new is visible under ``key``. A cancelled put leaves nothing, or (cancelled
        while completing) the whole object: never a part of one."""
        ...

    async def open(self, key: str, range: ByteRange | None = None) -> Opened:
        """``UnknownOutput`` when there is none, ``UnsatisfiableRange`` for a range that
        starts past its end."""
        ...

    async def stat(self, key: str) -> OutputInfo | None: ...

    async def link(self, key: str, expires_in: int) -> str | None:
        """A URL anyone may GET the object at for ``expires_in`` seconds (a presigned bucket
        URL); None: the store has no such URLs, the relay serves the object itself."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; nothing to remove is no error."""
        ...


async def blocks(chunks: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """``chunks`` gathered into blocks of at least ``BLOCK`` bytes (the last may be shorter),
    refusing the body as soon as it passes ``max_bytes`` and at its end when it was empty."""
    pending: list[bytes] = []
    held = total = 0
    async for chunk in chunks:
        if not chunk:
            continue
        total += len(chunk)
        if total > max_bytes:
            raise OutputTooLarge(max_bytes)
        pending.append(bytes(chunk))
        held += len(chunk)
        if held >= BLOCK:
            yield b"".join(pending)
            pending, held = [], 0
    if total == 0:
        raise OutputRejected("the output is empty")
    if pending:
        yield b"".join(pending)
