"""The PostgreSQL store's delivery statements: the transactional outbox (events fanned out to
their destinations in the writer's transaction, with a wake-up at commit), the claim, the
batched attempt record, and stopping a subscription. Shared by ``relay.store.postgres`` and
its subscriptions mixin.

Where SQLite has one writer, PostgreSQL runs writers side by side, and row locks keep the
same outcomes:

- A fan-out reads the subscriptions it sends to ``FOR KEY SHARE``; stopping one (disable,
  delete, a URL change) first takes it ``FOR UPDATE``. So a fan-out either sees it stopped,
  or finishes first and the stop then finds its new deliveries pending and stops them.
- Recording attempts updates subscriptions' health, which two instances may do at once for
  the same subscriptions: each takes them in id order before anything else, so they queue
  instead of deadlocking; a stop also takes the subscription first, then its deliveries.
- Claims never wait: ``SKIP LOCKED`` passes over what another claim is taking.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncCursor

from relay.ids import new_id
from relay.models import (
    Delivery,
    DeliveryStatus,
    Destination,
    DueDelivery,
    Event,
)
from relay.store import codec
from relay.store.codec import ts
from relay.store.postgres_runner import CHANNEL, Conn
from relay.store.sqlite_subscriptions import signing_secrets
from relay.transitions import fan_out

DESTINATION_COLUMNS = "id, account_id, kind, url, key, event_types, task_id, secret"

Row = tuple[Any, ...]
Params = Sequence[Any] | Mapping[str, Any]


async def fetch_all(c: Conn, query: str, params: Params | None = None) -> list[Row]:
    cur = await c.execute(query, params)
    return await cur.fetchall()


async def fetch_one(c: Conn, query: str, params: Params | None = None) -> Row | None:
    cur = await c.execute(query, params)
    return await cur.fetchone()


async def notify(c: Conn, kind: str) -> None:
    """Wake the other instances when this transaction commits."""
    await c.execute("SELECT pg_notify(%s, %s)", (CHANNEL, kind))


def destination(row: Sequence[Any]) -> Destination:
    return Destination(
        id=row[0],
        account_id=row[1],
        kind=row[2],
        url=row[3],
        key=row[4],
        event_types=codec.event_types_from(row[5]),
        task_id=row[6],
        secret=row[7],
    )


# --- the outbox ------------------------------------------------------------------------------

_WAKE = (
    "SELECT pg_notify(%(channel)s, kind) FROM (SELECT 'deliveries' WHERE EXISTS "
    "(SELECT 1 FROM dl) UNION ALL SELECT 'polls' WHERE %(polls)s) AS k (kind)"
)

_NEW_DELIVERIES = (
    "dl AS (INSERT INTO deliveries (id, account_id, event_pk, destination_id, destination_key, "
    "url, status, next_attempt_at, created_at, updated_at, task_id, ordered) "
    "SELECT x.id, x.account_id, {event_pk}, x.destination_id, x.key, x.url, 'pending', x.at, "
    "x.at, x.at, x.task_id, %(ordered)s FROM unnest(%(d_id)b::text[], %(d_event)b::text[], "
    "%(d_event_pk)b::bigint[], %(d_account)b::text[], %(d_destination)b::text[], "
    "%(d_key)b::text[], %(d_url)b::text[], %(d_at)b::float8[], %(d_task)b::text[]) "
    "WITH ORDINALITY AS x (id, event_id, event_pk, account_id, destination_id, key, url, at, "
    "task_id, n) {join}ORDER BY x.n RETURNING 1) "
)

_WRITE_EVENTS = (
    "WITH ev AS (INSERT INTO events (id, account_id, task_id, type, sequence, created_at, body, "
    "url_expires_at) SELECT id, account_id, task_id, type, sequence, at, body, expires "
    "FROM unnest(%(e_id)b::text[], %(e_account)b::text[], %(e_task)b::text[], "
    "%(e_type)b::text[], %(e_sequence)b::int[], %(e_at)b::float8[], %(e_body)b::text[], "
    "%(e_expires)b::float8[]) WITH ORDINALITY AS x (id, account_id, task_id, type, sequence, "
    "at, body, expires, n) ORDER BY n RETURNING pk, id), "
    + _NEW_DELIVERIES.format(event_pk="ev.pk", join="JOIN ev ON ev.id = x.event_id ")
    + _WAKE
)

_INSERT_DELIVERIES = "WITH " + _NEW_DELIVERIES.format(event_pk="x.event_pk", join="") + _WAKE


@dataclass(frozen=True, slots=True)
class NewDelivery:
    event_pk: int | None
    """None: the event is written in the same statement (``write_events``)."""
    event_id: str
    account_id: str
    destination_id: str
    key: str
    url: str
    task_id: str | None


def _delivery_params(
    new: Sequence[NewDelivery], ids: Sequence[str], at: Sequence[float | None], ordered: bool
) -> dict[str, Any]:
    return {
        "d_id": list(ids),
        "d_event": [d.event_id for d in new],
        "d_event_pk": [d.event_pk for d in new],
        "d_account": [d.account_id for d in new],
        "d_destination": [d.destination_id for d in new],
        "d_key": [d.key for d in new],
        "d_url": [d.url for d in new],
        "d_at": list(at),
        "d_task": [d.task_id for d in new],
        "ordered": ordered,
    }


async def read_destinations(c: Conn, events: Sequence[Event]) -> AsyncCursor[Row]:
    """Where ``events`` may go: their tasks' callbacks and their accounts' active
    subscriptions, read for ``write_events`` (sent at once, fetched there: in a pipeline
    this read rides along with the statements before it)."""
    return await c.execute(
        f"SELECT {DESTINATION_COLUMNS} FROM destinations WHERE task_id = ANY(%b::text[]) "
        "OR (account_id = ANY(%b::text[]) AND kind = 'subscription' AND status = 'active') "
        "ORDER BY id FOR KEY SHARE",
        (sorted({e.task_id for e in events if e.task_id}), sorted({e.account_id for e in events})),
    )


async def write_events(
    c: Conn, events: Sequence[Event], destinations: AsyncCursor[Row], *, polls: bool = False
) -> None:
    """Insert events and fan them out to the ``destinations`` (``read_destinations``) that
    want them, in one statement; wake the other instances for the new deliveries (and for
    a poll due now, when ``polls``)."""
    rows = await destinations.fetchall()
    pairs = fan_out(events, [destination(r) for r in rows])
    new = [NewDelivery(None, e.id, d.account_id, d.id, d.key, d.url, e.task_id) for e, d in pairs]
    params = _delivery_params(
        new, [new_id("dlv") for _ in new], [ts(e.created_at) for e, _ in pairs], False
    )
    params.update(
        {
            "e_id": [e.id for e in events],
            "e_account": [e.account_id for e in events],
            "e_task": [e.task_id for e in events],
            "e_type": [e.type.value for e in events],
            "e_sequence": [e.sequence for e in events],
            "e_at": [ts(e.created_at) for e in events],
            "e_body": [e.body for e in events],
            "e_expires": [ts(e.url_expires_at) for e in events],
            "polls": polls,
            "channel": CHANNEL,
        }
    )
    await c.execute(_WRITE_EVENTS, params)


async def insert_deliveries(
    c: Conn, new: Sequence[NewDelivery], now: datetime, *, ordered: bool = False
) -> list[Delivery]:
    """New pending deliveries of stored events, due ``now``; the others are woken."""
    if not new:
        return []
    ids = [new_id("dlv") for _ in new]
    await c.execute(
        _INSERT_DELIVERIES,
        {
            **_delivery_params(new, ids, [ts(now)] * len(new), ordered),
            "polls": False,
            "channel": CHANNEL,
        },
    )
    return [
        Delivery(
            id=id_,
            account_id=d.account_id,
            event_id=d.event_id,
            destination_id=d.destination_id,
            url=d.url,
            status=DeliveryStatus.PENDING,
            attempt_count=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        for id_, d in zip(ids, new, strict=True)
    ]


# --- claim and record ------------------------------------------------------------------------

NO_SYNC = "no_sync AS (SELECT set_config('synchronous_commit', 'off', true) AS off)"
"""A CTE that lets the statement's own transaction commit without waiting for the WAL flush.

Leases and attempt records are the delivery loop's bookkeeping: each would otherwise wait
for a disk flush (milliseconds) on every claim and every batch. Losing the last of them in
a database crash costs at most a duplicate attempt, which at-least-once delivery allows; the
outbox writes (tasks, events, deliveries) keep the server's durability. ``set_config`` with
``is_local`` reverts at commit, so it never leaks into the pooled connection. A statement
must join it where it writes: one that wrote nothing has no commit to flush. (A transaction
of several statements says ``SET LOCAL synchronous_commit = off`` instead.)"""

CLAIM_DELIVERIES = (
    # The candidate window is locked as it is read, skipping rows another claim holds; the
    # ranking then keeps what each destination's room allows, and only those are leased
    # (the rest are unlocked when the statement ends).
    f"WITH {NO_SYNC}, candidate AS MATERIALIZED (SELECT pk, next_attempt_at, destination_key "
    "FROM deliveries AS d, no_sync WHERE next_attempt_at <= %(now)s "
    "AND (lease_until IS NULL OR lease_until < %(now)s) "
    "AND destination_key <> ALL(%(full)b::text[]) "
    # A replayed event waits for the task's earlier ones to that destination.
    "AND (NOT ordered OR NOT EXISTS (SELECT 1 FROM deliveries AS e "
    "WHERE e.destination_id = d.destination_id AND e.task_id = d.task_id "
    "AND e.ordered AND e.status = 'pending' AND e.pk < d.pk)) "
    "ORDER BY next_attempt_at, pk LIMIT %(window)s FOR UPDATE OF d SKIP LOCKED), "
    "picked AS (SELECT pk FROM (SELECT c.pk, c.next_attempt_at, row_number() OVER "
    "(PARTITION BY c.destination_key ORDER BY c.next_attempt_at, c.pk) AS rank, "
    "coalesce(r.room, %(cap)s) AS room FROM candidate AS c "
    "LEFT JOIN unnest(%(keys)b::text[], %(rooms)b::int[]) AS r (key, room) "
    "ON r.key = c.destination_key) AS ranked WHERE rank <= room "
    "ORDER BY next_attempt_at, pk LIMIT %(limit)s), "
    # An array, not a join: the planner then fetches the picked rows by primary key
    # instead of hashing the whole table.
    "claimed AS (UPDATE deliveries SET lease_owner = %(owner)s, lease_until = %(until)s, "
    "lease_holder = %(holder)s WHERE pk = ANY(ARRAY(SELECT pk FROM picked)) "
    "RETURNING deliveries.*) "
    "SELECT d.pk, d.id, e.id, d.destination_key, d.url, e.body, "
    "coalesce(dst.secret, a.callback_secret), d.attempt_count, d.account_id, e.task_id, "
    "e.url_expires_at, CASE WHEN dst.secret IS NULL THEN a.previous_callback_secret "
    "ELSE dst.previous_secret END, CASE WHEN dst.secret IS NULL "
    "THEN a.previous_callback_secret_until ELSE dst.previous_secret_until END, "
    "dst.headers, dst.rate_limit FROM claimed AS d JOIN events AS e ON e.pk = d.event_pk "
    "JOIN destinations AS dst ON dst.id = d.destination_id "
    "JOIN accounts AS a ON a.id = d.account_id ORDER BY d.next_attempt_at, d.pk"
)


def claimed_delivery(r: Row, now: datetime) -> DueDelivery:
    """A row of ``CLAIM_DELIVERIES``."""
    return DueDelivery(
        pk=r[0],
        id=r[1],
        event_id=r[2],
        destination_key=r[3],
        url=r[4],
        body=r[5],
        secrets=signing_secrets(r[6], r[11], r[12], now),
        attempt_count=r[7],
        account_id=r[8],
        task_id=r[9],
        url_expires_at=codec.dt(r[10]),
        headers=headers(r[13]),
        rate_limit=r[14],
    )


def headers(text: str | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(json.loads(text).items())) if text else ()


def _if_pending(value: str, column: str) -> str:
    return f"{column} = CASE WHEN d.status = 'pending' THEN {value} ELSE d.{column} END"


LOCK_SUBSCRIPTIONS = (
    # Two instances may update the same subscriptions' health at once: each takes them in id
    # order first, so they queue instead of deadlocking. In a statement of its own, before the
    # record: a row lock taken inside the record's statement may have to follow the row to a
    # version newer than that statement's snapshot, and the statement's UPDATE then asks for
    # the older version's tuple lock again, which deadlocks with a third writer queued on it.
    "SELECT id FROM destinations WHERE id = ANY(ARRAY(SELECT destination_id FROM deliveries "
    "WHERE pk = ANY(%(pk)b::bigint[]))) AND kind = 'subscription' ORDER BY id "
    "FOR NO KEY UPDATE"
)

RECORD_ATTEMPTS = (
    # The batch, each record with its delivery's destination (rows fetched by primary key).
    "WITH r AS (SELECT u.*, d.destination_id, d.account_id "
    "FROM unnest(%(pk)b::bigint[], %(number)b::int[], %(started)b::float8[], "
    "%(latency)b::float8[], %(outcome)b::text[], %(code)b::int[], %(error)b::text[], "
    "%(snippet)b::text[], %(status)b::text[], %(next)b::float8[]) AS u (pk, number, "
    "started_at, latency_ms, outcome, status_code, error, snippet, status, next_at) "
    "JOIN deliveries AS d ON d.pk = u.pk), "
    # Only the lease holder's attempts count, and each attempt number once: a late record
    # from a lease that expired and was claimed again (by another instance, or by this one)
    # must not add a second "attempt 1" or clear the new lease. A delivery stopped meanwhile
    # (its subscription was disabled or deleted) keeps its attempt but stays stopped. The
    # attempt rows follow the fenced update, so a record is applied whole or not at all.
    "upd AS (UPDATE deliveries AS d SET "
    + ", ".join(
        _if_pending(v, c)
        for c, v in (
            ("status", "r.status"),
            ("attempt_count", "r.number"),
            ("next_attempt_at", "r.next_at"),
            ("lease_owner", "NULL"),
            ("lease_until", "NULL"),
            ("lease_holder", "NULL"),
            ("last_status_code", "r.status_code"),
            ("last_error", "r.error"),
            ("updated_at", "r.started_at"),
        )
    )
    + " FROM r WHERE d.pk = r.pk AND d.lease_owner = %(owner)s "
    "AND d.attempt_count = r.number - 1 RETURNING d.pk), "
    "att AS (INSERT INTO attempts (delivery_pk, number, started_at, latency_ms, outcome, "
    "status_code, error, response_snippet) SELECT r.pk, r.number, r.started_at, r.latency_ms, "
    "r.outcome, r.status_code, r.error, r.snippet FROM r JOIN upd ON upd.pk = r.pk "
    "ORDER BY r.pk), "
    # A subscription's health from its attempts: the last success, since when it fails.
    "h AS (SELECT r.destination_id AS id, "
    "max(r.started_at) FILTER (WHERE r.status = 'succeeded') AS ok_at, "
    "min(r.started_at) FILTER (WHERE r.status <> 'succeeded') AS fail_at "
    "FROM r JOIN destinations AS s ON s.id = r.destination_id "
    "WHERE s.kind = 'subscription' GROUP BY r.destination_id), "
    "health AS (UPDATE destinations AS dst SET "
    "last_success_at = coalesce(h.ok_at, dst.last_success_at), "
    "failing_since = CASE WHEN h.fail_at IS NOT NULL "
    "AND (h.ok_at IS NOT NULL OR dst.failing_since IS NULL) "
    "AND coalesce(h.ok_at, dst.last_success_at, h.fail_at - 1) < h.fail_at THEN h.fail_at "
    "WHEN h.ok_at IS NOT NULL THEN NULL ELSE dst.failing_since END "
    "FROM h WHERE dst.id = ANY(ARRAY(SELECT id FROM h)) AND dst.id = h.id RETURNING 1) "
    # A 410 Gone (Zapier's "this Zap is off") disables the subscription: the caller does it.
    "SELECT DISTINCT r.destination_id, r.account_id, r.started_at FROM r "
    "JOIN destinations AS dst ON dst.id = r.destination_id "
    "WHERE r.status = 'stopped' AND r.status_code = 410 AND dst.kind = 'subscription' "
    "AND dst.status = 'active'"
)


# --- stopping a subscription -----------------------------------------------------------------


async def lock_subscription(c: Conn, sub_id: str, account_id: str) -> str | None:
    """Take a live subscription ``FOR UPDATE`` (no fan-out to it meanwhile); its status."""
    row = await fetch_one(
        c,
        "SELECT status FROM destinations WHERE id = %s AND account_id = %s "
        "AND kind = 'subscription' AND status <> 'deleted' FOR UPDATE",
        (sub_id, account_id),
    )
    return str(row[0]) if row else None


async def disable_in(c: Conn, sub_id: str, reason: str, now: datetime, account_id: str) -> bool:
    if await lock_subscription(c, sub_id, account_id) != "active":
        return False
    # It misses what was pending when it stopped, and everything from now on.
    await c.execute(
        "WITH m AS (SELECT min(e.created_at) AS oldest FROM deliveries AS d JOIN events AS e "
        "ON e.pk = d.event_pk WHERE d.destination_id = %(id)s AND d.status = 'pending') "
        "UPDATE destinations SET status = 'disabled', disabled_reason = %(reason)s, "
        "disabled_at = %(now)s, missed_since = least(m.oldest, %(now)s), "
        "updated_at = %(now)s FROM m WHERE id = %(id)s",
        {"id": sub_id, "reason": reason, "now": ts(now)},
    )
    await stop_pending(c, sub_id, now, f"the subscription was disabled: {reason}")
    return True


async def stop_pending(c: Conn, destination_id: str, now: datetime, why: str) -> None:
    # Attempts in flight still record, but cannot bring a stopped delivery back.
    await c.execute(
        "UPDATE deliveries SET status = 'stopped', next_attempt_at = NULL, "
        "last_error = %s, updated_at = %s WHERE destination_id = %s "
        "AND status = 'pending'",
        (why, ts(now), destination_id),
    )
