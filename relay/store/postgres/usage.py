"""The PostgreSQL store's usage reads (mixed into ``PostgresStore``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from relay.pricing import Budget, Spent
from relay.store.named_sql import load_queries
from relay.store.postgres.runner import Conn, PgRunner
from relay.store.spent_codec import budget_from_row, budget_params, spent_from_row

QUERIES = load_queries("relay.store.postgres")


class UsageMixin:
    _db: PgRunner

    async def task_costs(self, account_id: str, since: datetime, until: datetime) -> list[Spent]:
        params = {"account_id": account_id, "since": since.timestamp(), "until": until.timestamp()}

        async def read(c: Conn) -> list[Spent]:
            cur = await c.execute(QUERIES["task_costs"], params)
            return [spent_from_row(r) for r in await cur.fetchall()]

        return await self._db.run(read)

    async def open_estimates(self, account_id: str) -> list[tuple[Decimal, str]]:
        async def read(c: Conn) -> list[tuple[Decimal, str]]:
            cur = await c.execute(QUERIES["open_estimates"], {"account_id": account_id})
            return [(Decimal(amount), currency) for amount, currency in await cur.fetchall()]

        return await self._db.run(read)

    async def set_budget(self, account_id: str, budget: Budget | None, now: datetime) -> None:
        async def write(c: Conn) -> None:
            if budget is None:
                await c.execute(QUERIES["clear_budget"], {"account_id": account_id})
            else:
                await c.execute(
                    QUERIES["set_budget"], budget_params(account_id, budget, now.timestamp())
                )

        await self._db.run(write)

    async def get_budget(self, account_id: str) -> Budget | None:
        async def read(c: Conn) -> Budget | None:
            cur = await c.execute(QUERIES["get_budget"], {"account_id": account_id})
            return budget_from_row(await cur.fetchone())

        return await self._db.run(read)
