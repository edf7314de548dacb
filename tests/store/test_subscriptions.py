"""The storage contract for subscribers: subscriptions, fan-out, health, 410, rotation, replay
and idempotency keys. Runs once per backend, with no backend branches."""

from __future__ import annotations

from typing import Any

from relay.models import (
    Account,
    DeliveryStatus,
    Event,
    EventType,
    Subscription,
    SubscriptionStatus,
    TaskStatus,
)
from relay.store.interface import Store
from relay.store.values import EventQuery, IdempotentReply, ReplayQuery
from tests.store.factories import (
    NOW,
    advance,
    at,
    attempt,
    current,
    new_id,
    only_delivery,
    register,
)

SUB_URL = "https://hooks.zapier.com/hooks/standard/1/abc"


def subscription(account: Account, **fields: Any) -> Subscription:
    values: dict[str, Any] = {
        "id": new_id("sub"),
        "account_id": account.id,
        "url": SUB_URL,
        "event_types": None,
        "status": SubscriptionStatus.ACTIVE,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Subscription(**{**values, **fields})


async def subscribed(store: Store, account: Account, **fields: Any) -> Subscription:
    sub = subscription(account, **fields)
    await store.create_subscription(sub, f"whsec_{sub.id}")
    return sub


async def deliveries_to(
    store: Store, account: Account, destination_id: str, event_ids: list[str]
) -> list[tuple[str, DeliveryStatus]]:
    out = []
    for event_id in event_ids:
        for view in await store.event_deliveries(account.id, event_id):
            if view.delivery.destination_id == destination_id:
                out.append((event_id, view.delivery.status))
    return out


async def test_a_subscription_is_stored_and_scoped_to_its_account(
    store: Store, alice: Account, bob: Account
) -> None:
    sub = await subscribed(
        store,
        alice,
        description="Zapier",
        rate_limit=30.0,
        headers=(("Authorization", "Bearer n8n"),),
        event_types=frozenset({EventType.TASK_SUCCEEDED}),
    )
    assert await store.get_subscription(alice.id, sub.id) == sub
    assert await store.get_subscription(bob.id, sub.id) is None
    second = await subscribed(store, alice)
    page = await store.list_subscriptions(alice.id, None, 1)
    assert [s.id for s in page.items] == [second.id]  # newest first
    rest = await store.list_subscriptions(alice.id, page.next_after, 10)
    assert ([s.id for s in rest.items], rest.next_after) == ([sub.id], None)
    assert (await store.list_subscriptions(bob.id, None, 10)).items == []


async def test_update_changes_only_what_it_names(store: Store, alice: Account) -> None:
    sub = await subscribed(store, alice, description="old")
    updated = await store.update_subscription(
        alice.id,
        sub.id,
        {
            "url": "https://example.com/new",
            "event_types": frozenset({EventType.TASK_FAILED}),
            "headers": {"X-Token": "t"},
        },
        at(seconds=5),
    )
    assert updated == Subscription(
        id=sub.id,
        account_id=alice.id,
        url="https://example.com/new",
        event_types=frozenset({EventType.TASK_FAILED}),
        status=SubscriptionStatus.ACTIVE,
        created_at=NOW,
        updated_at=at(seconds=5),
        description="old",
        headers=(("X-Token", "t"),),
    )
    assert await store.update_subscription("acc_nobody", sub.id, {"url": "x"}, NOW) is None


async def test_events_fan_out_to_matching_active_subscriptions(
    store: Store, alice: Account, bob: Account
) -> None:
    everything = await subscribed(store, alice, event_types=frozenset(EventType))
    terminal = await subscribed(store, alice)  # no filter: the terminal types
    bobs = await subscribed(store, bob, event_types=frozenset(EventType))
    reg = await register(store, alice, events={EventType.TASK_QUEUED})
    done = await advance(store, reg.task, TaskStatus.SUCCEEDED, at(seconds=10))
    queued = {
        v.delivery.destination_id for v in await store.event_deliveries(alice.id, reg.event.id)
    }
    succeeded = {v.delivery.destination_id for v in await store.event_deliveries(alice.id, done.id)}
    assert reg.destination is not None
    assert queued == {reg.destination.id, everything.id}
    assert succeeded == {everything.id, terminal.id}
    assert bobs.id not in queued | succeeded
    # Each delivery is claimed on its own, counted on the subscription's own key.
    due = await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1")
    assert {(d.destination_key, d.secrets) for d in due if d.event_id == done.id} == {
        (everything.id, (f"whsec_{everything.id}",)),
        (terminal.id, (f"whsec_{terminal.id}",)),
    }


async def test_a_410_disables_the_subscription_and_stops_its_pending_work(
    store: Store, alice: Account
) -> None:
    sub = await subscribed(store, alice, event_types=frozenset(EventType))
    first = await register(store, alice, callback_url=None)
    second = await register(store, alice, callback_url=None, created_at=at(seconds=1))
    [due, _] = await store.claim_due_deliveries(at(seconds=1), 1 + 1, 30, "w1")
    assert due.event_id == first.event.id
    await store.record_attempts(
        [attempt(due, at(seconds=2), 410, status=DeliveryStatus.STOPPED)], "w1"
    )
    disabled = await store.get_subscription(alice.id, sub.id)
    assert disabled is not None
    assert (disabled.status, disabled.disabled_reason, disabled.disabled_at) == (
        SubscriptionStatus.DISABLED,
        "the receiver answered 410 Gone",
        at(seconds=2),
    )
    # The other delivery, claimed and in flight, cannot come back to life when it records.
    assert await deliveries_to(store, alice, sub.id, [first.event.id, second.event.id]) == [
        (first.event.id, DeliveryStatus.STOPPED),
        (second.event.id, DeliveryStatus.STOPPED),
    ]
    # New events no longer reach it.
    third = await register(store, alice, callback_url=None, created_at=at(seconds=3))
    assert await deliveries_to(store, alice, sub.id, [third.event.id]) == []
    # Enabling says since when it missed events: the oldest it had pending.
    enabled = await store.enable_subscription(alice.id, sub.id, at(seconds=4))
    assert enabled is not None
    assert (enabled[0].status, enabled[0].disabled_reason, enabled[1]) == (
        SubscriptionStatus.ACTIVE,
        None,
        at(seconds=1),
    )
    again = await store.enable_subscription(alice.id, sub.id, at(seconds=5))
    assert again is not None
    assert again[1] is None  # it was not disabled: nothing missed


async def test_health_follows_attempts_and_long_failure_disables(
    store: Store, alice: Account
) -> None:
    sub = await subscribed(store, alice, event_types=frozenset(EventType))
    await register(store, alice, callback_url=None)
    [due] = await store.claim_due_deliveries(NOW, 10, 30, "w1")
    await store.record_attempts(
        [
            attempt(
                due,
                at(seconds=1),
                500,
                status=DeliveryStatus.PENDING,
                next_attempt_at=at(seconds=6),
            )
        ],
        "w1",
    )
    failing = await store.get_subscription(alice.id, sub.id)
    assert failing is not None
    assert (failing.failing_since, failing.last_success_at) == (at(seconds=1), None)
    assert await store.disable_failing_subscriptions(at(days=5), 5 * 86400) == []
    [due] = await store.claim_due_deliveries(at(seconds=6), 10, 30, "w1")
    await store.record_attempts(
        [attempt(due, at(seconds=7), 204, status=DeliveryStatus.SUCCEEDED)], "w1"
    )
    healthy = await store.get_subscription(alice.id, sub.id)
    assert healthy is not None
    assert (healthy.failing_since, healthy.last_success_at) == (None, at(seconds=7))

    await register(store, alice, callback_url=None, created_at=at(seconds=8))
    [due] = await store.claim_due_deliveries(at(seconds=8), 10, 30, "w1")
    await store.record_attempts(
        [
            attempt(
                due,
                at(seconds=9),
                None,
                error="refused",
                status=DeliveryStatus.PENDING,
                next_attempt_at=at(days=1),
            )
        ],
        "w1",
    )
    assert await store.disable_failing_subscriptions(at(days=5, seconds=8), 5 * 86400) == []
    assert await store.disable_failing_subscriptions(at(days=5, seconds=9), 5 * 86400) == [sub.id]
    gone = await store.get_subscription(alice.id, sub.id)
    assert gone is not None
    assert gone.status is SubscriptionStatus.DISABLED
    assert gone.disabled_reason is not None
    assert "5 days" in gone.disabled_reason


async def test_rotation_signs_with_both_secrets_until_the_grace_ends(
    store: Store, alice: Account
) -> None:
    sub = await subscribed(store, alice, event_types=frozenset(EventType))
    rotated = await store.rotate_subscription_secret(
        alice.id, sub.id, "whsec_new", at(hours=24), NOW
    )
    assert rotated is not None
    assert rotated.previous_secret_until == at(hours=24)
    await store.rotate_callback_secret(alice.id, "whsec_alice2", at(hours=24))
    assert await store.callback_secret(alice.id) == "whsec_alice2"
    reg = await register(store, alice, events={EventType.TASK_QUEUED})
    due = await store.claim_due_deliveries(NOW, 10, 30, "w1")
    assert reg.destination is not None
    assert {d.destination_key: d.secrets for d in due} == {
        sub.id: ("whsec_new", f"whsec_{sub.id}"),
        reg.destination.key if reg.destination else "": ("whsec_alice2", "whsec_alice"),
    }
    await register(store, alice, created_at=at(hours=25), events={EventType.TASK_QUEUED})
    later = await store.claim_due_deliveries(at(hours=25), 10, 30, "w1")
    assert {d.secrets for d in later} == {("whsec_new",), ("whsec_alice2",)}


async def test_delete_stops_pending_deliveries_and_hides_it(store: Store, alice: Account) -> None:
    sub = await subscribed(store, alice, event_types=frozenset(EventType))
    reg = await register(store, alice, callback_url=None)
    assert await store.delete_subscription(alice.id, sub.id, at(seconds=1))
    assert not await store.delete_subscription(alice.id, sub.id, at(seconds=2))
    assert await store.get_subscription(alice.id, sub.id) is None
    assert await deliveries_to(store, alice, sub.id, [reg.event.id]) == [
        (reg.event.id, DeliveryStatus.STOPPED)
    ]
    assert await store.claim_due_deliveries(at(seconds=3), 10, 30, "w1") == []


async def test_replay_resends_in_order_and_waits_for_each_tasks_earlier_events(
    store: Store, alice: Account
) -> None:
    a = await register(store, alice, callback_url=None)
    b = await register(store, alice, callback_url=None, created_at=at(seconds=1))
    a2 = await advance(store, await current(store, a.task), TaskStatus.SUCCEEDED, at(seconds=2))
    sub = await subscribed(store, alice, event_types=frozenset(EventType))
    query = ReplayQuery(since=NOW, until=at(seconds=3))
    assert await store.count_replay(alice.id, sub.id, query) == 3
    # In batches, without holding them all: two, then the rest.
    count, after = await store.replay(alice.id, sub.id, query, at(seconds=5), after=None, limit=2)
    assert count == 2
    assert after is not None
    assert await store.replay(alice.id, sub.id, query, at(seconds=5), after=after, limit=2) == (
        1,
        None,
    )
    # a's second event waits until its first is done; b's goes alongside.
    due = await store.claim_due_deliveries(at(seconds=5), 10, 30, "w1")
    assert [d.event_id for d in due] == [a.event.id, b.event.id]
    first_a = next(d for d in due if d.event_id == a.event.id)
    await store.record_attempts(
        [attempt(first_a, at(seconds=6), 200, status=DeliveryStatus.SUCCEEDED)], "w1"
    )
    [then] = await store.claim_due_deliveries(at(seconds=6), 10, 30, "w2")
    assert then.event_id == a2.id
    assert await store.replay(alice.id, "sub_nope", query, NOW, after=None, limit=5) == (0, None)


async def test_only_failed_replays_what_never_reached_the_destination(
    store: Store, alice: Account
) -> None:
    sub = await subscribed(store, alice, event_types=frozenset(EventType))
    ok = await register(store, alice, callback_url=None)
    bad = await register(store, alice, callback_url=None, created_at=at(seconds=1))
    due = await store.claim_due_deliveries(at(seconds=1), 10, 30, "w1")
    by_event = {d.event_id: d for d in due}
    await store.record_attempts(
        [
            attempt(by_event[ok.event.id], at(seconds=2), 200, status=DeliveryStatus.SUCCEEDED),
            attempt(by_event[bad.event.id], at(seconds=2), 500, status=DeliveryStatus.FAILED),
        ],
        "w1",
    )
    failed_only = ReplayQuery(only_failed=True)
    assert await store.count_replay(alice.id, sub.id, failed_only) == 1
    assert await store.replay(
        alice.id, sub.id, failed_only, at(seconds=3), after=None, limit=10
    ) == (1, None)
    [again] = await store.claim_due_deliveries(at(seconds=3), 10, 30, "w1")
    assert again.event_id == bad.event.id
    # The feed finds events with a failed delivery.
    failed = await store.list_events(alice.id, EventQuery(delivery_status=DeliveryStatus.FAILED))
    assert [e.id for e in failed.items] == [bad.event.id]


async def test_an_idempotency_key_answers_once_and_remembers_the_answer(
    store: Store, alice: Account, bob: Account
) -> None:
    lease = at(seconds=15)
    assert await store.reserve_idempotency_key(alice.id, "k1", "h1", "r1", NOW, lease) is None
    assert await store.reserve_idempotency_key(
        alice.id, "k1", "h1", "r2", NOW, lease
    ) == IdempotentReply("h1", None, None, lease)  # the first request is still being answered
    assert await store.reserve_idempotency_key(bob.id, "k1", "h2", "r3", NOW, lease) is None
    await store.finish_idempotency_key(alice.id, "k1", "r1", 201, '{"id":"task_1"}')
    assert await store.reserve_idempotency_key(
        alice.id, "k1", "h9", "r4", NOW, lease
    ) == IdempotentReply("h1", 201, '{"id":"task_1"}', lease)
    await store.forget_idempotency_key(bob.id, "k1", "r3")
    assert (
        await store.reserve_idempotency_key(bob.id, "k1", "h3", "r5", at(hours=1), at(hours=2))
        is None
    )
    assert await store.prune_idempotency_keys(at(minutes=30)) == 1  # alice's; bob's is new
    assert (
        await store.reserve_idempotency_key(alice.id, "k1", "h4", "r6", at(hours=2), at(hours=3))
        is None
    )


async def test_a_dead_holder_s_idempotency_key_is_taken_over_after_its_lease(
    store: Store, alice: Account
) -> None:
    lease = at(seconds=15)
    assert await store.reserve_idempotency_key(alice.id, "k", "h", "dead", NOW, lease) is None
    # While the holder renews, nobody takes it over; its renewal says it still holds it.
    assert await store.renew_idempotency_key(alice.id, "k", "dead", at(seconds=25))
    still = await store.reserve_idempotency_key(alice.id, "k", "h", "r2", at(seconds=20), lease)
    assert still == IdempotentReply("h", None, None, at(seconds=25))
    # Another request cannot take it over, even after the lease ran out.
    other = await store.reserve_idempotency_key(alice.id, "k", "x", "r3", at(seconds=30), lease)
    assert other is not None
    assert other.request_hash == "h"
    # The same request can, and the dead holder's late writes change nothing.
    took = await store.reserve_idempotency_key(
        alice.id, "k", "h", "r4", at(seconds=30), at(seconds=45)
    )
    assert took is None
    assert not await store.renew_idempotency_key(alice.id, "k", "dead", at(seconds=60))
    await store.finish_idempotency_key(alice.id, "k", "dead", 500, "late")
    await store.forget_idempotency_key(alice.id, "k", "dead")
    await store.finish_idempotency_key(alice.id, "k", "r4", 201, "{}")
    done = await store.reserve_idempotency_key(alice.id, "k", "h", "r5", at(seconds=31), lease)
    assert done == IdempotentReply("h", 201, "{}", at(seconds=45))


async def test_a_test_event_is_stored_with_a_delivery_leased_to_the_caller(
    store: Store, alice: Account, bob: Account
) -> None:
    sub = await subscribed(store, alice, headers=(("X-Token", "t"),))
    event = Event(
        id="evt_test",
        account_id=alice.id,
        task_id=None,
        type=EventType.RELAY_TEST,
        sequence=0,
        created_at=NOW,
        body='{"id":"evt_test","type":"relay.test"}',
    )
    due = await store.insert_test_delivery(event, sub.id, "api", NOW, 30)
    assert due is not None
    assert (due.event_id, due.url, due.secrets, due.headers, due.attempt_count) == (
        "evt_test",
        SUB_URL,
        (f"whsec_{sub.id}",),
        (("X-Token", "t"),),
        0,
    )
    assert await store.claim_due_deliveries(NOW, 10, 30, "w1") == []  # leased to "api"
    await store.record_attempts([attempt(due, NOW, 200, status=DeliveryStatus.SUCCEEDED)], "api")
    view = await only_delivery(store, alice, "evt_test")
    assert view.delivery.status is DeliveryStatus.SUCCEEDED
    bobs = Event(
        id="evt_bob",
        account_id=bob.id,
        task_id=None,
        type=EventType.RELAY_TEST,
        sequence=0,
        created_at=NOW,
        body="{}",
    )
    assert await store.insert_test_delivery(bobs, sub.id, "api", NOW, 30) is None
