"""A provider's request budget: requests spaced ``1 / requests_per_second`` apart, each one
sleeping once, until its own slot.

Two parts. ``SlotSchedule`` is the arithmetic alone (times in, decisions out). ``RequestBudget``
puts it on the event loop: requests that cannot go at once wait in a first-in first-out queue
of futures, and one timer (``loop.call_at``) armed for the next slot releases, each time it
fires, every waiter whose slot has come. A waiter is woken once, by its own release; no waiter
wakes for another's slot, and nothing sleeps and looks again.

Slots keep their scheduled times: slot ``k + 1`` is slot ``k`` plus the spacing, whenever the
timer actually fired, so a timer that fires late (millisecond timers, a busy loop) delays a
request but loses no rate. What a late loop may catch up is bounded, though: a slot is never
earlier than ``now - catch_up``. After an event-loop stall, waiters whose slots had all passed
do not go out together; at most ``catch_up / spacing + 1`` go at once, and the rest follow at
the budget's pace. Over any window of ``w`` seconds the budget lets through at most
``(w + catch_up + EARLY) / spacing + 1`` requests, and a budget that sat idle gives no burst
(a request that finds a slot free takes it at its own arrival, not in the past).

A waiter cancelled while queued (a poll cancelled at shutdown) takes no slot: slots are handed
out only at release, and a cancelled waiter is skipped. One cancelled after its release but
before it ran has used its slot (a slot given is not taken back).
"""

from __future__ import annotations

import asyncio
from collections import deque

CATCH_UP = 0.02
"""Seconds a slot may lie in the past when it is given: how much timer lateness is absorbed
without losing rate, and (divided by the spacing) the most slots that go out at once after a
stall: 21 at 1,000/s, 3 at 100/s, 1 (no burst) below 50/s. A busy relay's loop, or a process
that waits for a core on a loaded machine, easily wakes a few milliseconds late. The average
stays at the budget, but a sliding second that holds such a burst may hold 2 % more than the
budget (1,020 at 1,000/s): set ``requests_per_second`` 2 % under a provider's hard per-second
limit."""

EARLY = 0.0005
"""Seconds before its time a slot may be given: half the millisecond of the timers both event
loops use (uvloop's clock itself counts whole milliseconds), so a timer that fires a fraction
of a millisecond early releases its slot instead of being armed again for nothing."""


class SlotSchedule:
    """The budget's arithmetic: which slot a request gets, and when the next one is."""

    __slots__ = ("_next", "catch_up", "early", "spacing")

    def __init__(self, spacing: float, *, catch_up: float = CATCH_UP, early: float = EARLY) -> None:
        if spacing <= 0:
            raise ValueError("the spacing between requests must be positive")
        self.spacing = spacing
        self.catch_up = catch_up
        self.early = early
        self._next = float("-inf")

    @property
    def next_slot(self) -> float:
        """The time of the next free slot (it may be in the past: see ``take``)."""
        return self._next

    def take(self, now: float, *, queued: bool = True) -> bool:
        """Give the next slot if it has come by ``now`` (within ``early``), and move on to
        the one after it. For a request that ``queued`` (released by the timer), a slot that
        lies further back than ``catch_up`` is moved up to ``now - catch_up``: lateness up to
        that is made up for, a stall is not made up for by a burst. For one that did not
        (nobody waiting, the slot free on arrival) the slot is ``now`` at the earliest: no
        request was late, and a budget that sat idle gives no burst."""
        slot = max(self._next, now - self.catch_up if queued else now)
        if slot > now + self.early:
            return False
        self._next = slot + self.spacing
        return True

    def delay(self, now: float, queued: int = 0) -> float:
        """Seconds until a request made at ``now`` behind ``queued`` others would get its
        slot (0 when it would go at once)."""
        slot = max(self._next, now - self.catch_up) + queued * self.spacing
        return max(0.0, slot - now)


class RequestBudget:
    """``await budget.wait()`` returns in the caller's slot: at once when the budget has one
    free and nobody is queued, else when the timer releases it."""

    def __init__(
        self, requests_per_second: float, *, catch_up: float = CATCH_UP, early: float = EARLY
    ) -> None:
        self._schedule = SlotSchedule(1.0 / requests_per_second, catch_up=catch_up, early=early)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def queued(self) -> int:
        """Requests waiting for their slot (cancelled ones not yet skipped included)."""
        return len(self._waiters)

    def delay(self) -> float:
        """Seconds a request made now would wait for its slot (needs a running loop)."""
        now = asyncio.get_running_loop().time()
        return self._schedule.delay(now, len(self._waiters))

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # First use, or a budget used on another event loop (a test's, an app started
            # again): what was queued on the old one went with it, and its clock too.
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._waiters.clear()
            old = self._schedule
            self._schedule = SlotSchedule(old.spacing, catch_up=old.catch_up, early=old.early)
            self._loop = loop
        if not self._waiters and self._schedule.take(loop.time(), queued=False):
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        if self._timer is None:
            self._arm(loop)
        await waiter  # cancelled while queued: skipped at release, no slot taken

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = loop.call_at(self._schedule.next_slot, self._release)

    def _release(self) -> None:
        """The timer: release every waiter whose slot has come, then arm for the next."""
        self._timer = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        waiters = self._waiters
        while waiters:
            waiter = waiters[0]
            if waiter.done():  # cancelled while it waited
                waiters.popleft()
                continue
            if not self._schedule.take(now):
                break
            waiters.popleft()
            waiter.set_result(None)
        if waiters:
            self._arm(loop)
