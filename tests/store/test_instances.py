"""The storage contract for several store objects on one database, as several relay instances
(or a CLI beside a server) have: claims never overlap, and a dead instance's leases expire.
Runs once per backend, with no backend branches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio

from relay.models import Account, DeliveryStatus
from relay.store import open_store
from relay.store.interface import ClaimLimits, Store
from tests.store.factories import NOW, OWNER, at, attempt, only_delivery, pending, register, state


@pytest_asyncio.fixture
async def other(store: Store, database_url: str) -> AsyncIterator[Store]:
    """A second store on the same (migrated) database: another instance."""
    s = open_store(database_url)
    assert await s.migrate() == []
    yield s
    await s.close()


async def test_two_instances_never_claim_the_same_delivery(
    store: Store, other: Store, alice: Account
) -> None:
    events = {
        (await pending(store, alice, key=f"https://{i % 3}.example")).event.id for i in range(24)
    }
    claims = await asyncio.gather(
        *(
            s.claim_due_deliveries(NOW, 4, 30, f"w{i}", limits=ClaimLimits(per_destination=2))
            for i, s in enumerate([store, other] * 5)
        )
    )
    claimed = [due.event_id for claim in claims for due in claim]
    assert len(claimed) == len(set(claimed))
    rest = await other.claim_due_deliveries(NOW, 100, 30, "w9")
    assert sorted(claimed + [d.event_id for d in rest]) == sorted(events)


async def test_two_instances_never_claim_the_same_poll(
    store: Store, other: Store, alice: Account
) -> None:
    tasks = {(await register(store, alice, next_poll_at=at(seconds=-i))).task.id for i in range(12)}
    claims = await asyncio.gather(
        *(s.claim_due_polls(NOW, {"sandbox": 3}, 30, OWNER) for s in [store, other] * 3)
    )
    claimed = [t.id for claim in claims for t in claim]
    assert len(claimed) == len(set(claimed))
    rest = await store.claim_due_polls(NOW, {"sandbox": 100}, 30, OWNER)
    assert sorted(claimed + [t.id for t in rest]) == sorted(tasks)


async def test_a_dead_instance_s_work_is_taken_once_its_leases_expire(
    database_url: str, store: Store, alice: Account
) -> None:
    reg = await pending(store, alice)
    polled = await register(store, alice, callback_url=None, created_at=at(seconds=1))
    dead = open_store(database_url)
    [due] = await dead.claim_due_deliveries(NOW, 10, 30, "dead")
    assert [
        t.id for t in await dead.claim_due_polls(at(seconds=1), {"sandbox": 10}, 30, OWNER)
    ] == [polled.task.id]
    await dead.close()  # killed: nothing recorded, nothing released

    assert await store.claim_due_deliveries(at(seconds=29), 10, 30, "alive") == []
    assert await store.claim_due_polls(at(seconds=30), {"sandbox": 10}, 30, OWNER) == []
    [again] = await store.claim_due_deliveries(at(seconds=31), 10, 30, "alive")
    assert again == due
    assert [
        t.id for t in await store.claim_due_polls(at(seconds=32), {"sandbox": 10}, 30, OWNER)
    ] == [polled.task.id]
    await store.record_attempts(
        [attempt(again, at(seconds=31), 200, status=DeliveryStatus.SUCCEEDED)], "alive"
    )
    assert state(await only_delivery(store, alice, reg.event.id)) == (
        DeliveryStatus.SUCCEEDED,
        1,
        None,
    )


async def test_what_one_instance_writes_the_other_reads(
    store: Store, other: Store, alice: Account
) -> None:
    reg = await pending(store, alice)
    assert await other.get_task(alice.id, reg.task.id) == reg.task
    [due] = await other.claim_due_deliveries(NOW, 10, 30, "w2")
    await other.record_attempts([attempt(due, NOW, 204, status=DeliveryStatus.SUCCEEDED)], "w2")
    assert state(await only_delivery(store, alice, reg.event.id)) == (
        DeliveryStatus.SUCCEEDED,
        1,
        None,
    )
