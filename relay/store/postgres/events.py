"""The PostgreSQL store's event reads and redelivery (mixed into ``PostgresStore``), and the
page decoding its listings share."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from relay.models import Delivery, Event
from relay.store import codec
from relay.store.codec import destination_from_row
from relay.store.named_sql import load_queries
from relay.store.postgres.outbox import NewDelivery, fetch_all, fetch_one, insert_deliveries
from relay.store.postgres.runner import Conn, PgRunner
from relay.store.values import DeliveryView, EventQuery, Page

QUERIES = load_queries("relay.store.postgres")

T = TypeVar("T")


class EventsMixin:
    _db: PgRunner

    async def get_event(self, account_id: str, event_id: str) -> Event | None:
        async def get(c: Conn) -> Event | None:
            row = await fetch_one(
                c, QUERIES["get_event"], {"event_id": event_id, "account_id": account_id}
            )
            return codec.event_from_row(row) if row else None

        return await self._db.run(get, transaction=False)

    async def list_events(self, account_id: str, query: EventQuery) -> Page[Event]:
        params = {
            "account_id": account_id,
            "type": None if query.type is None else query.type.value,
            "task_id": query.task_id,
            "since": codec.ts(query.since),
            "until": codec.ts(query.until),
            "delivery_status": (
                None if query.delivery_status is None else query.delivery_status.value
            ),
            "after": query.after,
            "limit": query.limit + 1,
        }
        if query.delivery_status is None:
            if query.order == "desc":
                sql = QUERIES["list_events_desc"]
            else:
                sql = QUERIES["list_events_asc"]
        elif query.order == "desc":
            sql = QUERIES["list_events_by_delivery_status_desc"]
        else:
            sql = QUERIES["list_events_by_delivery_status_asc"]
        # Unprepared: planned with the filters given (see the top of queries.sql).
        rows = await self._db.run(
            lambda c: fetch_all(c, sql, params, prepare=False), transaction=False
        )
        return codec.paged(rows, query.limit, codec.event_from_row)

    async def event_deliveries(self, account_id: str, event_id: str) -> list[DeliveryView]:
        async def get(c: Conn) -> list[DeliveryView]:
            rows = await fetch_all(
                c, QUERIES["event_deliveries"], {"event_id": event_id, "account_id": account_id}
            )
            deliveries = [(row[0], codec.delivery_from_row(row)) for row in rows]
            attempts = await fetch_all(
                c, QUERIES["delivery_attempts"], {"delivery_pks": [pk for pk, _ in deliveries]}
            )
            return [
                DeliveryView(
                    d, [codec.attempt_from_row(d.id, a[1:]) for a in attempts if a[0] == pk]
                )
                for pk, d in deliveries
            ]

        # Two statements that must agree: one snapshot.
        return await self._db.run(get)

    async def redeliver(
        self, account_id: str, event_id: str, destination_id: str | None, now: datetime
    ) -> list[Delivery]:
        async def insert(c: Conn) -> list[Delivery]:
            event = await fetch_one(
                c, QUERIES["event_to_redeliver"], {"event_id": event_id, "account_id": account_id}
            )
            if event is None:
                return []
            rows = await fetch_all(
                c,
                QUERIES["redelivery_destinations"],
                {"event_pk": event[0], "destination_id": destination_id},
            )
            return await insert_deliveries(
                c,
                [
                    NewDelivery(event[0], event_id, d.account_id, d.id, d.key, d.url, event[1])
                    for d in map(destination_from_row, rows)
                ],
                now,
            )

        return await self._db.run(insert)
