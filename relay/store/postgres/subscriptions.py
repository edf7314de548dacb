"""The PostgreSQL store's subscriptions, secret rotation and replays: the part of
``PostgresStore`` that serves REST-hook subscribers (mixed into it by
``relay.store.postgres.store``), with the semantics of SQLite's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any

from relay.ids import new_id
from relay.models import (
    DueDelivery,
    Event,
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
    disable_in,
    fetch_all,
    fetch_one,
    lock_subscription,
    stop_pending,
)
from relay.store.postgres.replays import count_step, replay_step
from relay.store.postgres.runner import Conn, PgRunner
from relay.store.replay_steps import REPLAY_SCAN, ReplayCursor, count_in_steps, replay_in_steps
from relay.store.values import Page, ReplayQuery

QUERIES = load_queries("relay.store.postgres")


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

    replay_scan: int = REPLAY_SCAN
    """Events a replay or its count reads per transaction (tests make it small)."""

    async def replay(
        self,
        account_id: str,
        destination_id: str,
        query: ReplayQuery,
        now: datetime,
        *,
        after: ReplayCursor | None,
        limit: int,
    ) -> tuple[int, ReplayCursor | None]:
        # Each step a short transaction over at most ``replay_scan`` events of the window
        # (relay.store.replay_steps): other requests get the database in between.
        return await replay_in_steps(
            lambda cursor, want: self._db.run(
                partial(
                    replay_step,
                    account_id=account_id,
                    destination_id=destination_id,
                    query=query,
                    now=now,
                    cursor=cursor,
                    want=want,
                    scan=self.replay_scan,
                )
            ),
            after,
            limit,
        )

    async def count_replay(self, account_id: str, destination_id: str, query: ReplayQuery) -> int:
        # In steps of ``replay_scan`` events, each its own short read.
        return await count_in_steps(
            lambda cursor: self._db.run(
                partial(
                    count_step,
                    account_id=account_id,
                    destination_id=destination_id,
                    query=query,
                    cursor=cursor,
                    scan=self.replay_scan,
                )
            )
        )

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
