"""The SQLite store's usage reads (mixed into ``relay.store.sqlite.store.SqliteStore``)."""

from __future__ import annotations

from datetime import datetime

from relay.pricing import Spent
from relay.store.named_sql import load_queries
from relay.store.spent_codec import spent_from_row
from relay.store.sqlite.runner import SqliteRunner

QUERIES = load_queries("relay.store.sqlite")


class UsageMixin:
    _db: SqliteRunner

    async def task_costs(self, account_id: str, since: datetime, until: datetime) -> list[Spent]:
        params = {"account_id": account_id, "since": since.timestamp(), "until": until.timestamp()}
        rows = await self._db.read(lambda c: c.execute(QUERIES["task_costs"], params).fetchall())
        return [spent_from_row(r) for r in rows]
