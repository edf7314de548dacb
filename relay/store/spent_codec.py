"""How a priced task's row reads as ``relay.pricing.Spent``, shared by both backends."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from relay.models import utc
from relay.pricing import Budget, Cost, Period, Spent


def spent_from_row(row: Sequence[Any]) -> Spent:
    """A row of ``task_costs``: completed_at, provider, data, cost_amount, cost_currency."""
    completed_at, provider, data, amount, currency = row
    d = json.loads(data)
    basis = (d.get("cost") or {}).get("basis", "")
    return Spent(
        completed_at=utc(completed_at),
        provider=provider,
        model=d.get("model"),
        route=d.get("route"),
        cost=Cost(Decimal(amount), currency, basis),
    )


def budget_params(account_id: str, budget: Budget, now: float) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "period": budget.period.value,
        "amount": str(budget.amount),
        "currency": budget.currency,
        "now": now,
    }


def budget_from_row(row: Sequence[Any] | None) -> Budget | None:
    if row is None:
        return None
    period, amount, currency = row
    return Budget(Period(period), Decimal(amount), currency)
