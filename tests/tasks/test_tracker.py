"""The tracker end to end: a real SQLite store, the real sandbox (Ark dialect) over httpx, and
a fake clock that only the test moves. Polling uses ``jitter=0`` so every poll time is exact.

With ``PollPolicy(min 5, max 60, E 120)`` a task younger than 18 s is polled every 5 s, and the
sandbox (queued 2 s, running 6 s) answers ``queued`` before T0+2, ``running`` until T0+8 and
``succeeded`` from then on.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta
from typing import Any

import httpx
import pytest

from relay.api.errors import Answer, answer_for
from relay.errors import (
    DuplicateTask,
    ProviderRejected,
    ProviderUnavailable,
    UnknownProvider,
    UnknownTask,
)
from relay.models import (
    Account,
    DeliveryStatus,
    ErrorCode,
    EventType,
    Look,
    Task,
    TaskError,
    TaskStatus,
)
from relay.polling.schedule import PollPolicy
from relay.provider_answers import FaultKind
from relay.routing import StepOutcome, SubmissionStep
from relay.store.values import TaskQuery
from relay.tasks.registration import ProviderPlan, Registration
from relay.tasks.tracker import Tracker
from tests.tasks.tracker_env import (
    BOGUS_ID,
    HOOK,
    ID_RE,
    MODEL,
    POLL,
    POST,
    SEED,
    T0,
    TASKS_PATH,
    Env,
    at,
    create_body,
    get,
    sandbox_video_url,
)

# --- registration -----------------------------------------------------------------------------


async def test_register_by_input_submits_and_queues(env: Env) -> None:
    task = await env.register(
        input=create_body(), reference="order-1234", metadata={"projectId": "proj_1001"}
    )
    assert task.id.startswith("task_")
    assert task.provider_task_id is not None
    assert ID_RE.fullmatch(task.provider_task_id)
    assert task == Task(
        id=task.id,
        account_id="acc_fox",
        provider="sandbox",
        provider_task_id=task.provider_task_id,
        status=TaskStatus.QUEUED,
        created_at=T0,
        updated_at=T0,
        sequence=1,
        version=0,
        reference="order-1234",
        submissions=(SubmissionStep("sandbox", T0, StepOutcome.ACCEPTED),),
        metadata={"projectId": "proj_1001"},
        next_poll_at=at(5),
    )
    assert await env.stored(task) == task
    assert env.recorder.requests == [POST]

    [event] = await env.events(task)
    assert (event.type, event.sequence, event.created_at, event.task_id) == (
        EventType.TASK_QUEUED,
        1,
        T0,
        task.id,
    )
    assert json.loads(event.body) == {
        "id": event.id,
        "type": "task.queued",
        "timestamp": "2026-06-06T16:00:00Z",
        "sequence": 1,
        "data": task.to_json(),
    }
    assert env.on_events.calls == 1


async def test_register_by_provider_task_id_polls_at_once(env: Env) -> None:
    ptid = await env.sandbox_task()
    task = await env.register(provider_task_id=ptid)
    assert (task.status, task.provider_task_id, task.sequence, task.next_poll_at) == (
        TaskStatus.QUEUED,
        ptid,
        1,
        T0,
    )

    stored = await env.stored(task)
    assert stored == Task(
        id=task.id,
        account_id="acc_fox",
        provider="sandbox",
        provider_task_id=ptid,
        status=TaskStatus.QUEUED,
        created_at=T0,
        updated_at=T0,
        sequence=1,
        version=1,
        model=MODEL,
        resolution="720p",
        ratio="16:9",
        duration=5,
        fps=24,
        seed=SEED,
        next_poll_at=at(5),
        poll_count=1,
        # The query is kept for the timeline, with what the provider said.
        looks=(Look(T0, "poll", "answered", "queued"),),
    )
    assert env.recorder.requests == [POST, get(ptid)]
    assert await env.history(task) == [(EventType.TASK_QUEUED, 1)]
    assert env.on_events.calls == 1


async def test_register_a_finished_task_goes_straight_to_succeeded(env: Env) -> None:
    ptid = await env.sandbox_task()
    env.clock.advance(30)
    task = await env.register(provider_task_id=ptid)
    assert await env.history(task) == [(EventType.TASK_QUEUED, 1), (EventType.TASK_SUCCEEDED, 2)]
    stored = await env.stored(task)
    assert (stored.status, stored.progress, stored.completed_at, stored.next_poll_at) == (
        TaskStatus.SUCCEEDED,
        100,
        at(30),
        None,
    )
    assert stored.video_url == sandbox_video_url(ptid, at(8))


async def test_unknown_provider_is_a_bad_request(env: Env) -> None:
    for reg in (
        Registration(provider="nope", provider_task_id="cgt-1"),
        Registration(provider="nope", input=create_body()),
    ):
        with pytest.raises(UnknownProvider) as caught:
            await env.tracker.register(env.account, reg)
        assert answer_for(caught.value) == Answer(400, "unknown_provider")
    assert env.recorder.requests == []
    assert (await env.store.list_tasks(env.account.id, TaskQuery())).items == []


async def test_duplicate_registration_is_a_conflict(env: Env) -> None:
    ptid = await env.sandbox_task()
    first = await env.register(provider_task_id=ptid)
    with pytest.raises(DuplicateTask) as caught:
        await env.tracker.register(
            env.account, Registration(provider="sandbox", provider_task_id=ptid)
        )
    assert answer_for(caught.value) == Answer(409, "task_exists")
    assert str(caught.value) == f"this provider task is already tracked as {first.id}"
    tasks = (await env.store.list_tasks(env.account.id, TaskQuery())).items
    assert [t.id for t in tasks] == [first.id]
    assert await env.history(first) == [(EventType.TASK_QUEUED, 1)]


async def test_input_the_provider_refuses_registers_nothing(env: Env) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await env.tracker.register(
            env.account, Registration(provider="sandbox", input={"model": MODEL, "content": []})
        )
    assert answer_for(caught.value) == Answer(400, "provider_rejected")
    fault = caught.value.fault
    assert (fault.kind, fault.retryable, fault.status_code, fault.provider_code) == (
        FaultKind.INVALID_REQUEST,
        False,
        400,
        "MissingParameter",
    )
    assert (await env.store.list_tasks(env.account.id, TaskQuery())).items == []
    assert env.client.health().consecutive_faults == 0
    assert env.on_events.calls == 0


async def test_a_provider_that_cannot_take_the_task_now_is_unavailable_not_a_rejection(
    env: Env,
) -> None:
    env.recorder.scripted = [503]
    with pytest.raises(ProviderUnavailable) as caught:
        await env.register(input=create_body())
    assert answer_for(caught.value) == Answer(502, "provider_unavailable")
    assert str(caught.value).startswith("the provider could not take the task now: ")
    assert env.recorder.requests == [POST]
    assert (await env.store.list_tasks(env.account.id, TaskQuery())).items == []


# --- polling ----------------------------------------------------------------------------------


async def test_polls_move_the_task_to_succeeded(env: Env) -> None:
    task = await env.register(input=create_body(), reference="order-1234")
    ptid = task.provider_task_id
    assert ptid is not None

    await env.step(5)  # T0+5: running
    running = await env.stored(task)
    assert (
        running.status,
        running.sequence,
        running.version,
        running.updated_at,
        running.next_poll_at,
        running.poll_count,
        running.completed_at,
    ) == (TaskStatus.RUNNING, 2, 1, at(5), at(10), 1, None)
    assert (
        running.model,
        running.resolution,
        running.ratio,
        running.duration,
        running.fps,
        running.seed,
        running.usage,
        running.video_url,
    ) == (MODEL, "720p", "16:9", 5, 24, SEED, None, None)
    assert await env.history(task) == [(EventType.TASK_QUEUED, 1), (EventType.TASK_RUNNING, 2)]

    await env.step(5)  # T0+10: finished at T0+8
    done = await env.stored(task)
    tokens = 108900  # (5 s x 24 fps + 1) frames of 1280x720 / 1024
    assert done == Task(
        id=task.id,
        account_id="acc_fox",
        provider="sandbox",
        provider_task_id=ptid,
        status=TaskStatus.SUCCEEDED,
        created_at=T0,
        updated_at=at(10),
        sequence=3,
        version=2,
        model=MODEL,
        progress=100,
        video_url=sandbox_video_url(ptid, at(8)),
        video_url_expires_at=at(8) + timedelta(hours=24),
        last_frame_url=None,
        provider_video_url=sandbox_video_url(ptid, at(8)),
        provider_video_url_expires_at=at(8) + timedelta(hours=24),
        error=None,
        usage={"completion_tokens": tokens, "total_tokens": tokens},
        resolution="720p",
        ratio="16:9",
        duration=5,
        fps=24,
        seed=SEED,
        reference="order-1234",
        submissions=(SubmissionStep("sandbox", T0, StepOutcome.ACCEPTED),),
        completed_at=at(10),
        next_poll_at=None,
        poll_count=2,
        looks=(
            Look(at(5), "poll", "answered", "running"),
            Look(at(10), "poll", "answered", "succeeded"),
        ),
    )
    events = await env.events(task)
    assert [(e.type, e.sequence, e.created_at) for e in events] == [
        (EventType.TASK_QUEUED, 1, T0),
        (EventType.TASK_RUNNING, 2, at(5)),
        (EventType.TASK_SUCCEEDED, 3, at(10)),
    ]
    bodies = [json.loads(e.body) for e in events]
    assert [b["data"]["status"] for b in bodies] == ["queued", "running", "succeeded"]
    assert [b["sequence"] for b in bodies] == [1, 2, 3]
    assert bodies[2]["data"] == done.to_json()
    assert bodies[2]["data"]["video_url_expires_at"] == "2026-06-07T16:00:08Z"
    assert env.recorder.requests == [POST, get(ptid), get(ptid)]
    assert env.on_events.calls == 3

    # The URL the relay reports is one a receiver can actually download.
    video = await env.http.get(done.video_url or "")
    assert (video.status_code, video.headers["content-type"]) == (200, "video/mp4")


async def test_a_poll_with_no_news_reschedules_without_an_event(env: Env) -> None:
    task = await env.register(input=create_body("[slow] a fox in the snow"))
    await env.step(5)
    await env.step(5)  # still running: the slow task runs until T0+32
    stored = await env.stored(task)
    assert (
        stored.status,
        stored.sequence,
        stored.poll_count,
        stored.updated_at,
        stored.next_poll_at,
    ) == (TaskStatus.RUNNING, 2, 2, at(5), at(15))
    assert env.on_events.calls == 2


async def test_a_poll_before_it_is_due_does_nothing(env: Env) -> None:
    task = await env.register(input=create_body())
    await env.step(4.9)
    assert env.recorder.requests == [POST]
    assert await env.stored(task) == task


async def test_a_terminal_task_is_never_polled_again(env: Env) -> None:
    task = await env.register(input=create_body())
    await env.step(5)
    await env.step(5)
    done = await env.stored(task)
    assert done.status is TaskStatus.SUCCEEDED
    requests = list(env.recorder.requests)

    await env.step(3600)
    await env.step(86400)
    assert await env.tracker.refresh(env.account.id, task.id) == done
    assert env.recorder.requests == requests
    assert await env.stored(task) == done
    assert len(await env.events(task)) == 3


async def test_a_task_past_its_maximum_age_expires(env: Env) -> None:
    tracker = env.tracker_with(max_age=20)
    task = await env.register(tracker, input=create_body("[slow] a fox in the snow"))
    await env.step(5, tracker)
    assert (await env.stored(task)).status is TaskStatus.RUNNING

    await env.step(16, tracker)  # T0+21, the sandbox still says running until T0+32
    expired = await env.stored(task)
    assert (
        expired.status,
        expired.error,
        expired.completed_at,
        expired.updated_at,
        expired.next_poll_at,
        expired.video_url,
    ) == (
        TaskStatus.EXPIRED,
        TaskError(ErrorCode.EXPIRED, "the task did not finish within 20 s"),
        at(21),
        at(21),
        None,
        None,
    )
    events = await env.events(task)
    assert [(e.type, e.sequence) for e in events] == [
        (EventType.TASK_QUEUED, 1),
        (EventType.TASK_RUNNING, 2),
        (EventType.TASK_EXPIRED, 3),
    ]
    assert json.loads(events[-1].body)["data"]["error"] == {
        "code": "expired",
        "message": "the task did not finish within 20 s",
        "retryable": False,
        "provider_code": None,
    }

    requests = list(env.recorder.requests)
    await env.step(60, tracker)
    assert env.recorder.requests == requests
    assert await env.stored(task) == expired


async def test_a_task_past_its_maximum_age_is_not_expired_while_its_provider_is_backed_off(
    env: Env,
) -> None:
    # The task finishes at the provider while the relay backs the provider off, and its
    # maximum age passes meanwhile: it must end succeeded (one real look), not expired.
    tracker = env.tracker_with(max_age=9)
    task = await env.register(tracker, input=create_body())
    env.recorder.failing = 503
    await env.step(5, tracker)  # T0+5: a fault; back-off for ~2 s
    await env.step(5, tracker)  # T0+10: past max age, the provider fails again
    backed_off = await env.stored(task)
    assert backed_off.status is TaskStatus.QUEUED  # a fault is never a verdict
    backoff = env.client.backoff_until()
    assert backoff is not None
    env.clock.current = backoff - timedelta(seconds=0.5)
    await tracker.refresh(env.account.id, task.id)  # backed off: not asked, not expired
    assert (await env.stored(task)).status is TaskStatus.QUEUED

    env.recorder.failing = None
    env.clock.current = backoff
    await tracker.poll_due()
    await tracker.drain()
    assert (await env.stored(task)).status is TaskStatus.SUCCEEDED


async def test_a_task_the_provider_keeps_failing_on_expires_at_twice_its_maximum_age(
    env: Env,
) -> None:
    tracker = env.tracker_with(max_age=9)
    task = await env.register(tracker, input=create_body())
    env.recorder.failing = 503
    await env.step(12, tracker)  # T0+12: past 9 s, but a fault is no answer: no verdict
    assert (await env.stored(task)).status is TaskStatus.QUEUED
    await env.step(7, tracker)  # T0+19: past twice the maximum age, still only faults
    expired = await env.stored(task)
    assert (expired.status, expired.error) == (
        TaskStatus.EXPIRED,
        TaskError(ErrorCode.EXPIRED, "the task did not finish within 9 s"),
    )


async def test_an_unknown_provider_task_fails_after_three_not_found(env: Env) -> None:
    task = await env.register(provider_task_id=BOGUS_ID)
    first = await env.stored(task)
    assert (first.status, first.not_found_count, first.poll_count, first.next_poll_at) == (
        TaskStatus.QUEUED,
        1,
        1,
        at(5),
    )

    await env.step(5)
    second = await env.stored(task)
    assert (second.status, second.not_found_count, second.next_poll_at) == (
        TaskStatus.QUEUED,
        2,
        at(10),
    )
    assert await env.history(task) == [(EventType.TASK_QUEUED, 1)]

    await env.step(5)
    failed = await env.stored(task)
    assert (
        failed.status,
        failed.not_found_count,
        failed.poll_count,
        failed.completed_at,
        failed.next_poll_at,
    ) == (TaskStatus.FAILED, 3, 3, at(10), None)
    assert failed.error is not None
    assert (failed.error.code, failed.error.retryable, failed.error.provider_code) == (
        ErrorCode.NOT_FOUND,
        False,
        "ResourceNotFound",
    )
    assert failed.error.message.startswith(
        "the provider does not know this task: provider answered HTTP 404 [ResourceNotFound]"
    )
    events = await env.events(task)
    assert [(e.type, e.sequence) for e in events] == [
        (EventType.TASK_QUEUED, 1),
        (EventType.TASK_FAILED, 2),
    ]
    assert json.loads(events[-1].body)["data"]["error"]["code"] == "task_not_found"
    assert env.recorder.requests == [get(BOGUS_ID)] * 3
    # "No such task" is an answer about the task, not a provider fault.
    assert env.client.health().consecutive_faults == 0

    await env.step(60)
    assert env.recorder.requests == [get(BOGUS_ID)] * 3


async def test_not_found_count_resets_when_the_task_shows_up(env: Env) -> None:
    ptid = await env.sandbox_task()
    env.recorder.scripted = [404, 404]  # a gateway replica that has not seen the task yet
    task = await env.register(provider_task_id=ptid)
    await env.step(5)
    assert (await env.stored(task)).not_found_count == 2
    await env.step(5)  # T0+10: the real answer, succeeded
    stored = await env.stored(task)
    assert (stored.status, stored.not_found_count, stored.poll_count) == (
        TaskStatus.SUCCEEDED,
        0,
        3,
    )
    assert await env.history(task) == [(EventType.TASK_QUEUED, 1), (EventType.TASK_SUCCEEDED, 2)]


async def test_a_provider_outage_backs_off_and_never_fails_the_task(env: Env) -> None:
    task = await env.register(input=create_body())
    env.recorder.failing = 503

    await env.step(5)
    health = env.client.health()
    assert (health.consecutive_faults, health.last_fault, health.last_fault_at) == (
        1,
        "unavailable: provider answered HTTP 503 [ServiceUnavailable]: try later",
        at(5),
    )
    assert health.backoff_until is not None
    assert at(5 + 1.6) <= health.backoff_until <= at(5 + 2.4)  # 2 s ± 20 %
    assert health.to_json()["healthy"] is False
    first = await env.stored(task)
    assert (first.status, first.sequence, first.poll_count, first.next_poll_at) == (
        TaskStatus.QUEUED,
        1,
        1,
        at(10),
    )

    await env.step(5)
    await env.step(5)  # T0+15: the third fault in a row
    health = env.client.health()
    assert health.consecutive_faults == 3
    assert health.backoff_until is not None
    assert at(15 + 6.4) <= health.backoff_until <= at(15 + 9.6)  # 8 s ± 20 %
    third = await env.stored(task)
    assert (third.status, third.sequence, third.poll_count) == (TaskStatus.QUEUED, 1, 3)
    # The regular poll would be at T0+20; the back-off pushes it later.
    assert third.next_poll_at == health.backoff_until

    # While backed off, even a refresh leaves the provider alone.
    requests = len(env.recorder.requests)
    refreshed = await env.tracker.refresh(env.account.id, task.id)
    assert len(env.recorder.requests) == requests
    assert (refreshed.status, refreshed.next_poll_at) == (TaskStatus.QUEUED, health.backoff_until)
    assert env.recorder.requests == [POST] + [get(task.provider_task_id or "")] * 3

    env.recorder.failing = None
    env.clock.current = health.backoff_until
    await env.tracker.poll_due()
    await env.tracker.drain()
    done = await env.stored(task)
    assert done.status is TaskStatus.SUCCEEDED
    assert await env.history(task) == [(EventType.TASK_QUEUED, 1), (EventType.TASK_SUCCEEDED, 2)]
    recovered = env.client.health()
    assert (recovered.consecutive_faults, recovered.backoff_until) == (0, None)
    assert env.on_events.calls == 2


async def test_refresh_polls_now(env: Env) -> None:
    task = await env.register(input=create_body())
    env.clock.advance(3)  # the next scheduled poll is at T0+5; the sandbox runs from T0+2
    refreshed = await env.tracker.refresh(env.account.id, task.id)
    assert (
        refreshed.status,
        refreshed.sequence,
        refreshed.version,
        refreshed.poll_count,
        refreshed.updated_at,
        refreshed.next_poll_at,
    ) == (TaskStatus.RUNNING, 2, 1, 1, at(3), at(8))
    assert await env.stored(task) == refreshed
    assert env.recorder.requests == [POST, get(task.provider_task_id or "")]
    assert await env.history(task) == [(EventType.TASK_QUEUED, 1), (EventType.TASK_RUNNING, 2)]
    assert env.on_events.calls == 2


async def test_refresh_of_an_unknown_or_foreign_task_is_not_found(env: Env) -> None:
    task = await env.register(input=create_body())
    with pytest.raises(UnknownTask):
        await env.tracker.refresh(env.account.id, "task_missing")
    other = Account(id="acc_other", name="other", created_at=T0)
    await env.store.create_account(other, "hash-other", "whsec_b3RoZXI=")
    with pytest.raises(UnknownTask):
        await env.tracker.refresh(other.id, task.id)
    assert env.recorder.requests == [POST]


async def test_drain_leaves_no_wakeup_behind(env: Env) -> None:
    """After ``drain()`` (what shutdown awaits before closing the store) the tracker must
    start no more work by itself. A poll due 0.2 s after registration arms a wake-up timer
    in the ``poll_due`` that ``drain()`` waits for; that timer must not survive it."""
    quick = PollPolicy(min_interval=0.2, max_interval=1, expected_duration=2, jitter=0)
    plan = ProviderPlan(client=env.client, poll=quick, max_age=3600)
    tracker = Tracker(
        owner="relay_test",
        store=env.store,
        providers={"sandbox": plan},
        clock=env.clock,
        rng=random.Random(2),
        on_events=env.on_events,
    )
    env.trackers.append(tracker)
    task = await env.register(tracker, input=create_body())
    assert task.next_poll_at == at(0.2)

    env.clock.advance(1)  # the task is due now, but nobody calls poll_due
    await asyncio.sleep(0.5)
    assert env.recorder.requests == [POST]


# --- callbacks ----------------------------------------------------------------------------------


async def deliveries_by_type(env: Env, task: Task) -> dict[EventType, list[Any]]:
    return {
        e.type: await env.store.event_deliveries(env.account.id, e.id)
        for e in await env.events(task)
    }


async def test_a_callback_gets_terminal_events_only_by_default(env: Env) -> None:
    task = await env.register(input=create_body(), callback_url=HOOK)
    await env.step(5)
    await env.step(5)
    found = await deliveries_by_type(env, task)
    assert list(found) == [EventType.TASK_QUEUED, EventType.TASK_RUNNING, EventType.TASK_SUCCEEDED]
    assert found[EventType.TASK_QUEUED] == []
    assert found[EventType.TASK_RUNNING] == []
    [view] = found[EventType.TASK_SUCCEEDED]
    succeeded = (await env.events(task))[-1]
    d = view.delivery
    assert (
        d.account_id,
        d.event_id,
        d.url,
        d.status,
        d.attempt_count,
        d.next_attempt_at,
        d.created_at,
    ) == ("acc_fox", succeeded.id, HOOK, DeliveryStatus.PENDING, 0, at(10), at(10))
    assert d.id.startswith("dlv_")
    assert view.attempts == []


async def test_a_callback_with_a_filter_gets_exactly_those_events(env: Env) -> None:
    task = await env.register(
        input=create_body(),
        callback_url=HOOK,
        callback_events=frozenset({EventType.TASK_QUEUED, EventType.TASK_RUNNING}),
    )
    assert task.callback_events == frozenset({EventType.TASK_QUEUED, EventType.TASK_RUNNING})
    await env.step(5)
    await env.step(5)
    found = await deliveries_by_type(env, task)
    assert {t: len(v) for t, v in found.items()} == {
        EventType.TASK_QUEUED: 1,
        EventType.TASK_RUNNING: 1,
        EventType.TASK_SUCCEEDED: 0,
    }
    assert found[EventType.TASK_QUEUED][0].delivery.next_attempt_at == T0
    assert found[EventType.TASK_RUNNING][0].delivery.next_attempt_at == at(5)


async def test_no_callback_no_deliveries(env: Env) -> None:
    task = await env.register(input=create_body())
    await env.step(5)
    await env.step(5)
    found = await deliveries_by_type(env, task)
    assert found == {
        EventType.TASK_QUEUED: [],
        EventType.TASK_RUNNING: [],
        EventType.TASK_SUCCEEDED: [],
    }


# --- leases -------------------------------------------------------------------------------------


class Held(httpx.AsyncBaseTransport):
    """Holds the first request until ``release`` is set (a provider slot or budget slow to
    come, so that poll waits longer than its lease); the others pass at once."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.release = asyncio.Event()
        self.count = 0
        self._came = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        self._came.set()
        if self.count == 1:
            await self.release.wait()
        return await self.inner.handle_async_request(request)

    async def arrived(self, n: int) -> None:
        """Wait until ``n`` requests have come (fails after 5 s)."""
        async with asyncio.timeout(5):
            while self.count < n:
                self._came.clear()
                await self._came.wait()


def leased_tracker(env: Env) -> Tracker:
    tracker = Tracker(
        owner="relay_test",
        store=env.store,
        providers={"sandbox": ProviderPlan(client=env.client, poll=POLL, max_age=3600)},
        clock=env.clock,
        rng=random.Random(2),
        on_events=env.on_events,
        lease_seconds=10,
    )
    env.trackers.append(tracker)
    return tracker


async def held_task(env: Env, tracker: Tracker, prompt: str) -> tuple[Task, str, Held]:
    """A sandbox task registered by id through ``tracker``, whose poll at once is under way
    and held by the provider."""
    response = await env.http.post(
        TASKS_PATH, json=create_body(prompt), headers={"authorization": "Bearer sk-caller"}
    )
    ptid = str(response.json()["id"])
    held = env.recorder.inner = Held(env.recorder.inner)
    task = await tracker.register(
        env.account, Registration(provider="sandbox", provider_task_id=ptid)
    )
    await held.arrived(1)
    return task, ptid, held


async def test_a_poll_still_waiting_when_its_lease_ends_is_not_made_again(env: Env) -> None:
    """A claimed poll that waits past its lease (behind the provider's concurrency cap or
    request budget) is due again, and this instance's next tick claims it again: that claim
    renews the lease of the poll under way, it does not start a second one. (Before, every
    tick past the lease added one more request for the same task, spending the budget that
    made it wait on duplicates.)"""
    tracker = leased_tracker(env)
    task, ptid, held = await held_task(env, tracker, "a fox")
    try:
        for _ in range(3):
            env.clock.advance(11)  # its lease has run out: due and claimable again
            await tracker.poll_due()
        await asyncio.sleep(0.05)  # a second poll, if one was started, reaches the provider
    finally:
        held.release.set()
    await tracker.drain()
    assert env.recorder.requests == [POST, get(ptid)]
    stored = await env.stored(task)
    assert (stored.poll_count, stored.version, stored.status) == (1, 1, TaskStatus.SUCCEEDED)


async def test_a_task_saved_by_another_poll_meanwhile_is_polled_again_when_due(env: Env) -> None:
    """The other side of that rule: the claim of a task whose state moved on since this
    instance's poll started (another instance polled it once its lease ran out) is new work,
    polled as usual."""
    tracker, other = leased_tracker(env), env.tracker_with(max_age=3600)
    task, ptid, held = await held_task(env, tracker, "a fox [slow]")  # runs until T0+32
    try:
        env.clock.advance(11)
        await other.poll_due()  # takes the expired lease and saves its answer
        await other.drain()
        assert (await env.stored(task)).version == 1
        env.clock.advance(10)  # that poll's next one is due (min_interval 5)
        await tracker.poll_due()  # claims version 1: polled, although the held poll is not done
        await held.arrived(3)
    finally:
        held.release.set()
    await tracker.drain()
    # The held poll lost its save to the others: it applies its answer to the task as they
    # left it, and asks the provider nothing more. Every query's answer is kept.
    assert env.recorder.requests == [POST] + [get(ptid)] * 3
    stored = await env.stored(task)
    assert stored.status is TaskStatus.RUNNING
    assert stored.poll_count == 3
