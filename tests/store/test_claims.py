"""The storage contract for fair claims (``ClaimLimits``): rooms per destination and per
account, quick receivers outside the account rooms but inside the account's total, rate gates
that hold while the destination's rate does, and the accounts taking turns. Runs once per
backend, with no backend branches."""

from __future__ import annotations

from relay.delivery.fairness import GateRoom
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
    # The engine then names it with the room its rate gate leaves, at the rate it learnt.
    named = ClaimLimits(per_destination=10, gates={sub.id: GateRoom(2.0, 2)})
    due = await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1", limits=named)
    assert [d.event_id for d in due] == events[1:3]
    closed = ClaimLimits(per_destination=10, gates={sub.id: GateRoom(2.0, 0)})
    assert await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1", limits=closed) == []
    # Its sends in flight cap it too.
    full = ClaimLimits(
        per_destination=10, destination_room={sub.id: 0}, gates={sub.id: GateRoom(2.0, 5)}
    )
    assert await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1", limits=full) == []
    # Without limits nothing is capped.
    [last] = await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1")
    assert last.event_id == events[3]


async def test_a_closed_gate_holds_only_while_the_destination_keeps_its_rate(
    store: Store, alice: Account
) -> None:
    sub = await subscribed(store, alice, rate_limit=0.01)
    events = [
        (
            await register(
                store, alice, callback_url=None, next_poll_at=None, created_at=at(seconds=s)
            )
        ).event.id
        for s in range(4)
    ]
    closed = ClaimLimits(per_destination=10, gates={sub.id: GateRoom(0.01, 0)})
    assert await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1", limits=closed) == []
    # Raised: the gate was planned at the old rate, so the destination is one whose rate the
    # engine does not know yet: one delivery, which tells it the new rate.
    await store.update_subscription(alice.id, sub.id, {"rate_limit": 5.0}, at(seconds=10))
    [first] = await store.claim_due_deliveries(at(seconds=11), 10, 30, "w1", limits=closed)
    assert (first.event_id, first.rate_limit) == (events[0], 5.0)
    # Removed: no gate applies, only the cap for sends in flight.
    await store.update_subscription(alice.id, sub.id, {"rate_limit": None}, at(seconds=11))
    capped = ClaimLimits(
        per_destination=10, destination_room={sub.id: 2}, gates={sub.id: GateRoom(5.0, 0)}
    )
    due = await store.claim_due_deliveries(at(seconds=12), 10, 30, "w1", limits=capped)
    assert [d.event_id for d in due] == events[1:3]


async def test_quick_receivers_count_against_the_account_s_total(
    store: Store, alice: Account, bob: Account
) -> None:
    quick = frozenset({"https://quick.example"})
    mine = [
        await pending(store, alice, at(seconds=s), key="https://quick.example") for s in range(6)
    ]
    theirs = await pending(store, bob, at(seconds=9), key="https://quick.example")
    limits = ClaimLimits(
        per_destination=10,
        per_account=1,
        account_room={alice.id: 0},
        uncounted=quick,
        per_account_total=8,
        account_total_room={alice.id: 3},
    )
    due = await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1", limits=limits)
    # Alice has room for three more sends of any kind; Bob, unnamed, for per_account_total.
    assert sorted(d.event_id for d in due) == sorted(
        [m.event.id for m in mine[:3]] + [theirs.event.id]
    )
    spent = ClaimLimits(per_destination=10, uncounted=quick, account_total_room={alice.id: 0})
    assert await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1", limits=spent) == []


async def test_counted_deliveries_left_out_do_not_use_the_account_s_total(
    store: Store, alice: Account
) -> None:
    # Older slow deliveries the account's share leaves out come first in its queue: the
    # quick ones behind them still get the total's room.
    slow = [
        await pending(store, alice, at(seconds=s), key="https://slow.example") for s in range(4)
    ]
    quick = [
        await pending(store, alice, at(seconds=5 + s), key="https://quick.example")
        for s in range(4)
    ]
    limits = ClaimLimits(
        per_destination=10,
        per_account=1,
        uncounted=frozenset({"https://quick.example"}),
        per_account_total=3,
    )
    due = await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1", limits=limits)
    assert [d.event_id for d in due] == [slow[0].event.id] + [q.event.id for q in quick[:2]]
