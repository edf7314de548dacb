"""The SQLite store's retention: old events go, with their deliveries and attempts, in short
batches (mixed into ``SqliteStore``)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from relay.store.codec import ts
from relay.store.sqlite_runner import SqliteRunner


class RetentionMixin:
    _db: SqliteRunner

    async def prune_history(self, before: datetime, limit: int) -> int:
        def prune(c: sqlite3.Connection) -> int:
            # Events with nothing left to send: a pending delivery keeps its event, however
            # old, so pruning never loses work.
            c.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (pk INTEGER PRIMARY KEY)")
            c.execute("DELETE FROM doomed")
            c.execute(
                "INSERT INTO doomed SELECT pk FROM events WHERE created_at < ? AND NOT EXISTS "
                "(SELECT 1 FROM deliveries d WHERE d.event_pk = events.pk "
                "AND d.status = 'pending') ORDER BY pk LIMIT ?",
                (ts(before), limit),
            )
            c.execute(
                "DELETE FROM attempts WHERE delivery_pk IN (SELECT pk FROM deliveries "
                "WHERE event_pk IN (SELECT pk FROM doomed))"
            )
            c.execute("DELETE FROM deliveries WHERE event_pk IN (SELECT pk FROM doomed)")
            return c.execute("DELETE FROM events WHERE pk IN (SELECT pk FROM doomed)").rowcount

        return await self._db.write(prune)
