"""The bytes of the sandbox's result files, pure: a test or a benchmark computes what a
download must hold from the task id alone, without asking the sandbox.

**The video** of a task is ``size`` bytes (``sandbox.video_bytes``, the same for every
task): a 24-byte MP4 ``ftyp`` box, an ``mdat`` box header announcing the rest (8 bytes, or
16 with a 64-bit size from 4 GiB up), then a keyed pseudo-random stream: block ``i``
(:data:`CHUNK` bytes) is ``SHAKE-256(b"seedance-relay-sandbox/video\\0" + key +
i.to_bytes(8, "big"))``. Any byte range is produced without the bytes before it, so a
range request or a 50 MB video costs neither memory nor a pass over the whole file.

**The last frame** is a small valid PNG (32x18 RGB pixels from the same key), its zlib
stream written with stored blocks so the bytes do not depend on the zlib build.

**The key** (:func:`media_key`) is the task, not the string: a gateway's public id, its
upstream Ark id and seedance2.ink's request id of one task all name the same files, so a
test can pass whatever id the relay recorded. A string that is no sandbox id keys itself.

Range requests (:func:`parse_range`) follow RFC 9110: one range ``bytes=a-b``, ``bytes=a-``
or ``bytes=-n``; a malformed header, another unit or several ranges are ignored (the whole
file, 200), a range starting past the end is unsatisfiable (416).
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from relay.sandbox.ids import decode_task_id, ms
from relay.sandbox.timeline import DEFAULT_VIDEO_BYTES

__all__ = [
    "CHUNK",
    "DEFAULT_VIDEO_BYTES",
    "ByteRange",
    "Unsatisfiable",
    "expected_sha256",
    "last_frame_png",
    "media_key",
    "parse_range",
    "video_bytes",
    "video_chunks",
    "video_etag",
]

CHUNK: Final = 65_536
"""The stream's block size, and the most one served chunk holds."""
FTYP: Final = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
_VIDEO_DOMAIN: Final = b"seedance-relay-sandbox/video\x00"
_FRAME_DOMAIN: Final = b"seedance-relay-sandbox/frame\x00"
_FRAME_WIDTH, _FRAME_HEIGHT = 32, 18
_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_RANGE_RE: Final = re.compile(r"\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*", re.IGNORECASE)


def media_key(task_id: str) -> bytes:
    """What a task's files derive from: its flavor, creation millisecond and nonce."""
    task = decode_task_id(task_id)
    if task is None:
        return task_id.encode()
    return f"{task.flavor.value}:{ms(task.created_at)}:{task.nonce}".encode()


def video_header(size: int) -> bytes:
    """The ``ftyp`` box and the ``mdat`` header of a ``size``-byte video (cut to ``size``)."""
    rest = max(size - len(FTYP), 0)
    if rest < 2**32:
        mdat = struct.pack(">I4s", rest, b"mdat")
    else:
        mdat = struct.pack(">I4sQ", 1, b"mdat", rest)
    return (FTYP + mdat)[:size]


def video_chunks(
    task_id: str, size: int, start: int = 0, stop: int | None = None
) -> Iterator[bytes]:
    """Bytes ``[start, stop)`` of the ``size``-byte video, at most :data:`CHUNK` at a time."""
    end = size if stop is None else min(stop, size)
    header = video_header(size)
    position = max(start, 0)
    if position < min(len(header), end):
        yield header[position : min(len(header), end)]
        position = min(len(header), end)
    key = _VIDEO_DOMAIN + media_key(task_id)
    while position < end:
        block, inner = divmod(position - len(header), CHUNK)
        data = hashlib.shake_256(key + block.to_bytes(8, "big")).digest(CHUNK)
        piece = data[inner : inner + end - position]
        yield piece
        position += len(piece)


def video_bytes(task_id: str, size: int = DEFAULT_VIDEO_BYTES) -> bytes:
    """The whole video in memory: for tests, at test sizes."""
    return b"".join(video_chunks(task_id, size))


def expected_sha256(task_id: str, size: int = DEFAULT_VIDEO_BYTES) -> str:
    """The hex SHA-256 a complete download of the task's video has."""
    digest = hashlib.sha256()
    for chunk in video_chunks(task_id, size):
        digest.update(chunk)
    return digest.hexdigest()


def video_etag(task_id: str, size: int) -> str:
    """A strong ``ETag`` for the video: it changes with the bytes, without reading them."""
    tag = hashlib.sha256(media_key(task_id) + b"\x00" + str(size).encode()).hexdigest()
    return f'"{tag[:32]}"'


def last_frame_png(task_id: str) -> bytes:
    """The task's last frame: a deterministic 32x18 RGB PNG."""
    row_bytes = _FRAME_WIDTH * 3
    pixels = hashlib.shake_256(_FRAME_DOMAIN + media_key(task_id)).digest(row_bytes * _FRAME_HEIGHT)
    raw = b"".join(
        b"\x00" + pixels[row * row_bytes : (row + 1) * row_bytes] for row in range(_FRAME_HEIGHT)
    )
    header = struct.pack(">IIBBBBB", _FRAME_WIDTH, _FRAME_HEIGHT, 8, 2, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", _stored_zlib(raw))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _stored_zlib(data: bytes) -> bytes:
    # One stored (uncompressed) deflate block: the frame is under 64 KiB.
    assert len(data) < 65_536
    block = b"\x01" + struct.pack("<HH", len(data), len(data) ^ 0xFFFF) + data
    return b"\x78\x01" + block + struct.pack(">I", zlib.adler32(data))


# -- range requests -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``[start, stop)`` of a file of ``size`` bytes."""

    start: int
    stop: int
    size: int

    @property
    def length(self) -> int:
        return self.stop - self.start

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.stop - 1}/{self.size}"


@dataclass(frozen=True, slots=True)
class Unsatisfiable:
    """A range that lies wholly past the end of a ``size``-byte file: 416."""

    size: int

    @property
    def content_range(self) -> str:
        return f"bytes */{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | Unsatisfiable | None:
    """The part of a ``size``-byte file a ``Range`` header asks for; ``None``: all of it."""
    if not header:
        return None
    match = _RANGE_RE.fullmatch(header)
    if match is None:
        return None  # another unit, several ranges, or malformed: ignored, as RFC 9110 allows
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return Unsatisfiable(size)
        return ByteRange(max(size - suffix, 0), size, size)
    start = int(first)
    end = size - 1 if not last else int(last)
    if last and end < start:
        return None  # invalid: ignored
    if start >= size:
        return Unsatisfiable(size)
    return ByteRange(start, min(end, size - 1) + 1, size)
