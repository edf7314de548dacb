"""The storage contract for the delivery loop's cycle, ``record_and_claim``: finished attempts
recorded and due deliveries claimed in one transaction. The record is durable and applied
first (the claim sees the leases it released and the retries it scheduled); the claim keeps
leases and rooms as ``claim_due_deliveries`` does; a failure leaves neither. Runs once per
backend, with no backend branches."""

from __future__ import annotations

from dataclasses import replace

import pytest

from relay.errors import StoreError
from relay.models import Account, DeliveryStatus
from relay.store import open_store
from relay.store.interface import ClaimLimits, Store
from tests.store.factories import NOW, at, attempt, only_delivery, pending, state

SUCCEEDED = DeliveryStatus.SUCCEEDED
PENDING = DeliveryStatus.PENDING


async def test_the_record_is_durable_and_the_claim_takes_the_freed_room(
    store: Store, alice: Account, database_url: str
) -> None:
    first = await pending(store, alice, at(seconds=0))
    second = await pending(store, alice, at(seconds=1))
    [sent] = await store.claim_due_deliveries(at(seconds=5), 1, 30, "w1")
    assert sent.event_id == first.event.id
    record = attempt(sent, at(seconds=6), 204, status=SUCCEEDED)
    # The engine's room for the destination counts the send just finished as gone.
    limits = ClaimLimits(per_destination=1, destination_room={sent.destination_key: 1})
    claimed = await store.record_and_claim([record], "w1", at(seconds=6), 10, 30, limits=limits)
    assert [d.event_id for d in claimed] == [second.event.id]
    # Durable: another store on the same database reads the record back.
    other = open_store(database_url)
    try:
        view = await only_delivery(other, alice, first.event.id)
        assert state(view) == (SUCCEEDED, 1, None)
        assert view.attempts == [record.attempt]
        # And the claim's lease holds there too.
        assert await other.claim_due_deliveries(at(seconds=7), 10, 30, "w2") == []
    finally:
        await other.close()


async def test_the_claim_sees_what_the_record_changed(store: Store, alice: Account) -> None:
    soon = await pending(store, alice, at(seconds=0))
    later = await pending(store, alice, at(seconds=1))
    [a, b] = await store.claim_due_deliveries(at(seconds=2), 10, 30, "w1")
    assert [a.event_id, b.event_id] == [soon.event.id, later.event.id]
    # a failed and is due again at once; b failed and is due in a minute: in the same
    # transaction the claim takes a again (its lease released by the record), not b.
    records = [
        attempt(a, at(seconds=3), 503, status=PENDING, next_attempt_at=at(seconds=3)),
        attempt(b, at(seconds=3), 503, status=PENDING, next_attempt_at=at(minutes=1)),
    ]
    claimed = await store.record_and_claim(records, "w1", at(seconds=3), 10, 30)
    assert claimed == [replace(a, attempt_count=1)]
    assert state(await only_delivery(store, alice, later.event.id)) == (
        PENDING,
        1,
        at(minutes=1),
    )


async def test_the_claim_keeps_leases_and_rooms(store: Store, alice: Account) -> None:
    held = await pending(store, alice, at(seconds=0), key="https://a.example")
    capped = await pending(store, alice, at(seconds=1), key="https://a.example")
    free = await pending(store, alice, at(seconds=2), key="https://b.example")
    [other] = await store.claim_due_deliveries(at(seconds=3), 1, 30, "w2")
    assert other.event_id == held.event.id
    # w2's lease holds; a.example has no room left; b.example's is taken.
    limits = ClaimLimits(per_destination=5, destination_room={"https://a.example": 0})
    claimed = await store.record_and_claim([], "w1", at(seconds=4), 10, 30, limits=limits)
    assert [d.event_id for d in claimed] == [free.event.id]
    # Without the cap, only a.example's unleased one is left to take.
    claimed = await store.record_and_claim([], "w1", at(seconds=4), 10, 30)
    assert [d.event_id for d in claimed] == [capped.event.id]
    # A limit of 0 claims nothing, and records alone.
    record = attempt(other, at(seconds=5), 204, status=SUCCEEDED)
    assert await store.record_and_claim([record], "w1", at(seconds=5), 0, 30) == []
    assert state(await only_delivery(store, alice, held.event.id))[:2] == (PENDING, 0)
    assert await store.record_and_claim([record], "w2", at(seconds=5), 0, 30) == []
    assert state(await only_delivery(store, alice, held.event.id)) == (SUCCEEDED, 1, None)
    assert await store.record_and_claim([], "w1", at(seconds=6), 0, 30) == []


async def test_a_failure_leaves_neither_the_record_nor_the_claim(
    store: Store, alice: Account
) -> None:
    sent_event = await pending(store, alice, at(seconds=0))
    waiting = await pending(store, alice, at(seconds=1))
    [sent] = await store.claim_due_deliveries(at(seconds=2), 1, 30, "w1")
    record = attempt(sent, at(seconds=3), 204, status=SUCCEEDED)
    # A limit no database takes (past a 64-bit integer) fails the claim, after the record's
    # statements ran in the same transaction.
    # (SQLite's driver: OverflowError; PostgreSQL: StoreError "bigint out of range".)
    with pytest.raises((OverflowError, StoreError)):
        await store.record_and_claim([record], "w1", at(seconds=3), 2**63, 30)
    view = await only_delivery(store, alice, sent_event.event.id)
    assert state(view) == (PENDING, 0, NOW)
    assert view.attempts == []
    # Nothing was leased by the failed claim, and the first delivery is still w1's.
    [due] = await store.claim_due_deliveries(at(seconds=4), 10, 30, "w2")
    assert due.event_id == waiting.event.id
    # The same record goes in once the database takes it.
    assert await store.record_and_claim([record], "w1", at(seconds=5), 10, 30) == []
    assert state(await only_delivery(store, alice, sent_event.event.id)) == (SUCCEEDED, 1, None)
