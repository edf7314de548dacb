"""The live event stream's source: one tail of the store per instance, fanned out in memory to
every open stream (``GET /v1/events/stream``, ``relay.api.stream``).

One reader per instance, not one per stream: a thousand idle streams cost one query per
``interval``, and an event is read once however many streams want it. The tail is woken at
once by this instance's own writes (``wake``) and by other instances' (PostgreSQL's NOTIFY),
and looks anyway every ``interval``, so events written elsewhere without a notification
arrive too. While no stream is open the tail only keeps its place, looking at most every
``IDLE_GAP`` however busy the writers are. Each stream has a bounded queue: a reader too
slow to keep up is dropped with a last message saying how to resume, never allowed to grow
memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sse_starlette import ServerSentEvent

from relay.errors import StoreError, TooManyStreams
from relay.models import Event, EventType
from relay.store.stream_roles import Positioned, StreamStore
from relay.streams.tail import Tail

log = logging.getLogger("relay.streams")


@dataclass(frozen=True, slots=True)
class StreamFilter:
    account_id: str
    types: frozenset[EventType] | None = None
    """None: every type."""
    task_id: str | None = None

    def wants(self, event: Event) -> bool:
        return (
            event.account_id == self.account_id
            and (self.types is None or event.type in self.types)
            and (self.task_id is None or event.task_id == self.task_id)
        )


IDLE_GAP = 0.05
"""Seconds between two looks at the store while no stream is open, however often writes
wake the tail: it only keeps its place then (a stream that opens meanwhile waits this long
for its first events at most)."""

Queued = tuple[int, Event, bytes]
"""An event for a stream: its position, the event, and its frame (encoded once for all)."""


def frame(event: Event) -> bytes:
    """The event as one Server-Sent Events frame: its id, its type, the envelope as data."""
    return ServerSentEvent(data=event.body, id=event.id, event=event.type.value).encode()


class Listener:
    """One open stream's share of the hub: the events it wants, in a bounded queue."""

    def __init__(self, wants: StreamFilter, capacity: int) -> None:
        self.filter = wants
        self._queue: asyncio.Queue[Queued] = asyncio.Queue(maxsize=capacity)
        self.overflowed = False
        """It fell ``capacity`` events behind: the stream ends, the reader resumes later."""
        self._overflow = asyncio.Event()

    def offer(self, event: Queued) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self._overflow.set()

    def drain(self, most: int) -> list[Queued]:
        """What is queued already, up to ``most``, without waiting: sent as one chunk."""
        taken: list[Queued] = []
        while len(taken) < most and not self._queue.empty():
            taken.append(self._queue.get_nowait())
        return taken

    async def next(self) -> Queued | None:
        """The next event and its position, or None once the reader fell too far behind."""
        if self.overflowed:
            return None
        if not self._queue.empty():  # the common case under load: no tasks, no wait
            return self._queue.get_nowait()
        getting = asyncio.ensure_future(self._queue.get())
        falling = asyncio.ensure_future(self._overflow.wait())
        try:
            await asyncio.wait({getting, falling}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            falling.cancel()
            if not getting.done():
                getting.cancel()
        if self.overflowed:
            return None
        return getting.result()


class EventHub:
    def __init__(
        self,
        store: StreamStore,
        *,
        interval: float = 0.25,
        batch: int = 500,
        capacity: int = 1000,
        per_account: int = 10,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._interval = interval
        self._batch = batch
        self._capacity = capacity
        self._per_account = per_account
        self._monotonic = monotonic
        self._listeners: weakref.WeakSet[Listener] = weakref.WeakSet()
        """Weak: a stream whose response never ran (a client gone before it started) holds no
        place once it is dropped, even though its ``finally`` never ran."""
        self._wake = asyncio.Event()
        self._tail: Tail | None = None
        self._runner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._tail = Tail(await self._store.last_event_position())
        self._runner = asyncio.create_task(self._run(), name="event stream tail")

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None

    def wake(self) -> None:
        """Events were written: read them now, not at the next interval."""
        self._wake.set()

    def open(self, wants: StreamFilter) -> Listener:
        """A new stream's listener; ``TooManyStreams`` past the account's limit."""
        held = sum(1 for li in self._listeners if li.filter.account_id == wants.account_id)
        if held >= self._per_account:
            raise TooManyStreams(
                f"this account has {held} open event streams on this instance, the most it "
                "may hold: close one first"
            )
        listener = Listener(wants, self._capacity)
        self._listeners.add(listener)
        return listener

    def close(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    @property
    def open_streams(self) -> int:
        return len(self._listeners)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self._read()
            except StoreError as exc:  # the database is away: the next look tries again
                log.warning("event stream could not read events: %s", exc)
            except Exception:  # a bug here must not end every stream
                log.exception("event stream tail failed")
            if not self._listeners:
                # Nobody listens: the wakes of a busy relay are gathered into one look
                # every IDLE_GAP, not one read each.
                await asyncio.sleep(min(IDLE_GAP, self._interval))

    async def _read(self) -> None:
        tail = self._tail
        assert tail is not None
        if not self._listeners:
            # Nobody listens: keep the place and the gaps (an event committing late is
            # still read for the first stream to open), but read no bodies.
            while True:
                seen = await self._store.event_positions_after(tail.position, self._batch)
                if self._listeners:
                    # A stream opened during the look: what it saw may have committed
                    # after, and is read whole for it below.
                    break
                tail.advance(seen, self._monotonic())
                if len(seen) < self._batch:
                    return
        gaps = tail.open_gaps(self._monotonic())
        if gaps:
            late = await self._store.events_at(gaps[: self._batch])
            tail.filled(pos for pos, _ in late)
            self._publish(late)
        while True:
            rows = await self._store.events_after(tail.position, self._batch)
            tail.advance((pos for pos, _ in rows), self._monotonic())
            self._publish(rows)
            if len(rows) < self._batch:
                return

    def _publish(self, rows: Iterable[Positioned]) -> None:
        listeners = list(self._listeners)
        for position, event in rows:
            encoded: bytes | None = None
            for listener in listeners:
                if listener.filter.wants(event):
                    encoded = encoded or frame(event)
                    listener.offer((position, event, encoded))
