"""The PostgreSQL store's reads for ``/metrics`` (mixed into ``PostgresStore``)."""

from __future__ import annotations

from datetime import datetime

from relay.models import TaskStatus
from relay.store import codec
from relay.store.interface import MetricsSnapshot
from relay.store.postgres_runner import Conn, PgRunner


class MetricsMixin:
    _db: PgRunner

    async def metrics_snapshot(self, now: datetime) -> MetricsSnapshot:
        t = now.timestamp()

        async def read(c: Conn) -> MetricsSnapshot:
            # An index-only scan of (account_id, status, pk) where the visibility map
            # allows; /metrics caches the answer.
            cur = await c.execute("SELECT status, count(*) FROM tasks GROUP BY status")
            tasks = {TaskStatus(status): n for status, n in await cur.fetchall()}
            # The partial due index bounds this to what is due, however long the history.
            cur = await c.execute(
                "SELECT count(*), min(next_attempt_at) FROM deliveries "
                "WHERE next_attempt_at <= %s AND (lease_until IS NULL OR lease_until < %s)",
                (t, t),
            )
            row = await cur.fetchone()
            due, oldest = row if row is not None else (0, None)
            return MetricsSnapshot(tasks=tasks, due_deliveries=due, oldest_due_at=codec.dt(oldest))

        # Both reads in one transaction: a consistent view (REPEATABLE READ is not needed
        # for gauges, but one round of BEGIN/COMMIT is as cheap as two autocommits).
        return await self._db.run(read)
