"""The contract for submissions (``relay.submissions``): the intent written before a provider
is asked, accepted in the transaction that creates its task, settled at most once."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from relay.errors import DuplicateTask, SubmissionSettled
from relay.models import Account, EventType
from relay.store.interface import Store
from relay.store.values import EventQuery
from relay.submissions import Submission, SubmissionState
from relay.transitions import emit, registered
from tests.store.factories import NOW, at, event_id, new_id, new_task, walk

PENDING, UNCERTAIN = SubmissionState.PENDING, SubmissionState.UNCERTAIN


def intent(
    account: Account,
    *,
    key: str | None = "k1",
    created_at: datetime = NOW,
    lease_until: datetime | None = None,
    provider: str = "sandbox",
) -> Submission:
    return Submission(
        id=new_id("smb"),
        account_id=account.id,
        task_id=new_id("task"),
        provider=provider,
        state=PENDING,
        body_hash="h1",
        registration={"reference": "order-1", "model": "m", "params": {"duration": 5}},
        created_at=created_at,
        updated_at=created_at,
        lease_until=lease_until or at(seconds=90),
        idempotency_key=key,
    )


async def test_a_submission_is_kept_as_written_and_found_by_its_key(
    store: Store, alice: Account, bob: Account
) -> None:
    sub = intent(alice)
    await store.begin_submission(sub)
    assert await store.get_submission(alice.id, sub.id) == sub
    assert await store.get_submission(bob.id, sub.id) is None
    assert await store.submission_for_key(alice.id, "k1") == sub
    assert await store.submission_for_key(bob.id, "k1") is None
    later = intent(alice, created_at=at(seconds=1))
    await store.begin_submission(later)
    assert await store.submission_for_key(alice.id, "k1") == later  # the latest with the key


async def test_create_task_accepts_its_submission_in_the_same_write(
    store: Store, alice: Account
) -> None:
    sub = intent(alice)
    await store.begin_submission(sub)
    task = new_task(alice, provider_task_id="cgt-1")
    change = registered(task, NOW, event_id)
    await store.create_task(change, None, sub.id)
    accepted = await store.get_submission(alice.id, sub.id)
    assert accepted is not None
    assert (accepted.state, accepted.provider_task_id) == (SubmissionState.ACCEPTED, "cgt-1")
    # A settled submission does not move again, and is not accepted twice.
    assert not await store.settle_submission(sub.id, UNCERTAIN, at(seconds=5), "late")
    other = new_task(alice, provider_task_id="cgt-2")
    with pytest.raises(SubmissionSettled):
        await store.create_task(registered(other, NOW, event_id), None, sub.id)
    assert await store.get_task(alice.id, other.id) is None  # nothing of it was written


async def test_an_abandoned_submission_whose_task_turns_up_is_accepted(
    store: Store, alice: Account
) -> None:
    """A person said nothing was made; then the task was found after all: it is tracked."""
    sub = intent(alice)
    await store.begin_submission(sub)
    await store.settle_submission(sub.id, SubmissionState.ABANDONED, NOW, "by hand")
    task = new_task(alice, provider_task_id="cgt-late")
    await store.create_task(registered(task, NOW, event_id), None, sub.id)
    accepted = await store.get_submission(alice.id, sub.id)
    assert accepted is not None
    assert (accepted.state, accepted.provider_task_id) == (SubmissionState.ACCEPTED, "cgt-late")


async def test_settling_moves_only_open_submissions(store: Store, alice: Account) -> None:
    sub = intent(alice)
    await store.begin_submission(sub)
    assert await store.settle_submission(sub.id, UNCERTAIN, at(seconds=2), "timeout", "cgt-9")
    uncertain = await store.get_submission(alice.id, sub.id)
    assert uncertain is not None
    assert (uncertain.state, uncertain.detail, uncertain.provider_task_id) == (
        UNCERTAIN,
        "timeout",
        "cgt-9",
    )
    assert uncertain.updated_at == at(seconds=2)
    assert await store.settle_submission(sub.id, SubmissionState.ABANDONED, at(seconds=3))
    assert not await store.settle_submission(sub.id, UNCERTAIN, at(seconds=4), "again")
    assert (await store.metrics_snapshot(NOW)).uncertain_submissions == 0


async def test_a_pending_submission_past_its_lease_becomes_uncertain(
    store: Store, alice: Account
) -> None:
    early = intent(alice, lease_until=at(seconds=30))
    late = intent(alice, key=None, lease_until=at(seconds=90))
    await store.begin_submission(early)
    await store.begin_submission(late)
    assert await store.due_submissions(at(seconds=60), NOW, 10) == []
    assert await store.expire_submissions(at(seconds=60), "the holder died") == 1
    # Looked for at once.
    [due] = await store.due_submissions(at(seconds=60), NOW, 10)
    assert (due.id, due.next_look_at) == (early.id, at(seconds=60))
    assert (await store.metrics_snapshot(NOW)).uncertain_submissions == 1
    expired = await store.get_submission(alice.id, early.id)
    assert expired is not None
    assert (expired.state, expired.detail) == (UNCERTAIN, "the holder died")
    still = await store.get_submission(alice.id, late.id)
    assert still is not None
    assert still.state is PENDING


async def test_uncertain_submissions_come_due_by_their_next_look(
    store: Store, alice: Account, bob: Account
) -> None:
    first, second, old = intent(alice), intent(bob), intent(alice, created_at=at(days=-3))
    for sub in (first, second, old):
        await store.begin_submission(sub)
        await store.settle_submission(sub.id, UNCERTAIN, NOW, "lost", next_look_at=at(seconds=10))
    await store.note_look(second.id, at(seconds=10), "not listed", at(seconds=30))
    since = at(days=-2)
    assert [s.id for s in await store.due_submissions(at(seconds=10), since, 10)] == [first.id]
    due = await store.due_submissions(at(seconds=30), since, 10)
    assert [s.id for s in due] == [first.id, second.id]
    looked = due[1]
    assert (looked.looks, looked.detail, looked.updated_at) == (1, "not listed", at(seconds=10))
    # Never due: a person must settle it.
    await store.note_look(first.id, at(seconds=30), "no list", None)
    assert [s.id for s in await store.due_submissions(at(days=9), since, 10)] == [second.id]


async def test_rivals_are_other_open_submissions_of_the_provider_in_the_window(
    store: Store, alice: Account, bob: Account
) -> None:
    sub = intent(alice, lease_until=at(seconds=20))
    overlapping = intent(bob, created_at=at(seconds=10), lease_until=at(seconds=40))
    later = intent(bob, created_at=at(seconds=30), lease_until=at(seconds=50))
    elsewhere = intent(bob, provider="other")
    settled = intent(bob)
    for s in (sub, overlapping, later, elsewhere, settled):
        await store.begin_submission(s)
    await store.settle_submission(settled.id, SubmissionState.NOT_ACCEPTED, NOW, "429")
    rivals = await store.rival_submissions(sub, at(seconds=-5), sub.lease_until)
    assert [r.id for r in rivals] == [overlapping.id]


async def test_known_provider_task_ids_are_tracked_tasks_and_held_submissions(
    store: Store, alice: Account
) -> None:
    task = new_task(alice, provider_task_id="cgt-tracked")
    await store.create_task(registered(task, NOW, event_id), None)
    sub = intent(alice)
    await store.begin_submission(sub)
    await store.settle_submission(sub.id, UNCERTAIN, NOW, "cut", "cgt-held")
    ids = ["cgt-tracked", "cgt-held", "cgt-free"]
    assert await store.known_provider_task_ids("sandbox", ids) == {"cgt-tracked", "cgt-held"}
    assert await store.known_provider_task_ids("other", ids) == frozenset()


async def test_submissions_are_listed_newest_first_by_state_and_account(
    store: Store, alice: Account, bob: Account
) -> None:
    subs = [intent(alice, key=None, created_at=at(seconds=i)) for i in range(5)]
    for sub in subs:
        await store.begin_submission(sub)
    await store.begin_submission(intent(bob))
    await store.settle_submission(subs[1].id, UNCERTAIN, NOW, "cut")
    pages = await walk(lambda after: store.list_submissions(alice.id, None, after, 2))
    assert pages == [[s.id for s in reversed(subs)][i : i + 2] for i in (0, 2, 4)]
    only = await store.list_submissions(alice.id, UNCERTAIN, None, 10)
    assert [s.id for s in only.items] == [subs[1].id]


async def test_settled_submissions_are_pruned_with_the_keys_open_ones_stay(
    store: Store, alice: Account
) -> None:
    settled, open_ = intent(alice), intent(alice, key="k2")
    for sub in (settled, open_):
        await store.begin_submission(sub)
    await store.settle_submission(settled.id, SubmissionState.NOT_ACCEPTED, NOW, "429")
    await store.settle_submission(open_.id, UNCERTAIN, NOW, "cut")
    await store.prune_idempotency_keys(at(days=2))
    assert await store.get_submission(alice.id, settled.id) is None
    assert await store.get_submission(alice.id, open_.id) is not None


async def test_a_submission_id_is_written_once(store: Store, alice: Account) -> None:
    """A resubmission's id is the same on every instance: only the first writer gets it."""
    sub = intent(alice, key=None)
    assert await store.begin_submission(sub)
    rival = replace(sub, provider="other", body_hash="h2")
    assert not await store.begin_submission(rival)
    assert await store.get_submission(alice.id, sub.id) == sub


async def test_moving_a_task_accepts_its_resubmission_fenced_by_version(
    store: Store, alice: Account, bob: Account
) -> None:
    task = new_task(alice, provider_task_id="cgt-first")
    await store.create_task(registered(task, NOW, event_id), None)
    sub = replace(intent(alice, key=None), task_id=task.id, provider="backup")
    assert await store.begin_submission(sub)
    moved = replace(task, provider="backup", provider_task_id="bk-1", updated_at=at(seconds=3))
    change = emit(moved, EventType.TASK_RESUBMITTED, at(seconds=3), event_id)
    assert not await store.move_task(change, task.version + 5, sub.id)  # a stale read
    assert await store.move_task(change, task.version, sub.id)
    stored = await store.get_task(alice.id, task.id)
    assert stored is not None
    assert (stored.provider, stored.provider_task_id, stored.version) == ("backup", "bk-1", 1)
    accepted = await store.get_submission(alice.id, sub.id)
    assert accepted is not None
    assert (accepted.state, accepted.provider_task_id) == (SubmissionState.ACCEPTED, "bk-1")
    events = await store.list_events(alice.id, EventQuery(task_id=task.id))
    assert EventType.TASK_RESUBMITTED in [e.type for e in events.items]
    # The new provider task is another's (here bob's): nothing moves, nothing is accepted.
    theirs = new_task(bob, provider="backup", provider_task_id="bk-2")
    await store.create_task(registered(theirs, NOW, event_id), None)
    again = replace(intent(alice, key=None), task_id=task.id, provider="backup")
    assert await store.begin_submission(again)
    clash = emit(
        replace(stored, provider_task_id="bk-2"), EventType.TASK_RESUBMITTED, NOW, event_id
    )
    with pytest.raises(DuplicateTask):
        await store.move_task(clash, stored.version, again.id)
    still = await store.get_submission(alice.id, again.id)
    assert still is not None
    assert still.state is PENDING
