"""The SQLite store's subscriptions (REST hooks): their lifecycle, secret rotation, replays and
test events (mixed into ``relay.store.sqlite.store.SqliteStore``)."""

from __future__ import annotations

import sqlite3
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
    dt,
    event_types_json,
    headers_from_json,
    headers_json,
    signing_secrets,
    subscription_from_row,
    ts,
)
from relay.store.named_sql import load_queries
from relay.store.replay_steps import REPLAY_SCAN, ReplayCursor, count_in_steps, replay_in_steps
from relay.store.sqlite.replays import count_step, replay_step
from relay.store.sqlite.runner import SqliteRunner
from relay.store.values import Page, ReplayQuery

QUERIES = load_queries("relay.store.sqlite")


class SubscriptionsMixin:
    _db: SqliteRunner

    async def create_subscription(self, subscription: Subscription, secret: str) -> None:
        s = subscription
        await self._db.write(
            lambda c: c.execute(
                QUERIES["insert_subscription"],
                {
                    "id": s.id,
                    "account_id": s.account_id,
                    "url": s.url,
                    # A subscription's deliveries are counted against its own id.
                    "key": s.id,
                    "event_types": event_types_json(s.event_types),
                    "secret": secret,
                    "description": s.description,
                    "headers": headers_json(s.headers),
                    "rate_limit": s.rate_limit,
                    "status": s.status.value,
                    "created_at": ts(s.created_at),
                    "updated_at": ts(s.updated_at),
                },
            )
        )

    async def get_subscription(self, account_id: str, sub_id: str) -> Subscription | None:
        return await self._db.read(lambda c: _get(c, account_id, sub_id))

    async def list_subscriptions(
        self, account_id: str, after: int | None, limit: int
    ) -> Page[Subscription]:
        def get(c: sqlite3.Connection) -> list[Any]:
            return c.execute(
                QUERIES["list_subscriptions"],
                {"account_id": account_id, "after": after, "limit": limit + 1},
            ).fetchall()

        rows = await self._db.read(get)
        return codec.paged(rows, limit, subscription_from_row)

    async def update_subscription(
        self, account_id: str, sub_id: str, changes: Mapping[str, Any], now: datetime
    ) -> Subscription | None:
        # One static UPDATE for any change (see codec.subscription_changes).
        params = {
            **codec.subscription_changes(changes),
            "now": ts(now),
            "sub_id": sub_id,
            "account_id": account_id,
        }

        def update(c: sqlite3.Connection) -> Subscription | None:
            found = c.execute(QUERIES["update_subscription"], params).rowcount
            if not found:  # another account's subscription: nothing of it may change
                return None
            if params["set_url"]:
                c.execute(
                    QUERIES["repoint_pending_deliveries"], {"url": params["url"], "sub_id": sub_id}
                )
            return _get(c, account_id, sub_id)

        return await self._db.write(update)

    async def delete_subscription(self, account_id: str, sub_id: str, now: datetime) -> bool:
        def delete(c: sqlite3.Connection) -> bool:
            found = c.execute(
                QUERIES["delete_subscription"],
                {"now": ts(now), "sub_id": sub_id, "account_id": account_id},
            ).rowcount
            if found:
                stop_pending(c, sub_id, now, "the subscription was deleted")
            return bool(found)

        return await self._db.write(delete, alone=True)  # its pending deliveries: any number

    async def disable_subscription(
        self, account_id: str, sub_id: str, reason: str, now: datetime
    ) -> Subscription | None:
        def disable(c: sqlite3.Connection) -> Subscription | None:
            disable_in(c, sub_id, reason, now, account_id)
            return _get(c, account_id, sub_id)

        return await self._db.write(disable)

    async def enable_subscription(
        self, account_id: str, sub_id: str, now: datetime
    ) -> tuple[Subscription, datetime | None] | None:
        def enable(c: sqlite3.Connection) -> tuple[Subscription, datetime | None] | None:
            row = c.execute(
                QUERIES["subscription_state"], {"sub_id": sub_id, "account_id": account_id}
            ).fetchone()
            if row is None:
                return None
            missed = dt(row[1]) if row[0] == SubscriptionStatus.DISABLED else None
            c.execute(QUERIES["enable_subscription"], {"now": ts(now), "sub_id": sub_id})
            found = _get(c, account_id, sub_id)
            assert found is not None
            return found, missed

        return await self._db.write(enable)

    async def rotate_subscription_secret(
        self, account_id: str, sub_id: str, secret: str, grace_until: datetime, now: datetime
    ) -> Subscription | None:
        def rotate(c: sqlite3.Connection) -> Subscription | None:
            c.execute(
                QUERIES["rotate_subscription_secret"],
                {
                    "secret": secret,
                    "grace_until": ts(grace_until),
                    "now": ts(now),
                    "sub_id": sub_id,
                    "account_id": account_id,
                },
            )
            return _get(c, account_id, sub_id)

        return await self._db.write(rotate)

    async def rotate_callback_secret(
        self, account_id: str, secret: str, grace_until: datetime
    ) -> None:
        await self._db.write(
            lambda c: c.execute(
                QUERIES["rotate_callback_secret"],
                {"secret": secret, "grace_until": ts(grace_until), "account_id": account_id},
            )
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
            lambda cursor, want: self._db.write(
                partial(
                    replay_step,
                    account_id=account_id,
                    destination_id=destination_id,
                    query=query,
                    now=now,
                    cursor=cursor,
                    want=want,
                    scan=self.replay_scan,
                ),
                alone=True,
            ),
            after,
            limit,
        )

    async def count_replay(self, account_id: str, destination_id: str, query: ReplayQuery) -> int:
        # In steps of ``replay_scan`` events, each its own short read.
        return await count_in_steps(
            lambda cursor: self._db.read(
                partial(
                    count_step,
                    account_id=account_id,
                    destination_id=destination_id,
                    query=query,
                    cursor=cursor,
                    scan=self.replay_scan,
                ),
                alone=True,
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
        def insert(c: sqlite3.Connection) -> DueDelivery | None:
            row = c.execute(
                QUERIES["test_destination"],
                {"destination_id": destination_id, "account_id": event.account_id},
            ).fetchone()
            if row is None:
                return None
            cur = c.execute(
                QUERIES["insert_test_event"],
                {
                    "id": event.id,
                    "account_id": event.account_id,
                    "type": event.type.value,
                    "created_at": ts(event.created_at),
                    "body": event.body,
                },
            )
            delivery_id = new_id("dlv")
            pk = c.execute(
                QUERIES["insert_test_delivery"],
                {
                    "id": delivery_id,
                    "account_id": event.account_id,
                    "event_pk": cur.lastrowid,
                    "destination_id": destination_id,
                    "destination_key": row[0],
                    "url": row[1],
                    "now": ts(now),
                    "owner": owner,
                    "lease_until": now.timestamp() + lease_seconds,
                },
            ).lastrowid
            assert pk is not None
            return DueDelivery(
                pk=pk,
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

        return await self._db.write(insert)


def _get(c: sqlite3.Connection, account_id: str, sub_id: str) -> Subscription | None:
    row = c.execute(
        QUERIES["get_subscription"], {"sub_id": sub_id, "account_id": account_id}
    ).fetchone()
    return subscription_from_row(row) if row else None


def disable_in(
    c: sqlite3.Connection, sub_id: str, reason: str, now: datetime, account_id: str
) -> bool:
    """Disable an active subscription and stop its pending deliveries, in the caller's
    transaction; False when it was not active."""
    oldest = c.execute(QUERIES["oldest_pending_event"], {"sub_id": sub_id}).fetchone()[0]
    missed = min(oldest, now.timestamp()) if oldest is not None else now.timestamp()
    changed = c.execute(
        QUERIES["disable_subscription"],
        {
            "reason": reason,
            "now": ts(now),
            "missed_since": missed,
            "sub_id": sub_id,
            "account_id": account_id,
        },
    ).rowcount
    if changed:
        stop_pending(c, sub_id, now, f"the subscription was disabled: {reason}")
    return bool(changed)


def stop_pending(c: sqlite3.Connection, destination_id: str, now: datetime, why: str) -> None:
    c.execute(
        QUERIES["stop_pending_deliveries"],
        {"why": why, "now": ts(now), "destination_id": destination_id},
    )
