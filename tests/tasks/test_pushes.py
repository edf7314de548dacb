"""Pushes are coalesced: a flood of pushes for one task asks the provider what one push asks.
Same set-up as ``test_tracker``: a real SQLite store, the real sandbox over httpx and a fake
clock; the provider's queries are counted by the recorder in front of the sandbox.

The tracker here polls rarely on its own (every 60 s), so every look within seconds of a
push is one the push paid for. A ``[slow]`` sandbox task runs from T0+2 until T0+32.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from relay.models import Task, TaskStatus
from relay.polling.schedule import PollPolicy
from relay.tasks.pushes import CONFIRM_WINDOW
from relay.tasks.registration import ProviderPlan
from relay.tasks.tracker import PUSH_RECHECKS, Tracker
from tests.tasks.tracker_env import Env, create_body, get

RARELY = PollPolicy(min_interval=60, max_interval=60, expected_duration=120, jitter=0)


def rare_tracker(env: Env) -> Tracker:
    plan = ProviderPlan(client=env.client, poll=RARELY, max_age=3600, learn=False)
    tracker = Tracker(
        owner="relay_test",
        store=env.store,
        providers={"sandbox": plan},
        clock=env.clock,
        rng=random.Random(4),
        on_events=env.on_events,
    )
    env.trackers.append(tracker)
    return tracker


async def push(env: Env, tracker: Tracker, task: Task, times: int = 1) -> None:
    """``times`` pushes for ``task`` arriving together, and whatever they started."""
    answers = await asyncio.gather(*(tracker.pushed(env.account.id, task.id) for _ in range(times)))
    assert all(answers)
    await tracker.drain()


async def queries(env: Env, task: Task) -> int:
    assert task.provider_task_id is not None
    return env.recorder.requests.count(get(task.provider_task_id))


async def quick_looks(env: Env, tracker: Tracker, task: Task, flood: int) -> int:
    """Follow the looks that come within seconds of each other (the push's rechecks), with
    ``flood`` more pushes before each; how many queries they made in all."""
    while True:
        stored = await env.stored(task)
        assert stored.next_poll_at is not None
        wait = (stored.next_poll_at - env.clock.now()).total_seconds()
        if wait > 2.5:  # back on the ordinary schedule
            return await queries(env, task)
        if flood:
            await push(env, tracker, task, flood)
        await env.step(wait, tracker)


async def test_a_flood_of_pushes_costs_the_queries_of_one_push(env: Env) -> None:
    tracker = rare_tracker(env)
    one = await env.register(tracker, input=create_body("[slow] a fox"))
    flooded = await env.register(tracker, input=create_body("[slow] a hare"))
    env.clock.advance(3)  # both running at the sandbox, until T0+32

    await push(env, tracker, one)
    assert await quick_looks(env, tracker, one, flood=0) == 1 + PUSH_RECHECKS

    await push(env, tracker, flooded, 200)
    assert await queries(env, flooded) == 1  # one look for 200 pushes
    # More pushes before every recheck neither add looks nor restart the rechecks.
    assert await quick_looks(env, tracker, flooded, flood=50) == 1 + PUSH_RECHECKS
    stored = await env.stored(flooded)
    assert stored.status is TaskStatus.RUNNING
    assert [look.via for look in stored.looks].count("push") == PUSH_RECHECKS


async def test_a_push_after_the_window_is_heard_and_a_finished_task_costs_nothing(
    env: Env,
) -> None:
    tracker = rare_tracker(env)
    task = await env.register(tracker, input=create_body("[slow] a fox"))
    env.clock.advance(3)
    await push(env, tracker, task)
    await env.step(2, tracker)
    assert await queries(env, task) == 2
    # Within the window a push starts nothing, even once the rechecks are spent ...
    env.clock.advance(CONFIRM_WINDOW - 3)
    await push(env, tracker, task, 10)
    assert await queries(env, task) == 2
    # ... after it, the provider's next push (the task finished at T0+32) is confirmed at once.
    env.clock.advance(5)
    await push(env, tracker, task, 10)
    assert await queries(env, task) == 3
    assert (await env.stored(task)).status is TaskStatus.SUCCEEDED
    # Any number of pushes for a finished task, in the window or long after, ask nothing.
    await push(env, tracker, task, 100)
    env.clock.advance(3 * CONFIRM_WINDOW)
    await push(env, tracker, task, 100)
    assert await queries(env, task) == 3


async def test_an_untimed_token_covers_only_a_task_created_after_its_limit(env: Env) -> None:
    tracker = rare_tracker(env)
    task = await env.register(tracker, input=create_body("[slow] a fox"))
    env.clock.advance(3)
    too_old = task.created_at + timedelta(seconds=1)  # the task is older than the token may be
    assert not await tracker.pushed(env.account.id, task.id, created_after=too_old)
    await tracker.drain()
    assert await queries(env, task) == 0
    young = task.created_at - timedelta(seconds=1)
    assert await tracker.pushed(env.account.id, task.id, created_after=young)
    await tracker.drain()
    assert await queries(env, task) == 1
