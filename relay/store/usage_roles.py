"""The store role behind ``GET /v1/usage`` and budgets: what an account's tasks cost
(``relay.pricing``). Part of ``relay.store.interface.Store``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Protocol

from relay.pricing import Budget, Spent


class UsageStore(Protocol):
    async def task_costs(self, account_id: str, since: datetime, until: datetime) -> list[Spent]:
        """The account's priced tasks that finished in ``[since, until)``, oldest first."""
        ...

    async def open_estimates(self, account_id: str) -> list[tuple[Decimal, str]]:
        """What the account's unfinished tasks likely cost (amount, currency), as estimated
        when they were submitted."""
        ...

    async def set_budget(self, account_id: str, budget: Budget | None, now: datetime) -> None:
        """Set (or, with None, remove) the account's budget."""
        ...

    async def get_budget(self, account_id: str) -> Budget | None: ...
