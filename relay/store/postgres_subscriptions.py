"""The PostgreSQL store's subscriptions, secret rotation, replays and idempotency keys: the
part of ``PostgresStore`` that serves REST-hook subscribers (mixed into it by
``relay.store.postgres``), with the semantics of ``relay.store.sqlite_subscriptions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from relay.ids import new_id
from relay.models import (
    TERMINAL_EVENT_TYPES,
    DueDelivery,
    Event,
    EventType,
    Subscription,
    SubscriptionStatus,
    iso,
)
from relay.store import codec
from relay.store.codec import EVENT_COLUMNS, ts
from relay.store.interface import (
    SUBSCRIPTION_FIELDS,
    IdempotentReply,
    Page,
    ReplayQuery,
)
from relay.store.postgres_outbox import (
    NewDelivery,
    disable_in,
    fetch_all,
    fetch_one,
    headers,
    insert_deliveries,
    lock_subscription,
    stop_pending,
)
from relay.store.postgres_runner import Conn, PgRunner
from relay.store.sqlite_subscriptions import (
    SUBSCRIPTION_COLUMNS,
    headers_json,
    signing_secrets,
    subscription_from_row,
)

_LIVE = "kind = 'subscription' AND status <> 'deleted'"
_FAR_FUTURE = 1e15


def _wanted_types(event_types: frozenset[EventType] | None) -> list[str]:
    """The filter's types; no filter means the terminal types."""
    return sorted(t.value for t in (event_types or TERMINAL_EVENT_TYPES))


class SubscriptionsMixin:
    _db: PgRunner
    _holder: str
    _leased: bool

    async def create_subscription(self, subscription: Subscription, secret: str) -> None:
        s = subscription
        await self._db.run(
            lambda c: c.execute(
                "INSERT INTO destinations (id, account_id, kind, url, key, event_types, secret, "
                "description, headers, rate_limit, status, created_at, updated_at) "
                "VALUES (%s, %s, 'subscription', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    s.id,
                    s.account_id,
                    s.url,
                    s.id,
                    codec.event_types_json(s.event_types),
                    secret,
                    s.description,
                    headers_json(s.headers),
                    s.rate_limit,
                    s.status.value,
                    ts(s.created_at),
                    ts(s.updated_at),
                ),
            ),
            transaction=False,
        )

    async def get_subscription(self, account_id: str, sub_id: str) -> Subscription | None:
        return await self._db.run(lambda c: _get(c, account_id, sub_id), transaction=False)

    async def list_subscriptions(
        self, account_id: str, after: int | None, limit: int
    ) -> Page[Subscription]:
        before = "" if after is None else "AND pk < %(after)s "
        rows = await self._db.run(
            lambda c: fetch_all(
                c,
                f"SELECT pk, {SUBSCRIPTION_COLUMNS} FROM destinations WHERE account_id = "
                f"%(account)s AND {_LIVE} {before}ORDER BY pk DESC LIMIT %(limit)s",
                {"account": account_id, "after": after, "limit": limit + 1},
            ),
            transaction=False,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            [subscription_from_row(r[1:]) for r in rows], rows[-1][0] if more and rows else None
        )

    async def update_subscription(
        self, account_id: str, sub_id: str, changes: Mapping[str, Any], now: datetime
    ) -> Subscription | None:
        unknown = set(changes) - SUBSCRIPTION_FIELDS
        if unknown:
            raise ValueError(f"not subscription fields: {sorted(unknown)}")
        values = dict(changes)
        if "event_types" in values:
            values["event_types"] = codec.event_types_json(values["event_types"])
        if "headers" in values:
            values["headers"] = headers_json(values["headers"] or {})
        # Column names come from SUBSCRIPTION_FIELDS, never from input.
        assignments = "".join(f"{name} = %({name})s, " for name in sorted(values))

        async def update(c: Conn) -> Subscription | None:
            if await lock_subscription(c, sub_id, account_id) is None:
                return None
            await c.execute(
                f"UPDATE destinations SET {assignments}updated_at = %(now)s WHERE id = %(id)s",
                {**values, "now": ts(now), "id": sub_id},
            )
            if "url" in values:  # pending deliveries go where the subscription now points
                await c.execute(
                    "UPDATE deliveries SET url = %s WHERE destination_id = %s "
                    "AND status = 'pending'",
                    (values["url"], sub_id),
                )
            return await _get(c, account_id, sub_id)

        return await self._db.run(update)

    async def delete_subscription(self, account_id: str, sub_id: str, now: datetime) -> bool:
        async def delete(c: Conn) -> bool:
            if await lock_subscription(c, sub_id, account_id) is None:
                return False
            await c.execute(
                "UPDATE destinations SET status = 'deleted', updated_at = %s WHERE id = %s",
                (ts(now), sub_id),
            )
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
                "UPDATE destinations AS d SET status = 'active', disabled_reason = NULL, "
                "disabled_at = NULL, missed_since = NULL, failing_since = NULL, "
                "updated_at = %s FROM (SELECT id, status, missed_since FROM destinations "
                f"WHERE id = %s AND account_id = %s AND {_LIVE} FOR UPDATE) AS old "
                "WHERE d.id = old.id RETURNING old.status, old.missed_since",
                (ts(now), sub_id, account_id),
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
                "UPDATE destinations SET previous_secret = secret, secret = %s, "
                "previous_secret_until = %s, updated_at = %s "
                f"WHERE id = %s AND account_id = %s AND {_LIVE}",
                (secret, ts(grace_until), ts(now), sub_id, account_id),
            )
            return await _get(c, account_id, sub_id)

        return await self._db.run(rotate)

    async def rotate_callback_secret(
        self, account_id: str, secret: str, grace_until: datetime
    ) -> None:
        await self._db.run(
            lambda c: c.execute(
                "UPDATE accounts SET previous_callback_secret = callback_secret, "
                "callback_secret = %s, previous_callback_secret_until = %s WHERE id = %s",
                (secret, ts(grace_until), account_id),
            ),
            transaction=False,
        )

    async def disable_failing_subscriptions(self, now: datetime, failing_for: float) -> list[str]:
        async def disable(c: Conn) -> list[str]:
            rows = await fetch_all(
                c,
                "SELECT id, account_id, failing_since FROM destinations "
                "WHERE kind = 'subscription' AND status = 'active' "
                "AND failing_since IS NOT NULL AND failing_since <= %s ORDER BY id",
                (now.timestamp() - failing_for,),
            )
            disabled = []
            for sub_id, account_id, since in rows:
                reason = (
                    f"every delivery has failed since {iso(codec.dt(since))} "
                    f"({failing_for / 86400:g} days without a success)"
                )
                if await disable_in(c, sub_id, reason, now, account_id):
                    disabled.append(sub_id)
            return disabled

        return await self._db.run(disable)

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
            where, params = _replay_where(account_id, destination_id, query, types)
            rows = await fetch_all(
                c,
                f"SELECT pk, id, task_id FROM events WHERE {where} "
                "AND pk > %s ORDER BY pk LIMIT %s",
                (*params, after or 0, limit),
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
            where, params = _replay_where(account_id, destination_id, query, found[2])
            row = await fetch_one(c, f"SELECT count(*) FROM events WHERE {where}", params)
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
                "SELECT key, url, secret, previous_secret, previous_secret_until, "
                f"headers, rate_limit FROM destinations WHERE id = %s AND account_id = %s "
                f"AND {_LIVE}",
                (destination_id, event.account_id),
            )
            if row is None:
                return None
            delivery_id = new_id("dlv")
            pk = await fetch_one(
                c,
                f"WITH ev AS (INSERT INTO events ({EVENT_COLUMNS}) "
                "VALUES (%(event)s, %(account)s, NULL, %(type)s, 0, %(created)s, %(body)s, NULL) "
                "RETURNING pk) INSERT INTO deliveries (id, account_id, event_pk, destination_id, "
                "destination_key, url, status, next_attempt_at, lease_owner, lease_until, "
                "lease_holder, created_at, updated_at) SELECT %(id)s, %(account)s, ev.pk, "
                "%(destination)s, %(key)s, %(url)s, 'pending', %(now)s, %(owner)s, %(until)s, "
                "%(holder)s, %(now)s, %(now)s FROM ev RETURNING pk",
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
                headers=headers(row[5]),
                rate_limit=row[6],
            )

        return await self._db.run(insert)

    # idempotency

    async def reserve_idempotency_key(
        self, account_id: str, key: str, request_hash: str, now: datetime
    ) -> IdempotentReply | None:
        async def reserve(c: Conn) -> IdempotentReply | None:
            # ON CONFLICT waits for a concurrent first request's row to commit; the read
            # after it, a statement of its own, then sees that row.
            cur = await c.execute(
                "INSERT INTO idempotency_keys (account_id, key, request_hash, created_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (account_id, key, request_hash, ts(now)),
            )
            if cur.rowcount:
                return None
            row = await fetch_one(
                c,
                "SELECT request_hash, status_code, body "
                "FROM idempotency_keys WHERE account_id = %s AND key = %s",
                (account_id, key),
            )
            assert row is not None
            return IdempotentReply(row[0], row[1], row[2])

        return await self._db.run(reserve)

    async def finish_idempotency_key(
        self, account_id: str, key: str, status_code: int, body: str
    ) -> None:
        await self._db.run(
            lambda c: c.execute(
                "UPDATE idempotency_keys SET status_code = %s, body = %s "
                "WHERE account_id = %s AND key = %s",
                (status_code, body, account_id, key),
            ),
            transaction=False,
        )

    async def forget_idempotency_key(self, account_id: str, key: str) -> None:
        await self._db.run(
            lambda c: c.execute(
                "DELETE FROM idempotency_keys WHERE account_id = %s AND key = %s", (account_id, key)
            ),
            transaction=False,
        )

    async def prune_idempotency_keys(self, before: datetime) -> int:
        async def prune(c: Conn) -> int:
            cur = await c.execute(
                "DELETE FROM idempotency_keys WHERE created_at < %s", (ts(before),)
            )
            return cur.rowcount

        return await self._db.run(prune, transaction=False)


async def _get(c: Conn, account_id: str, sub_id: str) -> Subscription | None:
    row = await fetch_one(
        c,
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM destinations WHERE id = %s "
        f"AND account_id = %s AND {_LIVE}",
        (sub_id, account_id),
    )
    return subscription_from_row(row) if row else None


async def _replay_target(
    c: Conn, account_id: str, destination_id: str, *, lock: bool
) -> tuple[str, str, list[str]] | None:
    # Replaying adds deliveries to it, as a fan-out does: the same lock against a stop.
    share = "FOR KEY SHARE" if lock else ""
    row = await fetch_one(
        c,
        "SELECT key, url, event_types FROM destinations WHERE id = %s "
        "AND account_id = %s AND kind = 'subscription' AND status = 'active' "
        f"{share}",
        (destination_id, account_id),
    )
    if row is None:
        return None
    return row[0], row[1], _wanted_types(codec.event_types_from(row[2]))


def _replay_where(
    account_id: str, destination_id: str, query: ReplayQuery, types: list[str]
) -> tuple[str, tuple[Any, ...]]:
    where = ["account_id = %s", "type = ANY(%b::text[])", "created_at >= %s", "created_at < %s"]
    params: list[Any] = [account_id, types, ts(query.since) or 0.0, ts(query.until) or _FAR_FUTURE]
    if query.only_failed:
        where.append(
            "pk IN (SELECT event_pk FROM deliveries WHERE destination_id = %s AND status IN "
            "('failed', 'stopped') EXCEPT SELECT event_pk FROM deliveries "
            "WHERE destination_id = %s AND status = 'succeeded')"
        )
        params += [destination_id, destination_id]
    return " AND ".join(where), tuple(params)
