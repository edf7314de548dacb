"""Budgets: an account's spending limit per calendar day or month (``relay.pricing.Budget``),
checked before anything is sent to a provider.

A submission is refused (402 ``budget_exceeded``) when what the account's tasks cost in the
current period, plus what its unfinished tasks likely cost (each one's estimate, written with
it when it was submitted), plus the likely cost of this one at this provider
(``relay.pricing.estimate``), would pass the budget. A task that fails stops counting; one
that succeeds counts at its real cost. Two submissions checked at the same instant can still
both pass: the check is not a reservation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from relay.clock import Clock
from relay.errors import BudgetExceeded
from relay.pricing import Cost, Period, estimate, spent_in
from relay.store.usage_roles import UsageStore
from relay.tasks.registration import ProviderPlan

log = logging.getLogger("relay.budgets")

ADJECTIVE = {Period.DAY: "daily", Period.MONTH: "monthly"}


class Budgets:
    def __init__(self, *, store: UsageStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def check(
        self, account_id: str, provider: str, plan: ProviderPlan, body: Mapping[str, Any]
    ) -> None:
        """Raise ``BudgetExceeded`` when submitting ``body`` to ``provider`` would pass the
        account's budget."""
        budget = await self._store.get_budget(account_id)
        if budget is None:
            return
        now = self._clock.now()
        costs = await self._store.task_costs(account_id, budget.started(now), now)
        running = [
            a for a, c in await self._store.open_estimates(account_id) if c == budget.currency
        ]
        spent = spent_in(costs, budget.currency) + sum(running, Decimal(0))
        likely = None
        if plan.prices is not None and plan.prices.currency != budget.currency:
            said = (
                f"{provider} is priced in {plan.prices.currency} and the account's budget is in "
                f"{budget.currency}: whether this task fits cannot be told"
            )
            log.warning("submission refused for account %s: %s", account_id, said)
            raise BudgetExceeded(said)
        if plan.prices is not None:
            likely = likely_cost(plan, body)
        if spent + (likely or 0) <= budget.amount:
            return
        said = (
            f"the account's {ADJECTIVE[budget.period]} budget of {budget.amount} "
            f"{budget.currency} has {budget.amount - spent} left"
            + (f" once its {len(running)} unfinished tasks are paid for" if running else "")
            + (f", and a task at {provider} likely costs {likely}" if likely is not None else "")
        )
        log.warning("submission refused for account %s: %s", account_id, said)
        raise BudgetExceeded(said)


def estimate_of(plan: ProviderPlan, body: Mapping[str, Any]) -> Cost | None:
    """The likely cost of ``body`` at this provider, to keep with its task."""
    likely = likely_cost(plan, body)
    if likely is None or plan.prices is None:
        return None
    return Cost(likely, plan.prices.currency, "estimated at submission")


def likely_cost(plan: ProviderPlan, body: Mapping[str, Any]) -> Decimal | None:
    """What creating ``body`` at this provider likely costs, in its prices' currency."""
    model = body.get("model")
    return estimate(
        plan.prices,
        model if isinstance(model, str) else None,
        _number(body, "duration"),
        _text(body, "resolution"),
    )


def _field(body: Mapping[str, Any], name: str) -> object:
    found = body.get(name)
    metadata = body.get("metadata")
    if found is None and isinstance(metadata, Mapping):
        found = metadata.get(name)
    return found


def _number(body: Mapping[str, Any], name: str) -> int | None:
    value = _field(body, name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _text(body: Mapping[str, Any], name: str) -> str | None:
    value = _field(body, name)
    return value if isinstance(value, str) else None
