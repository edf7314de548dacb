"""The PostgreSQL store's reads for the live event stream (mixed into ``PostgresStore``)."""

from __future__ import annotations

from collections.abc import Sequence

from relay.store.codec import event_from_row
from relay.store.named_sql import load_queries
from relay.store.postgres.outbox import fetch_all, fetch_one
from relay.store.postgres.runner import Conn, PgRunner
from relay.store.stream_roles import Positioned

QUERIES = load_queries("relay.store.postgres")


class StreamsMixin:
    _db: PgRunner

    async def last_event_position(self) -> int:
        async def read(c: Conn) -> int:
            row = await fetch_one(c, QUERIES["last_event_position"], {})
            return 0 if row is None else int(row[0])

        return await self._db.run(read, transaction=False)

    async def events_after(self, position: int, limit: int) -> list[Positioned]:
        async def read(c: Conn) -> list[Positioned]:
            rows = await fetch_all(c, QUERIES["events_after"], {"after": position, "limit": limit})
            return [(int(r[0]), event_from_row(r[1:])) for r in rows]

        return await self._db.run(read, transaction=False)

    async def event_positions_after(self, position: int, limit: int) -> list[int]:
        async def read(c: Conn) -> list[int]:
            params = {"after": position, "limit": limit}
            return [int(r[0]) for r in await fetch_all(c, QUERIES["event_positions_after"], params)]

        return await self._db.run(read, transaction=False)

    async def events_at(self, positions: Sequence[int]) -> list[Positioned]:
        async def read(c: Conn) -> list[Positioned]:
            rows = await fetch_all(c, QUERIES["events_at"], {"positions": list(positions)})
            return [(int(r[0]), event_from_row(r[1:])) for r in rows]

        return await self._db.run(read, transaction=False)

    async def event_position(self, account_id: str, event_id: str) -> int | None:
        async def read(c: Conn) -> int | None:
            params = {"event_id": event_id, "account_id": account_id}
            row = await fetch_one(c, QUERIES["event_position"], params)
            return None if row is None else int(row[0])

        return await self._db.run(read, transaction=False)
