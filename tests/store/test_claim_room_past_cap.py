"""The storage contract for a destination's room past its cap (``ClaimLimits``): the engine
names a quick destination with more room than ``per_destination`` for the sends it claims
ahead (``relay.delivery.fairness``, rule 6), and the claim gives it all of it, while a
rate-limited destination stays within its gate. Runs once per backend, with no
backend branches."""

from __future__ import annotations

from relay.delivery.fairness import GateRoom, Ledger, RateGate
from relay.models import Account
from relay.store.interface import ClaimLimits, Store
from tests.store.factories import HOOK_KEY, at, pending, register
from tests.store.test_claims import subscribed


async def test_a_destination_without_a_rate_limit_takes_the_room_it_is_named_with(
    store: Store, alice: Account
) -> None:
    events = [(await pending(store, alice, at(seconds=s))).event.id for s in range(6)]
    ahead = ClaimLimits(per_destination=2, destination_room={HOOK_KEY: 5})
    due = await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1", limits=ahead)
    assert [d.event_id for d in due] == events[:5]
    # Not named: its cap.
    more = [(await pending(store, alice, at(seconds=20 + s))).event.id for s in range(3)]
    capped = ClaimLimits(per_destination=2)
    due = await store.claim_due_deliveries(at(seconds=30), 10, 30, "w1", limits=capped)
    assert [d.event_id for d in due] == [events[5], more[0]]


async def test_a_rate_limited_destination_keeps_to_its_gate(store: Store, alice: Account) -> None:
    sub = await subscribed(store, alice, rate_limit=2.0)
    for s in range(6):
        await register(store, alice, callback_url=None, next_poll_at=None, created_at=at(seconds=s))
    gated = ClaimLimits(
        per_destination=2, destination_room={sub.id: 5}, gates={sub.id: GateRoom(2.0, 3)}
    )
    due = await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1", limits=gated)
    assert len(due) == 3  # its gate's room, though named with more
    # A rate it has not learnt yet: one, to learn it.
    unknown = ClaimLimits(per_destination=2, destination_room={sub.id: 5})
    due = await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1", limits=unknown)
    assert len(due) == 1


async def test_a_quick_destination_not_named_takes_its_cap_and_the_sends_ahead(
    store: Store, alice: Account
) -> None:
    events = [(await pending(store, alice, at(seconds=s))).event.id for s in range(6)]
    quick = ClaimLimits(per_destination=2, uncounted=frozenset({HOOK_KEY}), ahead=3)
    due = await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1", limits=quick)
    assert [d.event_id for d in due] == events[:5]


async def test_a_rate_limited_destination_at_its_cap_is_not_claimed_past_it(
    store: Store, alice: Account
) -> None:
    # A subscription that answered quickly without a rate limit holds its cap of sends; its
    # rate_limit is then set (the engine has no gate for it yet). Rule 6's sends ahead are
    # for destinations without a rate limit: at its cap, the claim must take nothing more for
    # it (before claiming ahead it took nothing: its room was 0).
    sub = await subscribed(store, alice, rate_limit=2.0)
    for s in range(6):
        await register(store, alice, callback_url=None, next_poll_at=None, created_at=at(seconds=s))
    ledger = Ledger()
    t0 = 1000.0
    ledger.finish(ledger.start(sub.id, alice.id, t0), t0 + 0.05, answered_in=0.05)  # quick
    cap = 2
    for _ in range(cap):
        ledger.start(sub.id, alice.id, t0 + 0.1)  # its cap in flight
    limits = ledger.limits(
        t0 + 0.2,
        per_destination=cap,
        per_account=100,
        per_account_total=100,
        gate=RateGate(),
        ahead=2 * cap,
    )
    due = await store.claim_due_deliveries(at(seconds=10), 10, 300, "w1", limits=limits)
    assert due == [], f"claimed {len(due)} past the cap of a rate-limited destination"
