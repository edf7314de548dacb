"""Operator actions on events and subscriptions, behind the ``relay events`` and
``relay subscriptions`` commands: read the event feed, redeliver one event, list
subscriptions, and replay a time range of events to one subscription.

A replay is counted first (so a progress bar knows its length), then written by the store in
batches of ordered deliveries, oldest first, continuing past the last event the previous batch
read: only one batch of ids is ever held, whatever the range. The store counts and writes in
bounded steps of the window (``relay.store.replay_steps``), each its own short transaction,
so a replay over a long history never holds a database thread for long. The running relay
sends what was written at its next delivery tick; nothing here talks to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from relay.errors import (
    InvalidTimeRange,
    ReplayTargetDisabled,
    UnknownDestination,
    UnknownEvent,
    UnknownSubscription,
)
from relay.models import Delivery, Event, Subscription, SubscriptionStatus, iso
from relay.store.interface import Store
from relay.store.values import EventQuery, ReplayQuery

PAGE_SIZE = 200
"""Rows per read when walking the event feed or the subscriptions."""


def parse_time(value: str) -> datetime:
    """An ISO 8601 time with ``Z`` or an offset; a time without one is UTC.
    ``ValueError`` when it is not such a time."""
    parsed = datetime.fromisoformat(value.strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- events ----------------------------------------------------------------------------------


async def iter_events(
    store: Store, account_id: str, query: EventQuery, limit: int
) -> AsyncIterator[Event]:
    """Up to ``limit`` events of the feed in the query's order, read a page at a time."""
    after, left = query.after, limit
    while left > 0:
        page = await store.list_events(
            account_id, replace(query, after=after, limit=min(left, PAGE_SIZE))
        )
        for event in page.items:
            yield event
        left -= len(page.items)
        if page.next_after is None or not page.items:
            return
        after = page.next_after


async def redeliver(
    store: Store, account_id: str, event_id: str, destination_id: str | None, now: datetime
) -> list[Delivery]:
    """New deliveries of a stored event to its active destinations (or to the one named)."""
    if await store.get_event(account_id, event_id) is None:
        raise UnknownEvent(f"no event {event_id} in account {account_id}")
    created = await store.redeliver(account_id, event_id, destination_id, now)
    if not created:
        if destination_id is not None:
            raise UnknownDestination(
                f"event {event_id} was never sent to an active destination {destination_id}"
            )
        raise UnknownDestination(f"event {event_id} has no active destination to send it to")
    return created


# --- subscriptions ---------------------------------------------------------------------------


async def iter_subscriptions(store: Store, account_id: str) -> AsyncIterator[Subscription]:
    """Every live subscription of the account, newest first."""
    after: int | None = None
    while True:
        page = await store.list_subscriptions(account_id, after, PAGE_SIZE)
        for subscription in page.items:
            yield subscription
        if page.next_after is None:
            return
        after = page.next_after


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    subscription: Subscription
    query: ReplayQuery
    count: int
    """How many events the replay will send, counted before it starts."""


async def plan_replay(
    store: Store, account_id: str, sub_id: str, query: ReplayQuery, now: datetime
) -> ReplayPlan:
    """Check the subscription and count what a replay of ``query`` sends.

    A range open at the end is closed at ``now``: events written while the replay runs reach
    the subscription as usual, and a replay that also took them would send them twice."""
    subscription = await active_subscription(store, account_id, sub_id)
    until = now if query.until is None else query.until
    if query.since is not None and query.since >= until:
        raise InvalidTimeRange(
            f"since ({iso(query.since)}) must be earlier than until ({iso(until)})"
        )
    query = replace(query, until=until)
    count = await store.count_replay(account_id, sub_id, query)
    return ReplayPlan(subscription, query, count)


async def run_replay(
    store: Store,
    plan: ReplayPlan,
    now: datetime,
    batch: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the planned replay in batches of ``batch`` events, oldest first, reporting each
    batch's size to ``progress``; how many events were replayed."""
    sub = plan.subscription
    total, after = 0, None
    while True:
        created, after = await store.replay(
            sub.account_id, sub.id, plan.query, now, after=after, limit=batch
        )
        total += created
        if created and progress is not None:
            progress(created)
        if after is None:
            break
    if total < plan.count:
        # The store writes nothing for a subscription that is no longer active.
        await active_subscription(
            store, sub.account_id, sub.id, during=f"after {total} of {plan.count} events"
        )
    return total


REPLAY_BATCH = 1000
"""Events a replay writes per transaction (``run_replay``'s batch) from the API and the
dashboard: short transactions, and the store never holds more than one batch."""


async def replay(
    store: Store,
    account_id: str,
    sub_id: str,
    query: ReplayQuery,
    now: datetime,
    wake: Callable[[], None],
) -> int:
    """Plan and write a replay now, then ``wake`` the sender; how many events it queued."""
    plan = await plan_replay(store, account_id, sub_id, query, now)
    total = await run_replay(store, plan, now, REPLAY_BATCH)
    wake()
    return total


async def enable(
    store: Store,
    account_id: str,
    sub_id: str,
    now: datetime,
    *,
    replay_missed: bool,
    wake: Callable[[], None],
) -> tuple[Subscription, datetime | None, int]:
    """Enable a subscription and, if asked, replay what it missed while disabled: the
    subscription, since when it missed events (None: nothing), and how many were replayed."""
    enabled = await store.enable_subscription(account_id, sub_id, now)
    if enabled is None:
        raise UnknownSubscription(f"no subscription {sub_id}")
    sub, missed_since = enabled
    replayed = 0
    if replay_missed and missed_since is not None and missed_since < now:
        replayed = await replay(
            store, account_id, sub.id, ReplayQuery(since=missed_since), now, wake
        )
    return sub, missed_since, replayed


async def active_subscription(
    store: Store, account_id: str, sub_id: str, *, during: str | None = None
) -> Subscription:
    subscription = await store.get_subscription(account_id, sub_id)
    stopped = f"the replay stopped {during}: " if during else ""
    if subscription is None:
        raise UnknownSubscription(f"{stopped}no subscription {sub_id} in account {account_id}")
    if subscription.status is not SubscriptionStatus.ACTIVE:
        why = f" ({subscription.disabled_reason})" if subscription.disabled_reason else ""
        raise ReplayTargetDisabled(
            f"{stopped}subscription {sub_id} is disabled{why}: enable it first "
            f"(POST /v1/subscriptions/{sub_id}/enable, which also replays what it "
            "missed)"
        )
    return subscription
