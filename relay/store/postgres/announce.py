"""The PostgreSQL store's operational events (``relay.operational``) written in the
transaction of the change that causes them: a subscription disabled is announced as it is
disabled, and the fan-out's NOTIFY wakes every instance's deliveries and streams."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from relay.models import Event, EventType, iso
from relay.operational import new_event_id, subscription_disabled
from relay.store import codec
from relay.store.codec import subscription_from_row
from relay.store.named_sql import load_queries
from relay.store.postgres.outbox import (
    disable_in,
    fetch_all,
    fetch_one,
    read_destinations,
    write_events,
)
from relay.store.postgres.runner import Conn, PgRunner

QUERIES = load_queries("relay.store.postgres")


async def disable_and_announce(
    c: Conn, sub_id: str, reason: str, cause: str, now: datetime, account_id: str
) -> bool:
    """Disable an active subscription (``disable_in``) and, when it was active, write its
    ``subscription.disabled`` event. Disabled first: the fan-out reads active subscriptions
    only, so the subscription never receives its own."""
    if not await disable_in(c, sub_id, reason, now, account_id):
        return False
    row = await fetch_one(c, QUERIES["get_subscription"], {"id": sub_id, "account_id": account_id})
    if row is not None:
        events = [subscription_disabled(subscription_from_row(row), cause, now, new_event_id)]
        await write_events(c, events, await read_destinations(c, events))
    return True


class AnnounceMixin:
    """What writes operational events on its own (mixed into ``PostgresStore``)."""

    _db: PgRunner

    async def disable_failing_subscriptions(self, now: datetime, failing_for: float) -> list[str]:
        async def disable(c: Conn) -> list[str]:
            rows = await fetch_all(
                c, QUERIES["failing_subscriptions"], {"since": now.timestamp() - failing_for}
            )
            disabled = []
            for sub_id, account_id, since in rows:
                reason = (
                    f"every delivery has failed since {iso(codec.dt(since))} "
                    f"({failing_for / 86400:g} days without a success)"
                )
                if await disable_and_announce(c, sub_id, reason, "failing", now, account_id):
                    disabled.append(sub_id)
            return disabled

        return await self._db.run(disable)

    async def write_account_events(self, events: Sequence[Event]) -> None:
        async def write(c: Conn) -> None:
            await write_events(c, events, await read_destinations(c, events))

        if events:
            await self._db.run(write)

    async def accounts_wanting(self, type_: EventType) -> list[str]:
        rows = await self._db.run(
            lambda c: fetch_all(c, QUERIES["accounts_wanting"], {"type": type_.value}),
            transaction=False,
        )
        return [r[0] for r in rows]
