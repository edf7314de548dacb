"""The PostgreSQL store's retention: old events go, with their deliveries and attempts, in
short batches that lock only the rows they delete (mixed into ``PostgresStore``)."""

from __future__ import annotations

from datetime import datetime

from relay.store.codec import ts
from relay.store.postgres_runner import Conn, PgRunner


class RetentionMixin:
    _db: PgRunner

    async def prune_history(self, before: datetime, limit: int) -> int:
        async def prune(c: Conn) -> int:
            # Events with nothing left to send: a pending delivery keeps its event, however
            # old. SKIP LOCKED: a batch never waits on rows another instance is writing.
            cur = await c.execute(
                "WITH doomed AS (SELECT pk FROM events e WHERE created_at < %s AND NOT EXISTS "
                "(SELECT 1 FROM deliveries d WHERE d.event_pk = e.pk AND d.status = 'pending') "
                "ORDER BY pk LIMIT %s FOR UPDATE SKIP LOCKED), "
                "gone_deliveries AS (DELETE FROM deliveries WHERE event_pk IN "
                "(SELECT pk FROM doomed) RETURNING pk), "
                "gone_attempts AS (DELETE FROM attempts WHERE delivery_pk IN "
                "(SELECT pk FROM gone_deliveries)) "
                "DELETE FROM events WHERE pk IN (SELECT pk FROM doomed)",
                (ts(before), limit),
            )
            return cur.rowcount

        return await self._db.run(prune)
