"""``relay accounts budget``: an account's spending limit per day or month
(``relay.tasks.budgets``)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import click

from relay.cli.accounts import accounts
from relay.cli.shared import config_option, database_settings, migrated_store, run_command
from relay.pricing import Budget, Period


def _amount(ctx: click.Context, param: click.Parameter, value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        number = Decimal(-1)
    if not number.is_finite() or number < 0:
        raise click.BadParameter(f"{value!r} is not an amount (a decimal number, 0 or more)")
    return number


@accounts.command("budget", short_help="Show or set an account's daily or monthly budget.")
@config_option
@click.argument("account_id", metavar="ACCOUNT_ID")
@click.option("--daily", callback=_amount, help="At most this much per calendar day (UTC).")
@click.option("--monthly", callback=_amount, help="At most this much per calendar month (UTC).")
@click.option("--currency", default="USD", show_default=True, help="ISO 4217 code.")
@click.option("--clear", is_flag=True, help="Remove the budget.")
def accounts_budget(
    config: str | None,
    account_id: str,
    daily: Decimal | None,
    monthly: Decimal | None,
    currency: str,
    clear: bool,
) -> None:
    """Show an account's budget and what it spent this period; with --daily or --monthly,
    set it (a submission that would pass it is refused with 402 budget_exceeded before
    anything is sent); with --clear, remove it."""
    if sum((daily is not None, monthly is not None, clear)) > 1:
        raise click.UsageError("give one of --daily, --monthly, --clear")
    if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise click.BadParameter(f"{currency!r} is not an ISO 4217 code", param_hint="--currency")
    settings = database_settings(config)
    now = datetime.now(UTC)
    wanted: Budget | None = None
    if daily is not None:
        wanted = Budget(Period.DAY, daily, currency)
    elif monthly is not None:
        wanted = Budget(Period.MONTH, monthly, currency)

    async def run() -> tuple[Budget | None, Decimal]:
        async with migrated_store(settings) as store:
            if await store.callback_secret(account_id) is None:
                raise click.ClickException(f"no account {account_id}")
            if wanted is not None or clear:
                await store.set_budget(account_id, wanted, now)
            budget = await store.get_budget(account_id)
            if budget is None:
                return None, Decimal(0)
            costs = await store.task_costs(account_id, budget.started(now), now)
            spent = sum(
                (s.cost.amount for s in costs if s.cost.currency == budget.currency), Decimal(0)
            )
            return budget, spent

    budget, spent = run_command(run())
    if budget is None:
        click.echo(f"{account_id}: no budget")
        return
    click.echo(
        f"{account_id}: {budget.amount} {budget.currency} per {budget.period.value}; "
        f"spent {spent} since {budget.started(now).strftime('%Y-%m-%d')} (UTC)"
    )
