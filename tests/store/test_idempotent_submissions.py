"""The writes an Idempotency-Key's create rides on (issue 17, fewer round trips): the
reservation reads the key's latest submission in its own write
(``reserve_idempotency_key_to_submit``), and ``create_task`` keeps the request's answer in
the transaction that writes the task (``answer``), only while its owner holds the key, and
not at all when the task is not written. Runs once per backend."""

from __future__ import annotations

import pytest

from relay.errors import DuplicateTask, SubmissionSettled
from relay.models import Account
from relay.store.interface import Store
from relay.store.values import IdempotentReply, KeyAnswer, KeyReserved
from relay.submissions import Submission, SubmissionState
from relay.transitions import registered
from tests.store.factories import NOW, at, event_id, new_id, new_task


def intent(account: Account, key: str, body_hash: str = "b1") -> Submission:
    return Submission(
        id=new_id("smb"),
        account_id=account.id,
        task_id=new_id("task"),
        provider="sandbox",
        state=SubmissionState.PENDING,
        body_hash=body_hash,
        registration={"reference": None, "model": "m", "params": {}},
        created_at=NOW,
        updated_at=NOW,
        lease_until=at(seconds=15),
        idempotency_key=key,
    )


async def test_the_reservation_reads_the_key_s_latest_submission(
    store: Store, alice: Account, bob: Account
) -> None:
    lease = at(seconds=15)
    first = await store.reserve_idempotency_key_to_submit(alice.id, "k", "h", "r1", NOW, lease)
    assert first == KeyReserved(None)  # nothing was submitted under the key yet
    # Held: another request with the key gets the holder's (unanswered) reply, as before.
    held = await store.reserve_idempotency_key_to_submit(alice.id, "k", "h", "r2", NOW, lease)
    assert held == IdempotentReply("h", None, None, lease)
    other = await store.reserve_idempotency_key_to_submit(alice.id, "k", "x", "r2", NOW, lease)
    assert other == IdempotentReply("h", None, None, lease)
    # Its holder submits twice (say through a route) and dies; the take-over reads the latest.
    older, latest = intent(alice, "k", "b0"), intent(alice, "k")
    assert await store.begin_submission(older)
    assert await store.begin_submission(latest)
    await store.settle_submission(older.id, SubmissionState.NOT_ACCEPTED, NOW, "refused")
    took = await store.reserve_idempotency_key_to_submit(
        alice.id, "k", "h", "r3", at(seconds=20), at(seconds=35)
    )
    assert took == KeyReserved(latest)
    # Another account's key of the same name is its own, with nothing under it.
    assert await store.reserve_idempotency_key_to_submit(
        bob.id, "k", "h", "r4", NOW, lease
    ) == KeyReserved(None)
    # An answered key is replayed, read or not.
    await store.finish_idempotency_key(alice.id, "k", "r3", 201, '{"id":"t"}')
    again = await store.reserve_idempotency_key_to_submit(
        alice.id, "k", "h", "r5", at(seconds=40), at(seconds=55)
    )
    assert again == IdempotentReply("h", 201, '{"id":"t"}', at(seconds=35))


async def test_create_task_keeps_the_answer_with_the_task(store: Store, alice: Account) -> None:
    lease = at(seconds=15)
    assert await store.reserve_idempotency_key_to_submit(
        alice.id, "k", "h", "r1", NOW, lease
    ) == KeyReserved(None)
    sub = intent(alice, "k")
    await store.begin_submission(sub)
    task = new_task(alice, provider_task_id="cgt-kept")
    body = f'{{"id":"{task.id}","status":"queued"}}'
    answer = KeyAnswer(alice.id, "k", "r1", 201, body)
    await store.create_task(registered(task, NOW, event_id), None, sub.id, answer)
    assert await store.get_task(alice.id, task.id) is not None
    replay = await store.reserve_idempotency_key(alice.id, "k", "h", "r2", NOW, lease)
    assert replay == IdempotentReply("h", 201, body, lease)
    # The holder's usual follow-ups change nothing: the key is answered.
    await store.forget_idempotency_key(alice.id, "k", "r1")
    assert not await store.renew_idempotency_key(alice.id, "k", "r1", at(seconds=30))
    assert await store.reserve_idempotency_key(alice.id, "k", "h", "r3", NOW, lease) == replay


async def test_an_answer_is_kept_only_by_the_key_s_holder(store: Store, alice: Account) -> None:
    """A request that outlived its lease (its key taken over by a retry) writes its task, but
    its answer is not the key's: the retry holding it answers."""
    late = at(seconds=90)
    slow = await store.reserve_idempotency_key(alice.id, "k", "h", "slow", NOW, at(seconds=15))
    assert slow is None
    assert (
        await store.reserve_idempotency_key(alice.id, "k", "h", "retry", at(seconds=20), late)
        is None
    )
    task = new_task(alice, provider_task_id="cgt-slow")
    answer = KeyAnswer(alice.id, "k", "slow", 201, '{"late":true}')
    await store.create_task(registered(task, NOW, event_id), None, None, answer)
    assert await store.get_task(alice.id, task.id) is not None
    still = await store.reserve_idempotency_key(alice.id, "k", "h", "r3", at(seconds=21), late)
    assert still == IdempotentReply("h", None, None, late)


async def test_a_create_that_writes_no_task_keeps_no_answer(store: Store, alice: Account) -> None:
    """The answer is in the task's transaction: a duplicate or a settled submission rolls it
    back with the task, and the key stays unanswered (the request answers it otherwise)."""
    lease = at(seconds=15)
    tracked = new_task(alice, provider_task_id="cgt-dup")
    await store.create_task(registered(tracked, NOW, event_id), None)
    assert await store.reserve_idempotency_key(alice.id, "k", "h", "r1", NOW, lease) is None
    twin = new_task(alice, provider_task_id="cgt-dup")
    with pytest.raises(DuplicateTask):
        await store.create_task(
            registered(twin, NOW, event_id), None, None, KeyAnswer(alice.id, "k", "r1", 201, "{}")
        )
    sub = intent(alice, "k")
    await store.begin_submission(sub)
    await store.settle_submission(sub.id, SubmissionState.NOT_ACCEPTED, NOW, "refused")
    late = new_task(alice, provider_task_id="cgt-late")
    with pytest.raises(SubmissionSettled):
        await store.create_task(
            registered(late, NOW, event_id), None, sub.id, KeyAnswer(alice.id, "k", "r1", 201, "{}")
        )
    assert await store.get_task(alice.id, late.id) is None
    unanswered = await store.reserve_idempotency_key(alice.id, "k", "h", "r2", NOW, lease)
    assert unanswered == IdempotentReply("h", None, None, lease)
    # So the holder can still let it go, and a retry runs again.
    await store.forget_idempotency_key(alice.id, "k", "r1")
    assert await store.reserve_idempotency_key(alice.id, "k", "h", "r3", NOW, lease) is None
