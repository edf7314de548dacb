"""The SQLite store's reads for ``/metrics`` (mixed into
``relay.store.sqlite.store.SqliteStore``)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from relay.models import TaskStatus
from relay.store.codec import dt
from relay.store.copy_codec import copy_counts
from relay.store.named_sql import load_queries
from relay.store.sqlite.runner import SqliteRunner
from relay.store.values import MetricsSnapshot

QUERIES = load_queries("relay.store.sqlite")


class MetricsMixin:
    _db: SqliteRunner

    async def metrics_snapshot(self, now: datetime) -> MetricsSnapshot:
        t = now.timestamp()

        def read(c: sqlite3.Connection) -> MetricsSnapshot:
            # Counted per (account, status), the order of the covering index, then summed here.
            tasks: dict[TaskStatus, int] = {}
            for status, n in c.execute(QUERIES["tasks_by_status"]):
                tasks[TaskStatus(status)] = tasks.get(TaskStatus(status), 0) + n
            due, oldest = c.execute(QUERIES["due_deliveries"], {"now": t}).fetchone()
            (uncertain,) = c.execute(QUERIES["uncertain_submissions"]).fetchone()
            copies, stored_bytes = copy_counts(c.execute(QUERIES["copies_by_state"]))
            return MetricsSnapshot(tasks, due, dt(oldest), uncertain, copies, stored_bytes)

        return await self._db.read(read, alone=True)  # counts over every task
