"""The dispatch loop shared by the poller and the delivery engine.

New work is dispatched at once (``wake``), not at the next scheduler tick, yet never by two
passes at the same time: a wake while a pass runs only asks for one more pass. After the last
pass the pump arms a timer for the next known due time, when that is sooner than a tick.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from relay.errors import StoreError

log = logging.getLogger("relay.pump")

TIMER_HORIZON = 5.0
"""Due times further away than this are left to the scheduler's periodic tick."""

MIN_TIMER_DELAY = 0.05
"""Due work a pass did not take (its destination is at its cap, or it is leased) must not
turn the timer into a busy loop."""


class Pump:
    def __init__(
        self,
        name: str,
        one_pass: Callable[[], Awaitable[bool]],
        seconds_to_next: Callable[[], Awaitable[float | None]],
    ) -> None:
        """``one_pass`` claims and dispatches one batch; True if it filled the batch (so more
        may be due at once). ``seconds_to_next`` says when the next known work falls due."""
        self._name = name
        self._one_pass = one_pass
        self._seconds_to_next = seconds_to_next
        self._running = False
        self._again = False
        self._stopped = False
        self._timer: asyncio.TimerHandle | None = None
        self._woken: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._skipped = 0
        """Passes skipped in a row because the database was unavailable."""

    def wake(self) -> None:
        if self._stopped:
            return
        if self._running:
            self._again = True
            return
        task = asyncio.ensure_future(self.run())
        self._woken.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._woken.discard(task)
        _log_failure(task)

    async def settle(self) -> None:
        """Wait for every pass under way (woken or run by the scheduler) to end."""
        while self._woken or self._running:
            if self._woken:
                await asyncio.gather(*self._woken, return_exceptions=True)
            else:
                await self._idle.wait()

    async def run(self) -> None:
        """One or more passes, until nothing more is due at once; then arm the timer."""
        if self._stopped:
            return
        if self._running:
            self._again = True
            return
        self._running = True
        self._idle.clear()
        try:
            while not self._stopped:
                self._again = False
                if await self._one_pass() or self._again:
                    continue
                await self._arm()
                if not self._again:  # a wake while arming the timer asks for another pass
                    break
        except StoreError as exc:
            # The database is away (a restart, a network blip, a full disk): nothing was
            # half-done, and the next tick tries again. A warning, not a crash report, and
            # one for the outage, not one for every tick.
            self._skipped += 1
            if self._skipped == 1:
                log.warning(
                    "%s pass skipped, the database is unavailable: %s (trying again every tick)",
                    self._name,
                    exc,
                )
        else:
            if self._skipped:
                log.warning(
                    "%s passes resumed: the database is back after %d skipped",
                    self._name,
                    self._skipped,
                )
                self._skipped = 0
        finally:
            self._running = False
            self._idle.set()

    def due_in(self, seconds: float) -> None:
        """Work was just scheduled ``seconds`` from now (a poll's next time, a retry):
        make sure the pump runs then, if that is sooner than the tick and the timer."""
        if self._stopped or seconds >= TIMER_HORIZON:
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + max(MIN_TIMER_DELAY, seconds)
        if self._timer is not None and not self._timer.cancelled() and self._timer.when() <= when:
            return
        self.cancel_timer()
        self._timer = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.wake()

    @property
    def busy(self) -> bool:
        return self._running or bool(self._woken)

    @property
    def timer_armed(self) -> bool:
        return self._timer is not None and not self._timer.cancelled()

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def stop(self) -> None:
        """No more passes, wakes or timers."""
        self._stopped = True
        self.cancel_timer()

    async def _arm(self) -> None:
        if self._stopped:
            return
        delay = await self._seconds_to_next()
        if delay is not None:
            self.due_in(delay)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        # The next wake or tick runs a fresh pass; a failing one must not go unseen.
        log.error("a dispatch pass failed", exc_info=task.exception())
