"""The output store contract, run against a local directory and an S3 bucket alike: a put
stores the whole body or leaves nothing, whatever goes wrong on the way."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

import pytest

from relay.errors import (
    OutputRejected,
    OutputTooLarge,
    UnknownOutput,
    UnsatisfiableRange,
)
from relay.outputs import ByteRange, OutputInfo, OutputStore
from tests.outputs.conftest import Harness

MB = 1 << 20
KEY = "tasks/tsk_01/video.mp4"


class SourceCut(Exception):
    """What a download that breaks off mid-way raises (a stand-in for httpx's errors)."""


async def chunked(data: bytes, *, size: int = 64 * 1024 + 7) -> AsyncIterator[bytes]:
    """``data`` in the odd-sized pieces a network gives."""
    for i in range(0, len(data), size):
        yield data[i : i + size]
        await asyncio.sleep(0)


async def cut_after(data: bytes, sent: int) -> AsyncIterator[bytes]:
    async for chunk in chunked(data[:sent]):
        yield chunk
    raise SourceCut("connection reset by peer")


async def read_all(store: OutputStore, key: str, range: ByteRange | None = None) -> bytes:
    async with await store.open(key, range) as opened:
        return b"".join([chunk async for chunk in opened.chunks])


async def test_a_streamed_body_round_trips_with_its_size_and_sha256(harness: Harness) -> None:
    store = harness.store
    data = os.urandom(12 * MB + 12_345)  # more than two S3 parts
    stored = await store.put(KEY, chunked(data), content_type="video/mp4", max_bytes=64 * MB)
    assert (stored.key, stored.size, stored.content_type) == (KEY, len(data), "video/mp4")
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert await store.stat(KEY) == OutputInfo(KEY, len(data), "video/mp4")
    async with await store.open(KEY) as opened:
        assert (opened.info, opened.start, opened.stop) == (
            OutputInfo(KEY, len(data), "video/mp4"),
            0,
            len(data),
        )
        assert b"".join([c async for c in opened.chunks]) == data


async def test_a_put_replaces_the_object_under_its_key(store: OutputStore) -> None:
    await store.put(KEY, chunked(b"first version"), content_type="video/mp4", max_bytes=MB)
    stored = await store.put(KEY, chunked(b"second"), content_type="image/png", max_bytes=MB)
    assert stored.size == 6
    assert await read_all(store, KEY) == b"second"
    assert await store.stat(KEY) == OutputInfo(KEY, 6, "image/png")


async def test_nothing_is_visible_while_the_body_is_still_arriving(store: OutputStore) -> None:
    seen: list[OutputInfo | None] = []

    async def watched() -> AsyncIterator[bytes]:
        async for chunk in chunked(os.urandom(7 * MB)):
            yield chunk
        seen.append(await store.stat(KEY))

    await store.put(KEY, watched(), content_type="video/mp4", max_bytes=64 * MB)
    assert seen == [None]
    assert await store.stat(KEY) is not None


async def test_a_body_of_exactly_max_bytes_is_stored(store: OutputStore) -> None:
    data = os.urandom(MB + 1)
    stored = await store.put(KEY, chunked(data), content_type="video/mp4", max_bytes=len(data))
    assert stored.size == len(data)


async def test_a_body_over_max_bytes_is_refused_and_leaves_nothing(harness: Harness) -> None:
    data = os.urandom(8 * MB)
    with pytest.raises(OutputTooLarge, match=f"limit of {6 * MB} bytes"):
        await harness.store.put(KEY, chunked(data), content_type="video/mp4", max_bytes=6 * MB)
    assert await harness.store.stat(KEY) is None
    assert harness.leftovers() == []


async def test_a_refused_body_leaves_the_object_already_there(harness: Harness) -> None:
    store = harness.store
    await store.put(KEY, chunked(b"the good copy"), content_type="video/mp4", max_bytes=MB)
    with pytest.raises(OutputTooLarge):
        await store.put(KEY, chunked(os.urandom(2 * MB)), content_type="video/mp4", max_bytes=MB)
    with pytest.raises(SourceCut):
        await store.put(KEY, cut_after(os.urandom(MB), 1000), content_type="x/y", max_bytes=MB)
    assert await read_all(store, KEY) == b"the good copy"
    assert len(harness.leftovers()) == (2 if harness.kind == "local" else 1)  # + its .meta


@pytest.mark.parametrize("sent", [0, 100, 7 * MB], ids=["at-once", "early", "after-a-part"])
async def test_a_source_that_fails_mid_way_leaves_nothing(harness: Harness, sent: int) -> None:
    body = cut_after(os.urandom(8 * MB), sent)
    with pytest.raises(SourceCut, match="connection reset"):
        await harness.store.put(KEY, body, content_type="video/mp4", max_bytes=64 * MB)
    assert await harness.store.stat(KEY) is None
    assert harness.leftovers() == []


@pytest.mark.parametrize("pieces", [[], [b""], [b"", b""]], ids=["no-chunks", "one-empty", "two"])
async def test_an_empty_body_is_refused(harness: Harness, pieces: list[bytes]) -> None:
    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    with pytest.raises(OutputRejected, match="empty"):
        await harness.store.put(KEY, body(), content_type="video/mp4", max_bytes=MB)
    assert harness.leftovers() == []


async def test_a_cancelled_put_leaves_nothing(harness: Harness) -> None:
    sent_a_part = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        async for chunk in chunked(os.urandom(7 * MB)):
            yield chunk
        sent_a_part.set()
        await asyncio.Event().wait()  # a download that hangs
        yield b"never"

    put = asyncio.create_task(
        harness.store.put(KEY, stalls(), content_type="video/mp4", max_bytes=64 * MB)
    )
    await asyncio.wait_for(sent_a_part.wait(), 30)
    await asyncio.sleep(0.2)  # the first part is on its way
    put.cancel()
    with pytest.raises(asyncio.CancelledError):
        await put
    assert harness.leftovers() == []


@pytest.mark.parametrize(
    ("range", "expected"),
    [
        (ByteRange(10, 20), (10, 20)),
        (ByteRange(0, 1), (0, 1)),
        (ByteRange(MB - 3, MB + 5), (MB - 3, MB + 5)),  # across the read block
        (ByteRange(2 * MB), (2 * MB, 2 * MB + 100)),
        (ByteRange(2 * MB + 90, 10 * MB), (2 * MB + 90, 2 * MB + 100)),  # cut to the end
        (ByteRange(-7), (2 * MB + 93, 2 * MB + 100)),
        (ByteRange(-10 * MB), (0, 2 * MB + 100)),
    ],
)
async def test_range_reads(store: OutputStore, range: ByteRange, expected: tuple[int, int]) -> None:
    data = os.urandom(2 * MB + 100)
    await store.put(KEY, chunked(data), content_type="video/mp4", max_bytes=64 * MB)
    async with await store.open(KEY, range) as opened:
        assert (opened.start, opened.stop) == expected
        assert opened.info.size == len(data)
        assert opened.length == expected[1] - expected[0]
        assert b"".join([c async for c in opened.chunks]) == data[expected[0] : expected[1]]


@pytest.mark.parametrize("start", [100, 101, 5000])
async def test_a_range_past_the_end_is_unsatisfiable(store: OutputStore, start: int) -> None:
    await store.put(KEY, chunked(os.urandom(100)), content_type="video/mp4", max_bytes=MB)
    with pytest.raises(UnsatisfiableRange) as info:
        await store.open(KEY, ByteRange(start))
    assert info.value.size == 100


async def test_a_missing_object(store: OutputStore) -> None:
    assert await store.stat(KEY) is None
    with pytest.raises(UnknownOutput, match=KEY):
        await store.open(KEY)
    with pytest.raises(UnknownOutput):
        await store.open(KEY, ByteRange(0, 10))


async def test_delete_removes_the_object_and_is_idempotent(harness: Harness) -> None:
    store = harness.store
    await store.put(KEY, chunked(b"a video"), content_type="video/mp4", max_bytes=MB)
    await store.put("tasks/tsk_02/video.mp4", chunked(b"another"), content_type="x/y", max_bytes=MB)
    await store.delete(KEY)
    assert await store.stat(KEY) is None
    with pytest.raises(UnknownOutput):
        await store.open(KEY)
    await store.delete(KEY)
    await store.delete("tasks/never/stored.mp4")
    assert await read_all(store, "tasks/tsk_02/video.mp4") == b"another"
    assert all("tsk_01" not in left for left in harness.leftovers())


async def test_an_object_stays_readable_once_opened_even_if_deleted(store: OutputStore) -> None:
    data = os.urandom(3 * MB)
    await store.put(KEY, chunked(data), content_type="video/mp4", max_bytes=64 * MB)
    async with await store.open(KEY) as opened:
        first = await anext(opened.chunks)
        await store.delete(KEY)
        rest = b"".join([c async for c in opened.chunks])
    assert first + rest == data


@pytest.mark.parametrize(
    "key", ["", "/abs", "../up", "a/../b", ".hidden", "a/.b", "a//b", "a/", "sp ace", "a\\b"]
)
async def test_keys_the_relay_does_not_make_are_refused(store: OutputStore, key: str) -> None:
    with pytest.raises(ValueError, match="not an output key"):
        await store.put(key, chunked(b"x"), content_type="video/mp4", max_bytes=MB)
    with pytest.raises(ValueError, match="not an output key"):
        await store.open(key)
    with pytest.raises(ValueError, match="not an output key"):
        await store.delete(key)
