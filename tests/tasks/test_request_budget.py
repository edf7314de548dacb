"""The provider request budget (relay.tasks.request_budget): the arithmetic alone, then the
budget on a real event loop (asyncio and uvloop) driven at 1,000 requests a second."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
import uvloop

from relay.tasks.request_budget import EARLY, RequestBudget, SlotSchedule

# -- the arithmetic ---------------------------------------------------------------------------


def test_slots_are_spaced_and_keep_their_scheduled_times() -> None:
    s = SlotSchedule(0.01, catch_up=0.005, early=0.0)
    assert s.take(100.0, queued=False)  # free on arrival: at once
    assert not s.take(100.0)  # the next is 10 ms on
    assert s.next_slot == pytest.approx(100.01)
    # The timer fires 3 ms late: the slot is given, and the one after it stays where it was
    # scheduled (late wake-ups cost no rate).
    assert s.take(100.013)
    assert s.next_slot == pytest.approx(100.02)


def test_after_a_stall_only_the_catch_up_goes_at_once() -> None:
    s = SlotSchedule(0.001, catch_up=0.005, early=0.0005)
    assert s.take(10.0, queued=False)
    # The loop stalls for a second: a thousand slots passed; only catch_up / spacing + 1 of
    # them (and what ``early`` lets through) are given at once.
    at_once = 0
    while s.take(11.0):
        at_once += 1
    assert at_once == int((0.005 + 0.0005) / 0.001) + 1 == 6
    assert s.delay(11.0) == pytest.approx(0.001)
    assert s.delay(11.0, queued=3) == pytest.approx(0.004)


def test_an_idle_budget_gives_no_burst() -> None:
    s = SlotSchedule(0.01, catch_up=0.005, early=0.0)
    assert s.take(50.0, queued=False)
    # Ten seconds idle, then two requests: the first goes at once, the second a spacing
    # later (the thousand unused slots are not there to be taken).
    assert s.take(60.0, queued=False)
    assert not s.take(60.0, queued=False)
    assert not s.take(60.0)
    assert s.next_slot == pytest.approx(60.01)


def test_a_spacing_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SlotSchedule(0.0)


# -- on the event loop ------------------------------------------------------------------------


async def drive(rate: float, workers: int, seconds: float) -> float:
    """The rate ``workers`` waiters get from a budget of ``rate``/s over ``seconds`` (after a
    short warm-up)."""
    budget = RequestBudget(rate)
    given: list[float] = []
    counting = False

    async def worker() -> None:
        while True:
            await budget.wait()
            if counting:
                given.append(time.perf_counter())

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    await asyncio.sleep(0.1)
    counting = True
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    counting = False
    elapsed = time.perf_counter() - t0
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return len(given) / elapsed


def check_rate(achieved: float, rate: float) -> None:
    # The floor the issue asks for (0.98 of the budget), and no more than the budget plus
    # its bounded catch-up over the window.
    assert 0.98 * rate <= achieved <= 1.02 * rate, (achieved, "load", os.getloadavg())


ATTEMPTS = 3
"""Tries of a rate check. The floor holds for the budget on a loop that gets its core; on a
shared machine (tests in parallel) the loop may lose it for longer than the catch-up, and
the slots of that time are lost by design (a stall is not made up for): the best of three
short runs measures the budget rather than the neighbours."""


# The rate checks run in the serial phase (scripts/test): beside five busy workers the loop
# can lose its core for longer than any catch-up.
@pytest.mark.alone
async def test_a_budget_of_1000_per_second_serves_1000_per_second() -> None:
    best = 0.0
    for _ in range(ATTEMPTS):
        best = max(best, await drive(1000, 32, 1.5))
        if best >= 0.98 * 1000:
            break
    check_rate(best, 1000)


@pytest.mark.alone
def test_on_uvloop_too() -> None:
    best = 0.0
    for _ in range(ATTEMPTS):
        best = max(best, uvloop.run(drive(1000, 32, 1.5)))
        if best >= 0.98 * 1000:
            break
    check_rate(best, 1000)


async def test_a_stall_is_not_made_up_for_by_a_burst() -> None:
    loop = asyncio.get_running_loop()
    catch_up = 0.005  # (well under the 64 waiters, so that a burst would show)
    budget = RequestBudget(1000, catch_up=catch_up)
    given: list[float] = []

    async def worker() -> None:
        while True:
            await budget.wait()
            given.append(loop.time())

    tasks = [asyncio.create_task(worker()) for _ in range(64)]
    await asyncio.sleep(0.05)
    assert budget.queued >= 40  # (nearly) everyone is waiting for a slot
    time.sleep(0.2)  # noqa: ASYNC251 - the stall under test
    stalled_until = loop.time()
    await asyncio.sleep(0.05)
    ended = loop.time()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    after = [t - stalled_until for t in given if t >= stalled_until]
    # 200 slots passed during the stall and the waiters were queued for them: without a
    # bound, all of them would go at once. One release of the timer gives at most
    # ``(catch_up + EARLY) / spacing + 1`` slots at once: in the 2 ms after the stall go at
    # most two slots and one such burst, plus one more burst that was released just
    # before the stall (its waiters run, and note the time, only after it).
    burst = int((catch_up + EARLY) / 0.001) + 1
    first = [t for t in after if t < 0.002]
    assert len(first) <= 2 + 2 * burst, first
    # And the budget's pace resumes: about 1,000/s over the rest of the window.
    assert 20 <= len(after) <= (ended - stalled_until) / 0.001 + 2 * burst, len(after)


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    loop = asyncio.get_running_loop()
    budget = RequestBudget(10)  # 100 ms apart
    await budget.wait()  # the first slot: at once
    start = loop.time()
    first = asyncio.create_task(budget.wait())  # queued for +100 ms
    second = asyncio.create_task(budget.wait())  # queued for +200 ms
    await asyncio.sleep(0.01)
    assert budget.queued == 2
    first.cancel()
    await second
    # The cancelled waiter's slot went to the next in line.
    assert loop.time() - start < 0.15
    assert budget.queued == 0


async def test_waiters_all_cancelled_do_not_wedge_the_queue() -> None:
    loop = asyncio.get_running_loop()
    budget = RequestBudget(50)  # 20 ms apart
    await budget.wait()
    waiters = [asyncio.create_task(budget.wait()) for _ in range(20)]
    await asyncio.sleep(0.01)
    for w in waiters:
        w.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    start = loop.time()
    await asyncio.wait_for(budget.wait(), 1.0)
    await asyncio.wait_for(budget.wait(), 1.0)
    # Two slots, 20 ms apart, for the two requests made after the cancellations: the
    # cancelled ones took none.
    assert loop.time() - start < 0.1


def test_a_budget_moves_to_another_event_loop() -> None:
    budget = RequestBudget(50)

    async def three() -> None:
        await asyncio.wait_for(asyncio.gather(*(budget.wait() for _ in range(3))), 1.0)

    asyncio.run(three())
    uvloop.run(three())  # nothing of the first loop's clock or queue is left to wait for
    asyncio.run(three())
