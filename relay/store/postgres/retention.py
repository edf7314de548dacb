"""The PostgreSQL store's retention: old events go, with their deliveries and attempts, then
the finished tasks they leave with nothing, with their callback destinations, in short
batches that lock only the rows they delete (mixed into ``PostgresStore``)."""

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
            params = {"before": ts(before), "limit": limit}
            events = (await c.execute(QUERIES["prune_history"], params)).rowcount
            if events >= limit:
                return events
            # The events are done: the rest of the batch goes to the finished tasks left
            # without any.
            params["limit"] = limit - events
            return events + (await c.execute(QUERIES["prune_finished_tasks"], params)).rowcount

        return await self._db.run(prune)
