"""The PostgreSQL store's shared delivery statements: the transactional outbox (events fanned
out to their destinations in the writer's transaction, with a wake-up at commit, and output
copies written with their task), a claimed delivery's decoding, and stopping a subscription.
Used by the store and its mixins.

Where SQLite has one writer, PostgreSQL runs writers side by side, and row locks keep the
same outcomes (the queries in ``queries.sql`` say where):

- A fan-out reads the subscriptions it sends to ``FOR KEY SHARE``; stopping one (disable,
  delete, a URL change) first takes it ``FOR UPDATE``. So a fan-out either sees it stopped,
  or finishes first and the stop then finds its new deliveries pending and stops them.
- Recording attempts updates subscriptions' health, which two instances may do at once for
  the same subscriptions: each takes them in id order before anything else, so they queue
  instead of deadlocking; a stop also takes the subscription first, then its deliveries.
- Claims never wait: ``SKIP LOCKED`` passes over what another claim is taking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncCursor

from relay.copies.values import OutputCopy
from relay.ids import new_id
from relay.models import Delivery, DeliveryStatus, DueDelivery, Event
from relay.store import codec, copy_codec
from relay.store.codec import destination_from_row, headers_from_json, signing_secrets, ts
from relay.store.named_sql import load_queries
from relay.store.postgres.runner import Conn
from relay.transitions import fan_out

QUERIES = load_queries("relay.store.postgres")

Row = tuple[Any, ...]


async def fetch_all(
    c: Conn,
    query: str,
    params: Mapping[str, Any] | None = None,
    *,
    prepare: bool | None = None,
) -> list[Row]:
    """``prepare``: psycopg's (None: prepared once run often; False: planned on every call)."""
    cur = await c.execute(query, params, prepare=prepare)
    return await cur.fetchall()


async def fetch_one(c: Conn, query: str, params: Mapping[str, Any] | None = None) -> Row | None:
    cur = await c.execute(query, params)
    return await cur.fetchone()


async def wake_pollers(c: Conn) -> None:
    """Wake the other instances' pollers when this transaction commits."""
    await c.execute(QUERIES["wake_pollers"])


# --- the outbox ------------------------------------------------------------------------------


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
        QUERIES["read_destinations"],
        {
            "task_ids": sorted({e.task_id for e in events if e.task_id}),
            "account_ids": sorted({e.account_id for e in events}),
        },
    )


async def write_events(
    c: Conn, events: Sequence[Event], destinations: AsyncCursor[Row], *, polls: bool = False
) -> None:
    """Insert events and fan them out to the ``destinations`` (``read_destinations``) that
    want them, in one statement; wake the other instances for the new deliveries (and for
    a poll due now, when ``polls``)."""
    rows = await destinations.fetchall()
    pairs = fan_out(events, [destination_from_row(r) for r in rows])
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
        }
    )
    await c.execute(QUERIES["write_events"], params)


async def write_copies(c: Conn, copies: Sequence[OutputCopy]) -> None:
    """Insert output copies, or update them as the change left them (which ends their
    lease), in one statement. Nothing is sent for a change without copies, as most are."""
    if not copies:
        return
    rows = [copy_codec.copy_params(copy) for copy in copies]
    await c.execute(QUERIES["write_copies"], {name: [r[name] for r in rows] for name in rows[0]})


async def insert_deliveries(
    c: Conn, new: Sequence[NewDelivery], now: datetime, *, ordered: bool = False
) -> list[Delivery]:
    """New pending deliveries of stored events, due ``now``; the others are woken."""
    if not new:
        return []
    ids = [new_id("dlv") for _ in new]
    await c.execute(
        QUERIES["insert_deliveries"], _delivery_params(new, ids, [ts(now)] * len(new), ordered)
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


def claimed_delivery(r: Row, now: datetime) -> DueDelivery:
    """A row of the ``claim_due_deliveries`` query."""
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
        headers=headers_from_json(r[13]),
        rate_limit=r[14],
        body_format=r[15],
    )


# --- stopping a subscription -----------------------------------------------------------------


async def lock_subscription(c: Conn, sub_id: str, account_id: str) -> str | None:
    """Take a live subscription ``FOR UPDATE`` (no fan-out to it meanwhile); its status."""
    row = await fetch_one(c, QUERIES["lock_subscription"], {"id": sub_id, "account_id": account_id})
    return str(row[0]) if row else None


async def disable_in(c: Conn, sub_id: str, reason: str, now: datetime, account_id: str) -> bool:
    if await lock_subscription(c, sub_id, account_id) != "active":
        return False
    await c.execute(
        QUERIES["disable_subscription"], {"id": sub_id, "reason": reason, "now": ts(now)}
    )
    await stop_pending(c, sub_id, now, f"the subscription was disabled: {reason}")
    return True


async def stop_pending(c: Conn, destination_id: str, now: datetime, why: str) -> None:
    await c.execute(
        QUERIES["stop_pending_deliveries"],
        {"why": why, "now": ts(now), "destination_id": destination_id},
    )
