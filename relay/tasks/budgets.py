"""Budgets: an account's spending limit per calendar day or month (``relay.pricing.Budget``),
checked before anything is sent to a provider.

A submission is refused (402 ``budget_exceeded``) when what the account's tasks cost in the
current period, plus what its unfinished tasks likely cost (each one's estimate, written with
it when it was submitted), plus the likely cost of this one at this provider
(``relay.pricing.estimate``), would pass the budget. A task that fails stops counting; one
that succeeds counts at its real cost. Two submissions checked at the same instant can still
both pass: the check is not a reservation.

A refusal also tells the account with a ``budget.exceeded`` operational event
(``relay.operational``), once per account and budget period on each instance: a client
retrying in a loop must not flood its subscribers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from relay.clock import Clock
from relay.errors import BudgetExceeded
from relay.models import EventType, iso
from relay.operational import account_event, new_event_id
from relay.pricing import Budget, Cost, Period, estimate, spent_in
from relay.store.interface import OperationalEventStore
from relay.store.usage_roles import UsageStore
from relay.tasks.registration import ProviderPlan

log = logging.getLogger("relay.budgets")

ADJECTIVE = {Period.DAY: "daily", Period.MONTH: "monthly"}


class Budgets:
    def __init__(
        self,
        *,
        store: UsageStore,
        clock: Clock,
        events: OperationalEventStore | None = None,
        on_events: Callable[[], None] = lambda: None,
    ) -> None:
        """``events`` writes ``budget.exceeded`` (none without it); ``on_events`` wakes
        the deliveries and the live stream once it is written."""
        self._store = store
        self._clock = clock
        self._events = events
        self._on_events = on_events
        self._told: dict[str, datetime] = {}
        """The budget period each account last heard ``budget.exceeded`` for."""

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
            await self._refuse(account_id, budget, provider, spent, None, said)
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
        await self._refuse(account_id, budget, provider, spent, likely, said)

    async def _refuse(
        self,
        account_id: str,
        budget: Budget,
        provider: str,
        spent: Decimal,
        likely: Decimal | None,
        said: str,
    ) -> None:
        log.warning("submission refused for account %s: %s", account_id, said)
        now = self._clock.now()
        period = budget.started(now)
        if self._events is not None and self._told.get(account_id) != period:
            event = account_event(
                account_id,
                EventType.BUDGET_EXCEEDED,
                {
                    "budget": budget.to_json(),
                    "period_started_at": iso(period),
                    "spent": str(spent),
                    "provider": provider,
                    "likely_cost": None if likely is None else str(likely),
                    "reason": said,
                },
                now,
                new_event_id,
            )
            try:
                await self._events.write_account_events([event])
            except Exception:
                # The refusal stands either way; the next one tells the account again.
                log.exception("could not write budget.exceeded for account %s", account_id)
            else:
                self._told[account_id] = period
                self._on_events()
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
