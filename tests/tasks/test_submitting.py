"""Submissions through the tracker (``relay.tasks.submitting``): a real SQLite store, the
real sandbox (Ark dialect, with its task list) over httpx, a fake clock. A lost answer is a
read timeout after the sandbox created the task: the provider took it, the relay never
heard."""

from __future__ import annotations

from typing import Any

import pytest

from relay.api.errors import Answer, answer_for
from relay.errors import (
    ProviderUnavailable,
    SubmissionKeyReused,
    SubmissionSettled,
    SubmissionStillUncertain,
    SubmissionUncertain,
)
from relay.models import DeliveryStatus, EventType, Task, TaskStatus
from relay.store.values import EventQuery, TaskQuery
from relay.submissions import LOOK_FIRST, Submission, SubmissionState
from relay.tasks.reconciling import DEAD_HOLDER, NO_LIST
from tests.tasks.tracker_env import HOOK, MODEL, POST, SEED, T0, TASKS_PATH, Env, at, create_body

LIST = ("GET", TASKS_PATH)
KEY = "order-1234-attempt"


async def submit(env: Env, prompt: str = "a fox", key: str | None = KEY, **fields: Any) -> Task:
    return await env.register(input=create_body(prompt), idempotency_key=key, **fields)


async def only_submission(env: Env) -> Submission:
    page = await env.store.list_submissions(env.account.id, None, None, 10)
    [sub] = page.items
    return sub


async def tasks(env: Env) -> list[str]:
    return [t.id for t in (await env.store.list_tasks(env.account.id, TaskQuery())).items]


async def test_an_accepted_submission_is_recorded_with_its_task(env: Env) -> None:
    task = await submit(env, reference="order-1234")
    sub = await only_submission(env)
    assert (sub.state, sub.task_id, sub.provider_task_id) == (
        SubmissionState.ACCEPTED,
        task.id,
        task.provider_task_id,
    )
    assert (sub.idempotency_key, sub.registration["reference"]) == (KEY, "order-1234")
    # A repeat (the same key and body, say after the answer was lost on the way back to
    # the caller) is answered with that task, and nothing is sent.
    again = await submit(env, reference="order-1234")
    assert again.id == task.id
    assert env.recorder.requests == [POST]


async def test_a_lost_answer_is_uncertain_and_a_retry_finds_the_task_not_a_second_one(
    env: Env,
) -> None:
    env.recorder.lose = 1
    with pytest.raises(SubmissionUncertain) as caught:
        await submit(env, callback_url=HOOK, reference="order-1234")
    assert answer_for(caught.value) == Answer(502, "submission_uncertain")
    sub = await only_submission(env)
    assert sub.state is SubmissionState.UNCERTAIN
    assert sub.detail is not None
    assert sub.detail.startswith("timeout: ")
    assert caught.value.submission_id == sub.id
    assert await tasks(env) == []

    # Asked again before the provider's list is due (a task may show there a moment after
    # it was made): still uncertain, with when to ask again, and nothing asked.
    env.clock.advance(3)
    with pytest.raises(SubmissionStillUncertain) as early:
        await submit(env, callback_url=HOOK, reference="order-1234")
    assert early.value.retry_after == LOOK_FIRST - 3
    assert env.recorder.requests == [POST]
    env.clock.advance(LOOK_FIRST)
    task = await submit(env, callback_url=HOOK, reference="order-1234")
    # One create at the provider; the retry read its task list and found the task.
    assert env.recorder.requests[:2] == [POST, LIST]
    assert env.recorder.requests.count(POST) == 1
    assert (task.id, task.reference, task.callback_url) == (sub.task_id, "order-1234", HOOK)
    settled = await env.store.get_submission(env.account.id, sub.id)
    assert settled is not None
    assert (settled.state, settled.provider_task_id) == (
        SubmissionState.ACCEPTED,
        task.provider_task_id,
    )
    # The caller's callback gets the task's events as if nothing had happened.
    events = await env.store.list_events(env.account.id, EventQuery(task_id=task.id))
    assert events.items
    await env.step(10)
    assert (await env.stored(task)).status is TaskStatus.SUCCEEDED


async def test_a_retry_that_cannot_find_the_task_is_still_uncertain_never_sent_again(
    env: Env,
) -> None:
    env.recorder.scripted = [500]  # the provider's 500 does not say whether it took it
    with pytest.raises(SubmissionUncertain):
        await submit(env)
    env.clock.advance(60)  # past the provider's back-off and the first look
    for _ in range(5):  # a client retrying in a loop
        with pytest.raises(SubmissionStillUncertain) as caught:
            await submit(env)
        assert answer_for(caught.value) == Answer(409, "submission_uncertain")
    # One look at the provider's list, the schedule's; the loop asked nothing more.
    assert env.recorder.requests == [POST, LIST]
    assert caught.value.retry_after == LOOK_FIRST  # the next look, then twice as far apart
    sub = await only_submission(env)
    assert (sub.state, sub.looks) == (SubmissionState.UNCERTAIN, 1)
    assert sub.detail == (
        "not found in the provider's task list: the provider lists no task that matches it"
    )
    # A person who checked settles it; then the key may submit again.
    settled = await env.tracker.submitter.resolve(env.account.id, sub.id, None)
    assert isinstance(settled, Submission)
    assert settled.state is SubmissionState.ABANDONED
    with pytest.raises(SubmissionSettled):
        await env.tracker.submitter.resolve(env.account.id, sub.id, None)
    task = await submit(env)
    assert task.status is TaskStatus.QUEUED
    assert env.recorder.requests.count(POST) == 2


async def test_an_unsettled_key_refuses_another_request(env: Env) -> None:
    """The 502 let the key's reservation go, not its submission: the same key with another
    body must not create while the first may still exist."""
    env.recorder.scripted = [500]
    with pytest.raises(SubmissionUncertain):
        await submit(env, prompt="first")
    env.clock.advance(60)
    with pytest.raises(SubmissionKeyReused) as caught:
        await submit(env, prompt="second")
    assert answer_for(caught.value) == Answer(409, "idempotency_key_reused")
    assert env.recorder.requests == [POST]


async def test_a_task_the_provider_named_cannot_be_abandoned(env: Env) -> None:
    sub = await uncertain_with_id(env, "cgt-known")
    with pytest.raises(SubmissionSettled, match="resolve it with that provider_task_id"):
        await env.tracker.submitter.resolve(env.account.id, sub.id, None)


async def uncertain_with_id(env: Env, provider_task_id: str) -> Submission:
    """An uncertain submission whose provider task id is known (the provider took it, the
    task could not be saved)."""
    env.recorder.scripted = [500]
    with pytest.raises(SubmissionUncertain):
        await submit(env)
    sub = await only_submission(env)
    await env.store.settle_submission(
        sub.id, SubmissionState.UNCERTAIN, T0, "saved nothing", provider_task_id
    )
    again = await env.store.get_submission(env.account.id, sub.id)
    assert again is not None
    return again


async def test_a_refusal_took_nothing_so_a_retry_submits_again(env: Env) -> None:
    env.recorder.scripted = [503]
    with pytest.raises(ProviderUnavailable):
        await submit(env)
    assert (await only_submission(env)).state is SubmissionState.NOT_ACCEPTED
    env.clock.advance(60)
    task = await submit(env)
    assert task.provider_task_id is not None
    assert env.recorder.requests.count(POST) == 2


async def test_two_lost_creates_of_one_model_are_not_told_apart_by_the_list(env: Env) -> None:
    """Another caller's task must never be handed to this one: with two unsettled creates
    of the same model in one window, neither is matched."""
    env.recorder.lose = 2
    for key in ("a", "b"):
        with pytest.raises(SubmissionUncertain):
            await submit(env, prompt=key, key=key)
        env.clock.advance(2)  # past the back-off the lost answer earned, within the window
    env.clock.advance(60)
    with pytest.raises(SubmissionStillUncertain):
        await submit(env, prompt="a", key="a")
    page = await env.store.list_submissions(env.account.id, SubmissionState.UNCERTAIN, None, 10)
    a = next(s for s in page.items if s.idempotency_key == "a")
    assert a.detail == (
        "not found in the provider's task list: 1 other submission(s) to this provider "
        "are unsettled"
    )
    assert await tasks(env) == []
    # Settling one by hand (the caller found its task) lets the list tell the other.
    listed = (await env.http.get(TASKS_PATH, headers={"authorization": "Bearer k"})).json()
    first, second = listed["items"]  # newest first: b, then a
    await env.tracker.submitter.resolve(env.account.id, a.id, second["id"])
    task = await submit(env, prompt="b", key="b")
    assert task.provider_task_id == first["id"]


async def test_the_reconciler_settles_what_a_dead_process_left_pending(env: Env) -> None:
    """A process killed while the provider was being asked leaves a pending submission; its
    lease runs out, the reconciler makes it uncertain, then finds the task and tracks it
    with the caller's callback."""
    provider_task_id = await env.sandbox_task()  # what the dead process's create did
    pending = Submission(
        id="smb_dead",
        account_id=env.account.id,
        task_id="task_dead",
        provider="sandbox",
        state=SubmissionState.PENDING,
        body_hash="h",
        registration={"callback_url": HOOK, "model": MODEL, "params": {"seed": SEED}},
        created_at=T0,
        updated_at=T0,
        lease_until=at(30),
    )
    await env.store.begin_submission(pending)
    reconciler = env.tracker.submitter.reconciler
    assert await reconciler.reconcile_open() == 0  # still leased
    assert env.recorder.requests == [POST]
    env.clock.advance(31)
    assert await reconciler.reconcile_open() == 1  # uncertain, looked for at once, found
    task = await env.store.get_task(env.account.id, pending.task_id)
    assert task is not None
    assert (task.callback_url, task.provider_task_id) == (HOOK, provider_task_id)
    await env.step(10)
    *_, last = await env.events(task)
    assert last.type is EventType.TASK_SUCCEEDED
    view = await env.store.event_deliveries(env.account.id, last.id)
    assert [(d.delivery.url, d.delivery.status) for d in view] == [(HOOK, DeliveryStatus.PENDING)]
    assert env.recorder.requests.count(POST) == 1  # the dead process's create
    settled = await env.store.get_submission(env.account.id, pending.id)
    assert settled is not None
    assert (settled.state, settled.detail) == (SubmissionState.ACCEPTED, DEAD_HOLDER)


async def test_a_provider_without_a_task_list_leaves_it_to_a_person(env: Env) -> None:
    """A mirror that serves no list (404) is no fault of the provider's and no reason to
    ask again: the submission waits for a person, and its retries ask nothing."""
    env.recorder.scripted = [500]
    with pytest.raises(SubmissionUncertain):
        await submit(env)
    env.clock.advance(60)
    env.recorder.scripted = [404]
    with pytest.raises(SubmissionStillUncertain) as caught:
        await submit(env)
    assert caught.value.retry_after is None
    sub = await only_submission(env)
    assert (sub.detail, sub.next_look_at) == (NO_LIST, None)
    assert env.client.health().consecutive_faults == 1  # the 500's; the 404 counts nothing
    assert await env.tracker.submitter.reconciler.reconcile_open() == 0
    assert env.recorder.requests == [POST, LIST]


async def test_resolving_with_the_provider_task_id_tracks_it(env: Env) -> None:
    env.recorder.scripted = [500]
    with pytest.raises(SubmissionUncertain):
        await submit(env, reference="r-1")
    sub = await only_submission(env)
    env.clock.advance(60)
    ptid = await env.sandbox_task()
    task = await env.tracker.submitter.resolve(env.account.id, sub.id, ptid)
    assert not isinstance(task, Submission)
    assert (task.id, task.provider_task_id, task.reference) == (sub.task_id, ptid, "r-1")
    # The caller's retry now gets that task.
    assert (await submit(env, reference="r-1")).id == task.id
