"""The SQLite store's usage reads (mixed into ``relay.store.sqlite.store.SqliteStore``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from relay.pricing import Budget, Spent
from relay.store.named_sql import load_queries
from relay.store.spent_codec import budget_from_row, budget_params, spent_from_row
from relay.store.sqlite.runner import SqliteRunner

QUERIES = load_queries("relay.store.sqlite")


class UsageMixin:
    _db: SqliteRunner

    async def task_costs(self, account_id: str, since: datetime, until: datetime) -> list[Spent]:
        params = {"account_id": account_id, "since": since.timestamp(), "until": until.timestamp()}
        rows = await self._db.read(lambda c: c.execute(QUERIES["task_costs"], params).fetchall())
        return [spent_from_row(r) for r in rows]

    async def open_estimates(self, account_id: str) -> list[tuple[Decimal, str]]:
        params = {"account_id": account_id}
        rows = await self._db.read(
            lambda c: c.execute(QUERIES["open_estimates"], params).fetchall()
        )
        return [(Decimal(amount), currency) for amount, currency in rows]

    async def set_budget(self, account_id: str, budget: Budget | None, now: datetime) -> None:
        if budget is None:
            params: dict[str, object] = {"account_id": account_id}
            await self._db.write(lambda c: c.execute(QUERIES["clear_budget"], params))
            return
        values = budget_params(account_id, budget, now.timestamp())
        await self._db.write(lambda c: c.execute(QUERIES["set_budget"], values))

    async def get_budget(self, account_id: str) -> Budget | None:
        params = {"account_id": account_id}
        row = await self._db.read(lambda c: c.execute(QUERIES["get_budget"], params).fetchone())
        return budget_from_row(row)
