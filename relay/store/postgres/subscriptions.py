"""The PostgreSQL store's subscriptions, secret rotation and replays: the part of
``PostgresStore`` that serves REST-hook subscribers (mixed into it by
``relay.store.postgres.store``), with the semantics of SQLite's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from relay.ids import new_id
from relay.models import (
    DEFAULT_EVENT_TYPES,
    DueDelivery,
    Event,
    EventType,
    Subscription,
    SubscriptionStatus,
)
from relay.store import codec
from relay.store.codec import (
    headers_from_json,
    headers_json,
    signing_secrets,
    subscription_from_row,
    ts,
)
from relay.store.named_sql import load_queries
from relay.store.postgres.outbox import (
    NewDelivery,
    disable_in,
    fetch_all,
    fetch_one,
    insert_deliveries,
    lock_subscription,
    stop_pending,
)
from relay.store.postgres.runner import Conn, PgRunner
from relay.store.values import Page, ReplayQuery

QUERIES = load_queries("relay.store.postgres")

_FAR_FUTURE = 1e15


def _wanted_types(event_types: frozenset[EventType] | None) -> list[str]:
    """The filter's types; no filter means the terminal types."""
    return sorted(t.value for t in (event_types or DEFAULT_EVENT_TYPES))


class SubscriptionsMixin:
    _db: PgRunner
    _holder: str
    _leased: bool

    async def create_subscription(self, subscription: Subscription, secret: str) -> None:
        s = subscription
        await self._db.run(
            lambda c: c.execute(
                QUERIES["insert_subscription"],
                {
                    "id": s.id,
                    "account_id": s.account_id,
                    "url": s.url,
                    "event_types": codec.event_types_json(s.event_types),
                    "secret": secret,
                    "description": s.description,
                    "headers": headers_json(s.headers),
                    "rate_limit": s.rate_limit,
                    "status": s.status.value,
                    "created_at": ts(s.created_at),
                    "updated_at": ts(s.updated_at),
                },
            ),
            transaction=False,
        )

    async def get_subscription(self, account_id: str, sub_id: str) -> Subscription | None:
        return await self._db.run(lambda c: _get(c, account_id, sub_id), transaction=False)

    async def list_subscriptions(
        self, account_id: str, after: int | None, limit: int
    ) -> Page[Subscription]:
        rows = await self._db.run(
            lambda c: fetch_all(
                c,
                QUERIES["list_subscriptions"],
                {"account_id": account_id, "after": after, "limit": limit + 1},
            ),
            transaction=False,
        )
        return codec.paged(rows, limit, subscription_from_row)

    async def update_subscription(
        self, account_id: str, sub_id: str, changes: Mapping[str, Any], now: datetime
    ) -> Subscription | None:
        # One static UPDATE for any change (see codec.subscription_changes).
        params = {
            **codec.subscription_changes(changes),
            "now": ts(now),
            "id": sub_id,
        }

        async def update(c: Conn) -> Subscription | None:
            if await lock_subscription(c, sub_id, account_id) is None:
                return None
            await c.execute(QUERIES["update_subscription"], params)
            if params["set_url"]:
                await c.execute(
                    QUERIES["redirect_pending_deliveries"],
                    {"url": params["url"], "destination_id": sub_id},
                )
            return await _get(c, account_id, sub_id)

        return await self._db.run(update)

    async def delete_subscription(self, account_id: str, sub_id: str, now: datetime) -> bool:
        async def delete(c: Conn) -> bool:
            if await lock_subscription(c, sub_id, account_id) is None:
                return False
            await c.execute(QUERIES["mark_subscription_deleted"], {"now": ts(now), "id": sub_id})
            await stop_pending(c, sub_id, now, "the subscription was deleted")
            return True

        return await self._db.run(delete)

    async def disable_subscription(
        self, account_id: str, sub_id: str, reason: str, now: datetime
    ) -> Subscription | None:
        async def disable(c: Conn) -> Subscription | None:
            await disable_in(c, sub_id, reason, now, account_id)
            return await _get(c, account_id, sub_id)

        return await self._db.run(disable)

    async def enable_subscription(
        self, account_id: str, sub_id: str, now: datetime
    ) -> tuple[Subscription, datetime | None] | None:
        async def enable(c: Conn) -> tuple[Subscription, datetime | None] | None:
            row = await fetch_one(
                c,
                QUERIES["enable_subscription"],
                {"now": ts(now), "id": sub_id, "account_id": account_id},
            )
            if row is None:
                return None
            missed = codec.dt(row[1]) if row[0] == SubscriptionStatus.DISABLED else None
            found = await _get(c, account_id, sub_id)
            assert found is not None
            return found, missed

        return await self._db.run(enable)

    async def rotate_subscription_secret(
        self, account_id: str, sub_id: str, secret: str, grace_until: datetime, now: datetime
    ) -> Subscription | None:
        async def rotate(c: Conn) -> Subscription | None:
            await c.execute(
                QUERIES["rotate_subscription_secret"],
                {
                    "secret": secret,
                    "grace_until": ts(grace_until),
                    "now": ts(now),
                    "id": sub_id,
                    "account_id": account_id,
                },
            )
            return await _get(c, account_id, sub_id)

        return await self._db.run(rotate)

    async def rotate_callback_secret(
        self, account_id: str, secret: str, grace_until: datetime
    ) -> None:
        await self._db.run(
            lambda c: c.execute(
                QUERIES["rotate_callback_secret"],
                {"secret": secret, "grace_until": ts(grace_until), "account_id": account_id},
            ),
            transaction=False,
        )

    async def replay(
        self,
        account_id: str,
        destination_id: str,
        query: ReplayQuery,
        now: datetime,
        *,
        after: int | None,
        limit: int,
    ) -> tuple[int, int | None]:
        async def insert(c: Conn) -> tuple[int, int | None]:
            found = await _replay_target(c, account_id, destination_id, lock=True)
            if found is None:
                return 0, None
            key, url, types = found
            rows = await fetch_all(
                c,
                QUERIES["replay_failed_events"] if query.only_failed else QUERIES["replay_events"],
                {
                    **_replay_params(account_id, destination_id, query, types),
                    "after": after or 0,
                    "limit": limit,
                },
            )
            await insert_deliveries(
                c,
                [
                    NewDelivery(pk, event_id, account_id, destination_id, key, url, task_id)
                    for pk, event_id, task_id in rows
                ],
                now,
                ordered=True,
            )
            return len(rows), (rows[-1][0] if len(rows) == limit else None)

        return await self._db.run(insert)

    async def count_replay(self, account_id: str, destination_id: str, query: ReplayQuery) -> int:
        async def count(c: Conn) -> int:
            found = await _replay_target(c, account_id, destination_id, lock=False)
            if found is None:
                return 0
            row = await fetch_one(
                c,
                (
                    QUERIES["count_replay_failed_events"]
                    if query.only_failed
                    else QUERIES["count_replay_events"]
                ),
                _replay_params(account_id, destination_id, query, found[2]),
            )
            return int(row[0]) if row else 0

        return await self._db.run(count)

    async def insert_test_delivery(
        self,
        event: Event,
        destination_id: str,
        owner: str,
        now: datetime,
        lease_seconds: float,
    ) -> DueDelivery | None:
        self._leased = True

        async def insert(c: Conn) -> DueDelivery | None:
            row = await fetch_one(
                c,
                QUERIES["test_delivery_target"],
                {"id": destination_id, "account_id": event.account_id},
            )
            if row is None:
                return None
            delivery_id = new_id("dlv")
            pk = await fetch_one(
                c,
                QUERIES["insert_test_delivery"],
                {
                    "event": event.id,
                    "account": event.account_id,
                    "type": event.type.value,
                    "created": ts(event.created_at),
                    "body": event.body,
                    "id": delivery_id,
                    "destination": destination_id,
                    "key": row[0],
                    "url": row[1],
                    "now": ts(now),
                    "owner": owner,
                    "until": now.timestamp() + lease_seconds,
                    "holder": self._holder,
                },
            )
            assert pk is not None
            return DueDelivery(
                pk=pk[0],
                id=delivery_id,
                event_id=event.id,
                destination_key=row[0],
                url=row[1],
                body=event.body,
                secrets=signing_secrets(row[2], row[3], row[4], now),
                attempt_count=0,
                account_id=event.account_id,
                headers=headers_from_json(row[5]),
                rate_limit=row[6],
            )

        return await self._db.run(insert)


async def _get(c: Conn, account_id: str, sub_id: str) -> Subscription | None:
    row = await fetch_one(c, QUERIES["get_subscription"], {"id": sub_id, "account_id": account_id})
    return subscription_from_row(row) if row else None


async def _replay_target(
    c: Conn, account_id: str, destination_id: str, *, lock: bool
) -> tuple[str, str, list[str]] | None:
    """The key, URL and wanted types of an active subscription; ``lock``: taken as a fan-out
    takes its destinations (see lock_replay_target)."""
    params = {"id": destination_id, "account_id": account_id}
    if lock:
        row = await fetch_one(c, QUERIES["lock_replay_target"], params)
    else:
        row = await fetch_one(c, QUERIES["replay_target"], params)
    if row is None:
        return None
    return row[0], row[1], _wanted_types(codec.event_types_from(row[2]))


def _replay_params(
    account_id: str, destination_id: str, query: ReplayQuery, types: list[str]
) -> dict[str, Any]:
    """The filter of the replay queries (only_failed picks the query)."""
    return {
        "account_id": account_id,
        "destination_id": destination_id,
        "types": types,
        "since": ts(query.since) or 0.0,
        "until": ts(query.until) or _FAR_FUTURE,
    }
