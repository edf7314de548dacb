"""The PostgreSQL store's usage reads (mixed into ``PostgresStore``)."""

from __future__ import annotations

from datetime import datetime

from relay.pricing import Spent
from relay.store.named_sql import load_queries
from relay.store.postgres.runner import Conn, PgRunner
from relay.store.spent_codec import spent_from_row

QUERIES = load_queries("relay.store.postgres")


class UsageMixin:
    _db: PgRunner

    async def task_costs(self, account_id: str, since: datetime, until: datetime) -> list[Spent]:
        params = {"account_id": account_id, "since": since.timestamp(), "until": until.timestamp()}

        async def read(c: Conn) -> list[Spent]:
            cur = await c.execute(QUERIES["task_costs"], params)
            return [spent_from_row(r) for r in await cur.fetchall()]

        return await self._db.run(read)
