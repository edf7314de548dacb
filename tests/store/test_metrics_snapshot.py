"""``Store.metrics_snapshot``: tasks by status of every account, and the backlog of deliveries
that are due and not leased (what ``/metrics`` reports), on both backends."""

from __future__ import annotations

from relay.models import Account, DeliveryStatus, TaskStatus
from relay.store.interface import Store
from tests.store.factories import NOW, advance, at, attempt, current, pending, register


async def test_an_empty_database_has_no_tasks_and_no_backlog(store: Store) -> None:
    snapshot = await store.metrics_snapshot(NOW)
    assert dict(snapshot.tasks) == {}
    assert snapshot.due_deliveries == 0
    assert snapshot.oldest_due_at is None


async def test_tasks_are_counted_by_status_across_accounts(
    store: Store,
    alice: Account,
    bob: Account,
) -> None:
    first = await register(store, alice, next_poll_at=None, callback_url=None)
    second = await register(store, alice, next_poll_at=None, callback_url=None)
    await register(store, bob, next_poll_at=None, callback_url=None)
    await advance(store, first.task, TaskStatus.RUNNING, at(seconds=1))
    await advance(store, await current(store, first.task), TaskStatus.SUCCEEDED, at(seconds=2))
    await advance(store, second.task, TaskStatus.FAILED, at(seconds=3))

    snapshot = await store.metrics_snapshot(at(seconds=4))
    assert dict(snapshot.tasks) == {
        TaskStatus.QUEUED: 1,
        TaskStatus.SUCCEEDED: 1,
        TaskStatus.FAILED: 1,
    }


async def test_the_backlog_is_what_is_due_and_not_leased(
    store: Store,
    alice: Account,
    bob: Account,
) -> None:
    await pending(store, alice, when=NOW)
    await pending(store, bob, when=at(seconds=10), key="https://other.example.com")
    await pending(store, alice, when=at(seconds=20), key="https://third.example.com")
    await pending(store, alice, when=at(minutes=5), key="https://fourth.example.com")

    snapshot = await store.metrics_snapshot(at(seconds=30))
    assert snapshot.due_deliveries == 3  # the fourth is not due yet
    assert snapshot.oldest_due_at == NOW

    # Claimed (leased to a sender): in flight, no longer waiting.
    (claimed,) = await store.claim_due_deliveries(at(seconds=30), 1, 60, "me")
    snapshot = await store.metrics_snapshot(at(seconds=31))
    assert snapshot.due_deliveries == 2
    assert snapshot.oldest_due_at == at(seconds=10)

    # Delivered: gone from the backlog for good, also once its lease would have run out.
    await store.record_attempts(
        [attempt(claimed, at(seconds=31), 200, status=DeliveryStatus.SUCCEEDED)], "me"
    )
    snapshot = await store.metrics_snapshot(at(minutes=3))
    assert snapshot.due_deliveries == 2

    # A lease that ran out (its holder died) puts the delivery back in the backlog.
    (stuck,) = await store.claim_due_deliveries(at(minutes=3), 1, 60, "dead")
    assert stuck.pk != claimed.pk
    assert (await store.metrics_snapshot(at(minutes=3, seconds=1))).due_deliveries == 1
    snapshot = await store.metrics_snapshot(at(minutes=4, seconds=1))
    assert snapshot.due_deliveries == 2
    assert snapshot.oldest_due_at == at(seconds=10)

    snapshot = await store.metrics_snapshot(at(minutes=6))
    assert snapshot.due_deliveries == 3  # the fourth has come due
