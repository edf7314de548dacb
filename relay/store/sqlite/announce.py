"""The SQLite store's operational events (``relay.operational``) written in the transaction
of the change that causes them: a subscription disabled is announced as it is disabled."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from relay.models import Event, EventType, iso
from relay.operational import new_event_id, subscription_disabled
from relay.store.codec import dt, subscription_from_row
from relay.store.named_sql import load_queries
from relay.store.sqlite.outbox import write_events
from relay.store.sqlite.runner import SqliteRunner
from relay.store.sqlite.subscriptions import disable_in

QUERIES = load_queries("relay.store.sqlite")


def disable_and_announce(
    c: sqlite3.Connection, sub_id: str, reason: str, cause: str, now: datetime, account_id: str
) -> bool:
    """Disable an active subscription (``disable_in``) and, when it was active, write its
    ``subscription.disabled`` event. Disabled first: the fan-out reads active subscriptions
    only, so the subscription never receives its own."""
    if not disable_in(c, sub_id, reason, now, account_id):
        return False
    row = c.execute(
        QUERIES["get_subscription"], {"sub_id": sub_id, "account_id": account_id}
    ).fetchone()
    if row is not None:
        sub = subscription_from_row(row)
        write_events(c, [subscription_disabled(sub, cause, now, new_event_id)])
    return True


class AnnounceMixin:
    """What writes operational events on its own (mixed into ``SqliteStore``)."""

    _db: SqliteRunner

    async def disable_failing_subscriptions(self, now: datetime, failing_for: float) -> list[str]:
        def disable(c: sqlite3.Connection) -> list[str]:
            rows = c.execute(
                QUERIES["failing_subscriptions"], {"since": now.timestamp() - failing_for}
            ).fetchall()
            disabled = []
            for sub_id, account_id, since in rows:
                reason = (
                    f"every delivery has failed since {iso(dt(since))} "
                    f"({failing_for / 86400:g} days without a success)"
                )
                if disable_and_announce(c, sub_id, reason, "failing", now, account_id):
                    disabled.append(sub_id)
            return disabled

        return await self._db.write(disable, alone=True)  # housekeeping: may take long

    async def write_account_events(self, events: Sequence[Event]) -> None:
        await self._db.write(lambda c: write_events(c, events))

    async def accounts_wanting(self, type_: EventType) -> list[str]:
        def get(c: sqlite3.Connection) -> list[str]:
            return [r[0] for r in c.execute(QUERIES["accounts_wanting"], {"type": type_.value})]

        return await self._db.read(get)
