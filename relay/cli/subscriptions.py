"""Operator commands on an account's subscriptions: ``subscriptions list`` and
``subscriptions replay``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from relay import operator_actions as operations
from relay.cli.shared import (
    PICKED_UP,
    account_option,
    config_option,
    database_settings,
    opened_store,
    parse_time_option,
    run_command,
    since_option,
)
from relay.models import Subscription, SubscriptionStatus, iso
from relay.store.values import ReplayQuery


@click.group()
def subscriptions() -> None:
    """List an account's subscriptions and replay events to one."""


@subscriptions.command("list", short_help="List an account's subscriptions.")
@config_option
@account_option
def subscriptions_list(config: str | None, account_id: str) -> None:
    """List an account's subscriptions, newest first: id, status, url, event types, and
    since when it fails or why it was disabled."""
    settings = database_settings(config)

    async def run() -> int:
        printed = 0
        async with opened_store(settings) as store:
            async for subscription in operations.iter_subscriptions(store, account_id):
                click.echo(_subscription_line(subscription))
                printed += 1
        return printed

    if not run_command(run()):
        click.echo("no subscriptions", err=True)


@subscriptions.command(
    "replay", epilog=PICKED_UP, short_help="Send a subscription a time range of events again."
)
@config_option
@click.argument("sub_id")
@account_option
@since_option
@click.option(
    "--until",
    metavar="TIME",
    callback=parse_time_option,
    help="Only events created before this time (ISO 8601; no offset means UTC). "
    "Default: when the command starts.",
)
@click.option(
    "--only-failed",
    is_flag=True,
    help="Only events whose deliveries to this subscription failed, none succeeding.",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 10_000),
    default=1000,
    show_default=True,
    help="Events written per transaction (each holds the database's write lock).",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be replayed.")
def subscriptions_replay(
    config: str | None,
    sub_id: str,
    account_id: str,
    since: datetime | None,
    until: datetime | None,
    only_failed: bool,
    batch: int,
    dry_run: bool,
) -> None:
    """Send the subscription its account's events of a time range again, each task's events
    in their order (one waits until the one before it is done).

    Only the event types the subscription wants are sent. It counts first, then writes the
    deliveries in batches, showing progress; any number of events is fine (one batch is held
    at a time). A disabled subscription must be enabled first."""
    settings = database_settings(config)
    now = datetime.now(UTC)
    query = ReplayQuery(since=since, until=until, only_failed=only_failed)

    async def run() -> tuple[operations.ReplayPlan, int]:
        async with opened_store(settings) as store:
            plan = await operations.plan_replay(store, account_id, sub_id, query, now)
            if dry_run or not plan.count:
                return plan, 0
            with click.progressbar(
                length=plan.count,
                label=f"replaying to {sub_id}",
                show_pos=True,
                show_percent=True,
                file=sys.stderr,
            ) as bar:
                replayed = await operations.run_replay(store, plan, now, batch, bar.update)
            return plan, replayed

    plan, replayed = run_command(run())
    target = f"{sub_id} ({plan.subscription.url})"
    if dry_run:
        click.echo(f"would replay {_events(plan.count)} to {target}")
    else:
        click.echo(f"replayed {_events(replayed)} to {target}")


def _subscription_line(s: Subscription) -> str:
    types = (
        ",".join(sorted(t.value for t in s.event_types))
        if s.event_types is not None
        else "terminal (default)"
    )
    line = f"{s.id}  {s.status.value:<8}  {s.url}  {types}"
    if s.status is SubscriptionStatus.DISABLED:
        line += f"  disabled {iso(s.disabled_at)}: {s.disabled_reason or 'no reason given'}"
    elif s.failing_since is not None:
        line += f"  failing since {iso(s.failing_since)}"
    return line


def _events(n: int) -> str:
    return f"{n} event" if n == 1 else f"{n} events"
