"""The SQLite store's subscriptions, secret rotation, replays and idempotency keys: the part
of ``SqliteStore`` that serves REST-hook subscribers (mixed into it by ``relay.store.sqlite``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
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
    utc,
)
from relay.store import codec
from relay.store.codec import EVENT_COLUMNS, ts
from relay.store.interface import (
    SUBSCRIPTION_FIELDS,
    IdempotentReply,
    Page,
    ReplayQuery,
)
from relay.store.sqlite_runner import SqliteRunner

SUBSCRIPTION_COLUMNS = (
    "id, account_id, url, event_types, status, created_at, updated_at, description, headers, "
    "rate_limit, disabled_reason, disabled_at, failing_since, last_success_at, "
    "previous_secret_until"
)
_LIVE = "kind = 'subscription' AND status != 'deleted'"
_FAR_FUTURE = 1e15


def subscription_from_row(row: Sequence[Any]) -> Subscription:
    headers = json.loads(row[8]) if row[8] else {}
    return Subscription(
        id=row[0],
        account_id=row[1],
        url=row[2],
        event_types=codec.event_types_from(row[3]),
        status=SubscriptionStatus(row[4]),
        created_at=utc(row[5]),
        updated_at=utc(row[6]),
        description=row[7],
        headers=tuple(sorted(headers.items())),
        rate_limit=row[9],
        disabled_reason=row[10],
        disabled_at=codec.dt(row[11]),
        failing_since=codec.dt(row[12]),
        last_success_at=codec.dt(row[13]),
        previous_secret_until=codec.dt(row[14]),
    )


def headers_json(headers: Sequence[tuple[str, str]] | Mapping[str, str]) -> str | None:
    pairs = dict(headers)
    return json.dumps(pairs, sort_keys=True) if pairs else None


def wanted_types(event_types: frozenset[EventType] | None) -> str:
    """The filter as a JSON list for ``json_each``; no filter means the terminal types."""
    return json.dumps(sorted(t.value for t in (event_types or TERMINAL_EVENT_TYPES)))


# A batch of attempt records passed as one JSON array of arrays (see record_attempts).
ATTEMPT_BATCH = (
    "r (pk, number, started_at, latency_ms, outcome, status_code, error, snippet, status, "
    "next_at) AS (SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(10))
    + " FROM json_each(?))"
)


class SubscriptionsMixin:
    _db: SqliteRunner

    async def create_subscription(self, subscription: Subscription, secret: str) -> None:
        s = subscription
        await self._db.write(
            lambda c: c.execute(
                "INSERT INTO destinations (id, account_id, kind, url, key, event_types, secret, "
                "description, headers, rate_limit, status, created_at, updated_at) "
                "VALUES (?, ?, 'subscription', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            )
        )

    async def get_subscription(self, account_id: str, sub_id: str) -> Subscription | None:
        return await self._db.read(lambda c: _get(c, account_id, sub_id))

    async def list_subscriptions(
        self, account_id: str, after: int | None, limit: int
    ) -> Page[Subscription]:
        def get(c: sqlite3.Connection) -> list[Any]:
            return c.execute(
                f"SELECT rowid, {SUBSCRIPTION_COLUMNS} FROM destinations WHERE account_id = ? "
                f"AND {_LIVE} AND (? IS NULL OR rowid < ?) ORDER BY rowid DESC LIMIT ?",
                (account_id, after, after, limit + 1),
            ).fetchall()

        rows = await self._db.read(get)
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
        assignments = "".join(f"{name} = :{name}, " for name in sorted(values))

        def update(c: sqlite3.Connection) -> Subscription | None:
            found = c.execute(
                f"UPDATE destinations SET {assignments}updated_at = :now "
                f"WHERE id = :id AND account_id = :account AND {_LIVE}",
                {**values, "now": ts(now), "id": sub_id, "account": account_id},
            ).rowcount
            if not found:  # another account's subscription: nothing of it may change
                return None
            if "url" in values:  # pending deliveries go where the subscription now points
                c.execute(
                    "UPDATE deliveries SET url = ? WHERE destination_id = ? AND status = 'pending'",
                    (values["url"], sub_id),
                )
            return _get(c, account_id, sub_id)

        return await self._db.write(update)

    async def delete_subscription(self, account_id: str, sub_id: str, now: datetime) -> bool:
        def delete(c: sqlite3.Connection) -> bool:
            found = c.execute(
                f"UPDATE destinations SET status = 'deleted', updated_at = ? "
                f"WHERE id = ? AND account_id = ? AND {_LIVE}",
                (ts(now), sub_id, account_id),
            ).rowcount
            if found:
                _stop_pending(c, sub_id, now, "the subscription was deleted")
            return bool(found)

        return await self._db.write(delete)

    async def disable_subscription(
        self, account_id: str, sub_id: str, reason: str, now: datetime
    ) -> Subscription | None:
        def disable(c: sqlite3.Connection) -> Subscription | None:
            if disable_in(c, sub_id, reason, now, account_id):
                return _get(c, account_id, sub_id)
            return _get(c, account_id, sub_id)

        return await self._db.write(disable)

    async def enable_subscription(
        self, account_id: str, sub_id: str, now: datetime
    ) -> tuple[Subscription, datetime | None] | None:
        def enable(c: sqlite3.Connection) -> tuple[Subscription, datetime | None] | None:
            row = c.execute(
                f"SELECT status, missed_since FROM destinations WHERE id = ? "
                f"AND account_id = ? AND {_LIVE}",
                (sub_id, account_id),
            ).fetchone()
            if row is None:
                return None
            missed = codec.dt(row[1]) if row[0] == SubscriptionStatus.DISABLED else None
            c.execute(
                "UPDATE destinations SET status = 'active', disabled_reason = NULL, "
                "disabled_at = NULL, missed_since = NULL, failing_since = NULL, "
                "updated_at = ? WHERE id = ?",
                (ts(now), sub_id),
            )
            found = _get(c, account_id, sub_id)
            assert found is not None
            return found, missed

        return await self._db.write(enable)

    async def rotate_subscription_secret(
        self, account_id: str, sub_id: str, secret: str, grace_until: datetime, now: datetime
    ) -> Subscription | None:
        def rotate(c: sqlite3.Connection) -> Subscription | None:
            c.execute(
                f"UPDATE destinations SET previous_secret = secret, secret = ?, "
                f"previous_secret_until = ?, updated_at = ? "
                f"WHERE id = ? AND account_id = ? AND {_LIVE}",
                (secret, ts(grace_until), ts(now), sub_id, account_id),
            )
            return _get(c, account_id, sub_id)

        return await self._db.write(rotate)

    async def rotate_callback_secret(
        self, account_id: str, secret: str, grace_until: datetime
    ) -> None:
        await self._db.write(
            lambda c: c.execute(
                "UPDATE accounts SET previous_callback_secret = callback_secret, "
                "callback_secret = ?, previous_callback_secret_until = ? WHERE id = ?",
                (secret, ts(grace_until), account_id),
            )
        )

    async def disable_failing_subscriptions(self, now: datetime, failing_for: float) -> list[str]:
        def disable(c: sqlite3.Connection) -> list[str]:
            rows = c.execute(
                "SELECT id, account_id, failing_since FROM destinations "
                "WHERE kind = 'subscription' AND status = 'active' AND failing_since IS NOT NULL "
                "AND failing_since <= ?",
                (now.timestamp() - failing_for,),
            ).fetchall()
            for sub_id, account_id, since in rows:
                reason = (
                    f"every delivery has failed since {iso(codec.dt(since))} "
                    f"({failing_for / 86400:g} days without a success)"
                )
                disable_in(c, sub_id, reason, now, account_id)
            return [r[0] for r in rows]

        return await self._db.write(disable)

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
        def insert(c: sqlite3.Connection) -> tuple[int, int | None]:
            found = _replay_target(c, account_id, destination_id)
            if found is None:
                return 0, None
            key, url, types = found
            where, params = _replay_where(account_id, destination_id, query, types)
            rows = c.execute(
                f"SELECT pk, id, task_id FROM events WHERE {where} AND pk > ? ORDER BY pk LIMIT ?",
                (*params, after or 0, limit),
            ).fetchall()
            c.executemany(
                "INSERT INTO deliveries (id, account_id, event_pk, destination_id, "
                "destination_key, url, status, next_attempt_at, created_at, updated_at, "
                "task_id, ordered) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, 1)",
                [
                    (
                        new_id("dlv"),
                        account_id,
                        pk,
                        destination_id,
                        key,
                        url,
                        ts(now),
                        ts(now),
                        ts(now),
                        task_id,
                    )
                    for pk, _, task_id in rows
                ],
            )
            return len(rows), (rows[-1][0] if len(rows) == limit else None)

        return await self._db.write(insert)

    async def count_replay(self, account_id: str, destination_id: str, query: ReplayQuery) -> int:
        def count(c: sqlite3.Connection) -> int:
            found = _replay_target(c, account_id, destination_id)
            if found is None:
                return 0
            where, params = _replay_where(account_id, destination_id, query, found[2])
            return int(
                c.execute(f"SELECT count(*) FROM events WHERE {where}", params).fetchone()[0]
            )

        return await self._db.read(count)

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
                "SELECT key, url, secret, previous_secret, previous_secret_until, "
                f"headers, rate_limit FROM destinations WHERE id = ? "
                f"AND account_id = ? AND {_LIVE}",
                (destination_id, event.account_id),
            ).fetchone()
            if row is None:
                return None
            cur = c.execute(
                f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, NULL, ?, 0, ?, ?, NULL)",
                (event.id, event.account_id, event.type.value, ts(event.created_at), event.body),
            )
            delivery_id = new_id("dlv")
            pk = c.execute(
                "INSERT INTO deliveries (id, account_id, event_pk, destination_id, "
                "destination_key, url, status, next_attempt_at, lease_owner, lease_until, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
                (
                    delivery_id,
                    event.account_id,
                    cur.lastrowid,
                    destination_id,
                    row[0],
                    row[1],
                    ts(now),
                    owner,
                    now.timestamp() + lease_seconds,
                    ts(now),
                    ts(now),
                ),
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
                headers=tuple(sorted(json.loads(row[5]).items())) if row[5] else (),
                rate_limit=row[6],
            )

        return await self._db.write(insert)

    # idempotency

    async def reserve_idempotency_key(
        self, account_id: str, key: str, request_hash: str, now: datetime
    ) -> IdempotentReply | None:
        def reserve(c: sqlite3.Connection) -> IdempotentReply | None:
            inserted = c.execute(
                "INSERT OR IGNORE INTO idempotency_keys (account_id, key, request_hash, "
                "created_at) VALUES (?, ?, ?, ?)",
                (account_id, key, request_hash, ts(now)),
            ).rowcount
            if inserted:
                return None
            row = c.execute(
                "SELECT request_hash, status_code, body FROM idempotency_keys "
                "WHERE account_id = ? AND key = ?",
                (account_id, key),
            ).fetchone()
            return IdempotentReply(row[0], row[1], row[2])

        return await self._db.write(reserve)

    async def finish_idempotency_key(
        self, account_id: str, key: str, status_code: int, body: str
    ) -> None:
        await self._db.write(
            lambda c: c.execute(
                "UPDATE idempotency_keys SET status_code = ?, body = ? "
                "WHERE account_id = ? AND key = ?",
                (status_code, body, account_id, key),
            )
        )

    async def forget_idempotency_key(self, account_id: str, key: str) -> None:
        await self._db.write(
            lambda c: c.execute(
                "DELETE FROM idempotency_keys WHERE account_id = ? AND key = ?", (account_id, key)
            )
        )

    async def prune_idempotency_keys(self, before: datetime) -> int:
        return await self._db.write(
            lambda c: (
                c.execute(
                    "DELETE FROM idempotency_keys WHERE created_at < ?", (ts(before),)
                ).rowcount
            )
        )


def signing_secrets(
    secret: str, previous: str | None, previous_until: float | None, now: datetime
) -> tuple[str, ...]:
    """Every secret a delivery is signed with now: during a rotation's grace, both."""
    if previous and previous_until is not None and previous_until > now.timestamp():
        return (secret, previous)
    return (secret,)


def _get(c: sqlite3.Connection, account_id: str, sub_id: str) -> Subscription | None:
    row = c.execute(
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM destinations WHERE id = ? "
        f"AND account_id = ? AND {_LIVE}",
        (sub_id, account_id),
    ).fetchone()
    return subscription_from_row(row) if row else None


def disable_in(
    c: sqlite3.Connection, sub_id: str, reason: str, now: datetime, account_id: str
) -> bool:
    # It misses what was pending when it stopped, and everything from now on.
    oldest = c.execute(
        "SELECT min(e.created_at) FROM deliveries d JOIN events e "
        "ON e.pk = d.event_pk WHERE d.destination_id = ? "
        "AND d.status = 'pending'",
        (sub_id,),
    ).fetchone()[0]
    missed = min(oldest, now.timestamp()) if oldest is not None else now.timestamp()
    changed = c.execute(
        "UPDATE destinations SET status = 'disabled', disabled_reason = ?, disabled_at = ?, "
        "missed_since = ?, updated_at = ? WHERE id = ? AND account_id = ? "
        "AND kind = 'subscription' AND status = 'active'",
        (reason, ts(now), missed, ts(now), sub_id, account_id),
    ).rowcount
    if changed:
        _stop_pending(c, sub_id, now, f"the subscription was disabled: {reason}")
    return bool(changed)


def _stop_pending(c: sqlite3.Connection, destination_id: str, now: datetime, why: str) -> None:
    # Attempts in flight still record, but cannot bring a stopped delivery back.
    c.execute(
        "UPDATE deliveries SET status = 'stopped', next_attempt_at = NULL, "
        "last_error = ?, updated_at = ? WHERE destination_id = ? AND status = 'pending'",
        (why, ts(now), destination_id),
    )


def _replay_target(
    c: sqlite3.Connection, account_id: str, destination_id: str
) -> tuple[str, str, str] | None:
    row = c.execute(
        "SELECT key, url, event_types FROM destinations WHERE id = ? "
        "AND account_id = ? AND kind = 'subscription' AND status = 'active'",
        (destination_id, account_id),
    ).fetchone()
    if row is None:
        return None
    return row[0], row[1], wanted_types(codec.event_types_from(row[2]))


def _replay_where(
    account_id: str, destination_id: str, query: ReplayQuery, types: str
) -> tuple[str, tuple[Any, ...]]:
    # Task events only: a test event was one subscription's, never anyone's to replay.
    where = [
        "account_id = ?",
        "task_id IS NOT NULL",
        "type IN (SELECT value FROM json_each(?))",
        "created_at >= ?",
        "created_at < ?",
    ]
    params: list[Any] = [account_id, types, ts(query.since) or 0.0, ts(query.until) or _FAR_FUTURE]
    if query.only_failed:
        where.append(
            "pk IN (SELECT event_pk FROM deliveries WHERE destination_id = ? AND status IN "
            "('failed', 'stopped') EXCEPT SELECT event_pk FROM deliveries "
            "WHERE destination_id = ? AND status = 'succeeded')"
        )
        params += [destination_id, destination_id]
    return " AND ".join(where), tuple(params)


def note_destination_health(c: sqlite3.Connection, batch: str) -> None:
    """A subscription's health from its attempts: the last success, since when it fails,
    and a 410 Gone (Zapier's "this Zap is off") disables it at once."""
    c.execute(
        f"WITH {ATTEMPT_BATCH} UPDATE destinations "
        "SET last_success_at = s.at, failing_since = NULL "
        "FROM (SELECT d.destination_id AS id, max(r.started_at) AS at FROM r JOIN deliveries "
        "AS d ON d.pk = r.pk WHERE r.status = 'succeeded' GROUP BY d.destination_id) AS s "
        "WHERE destinations.id = s.id AND destinations.kind = 'subscription'",
        (batch,),
    )
    c.execute(
        f"WITH {ATTEMPT_BATCH} UPDATE destinations SET failing_since = f.at "
        "FROM (SELECT d.destination_id AS id, min(r.started_at) AS at FROM r JOIN deliveries "
        "AS d ON d.pk = r.pk WHERE r.status != 'succeeded' GROUP BY d.destination_id) AS f "
        "WHERE destinations.id = f.id AND destinations.kind = 'subscription' "
        "AND destinations.failing_since IS NULL "
        "AND (destinations.last_success_at IS NULL OR destinations.last_success_at < f.at)",
        (batch,),
    )
    gone = c.execute(
        f"WITH {ATTEMPT_BATCH} SELECT DISTINCT d.destination_id, d.account_id, r.started_at FROM r "
        "JOIN deliveries AS d ON d.pk = r.pk JOIN destinations AS dst "
        "ON dst.id = d.destination_id WHERE r.status = 'stopped' AND r.status_code = 410 "
        "AND dst.kind = 'subscription' AND dst.status = 'active'",
        (batch,),
    ).fetchall()
    for sub_id, account_id, at in gone:
        disable_in(c, sub_id, "the receiver answered 410 Gone", utc(at), account_id)
