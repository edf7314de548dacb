"""Poll claims and group saves under races (both engines): the same task twice in one group
commit, two instances' batches sharing tasks, claims of several providers by two instances,
and a release racing a claim."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest_asyncio

from relay.models import Account, EventType, TaskStatus
from relay.store import open_store
from relay.store.interface import Store
from relay.store.values import EventQuery
from tests.store.factories import NOW, OWNER, answer_change, at, current, register


@pytest_asyncio.fixture
async def other(store: Store, database_url: str) -> AsyncIterator[Store]:
    s = open_store(database_url)
    assert await s.migrate() == []
    yield s
    await s.close()


async def test_a_look_and_a_claimed_poll_of_one_task_in_one_batch(
    store: Store, alice: Account
) -> None:
    reg = await register(store, alice, events={EventType.TASK_RUNNING})
    [claimed] = await store.claim_due_polls(NOW, {"sandbox": 5}, 30, OWNER)
    look = answer_change(claimed, TaskStatus.RUNNING, at(seconds=1))
    poll = answer_change(claimed, TaskStatus.RUNNING, at(seconds=1))
    bystander = (await register(store, alice)).task
    also = answer_change(bystander, TaskStatus.RUNNING, at(seconds=1))

    assert await store.save_tasks([(look, 0), (poll, 0), (also, 0)]) == [True, False, True]

    # The loser re-reads and applies its answer again: nothing new, no second event.
    again = await current(store, reg.task)
    assert again.version == 1
    redo = answer_change(again, TaskStatus.RUNNING, at(seconds=1))
    assert redo.events == ()
    assert await store.save_tasks(
        [(redo, 1), (answer_change(again, TaskStatus.RUNNING, at(seconds=1)), 1)]
    ) == [True, False]
    page = await store.list_events(alice.id, EventQuery(task_id=reg.task.id, order="asc"))
    assert [e.type for e in page.items].count(EventType.TASK_RUNNING) == 1
    # Saved, the task's lease is gone and its next poll is the saved one's.
    assert (await current(store, reg.task)).version == 2


async def test_two_instances_batches_sharing_tasks_in_opposite_orders(
    store: Store, other: Store, alice: Account
) -> None:
    tasks = [
        (await register(store, alice, events={EventType.TASK_RUNNING})).task for _ in range(20)
    ]
    mine = [(answer_change(t, TaskStatus.RUNNING, at(seconds=1)), 0) for t in tasks]
    theirs = [(answer_change(t, TaskStatus.RUNNING, at(seconds=2)), 0) for t in reversed(tasks)]
    a, b = await asyncio.wait_for(
        asyncio.gather(store.save_tasks(mine), other.save_tasks(theirs)), 30
    )
    # Each task written once, by one of the two.
    for i in range(20):
        assert a[i] != b[19 - i]


async def test_two_instances_claim_several_providers_without_sharing(
    store: Store, other: Store, alice: Account
) -> None:
    ids = set()
    for p in ("a", "b", "c"):
        for i in range(15):
            ids.add((await register(store, alice, provider=p, next_poll_at=at(seconds=-i))).task.id)
    claims = await asyncio.gather(
        *(
            s.claim_due_polls(NOW, {"a": 4, "b": 3, "c": 5}, 30, f"o{i}")
            for i, s in enumerate([store, other] * 4)
        )
    )
    claimed = [t.id for c in claims for t in c]
    assert len(claimed) == len(set(claimed))
    rest = await store.claim_due_polls(NOW, {"a": 100, "b": 100, "c": 100}, 30, "o9")
    assert sorted(claimed + [t.id for t in rest]) == sorted(ids)


async def test_release_after_the_lease_expired_and_another_claimed(
    store: Store, other: Store, alice: Account
) -> None:
    task = (await register(store, alice)).task
    [mine] = await store.claim_due_polls(NOW, {"sandbox": 5}, 30, "me")
    [theirs] = await other.claim_due_polls(at(seconds=31), {"sandbox": 5}, 30, "them")
    assert theirs.id == task.id
    await store.release_polls([task.id], "me", at(seconds=32))
    # Their claim stands: not due before its lease's end.
    assert await store.claim_due_polls(at(seconds=33), {"sandbox": 5}, 30, "third") == []
    # And my late save (my poll's answer) is fenced only by version: it wins over their claim.
    polled = replace(mine, next_poll_at=at(seconds=40), poll_count=1, updated_at=at(seconds=33))
    assert await store.save_task(answer_change(polled, TaskStatus.QUEUED, at(seconds=33)), 0)
    polled2 = replace(theirs, next_poll_at=at(seconds=40), poll_count=1, updated_at=at(seconds=34))
    assert not await other.save_task(answer_change(polled2, TaskStatus.QUEUED, at(seconds=34)), 0)
