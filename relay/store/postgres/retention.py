"""The PostgreSQL store's retention: old events go, with their deliveries and attempts, in
short batches that lock only the rows they delete (mixed into ``PostgresStore``)."""

from __future__ import annotations

from datetime import datetime

from relay.store.codec import ts
from relay.store.named_sql import load_queries
from relay.store.postgres.runner import Conn, PgRunner

QUERIES = load_queries("relay.store.postgres")


class RetentionMixin:
    _db: PgRunner

    async def prune_history(self, before: datetime, limit: int) -> int:
        async def prune(c: Conn) -> int:
            cur = await c.execute(QUERIES["prune_history"], {"before": ts(before), "limit": limit})
            return cur.rowcount

        return await self._db.run(prune)
