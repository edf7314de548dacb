"""The storage contract for operational events (``relay.operational``): a subscription
disabled (410, or failing for days) writes its ``subscription.disabled`` in the same
transaction, fanned out only to the account's subscriptions that named the type; events
written on their own reach the same subscriptions; ``accounts_wanting`` finds who asked.
Runs once per backend, with no backend branches."""

from __future__ import annotations

import json

from relay.models import Account, DeliveryStatus, EventType, SubscriptionStatus, TaskStatus
from relay.operational import account_event
from relay.store.interface import Store
from relay.store.values import EventQuery
from tests.store.factories import NOW, advance, at, attempt, event_id, register
from tests.store.test_subscriptions import subscribed

OPS = frozenset({EventType.SUBSCRIPTION_DISABLED, EventType.DELIVERY_EXHAUSTED})


async def delivered_to(store: Store, account: Account, event: str) -> set[str]:
    return {v.delivery.destination_id for v in await store.event_deliveries(account.id, event)}


async def test_a_410_disables_and_announces_to_those_that_asked(
    store: Store, alice: Account, bob: Account
) -> None:
    gone = await subscribed(store, alice, event_types=frozenset(EventType))
    ops = await subscribed(store, alice, event_types=OPS)
    await subscribed(store, alice)  # the default filter: no operational events
    await subscribed(store, alice, event_types=frozenset({EventType.TASK_SUCCEEDED}))
    await subscribed(store, bob, event_types=OPS)
    await register(store, alice, callback_url=None, events={EventType.TASK_QUEUED})
    [to_gone] = await store.claim_due_deliveries(NOW, 10, 30, "w1")
    assert to_gone.destination_key == gone.id  # task.queued: the only one that asked
    await store.record_attempts(
        [attempt(to_gone, at(seconds=1), 410, status=DeliveryStatus.STOPPED)], "w1"
    )

    disabled = await store.get_subscription(alice.id, gone.id)
    assert disabled is not None
    assert disabled.status is SubscriptionStatus.DISABLED
    page = await store.list_events(
        alice.id, EventQuery(type=EventType.SUBSCRIPTION_DISABLED, order="asc")
    )
    [event] = page.items
    assert event.task_id is None
    body = json.loads(event.body)
    assert body["data"]["subscription_id"] == gone.id
    assert body["data"]["cause"] == "gone"
    assert body["data"]["subscription"]["status"] == "disabled"
    # Only the subscription that asked: not the one disabled, though its filter names it.
    assert await delivered_to(store, alice, event.id) == {ops.id}
    assert (
        await store.list_events(bob.id, EventQuery(type=EventType.SUBSCRIPTION_DISABLED))
    ).items == []


async def test_long_failure_disables_with_an_event_saying_so(store: Store, alice: Account) -> None:
    sub = await subscribed(store, alice)
    ops = await subscribed(store, alice, event_types=OPS)
    reg = await register(store, alice, callback_url=None)
    await advance(store, reg.task, TaskStatus.SUCCEEDED, at(seconds=1))
    [due] = await store.claim_due_deliveries(at(seconds=1), 10, 30, "w1")
    assert due.destination_key == sub.id
    await store.record_attempts(
        [
            attempt(
                due,
                at(seconds=2),
                500,
                status=DeliveryStatus.PENDING,
                next_attempt_at=at(days=1),
            )
        ],
        "w1",
    )
    assert await store.disable_failing_subscriptions(at(days=5, seconds=2), 5 * 86400) == [sub.id]
    [event] = (
        await store.list_events(alice.id, EventQuery(type=EventType.SUBSCRIPTION_DISABLED))
    ).items
    body = json.loads(event.body)
    assert body["data"]["subscription_id"] == sub.id
    assert body["data"]["cause"] == "failing"
    assert "5 days" in body["data"]["reason"]
    assert await delivered_to(store, alice, event.id) == {ops.id}
    # Disabled once, announced once.
    assert await store.disable_failing_subscriptions(at(days=6), 5 * 86400) == []
    assert (
        len(
            (
                await store.list_events(alice.id, EventQuery(type=EventType.SUBSCRIPTION_DISABLED))
            ).items
        )
        == 1
    )


async def test_account_events_written_alone_reach_only_who_asked(
    store: Store, alice: Account, bob: Account
) -> None:
    ops = await subscribed(store, alice, event_types=OPS)
    await subscribed(store, alice)
    await subscribed(store, bob, event_types=frozenset({EventType.PROVIDER_UNHEALTHY}))
    assert await store.accounts_wanting(EventType.DELIVERY_EXHAUSTED) == [alice.id]
    assert await store.accounts_wanting(EventType.PROVIDER_UNHEALTHY) == [bob.id]
    assert await store.accounts_wanting(EventType.PROVIDER_RECOVERED) == []

    event = account_event(
        alice.id, EventType.DELIVERY_EXHAUSTED, {"delivery_id": "dlv_x"}, NOW, event_id
    )
    await store.write_account_events([event])
    assert await delivered_to(store, alice, event.id) == {ops.id}
    listed = await store.get_event(alice.id, event.id)
    assert listed is not None
    assert listed.body == event.body
    assert await store.get_event(bob.id, event.id) is None
