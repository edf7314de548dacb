"""The storage contract for fair claims (``ClaimLimits``): rooms per destination and per
account, quick receivers outside the account rooms, rate-limited destinations one at a time,
and the accounts taking turns. Runs once per backend, with no backend branches."""

from __future__ import annotations

from relay.models import Account, EventType, Subscription, SubscriptionStatus
from relay.store.interface import ClaimLimits, Store
from tests.store.factories import NOW, at, make_account, new_id, pending, register


async def subscribed(store: Store, account: Account, rate_limit: float | None) -> Subscription:
    """A subscription to ``task.queued`` events, so each new task is one delivery to it."""
    sub = Subscription(
        id=new_id("sub"),
        account_id=account.id,
        url="https://hooks.example.org/sub",
        event_types=frozenset({EventType.TASK_QUEUED}),
        status=SubscriptionStatus.ACTIVE,
        created_at=NOW,
        updated_at=NOW,
        rate_limit=rate_limit,
    )
    await store.create_subscription(sub, f"whsec_{sub.id}")
    return sub


async def test_an_account_takes_no_more_than_its_room(
    store: Store, alice: Account, bob: Account
) -> None:
    mine = [
        await pending(store, alice, at(seconds=s), key=f"https://{s}.example") for s in range(4)
    ]
    theirs = await pending(store, bob, at(seconds=9))
    limits = ClaimLimits(per_destination=10, per_account=3, account_room={alice.id: 1})
    due = await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1", limits=limits)
    assert sorted(d.event_id for d in due) == sorted([mine[0].event.id, theirs.event.id])
    # Bob is not named: per_account is his room.
    more = [await pending(store, bob, at(seconds=11 + s)) for s in range(4)]
    due = await store.claim_due_deliveries(at(seconds=20), 10, 30, "w1", limits=limits)
    assert {d.event_id for d in due} >= {m.event.id for m in more[:3]}
    assert more[3].event.id not in {d.event_id for d in due}


async def test_a_full_account_s_backlog_does_not_hide_another_s_due_work(
    store: Store, alice: Account, bob: Account
) -> None:
    # A claim of one looks at a window of four candidates: Alice's twelve older ones would
    # fill it, but an account without room is left out before the window is cut.
    for s in range(12):
        await pending(store, alice, at(seconds=s), key=f"https://{s % 3}.example")
    theirs = await pending(store, bob, at(seconds=20))
    limits = ClaimLimits(per_destination=10, per_account=10, account_room={alice.id: 0})
    [due] = await store.claim_due_deliveries(at(seconds=30), 1, 30, "w1", limits=limits)
    assert due.event_id == theirs.event.id


async def test_quick_receivers_are_not_counted_against_the_account(
    store: Store, alice: Account
) -> None:
    quick = [
        await pending(store, alice, at(seconds=s), key="https://quick.example") for s in (0, 1)
    ]
    slow = [await pending(store, alice, at(seconds=s), key="https://slow.example") for s in (2, 3)]
    limits = ClaimLimits(
        per_destination=10,
        per_account=5,
        account_room={alice.id: 0},
        uncounted=frozenset({"https://quick.example"}),
    )
    claimed = await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1", limits=limits)
    assert [d.event_id for d in claimed] == [q.event.id for q in quick]
    # With one slot of room, one slow one joins the quick ones.
    limits = ClaimLimits(
        per_destination=10,
        per_account=5,
        account_room={alice.id: 1},
        uncounted=frozenset({"https://quick.example"}),
    )
    [due] = await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1", limits=limits)
    assert due.event_id == slow[0].event.id


async def test_accounts_take_turns_for_the_free_slots(
    store: Store, alice: Account, bob: Account
) -> None:
    mine = [
        await pending(store, alice, at(seconds=s), key=f"https://{s}.example") for s in range(5)
    ]
    carol = await make_account(store, "carol")
    theirs = await pending(store, bob, at(seconds=30))
    hers = await pending(store, carol, at(seconds=20))
    # Three slots: Alice's oldest, then Carol's and Bob's (each account's first turn, the
    # longest due first), before Alice's second.
    due = await store.claim_due_deliveries(
        at(seconds=40), 3, 30, "w1", limits=ClaimLimits(per_destination=10, per_account=10)
    )
    assert [d.event_id for d in due] == [mine[0].event.id, hers.event.id, theirs.event.id]


async def test_a_rate_limited_destination_is_claimed_one_at_a_time_until_named(
    store: Store, alice: Account
) -> None:
    sub = await subscribed(store, alice, rate_limit=2.0)
    events = [
        (
            await register(
                store, alice, callback_url=None, next_poll_at=None, created_at=at(seconds=s)
            )
        ).event.id
        for s in range(4)
    ]
    capped = ClaimLimits(per_destination=10)
    [first] = await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1", limits=capped)
    assert (first.event_id, first.destination_key, first.rate_limit) == (events[0], sub.id, 2.0)
    # The engine then names it with the room its rate gate leaves.
    named = ClaimLimits(per_destination=10, destination_room={sub.id: 2})
    due = await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1", limits=named)
    assert [d.event_id for d in due] == events[1:3]
    closed = ClaimLimits(per_destination=10, destination_room={sub.id: 0})
    assert await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1", limits=closed) == []
    # Without limits nothing is capped.
    [last] = await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1")
    assert last.event_id == events[3]
