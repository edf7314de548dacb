"""The SQLite store's transactional outbox: a change's events and their deliveries, and its
output copies, written in the transaction of the change that made them, so no event and no
copy is lost between two writes."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from relay.copies.values import OutputCopy
from relay.ids import new_id
from relay.models import Delivery, DeliveryStatus, Destination, Event
from relay.store.codec import destination_from_row, ts
from relay.store.copy_codec import copy_params
from relay.store.named_sql import load_queries
from relay.transitions import fan_out

QUERIES = load_queries("relay.store.sqlite")


def write_events(c: sqlite3.Connection, events: Sequence[Event]) -> None:
    """Insert events and their deliveries to the destinations ``fan_out`` picks for each."""
    if not events:
        return
    destinations = [
        destination_from_row(r)
        for task_id in {e.task_id for e in events}
        for r in c.execute(QUERIES["task_destinations"], {"task_id": task_id})
    ]
    for account_id in {e.account_id for e in events}:
        destinations += [
            destination_from_row(r)
            for r in c.execute(QUERIES["account_subscriptions"], {"account_id": account_id})
        ]
    pks = {}
    for e in events:
        cur = c.execute(
            QUERIES["insert_event"],
            {
                "id": e.id,
                "account_id": e.account_id,
                "task_id": e.task_id,
                "type": e.type.value,
                "sequence": e.sequence,
                "created_at": ts(e.created_at),
                "body": e.body,
                "url_expires_at": ts(e.url_expires_at),
            },
        )
        pks[e.id] = cur.lastrowid
    for event, destination in fan_out(events, destinations):
        insert_delivery(c, pks[event.id], event.id, destination, event.created_at, event.task_id)


def write_copies(c: sqlite3.Connection, copies: Sequence[OutputCopy]) -> None:
    """Insert output copies, or update them as the change left them (which ends their
    lease). Nothing to run for a change without copies, as most are."""
    if copies:
        c.executemany(QUERIES["upsert_copy"], [copy_params(copy) for copy in copies])


def insert_delivery(
    c: sqlite3.Connection,
    event_pk: int | None,
    event_id: str,
    d: Destination,
    now: datetime,
    task_id: str | None,
) -> Delivery:
    """A new pending delivery of a stored event to ``d``, due at ``now``."""
    delivery = Delivery(
        id=new_id("dlv"),
        account_id=d.account_id,
        event_id=event_id,
        destination_id=d.id,
        url=d.url,
        status=DeliveryStatus.PENDING,
        attempt_count=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    c.execute(
        QUERIES["insert_delivery"],
        {
            "id": delivery.id,
            "account_id": d.account_id,
            "event_pk": event_pk,
            "destination_id": d.id,
            "destination_key": d.key,
            "url": d.url,
            "now": ts(now),
            "task_id": task_id,
        },
    )
    return delivery
