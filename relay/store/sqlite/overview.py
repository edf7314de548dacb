"""The SQLite store's overview and search reads (mixed into
``relay.store.sqlite.store.SqliteStore``): each bounded by a LIMIT on an index."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime

from relay.models import TaskStatus
from relay.store.named_sql import load_queries
from relay.store.overview_codec import backlog_from_row, delivery_sample, task_sample
from relay.store.overview_roles import Backlog, DeliverySample, TaskSample
from relay.store.sqlite.runner import SqliteRunner

QUERIES = load_queries("relay.store.sqlite")


class OverviewMixin:
    _db: SqliteRunner

    async def count_tasks_capped(self, account_id: str, cap: int) -> Mapping[TaskStatus, int]:
        def read(c: sqlite3.Connection) -> dict[TaskStatus, int]:
            counts = {}
            for status in TaskStatus:
                params = {"account_id": account_id, "status": status.value, "cap": cap}
                (n,) = c.execute(QUERIES["overview_count_status"], params).fetchone()
                if n:
                    counts[status] = int(n)
            return counts

        return await self._db.read(read, alone=True)  # up to ``cap`` rows a status

    async def recent_tasks(self, account_id: str, limit: int) -> Sequence[TaskSample]:
        params = {"account_id": account_id, "limit": limit}
        rows = await self._db.read(
            lambda c: c.execute(QUERIES["overview_recent_tasks"], params).fetchall()
        )
        return [task_sample(r) for r in rows]

    async def recent_deliveries(self, account_id: str, events: int) -> Sequence[DeliverySample]:
        params = {"account_id": account_id, "events": events}
        rows = await self._db.read(
            lambda c: c.execute(QUERIES["overview_recent_deliveries"], params).fetchall()
        )
        return [delivery_sample(r) for r in rows]

    async def account_backlog(self, account_id: str, now: datetime, cap: int) -> Backlog:
        params = {"account_id": account_id, "now": now.timestamp(), "cap": cap}
        row = await self._db.read(
            lambda c: c.execute(QUERIES["overview_backlog"], params).fetchone(), alone=True
        )
        return backlog_from_row(row)

    async def tasks_with_provider_task_id(
        self, account_id: str, provider_task_id: str, providers: Sequence[str]
    ) -> list[str]:
        def read(c: sqlite3.Connection) -> list[str]:
            found: list[str] = []
            for provider in providers:
                params = {
                    "account_id": account_id,
                    "provider": provider,
                    "provider_task_id": provider_task_id,
                }
                found += [r[0] for r in c.execute(QUERIES["account_provider_task"], params)]
            return found

        return await self._db.read(read)
