"""The stream hub's idle tail (relay.streams.hub): a stream that opens while the
tail's look for nobody is under way."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from relay.models import EventType
from relay.store import open_store
from relay.store.sqlite.store import SqliteStore
from relay.streams.hub import EventHub, StreamFilter
from tests.store.factories import make_account, register


async def test_a_stream_opened_during_an_idle_look_gets_the_events_written_after_it_opened(
    tmp_path: Path,
) -> None:
    """The look the tail takes while nobody listens only moves its place on. A stream that
    opens while that look waits for the reader, and an event committed then (after the
    stream opened, before the look's read transaction began), must still reach the stream:
    the look must not move the place past what a listener present by then never got."""
    store = open_store(f"sqlite:///{tmp_path / 'relay.db'}")
    assert isinstance(store, SqliteStore)
    await store.migrate()
    alice = await make_account(store, "alice")
    hub = EventHub(store, interval=10.0)
    await hub.start()
    reader = store._db._reader
    release = threading.Event()
    try:
        # The reader is busy (a slow read): the tail's next look waits behind it.
        held = asyncio.get_running_loop().run_in_executor(reader.thread, release.wait, 10)
        hub.wake()  # a write woke the tail while nobody listened: a look for nobody
        await asyncio.sleep(0.05)
        listener = hub.open(StreamFilter(alice.id))
        await register(store, alice, callback_url=None)  # task.queued, after the open
        release.set()
        await held
        hub.wake()  # as the API does after its writes
        got = await asyncio.wait_for(listener.next(), 2)
        assert got is not None
        assert got[1].type is EventType.TASK_QUEUED
    finally:
        release.set()
        await hub.stop()
        await store.close()
