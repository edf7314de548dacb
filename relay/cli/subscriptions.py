"""Operator commands on an account's subscriptions: ``subscriptions list``, ``replay``,
``enable`` and ``disable``."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from relay import operator_actions as operations
from relay.cli.progress import counting
from relay.cli.shared import (
    PICKED_UP,
    account_option,
    config_option,
    database_settings,
    opened_store,
    parse_time_option,
    require_account,
    run_command,
    since_option,
)
from relay.errors import UnknownSubscription
from relay.models import Subscription, SubscriptionStatus, iso
from relay.store.values import ReplayQuery


@click.group()
def subscriptions() -> None:
    """List an account's subscriptions, replay events to one, enable or disable one."""


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
            await require_account(store, account_id)
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
            await require_account(store, account_id)
            plan = await operations.plan_replay(store, account_id, sub_id, query, now)
            if dry_run or not plan.count:
                return plan, 0
            with counting(f"replaying to {sub_id}", plan.count) as advance:
                replayed = await operations.run_replay(store, plan, now, batch, advance)
            return plan, replayed

    plan, replayed = run_command(run())
    target = f"{sub_id} ({plan.subscription.url})"
    if dry_run:
        click.echo(f"would replay {_events(plan.count)} to {target}")
    else:
        click.echo(f"replayed {_events(replayed)} to {target}")


@subscriptions.command(
    "enable", epilog=PICKED_UP, short_help="Send to a disabled subscription again."
)
@config_option
@click.argument("sub_id")
@account_option
@click.option(
    "--replay/--no-replay",
    default=True,
    show_default=True,
    help="Also send what it missed while disabled (from the oldest delivery it had pending).",
)
def subscriptions_enable(config: str | None, sub_id: str, account_id: str, replay: bool) -> None:
    """Enable a subscription: new events go to it again, and (unless --no-replay) the
    events it missed while disabled are replayed to it, showing progress."""
    settings = database_settings(config)
    now = datetime.now(UTC)

    async def run() -> tuple[Subscription, datetime | None, int]:
        async with opened_store(settings) as store:
            await require_account(store, account_id)
            enabled = await store.enable_subscription(account_id, sub_id, now)
            if enabled is None:
                raise UnknownSubscription(f"no subscription {sub_id} in account {account_id}")
            sub, missed_since = enabled
            if not replay or missed_since is None or missed_since >= now:
                return sub, missed_since, 0
            query = ReplayQuery(since=missed_since, until=now)
            plan = await operations.plan_replay(store, account_id, sub_id, query, now)
            if not plan.count:
                return sub, missed_since, 0
            with counting(f"replaying to {sub_id}", plan.count) as advance:
                replayed = await operations.run_replay(
                    store, plan, now, operations.REPLAY_BATCH, advance
                )
            return sub, missed_since, replayed

    sub, missed_since, replayed = run_command(run())
    click.echo(f"enabled {sub.id} ({sub.url})")
    if missed_since is not None and replay:
        click.echo(f"replayed {_events(replayed)} it missed since {iso(missed_since)}")
    elif missed_since is not None:
        click.echo(f"it missed events since {iso(missed_since)}; not replayed (--no-replay)")


@subscriptions.command("disable", short_help="Stop sending to a subscription.")
@config_option
@click.argument("sub_id")
@account_option
@click.option(
    "--reason",
    default="disabled by an operator (relay subscriptions disable)",
    show_default=True,
    help="Why, as `subscriptions list` and the API show it.",
)
def subscriptions_disable(config: str | None, sub_id: str, account_id: str, reason: str) -> None:
    """Disable a subscription: its pending deliveries stop and new events are not sent to
    it, on every relay instance, until `relay subscriptions enable` (which can replay what it
    missed)."""
    settings = database_settings(config)

    async def run() -> Subscription:
        async with opened_store(settings) as store:
            await require_account(store, account_id)
            disabled = await store.disable_subscription(
                account_id, sub_id, reason, datetime.now(UTC)
            )
            if disabled is None:
                raise UnknownSubscription(f"no subscription {sub_id} in account {account_id}")
            return disabled

    sub = run_command(run())
    click.echo(f"disabled {sub.id} ({sub.url}): {sub.disabled_reason or reason}")


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
