"""What callers and push providers ask of the tracker besides polling: cancel, inbound pushes,
the provider-neutral input, and tasks a provider forgot. Same set-up as ``test_tracker``:
a real SQLite store, the real sandbox over httpx and a fake clock.
"""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import pytest

from relay.api.errors import Answer, answer_for
from relay.errors import (
    InvalidInput,
    NotCancellable,
    TaskFinished,
    UnknownTask,
    UntranslatableInput,
)
from relay.models import LOOKS_KEPT, ErrorCode, EventType, TaskStatus
from relay.polling.schedule import PollPolicy
from relay.tasks.registration import ProviderPlan, Registration
from relay.tasks.tracker import Tracker
from tests.tasks.tracker_env import MODEL, POLL, POST, TASKS_PATH, Env, at, create_body, get

# Well-formed, a checksum the sandbox refuses (404), and stamped 2026-05-01 (Beijing): more
# than 7 days before the tests' T0 of 2026-06-06.
OLD_ID = "cgt-20260501000000-" + "a" * 40


def delete(ptid: str) -> tuple[str, str]:
    return ("DELETE", f"{TASKS_PATH}/{ptid}")


# --- cancel -----------------------------------------------------------------------------------


async def test_cancel_a_queued_ark_task_deletes_it_and_emits_cancelled(env: Env) -> None:
    task = await env.register(input=create_body(), callback_url="https://hooks.example.com/a")
    ptid = task.provider_task_id
    assert ptid is not None
    env.clock.advance(1)  # still queued at the sandbox (queued for 2 s)
    cancelled = await env.tracker.cancel(env.account.id, task.id)
    assert (cancelled.status, cancelled.completed_at, cancelled.next_poll_at) == (
        TaskStatus.CANCELLED,
        env.clock.now(),
        None,
    )
    assert cancelled.error is not None
    assert (cancelled.error.code, cancelled.error.retryable) == (ErrorCode.CANCELLED, False)
    # A look first (a finished Ark task would be deleted, not cancelled), then the DELETE.
    assert env.recorder.requests == [POST, get(ptid), delete(ptid)]
    assert await env.history(task) == [(EventType.TASK_QUEUED, 1), (EventType.TASK_CANCELLED, 2)]
    assert await env.stored(task) == cancelled
    # The provider agrees, and the task is never polled again.
    response = await env.http.get(f"{TASKS_PATH}/{ptid}", headers={"authorization": "Bearer sk"})
    assert response.json()["status"] == "cancelled"
    await env.step(60)
    assert env.recorder.requests[-1] == get(ptid)  # only the test's own look


async def test_ark_cannot_cancel_a_running_task(env: Env) -> None:
    task = await env.register(input=create_body())
    ptid = task.provider_task_id
    assert ptid is not None
    env.clock.advance(3)  # running at the sandbox
    with pytest.raises(NotCancellable) as caught:
        await env.tracker.cancel(env.account.id, task.id)
    assert answer_for(caught.value) == Answer(409, "not_supported")
    assert "running" in str(caught.value)
    assert env.recorder.requests == [POST, get(ptid)]  # no DELETE
    assert (await env.stored(task)).status is TaskStatus.RUNNING


async def test_a_finished_task_is_not_cancelled(env: Env) -> None:
    task = await env.register(input=create_body())
    ptid = task.provider_task_id
    assert ptid is not None
    env.clock.advance(30)
    with pytest.raises(TaskFinished) as caught:
        await env.tracker.cancel(env.account.id, task.id)
    assert answer_for(caught.value) == Answer(409, "task_finished")
    assert env.recorder.requests == [POST, get(ptid)]
    assert (await env.stored(task)).status is TaskStatus.SUCCEEDED
    with pytest.raises(UnknownTask):
        await env.tracker.cancel(env.account.id, "task_nope")
    with pytest.raises(UnknownTask):
        await env.tracker.cancel("acc_other", task.id)


# --- inbound pushes ---------------------------------------------------------------------------


async def test_a_push_is_confirmed_by_a_query_before_anything_is_emitted(env: Env) -> None:
    task = await env.register(input=create_body())
    ptid = task.provider_task_id
    assert ptid is not None
    env.clock.advance(9)  # finished at the sandbox; the next scheduled poll is at T0+5 ...
    assert await env.tracker.pushed(env.account.id, task.id)
    await env.tracker.drain()
    # ... but the push made the relay look at once.
    assert env.recorder.requests == [POST, get(ptid)]
    assert await env.history(task) == [(EventType.TASK_QUEUED, 1), (EventType.TASK_SUCCEEDED, 2)]
    # The timeline's record of it: a query made for the push, and what it found.
    assert [(look.via, look.outcome, look.status) for look in (await env.stored(task)).looks] == [
        ("push", "answered", "succeeded")
    ]
    # Duplicates and late pushes for a finished task ask nothing and change nothing.
    assert await env.tracker.pushed(env.account.id, task.id)
    await env.tracker.drain()
    assert env.recorder.requests == [POST, get(ptid)]
    assert not await env.tracker.pushed(env.account.id, "task_nope")
    assert not await env.tracker.pushed("acc_other", task.id)


async def test_a_push_the_provider_does_not_yet_confirm_brings_the_next_look_forward(
    env: Env,
) -> None:
    task = await env.register(input=create_body("[slow] a fox"))
    env.clock.advance(3)  # running
    assert await env.tracker.pushed(env.account.id, task.id)
    await env.tracker.drain()
    stored = await env.stored(task)
    assert stored.status is TaskStatus.RUNNING
    assert stored.next_poll_at is not None
    assert (stored.next_poll_at - env.clock.now()).total_seconds() <= 2.0


# --- tasks the provider forgot ----------------------------------------------------------------


async def test_a_task_past_the_providers_retention_expires_at_the_first_not_found(env: Env) -> None:
    task = await env.register(provider_task_id=OLD_ID)
    stored = await env.stored(task)
    assert (stored.status, stored.poll_count) == (TaskStatus.EXPIRED, 1)
    assert stored.error is not None
    assert (stored.error.code, stored.error.provider_code) == (
        ErrorCode.PAST_RETENTION,
        "ResourceNotFound",
    )
    assert "7 days" in stored.error.message
    assert await env.history(task) == [(EventType.TASK_QUEUED, 1), (EventType.TASK_EXPIRED, 2)]


# --- the provider-neutral input ---------------------------------------------------------------


def neutral_tracker(env: Env) -> Tracker:
    plan = ProviderPlan(
        client=env.client, poll=POLL, max_age=3600, models={"seedance-2.0-fast": MODEL}
    )
    tracker = Tracker(
        owner="relay_test",
        store=env.store,
        providers={"sandbox": plan},
        clock=env.clock,
        rng=random.Random(3),
        on_events=env.on_events,
    )
    env.trackers.append(tracker)
    return tracker


async def test_neutral_input_is_translated_into_the_ark_body(env: Env) -> None:
    tracker = neutral_tracker(env)
    sent: list[Any] = []
    inner = env.recorder.inner

    class Capture(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST":
                sent.append(json.loads(request.content))
            return await inner.handle_async_request(request)

    env.recorder.inner = Capture()
    task = await env.register(
        tracker,
        input={
            "model": "seedance-2.0-fast",
            "prompt": "a fox in snow",
            "ratio": "9:16",
            "duration": 6,
            "seed": 7,
        },
    )
    assert sent == [
        {
            "model": MODEL,
            "content": [{"type": "text", "text": "a fox in snow"}],
            "ratio": "9:16",
            "duration": 6,
            "seed": 7,
        }
    ]
    await env.step(10, tracker)
    stored = await env.stored(task)
    assert (stored.status, stored.model, stored.ratio, stored.duration, stored.seed) == (
        TaskStatus.SUCCEEDED,
        MODEL,
        "9:16",
        6,
        7,
    )


@pytest.mark.parametrize(
    ("body", "field", "refused"),
    [
        (
            {"model": "seedance-2.0-fast", "prompt": "a fox", "resolution": "1080p"},
            "input.resolution",
            UntranslatableInput,  # a valid resolution this provider's model lacks
        ),
        (
            {"model": "seedance-2.0-fast", "prompt": "a fox", "ratio": "5:4"},
            "input.ratio",
            InvalidInput,  # not a ratio of the neutral form at all
        ),
    ],
)
async def test_neutral_input_a_provider_cannot_do_is_refused_before_it_is_sent(
    env: Env, body: dict[str, Any], field: str, refused: type[InvalidInput | UntranslatableInput]
) -> None:
    tracker = neutral_tracker(env)
    with pytest.raises(refused) as caught:
        await tracker.register(env.account, Registration(provider="sandbox", input=body))
    assert caught.value.field == field
    code = "invalid_input" if refused is InvalidInput else "unsupported_by_provider"
    assert answer_for(caught.value) == Answer(400, code)
    assert env.recorder.requests == []


async def test_native_input_is_sent_as_given(env: Env) -> None:
    # Ark's own body: "content" is not a neutral key.
    task = await env.register(input=create_body(), input_format=None)
    assert task.provider_task_id is not None
    assert env.recorder.requests == [POST]


async def test_a_push_keeps_bringing_looks_forward_while_the_provider_is_down(env: Env) -> None:
    task = await env.register(input=create_body("[slow] a fox"))  # runs until T0+32
    env.clock.advance(40)  # finished; in the sparse middle of its ordinary schedule
    env.recorder.failing = 503  # the provider's API is down as the push arrives
    assert await env.tracker.pushed(env.account.id, task.id)
    await env.tracker.drain()
    for _ in range(3):  # looks that meet the outage (or wait out its back-off) …
        stored = await env.stored(task)
        assert stored.status is TaskStatus.QUEUED
        assert stored.next_poll_at is not None
        # … each followed by another within seconds, not the ordinary schedule's.
        wait = (stored.next_poll_at - env.clock.now()).total_seconds()
        assert 0 <= wait <= 2.5
        await env.step(wait)
    env.recorder.failing = None
    for _ in range(3):
        stored = await env.stored(task)
        if stored.status is TaskStatus.SUCCEEDED:
            break
        assert stored.next_poll_at is not None
        await env.step(max(0.0, (stored.next_poll_at - env.clock.now()).total_seconds()))
    done = await env.stored(task)
    assert done.status is TaskStatus.SUCCEEDED
    assert (env.clock.now() - at(40)).total_seconds() < 15
    # The looks the outage met are in the timeline with their fault, the last one answered.
    outcomes = [look.outcome for look in done.looks]
    assert outcomes[-1] == "answered"
    assert "unavailable" in outcomes, outcomes
    assert len(done.looks) <= LOOKS_KEPT


# --- learning how long tasks take -------------------------------------------------------------


async def test_polls_gather_where_tasks_like_this_one_have_finished(env: Env) -> None:
    """Tasks of one kind finish 8 s after creation at the sandbox. Before anything is learned
    the configured policy (expected 120 s) polls every second early on; once three have been
    seen finishing, the next one is left alone until close to 8 s."""
    plan = ProviderPlan(
        client=env.client,
        max_age=3600,
        poll=PollPolicy(min_interval=1, max_interval=60, expected_duration=120, jitter=0),
    )
    tracker = Tracker(
        owner="relay_test",
        store=env.store,
        providers={"sandbox": plan},
        clock=env.clock,
        rng=random.Random(4),
        on_events=env.on_events,
    )
    env.trackers.append(tracker)

    async def polls_before_it_ends() -> tuple[int, float]:
        task = await env.register(tracker, input=create_body())
        ptid = task.provider_task_id
        start = len(env.recorder.requests)
        early = 0
        while (await env.stored(task)).status is not TaskStatus.SUCCEEDED:
            stored = await env.stored(task)
            assert stored.next_poll_at is not None
            await env.step(
                max(0.0, (stored.next_poll_at - env.clock.now()).total_seconds()), tracker
            )
            age = (env.clock.now() - task.created_at).total_seconds()
            if age < 6:
                early = env.recorder.requests[start:].count(get(ptid or ""))
        done = await env.stored(task)
        assert done.completed_at is not None
        return early, (done.completed_at - task.created_at).total_seconds() - 8

    naive = [await polls_before_it_ends() for _ in range(3)]
    learned = await polls_before_it_ends()
    assert all(early >= 4 for early, _ in naive)  # every second while young
    assert learned[0] <= 2  # now it waits for the window it learned
    assert learned[1] <= 1.5  # and still sees the end promptly
