"""The poll queue's consumer: claims due polls, no more per provider than it can begin soon
(``relay.polling.claims``), runs each, and at shutdown hands back the claims it will not
make. What one poll does is the tracker's (``Tracker._poll``); this module only decides which
polls run here and when.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any, Protocol

from relay.clock import Clock
from relay.errors import StoreError
from relay.models import Task
from relay.polling.claims import ClaimBook
from relay.pump import Pump

log = logging.getLogger("relay.tracker")

PROVIDERS_CHECK = 60.0
"""Seconds between two looks for tasks of providers no longer configured (claimed apart,
and failed without asking anyone)."""


class PollQueue(Protocol):
    async def claim_due_polls(
        self, now: datetime, limits: Mapping[str, int], lease_seconds: float, owner: str
    ) -> list[Task]: ...

    async def polled_providers(self) -> set[str]: ...

    async def next_poll_at(self, after: datetime) -> datetime | None: ...

    async def release_polls(self, task_ids: list[str], owner: str, now: datetime) -> None: ...


class PollDispatch:
    def __init__(
        self,
        *,
        store: PollQueue,
        ahead: Mapping[str, int],
        batch_size: int,
        lease_seconds: float,
        owner: str,
        clock: Clock,
        poll: Callable[[Task], Awaitable[None]],
    ) -> None:
        """``ahead``: how many polls each provider may hold claimed
        (``relay.polling.claims.polls_ahead``); ``owner`` names this instance on the
        leases; ``poll`` makes one claimed poll (and never raises)."""
        self._store = store
        self._batch = batch_size
        self._lease = lease_seconds
        self._owner = owner
        self._clock = clock
        self._poll = poll
        self._book = ClaimBook(ahead, batch_size)
        self._running: set[asyncio.Task[None]] = set()
        self._claimed: dict[str, int] = {}
        """Tasks whose claimed poll is under way here, by the version it started from."""
        self._claimed_at = clock.now()
        self._providers_checked: datetime | None = None
        self.pump = Pump("polls", self._claim, self._seconds_to_next)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a poll here (a claimed one, or a push's look), so draining waits for it."""
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def due_in(self, seconds: float) -> None:
        self.pump.due_in(seconds)

    async def drain(self) -> None:
        """Wait for polls in flight; a poll finishing meanwhile may re-arm the timer, so it
        is cancelled until nothing runs."""
        while self._running or self.pump.timer_armed or self.pump.busy:
            self.pump.cancel_timer()
            await self.pump.settle()
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)

    async def shut_down(self, grace: float, settle: Callable[[], Awaitable[None]]) -> None:
        """Stop claiming, give the polls under way ``grace`` seconds, then cancel the rest
        (``settle`` waits for what they left being written) and hand their claims back: due
        again at once (at another instance now, or here after a restart), not when their
        leases would have ended."""
        self.pump.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self._running and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._running), timeout=left)
        await self.pump.settle()
        unmade = list(self._claimed)
        for running in self._running:
            running.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        await settle()
        if unmade:
            try:
                await self._store.release_polls(unmade, self._owner, self._clock.now())
            except StoreError as exc:  # their leases run out instead
                log.warning("claimed polls not handed back: %s", exc)

    async def _claim(self) -> bool:
        self._claimed_at = now = self._clock.now()
        if (
            self._providers_checked is None
            or (now - self._providers_checked).total_seconds() >= PROVIDERS_CHECK
        ):
            self._providers_checked = now
            self._book.add(await self._store.polled_providers(), self._batch)
        asked = self._book.limits()
        if not asked:
            return False  # every provider holds all it can begin soon: a finished poll wakes us
        tasks = await self._store.claim_due_polls(now, asked, self._lease, self._owner)
        got: dict[str, int] = {}
        found: dict[str, int] = {}
        for task in tasks:
            found[task.provider] = found.get(task.provider, 0) + 1
            # A poll still under way here when its lease ran out (a provider that hangs) is
            # due again and claimed again: by us, that claim only renewed the lease of the
            # poll under way. Once that poll has saved, the task has a new version and a
            # claim of it is new work.
            if self._claimed.get(task.id) != task.version:
                self._claimed[task.id] = task.version
                got[task.provider] = got.get(task.provider, 0) + 1
                self.spawn(self._claimed_poll(task))
        return self._book.claimed(asked, got, found)

    async def _claimed_poll(self, task: Task) -> None:
        try:
            await self._poll(task)
        finally:
            if self._claimed.get(task.id) == task.version:
                del self._claimed[task.id]
            if self._book.finished(task.provider):
                self.pump.wake()

    async def _seconds_to_next(self) -> float | None:
        # Work due by the last claim was that claim's; anything later wants a timer.
        due = await self._store.next_poll_at(self._claimed_at)
        return None if due is None else (due - self._clock.now()).total_seconds()
