"""The sandbox's file bytes, pure: the documented recipe recomputed independently, any range
of a video without the rest, one task's files under all of its ids, the last-frame PNG, and
the parsing of Range headers."""

from __future__ import annotations

import hashlib
import random
import struct
import zlib

import pytest

from relay.sandbox.ids import IdStyle, encode_task_id
from relay.sandbox.media import (
    CHUNK,
    ByteRange,
    Unsatisfiable,
    expected_sha256,
    last_frame_png,
    media_key,
    parse_range,
    video_bytes,
    video_chunks,
    video_header,
)
from relay.sandbox.simulation import Flavor, SandboxSettings, new_task
from tests.sandbox.support import T0

FTYP = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def task_id(nonce: int = 7, flavor: Flavor = Flavor.ARK, style: IdStyle = IdStyle.CGT) -> str:
    task = new_task(now=T0, settings=SandboxSettings(), nonce=nonce, prompt="p", flavor=flavor)
    return encode_task_id(task, style)


def recipe(key: bytes, size: int) -> bytes:
    """The module docstring's recipe, written out again: ftyp, mdat header, SHAKE-256 blocks."""
    header = FTYP + struct.pack(">I4s", size - 24, b"mdat")
    blocks = -(-(size - len(header)) // CHUNK)
    stream = b"".join(
        hashlib.shake_256(b"seedance-relay-sandbox/video\x00" + key + i.to_bytes(8, "big")).digest(
            CHUNK
        )
        for i in range(blocks)
    )
    return (header + stream)[:size]


@pytest.mark.parametrize("size", [64, 1000, CHUNK, 3 * CHUNK + 7])
def test_a_video_is_the_documented_bytes_and_its_checksum_matches(size: int) -> None:
    ark_id = task_id()
    key = f"ark:{int(T0.timestamp() * 1000)}:7".encode()
    assert media_key(ark_id) == key
    data = video_bytes(ark_id, size)
    assert data == recipe(key, size)
    assert len(data) == size
    assert (data[4:8], data[28:32]) == (b"ftyp", b"mdat")
    assert struct.unpack(">I", data[24:28])[0] == size - 24  # the mdat box runs to the end
    assert expected_sha256(ark_id, size) == hashlib.sha256(data).hexdigest()
    assert all(len(chunk) <= CHUNK for chunk in video_chunks(ark_id, size))


def test_any_range_is_the_slice_of_the_whole() -> None:
    ark_id, size = task_id(), 3 * CHUNK + 100
    whole = video_bytes(ark_id, size)
    rng = random.Random(5)
    edges = [0, 1, 31, 32, 33, CHUNK + 31, CHUNK + 32, CHUNK + 33, size - 1, size]
    cases = [(a, b) for a in edges for b in edges if a <= b]
    for _ in range(40):
        low, high = sorted(rng.sample(range(size + 1), 2))
        cases.append((low, high))
    for start, stop in cases:
        assert b"".join(video_chunks(ark_id, size, start, stop)) == whole[start:stop]


def test_a_huge_video_has_a_64_bit_mdat_and_its_end_costs_nothing() -> None:
    size = 5 * 2**30
    header = video_header(size)
    assert header == FTYP + struct.pack(">I4sQ", 1, b"mdat", size - 24)
    tail = b"".join(video_chunks(task_id(), size, size - 100))  # no pass over 5 GiB
    assert len(tail) == 100
    assert video_header(30) == (FTYP + struct.pack(">I4s", 6, b"mdat"))[:30]  # cut to size


def test_one_task_has_the_same_files_under_each_of_its_ids() -> None:
    public = task_id(flavor=Flavor.NACI, style=IdStyle.TASK)
    upstream = task_id(flavor=Flavor.NACI, style=IdStyle.CGT)
    assert public != upstream
    assert video_bytes(public, 5000) == video_bytes(upstream, 5000)
    assert last_frame_png(public) == last_frame_png(upstream)
    # Another task (nonce, flavor) or another size: other bytes.
    assert video_bytes(task_id(nonce=8), 5000) != video_bytes(task_id(), 5000)
    assert video_bytes(task_id(flavor=Flavor.APIYI), 5000) != video_bytes(task_id(), 5000)
    assert expected_sha256(task_id(), 5000) != expected_sha256(task_id(), 5001)
    # Not a sandbox id: the string keys itself.
    assert media_key("anything") == b"anything"
    assert len(video_bytes("anything", 100)) == 100


def test_the_last_frame_is_a_valid_deterministic_png() -> None:
    png = last_frame_png(task_id())
    assert png == last_frame_png(task_id())
    assert png != last_frame_png(task_id(nonce=8))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, bytes] = {}
    rest = png[8:]
    while rest:
        (length,) = struct.unpack(">I", rest[:4])
        kind, data = rest[4:8], rest[8 : 8 + length]
        (crc,) = struct.unpack(">I", rest[8 + length : 12 + length])
        assert crc == zlib.crc32(kind + data)
        chunks[kind] = data
        rest = rest[12 + length :]
    assert list(chunks) == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (width, height, depth, colour) == (32, 18, 8, 2)
    assert len(zlib.decompress(chunks[b"IDAT"])) == height * (1 + width * 3)


SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("bytes=0-99", ByteRange(0, 100, SIZE)),
        ("bytes=100-", ByteRange(100, SIZE, SIZE)),
        ("bytes=-100", ByteRange(900, SIZE, SIZE)),
        ("bytes=-5000", ByteRange(0, SIZE, SIZE)),  # a suffix longer than the file: all of it
        ("bytes=990-5000", ByteRange(990, SIZE, SIZE)),  # an end past the file: clamped
        ("Bytes = 5-5", ByteRange(5, 6, SIZE)),
        ("bytes=999-", ByteRange(999, SIZE, SIZE)),
        ("bytes=1000-", Unsatisfiable(SIZE)),
        ("bytes=1000-2000", Unsatisfiable(SIZE)),
        ("bytes=-0", Unsatisfiable(SIZE)),
        ("bytes=5-1", None),  # invalid: ignored
        ("bytes=0-1,5-9", None),  # several ranges: ignored
        ("items=0-9", None),
        ("bytes=-", None),
        ("bytes=a-b", None),
        ("bytes=\u0661-9", None),  # a non-ASCII digit
    ],
)
def test_range_headers(header: str | None, expected: ByteRange | Unsatisfiable | None) -> None:
    assert parse_range(header, SIZE) == expected


def test_content_ranges() -> None:
    assert ByteRange(0, 100, SIZE).content_range == "bytes 0-99/1000"
    assert ByteRange(0, 100, SIZE).length == 100
    assert Unsatisfiable(SIZE).content_range == "bytes */1000"
