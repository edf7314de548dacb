"""The storage contract for retention: old history goes in batches, pending work never."""

from __future__ import annotations

from relay.models import Account, DeliveryStatus, EventType, TaskStatus
from relay.store.interface import Store
from relay.store.values import EventQuery
from tests.store.factories import advance, at, attempt, current, register


async def test_old_finished_history_is_pruned_in_batches_and_pending_work_is_kept(
    store: Store, alice: Account
) -> None:
    # Three old events whose deliveries are done, one old event still pending, one new.
    done = [
        await register(
            store,
            alice,
            events={EventType.TASK_QUEUED},
            created_at=at(seconds=i),
            next_poll_at=None,
        )
        for i in range(3)
    ]
    due = await store.claim_due_deliveries(at(seconds=3), 10, 30, "w1")
    await store.record_attempts(
        [attempt(d, at(seconds=4), 200, status=DeliveryStatus.SUCCEEDED) for d in due], "w1"
    )
    waiting = await register(
        store, alice, events={EventType.TASK_QUEUED}, created_at=at(seconds=5), next_poll_at=None
    )
    recent = await advance(
        store, await current(store, done[0].task), TaskStatus.SUCCEEDED, at(days=30)
    )

    assert await store.prune_history(at(days=1), 2) == 2
    assert await store.prune_history(at(days=1), 2) == 1
    assert await store.prune_history(at(days=1), 2) == 0
    left = await store.list_events(alice.id, EventQuery(order="asc"))
    assert [e.id for e in left.items] == [waiting.event.id, recent.id]
    for gone in done:
        assert await store.get_event(alice.id, gone.event.id) is None
        assert await store.event_deliveries(alice.id, gone.event.id) == []
    # The pending delivery is still claimable, its event intact.
    [still] = await store.claim_due_deliveries(at(days=2), 10, 30, "w1")
    assert still.event_id == waiting.event.id
    # Tasks are not history: they stay.
    assert await store.get_task(alice.id, done[0].task.id) is not None
