"""The contract for submissions (``relay.submissions``): the intent written before a provider
is asked, accepted in the transaction that creates its task, settled at most once."""

from __future__ import annotations

from datetime import datetime

from relay.models import Account
from relay.store.interface import Store
from relay.submissions import Submission, SubmissionState
from relay.transitions import registered
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
    # A settled submission does not move again.
    assert not await store.settle_submission(sub.id, UNCERTAIN, at(seconds=5), "late")
    assert await store.open_submissions(10) == []


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
    assert [s.id for s in await store.open_submissions(10)] == [early.id, late.id]
    assert await store.expire_submissions(at(seconds=60), "the holder died") == 1
    assert (await store.metrics_snapshot(NOW)).uncertain_submissions == 1
    expired = await store.get_submission(alice.id, early.id)
    assert expired is not None
    assert (expired.state, expired.detail) == (UNCERTAIN, "the holder died")
    still = await store.get_submission(alice.id, late.id)
    assert still is not None
    assert still.state is PENDING


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
