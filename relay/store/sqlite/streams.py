"""The SQLite store's reads for the live event stream (mixed into ``SqliteStore``)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from relay.store.codec import event_from_row
from relay.store.named_sql import load_queries
from relay.store.sqlite.runner import SqliteRunner
from relay.store.stream_roles import Positioned

QUERIES = load_queries("relay.store.sqlite")


class StreamsMixin:
    _db: SqliteRunner

    async def last_event_position(self) -> int:
        row = await self._db.read(lambda c: c.execute(QUERIES["last_event_position"]).fetchone())
        return int(row[0])

    async def events_after(self, position: int, limit: int) -> list[Positioned]:
        params = {"after": position, "limit": limit}
        rows = await self._db.read(lambda c: c.execute(QUERIES["events_after"], params).fetchall())
        return [(int(r[0]), event_from_row(r[1:])) for r in rows]

    async def event_positions_after(self, position: int, limit: int) -> list[int]:
        params = {"after": position, "limit": limit}
        rows = await self._db.read(
            lambda c: c.execute(QUERIES["event_positions_after"], params).fetchall()
        )
        return [int(r[0]) for r in rows]

    async def events_at(self, positions: Sequence[int]) -> list[Positioned]:
        params = {"positions": json.dumps(list(positions))}
        rows = await self._db.read(lambda c: c.execute(QUERIES["events_at"], params).fetchall())
        return [(int(r[0]), event_from_row(r[1:])) for r in rows]

    async def event_position(self, account_id: str, event_id: str) -> int | None:
        params = {"event_id": event_id, "account_id": account_id}
        row = await self._db.read(lambda c: c.execute(QUERIES["event_position"], params).fetchone())
        return None if row is None else int(row[0])
