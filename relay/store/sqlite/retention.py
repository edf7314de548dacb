"""The SQLite store's retention: old events go, with their deliveries and attempts, then the
finished tasks they leave with nothing, with their callback destinations, in short batches
(mixed into ``relay.store.sqlite.store.SqliteStore``)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from relay.store.codec import ts
from relay.store.named_sql import load_queries
from relay.store.sqlite.runner import SqliteRunner

QUERIES = load_queries("relay.store.sqlite")


class RetentionMixin:
    _db: SqliteRunner

    async def prune_history(self, before: datetime, limit: int) -> int:
        def prune(c: sqlite3.Connection) -> int:
            # One batch: pick the events (never one with a pending delivery), then delete
            # their attempts, deliveries and themselves, children first.
            c.execute(QUERIES["create_doomed"])
            c.execute(QUERIES["clear_doomed"])
            c.execute(QUERIES["pick_doomed"], {"before": ts(before), "limit": limit})
            c.execute(QUERIES["delete_doomed_attempts"])
            c.execute(QUERIES["delete_doomed_deliveries"])
            events = c.execute(QUERIES["delete_doomed_events"]).rowcount
            if events >= limit:
                return events
            # The events are done: the rest of the batch goes to the finished tasks left
            # without any.
            c.execute(QUERIES["create_doomed_tasks"])
            c.execute(QUERIES["clear_doomed_tasks"])
            c.execute(QUERIES["pick_doomed_tasks"], {"before": ts(before), "limit": limit - events})
            c.execute(QUERIES["delete_doomed_task_copies"])
            c.execute(QUERIES["delete_doomed_callbacks"])
            return events + c.execute(QUERIES["delete_doomed_tasks"]).rowcount

        return await self._db.write(prune, alone=True)
