"""The PostgreSQL store's reads for ``/metrics`` (mixed into ``PostgresStore``)."""

from __future__ import annotations

from datetime import datetime

from relay.models import TaskStatus
from relay.store import codec, copy_codec
from relay.store.named_sql import load_queries
from relay.store.postgres.runner import Conn, PgRunner
from relay.store.values import MetricsSnapshot

QUERIES = load_queries("relay.store.postgres")


class MetricsMixin:
    _db: PgRunner

    async def metrics_snapshot(self, now: datetime) -> MetricsSnapshot:
        t = now.timestamp()

        async def read(c: Conn) -> MetricsSnapshot:
            cur = await c.execute(QUERIES["count_tasks_by_status"])
            tasks = {TaskStatus(status): n for status, n in await cur.fetchall()}
            cur = await c.execute(QUERIES["due_deliveries"], {"now": t})
            row = await cur.fetchone()
            due, oldest = row if row is not None else (0, None)
            cur = await c.execute(QUERIES["uncertain_submissions"])
            counted = await cur.fetchone()
            uncertain = counted[0] if counted is not None else 0
            cur = await c.execute(QUERIES["copies_by_state"])
            copies, stored_bytes = copy_codec.copy_counts(await cur.fetchall())
            return MetricsSnapshot(tasks, due, codec.dt(oldest), uncertain, copies, stored_bytes)

        # The reads in one transaction: a consistent view (REPEATABLE READ is not needed
        # for gauges, but one round of BEGIN/COMMIT is as cheap as several autocommits).
        return await self._db.run(read)
