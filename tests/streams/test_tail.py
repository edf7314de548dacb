"""The stream's tail (pure): gaps left by writers that commit out of order are looked for
again, then forgotten; and the hub's per-stream bound on a real SQLite store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from relay.errors import TooManyStreams
from relay.models import EventType
from relay.store import open_store
from relay.streams.hub import IDLE_GAP, EventHub, StreamFilter
from relay.streams.tail import GAP_PATIENCE, Tail
from tests.store.factories import make_account, register


def test_positions_skipped_are_gaps_until_filled_or_forgotten() -> None:
    tail = Tail(10)
    tail.advance([11, 14, 15], now=0.0)
    assert tail.position == 15
    assert tail.open_gaps(now=1.0) == [12, 13]
    tail.advance([12], now=2.0)  # committed late: read again, the gap filled
    assert tail.open_gaps(now=2.0) == [13]
    tail.filled([])
    assert tail.open_gaps(now=GAP_PATIENCE + 0.5) == []  # a rolled-back write: forgotten
    tail.advance([16], now=20.0)
    assert (tail.position, tail.gaps) == (16, {})


async def test_a_reader_that_falls_behind_is_dropped_and_streams_are_bounded(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'relay.db'}")
    await store.migrate()
    alice = await make_account(store, "alice")
    hub = EventHub(store, interval=0.05, capacity=2, per_account=2)
    await hub.start()
    try:
        slow = hub.open(StreamFilter(alice.id))
        picky = hub.open(StreamFilter(alice.id, frozenset({EventType.TASK_FAILED})))
        with pytest.raises(TooManyStreams):
            hub.open(StreamFilter(alice.id))
        for _ in range(3):
            await register(store, alice, callback_url=None)  # one task.queued each
        hub.wake()
        for _ in range(100):
            if slow.overflowed:
                break
            await asyncio.sleep(0.02)
        assert slow.overflowed
        assert await slow.next() is None  # the stream ends, saying so
        assert not picky.overflowed  # wanted none of them
        hub.close(slow)
        hub.open(StreamFilter(alice.id))  # its place is free again
    finally:
        await hub.stop()
        await store.close()


class CountingStore:
    """The real store, counting the tail's looks at it."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.looks = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def event_positions_after(self, position: int, limit: int) -> list[int]:
        self.looks += 1
        positions: list[int] = await self._store.event_positions_after(position, limit)
        return positions

    async def events_after(self, position: int, limit: int) -> Any:
        self.looks += 1
        return await self._store.events_after(position, limit)


async def test_with_no_stream_open_a_busy_relays_wakes_are_gathered(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'relay.db'}")
    await store.migrate()
    alice = await make_account(store, "alice")
    counting = CountingStore(store)
    hub = EventHub(counting, interval=10.0)
    await hub.start()
    try:
        for _ in range(40):  # 40 wakes over 0.2 s: at most one look per IDLE_GAP
            hub.wake()
            await asyncio.sleep(0.005)
        assert counting.looks <= 0.2 / IDLE_GAP + 2
        # An open stream is served at once on a wake, and gets what was written after.
        listener = hub.open(StreamFilter(alice.id))
        await asyncio.sleep(IDLE_GAP * 2)
        await register(store, alice, callback_url=None)  # task.queued
        hub.wake()
        got = await asyncio.wait_for(listener.next(), 1)
        assert got is not None
        assert got[1].type is EventType.TASK_QUEUED
    finally:
        await hub.stop()
        await store.close()
