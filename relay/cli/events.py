"""Operator commands on an account's event feed: ``events list`` and ``events redeliver``."""

from __future__ import annotations

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
    require_account,
    run_command,
    since_option,
)
from relay.models import Delivery, DeliveryStatus, Event, EventType, iso
from relay.store.values import EventQuery


@click.group()
def events() -> None:
    """Read an account's event feed and send events again."""


@events.command("list", short_help="List an account's events, newest first.")
@config_option
@account_option
@click.option(
    "--type",
    "event_type",
    type=click.Choice([t.value for t in EventType]),
    default=None,
    help="Only events of this type.",
)
@click.option("--task-id", default=None, help="Only events of this task.")
@since_option
@click.option(
    "--until",
    metavar="TIME",
    callback=parse_time_option,
    help="Only events created before this time (ISO 8601; no offset means UTC).",
)
@click.option(
    "--failed",
    is_flag=True,
    help="Only events with a delivery that failed (gave up after its whole retry "
    "schedule): what a receiver missed.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Print at most this many events.",
)
def events_list(
    config: str | None,
    account_id: str,
    event_type: str | None,
    task_id: str | None,
    since: datetime | None,
    until: datetime | None,
    failed: bool,
    limit: int,
) -> None:
    """List an account's events, newest first: id, type, task id, created at (UTC)."""
    settings = database_settings(config)
    query = EventQuery(
        type=EventType(event_type) if event_type else None,
        task_id=task_id,
        since=since,
        until=until,
        delivery_status=DeliveryStatus.FAILED if failed else None,
    )

    async def run() -> int:
        printed = 0
        async with opened_store(settings) as store:
            await require_account(store, account_id)
            async for event in operations.iter_events(store, account_id, query, limit):
                click.echo(_event_line(event))
                printed += 1
        return printed

    if not run_command(run()):
        click.echo("no events match", err=True)


@events.command("redeliver", epilog=PICKED_UP, short_help="Send a stored event again.")
@config_option
@click.argument("event_id")
@account_option
@click.option(
    "--destination",
    "destination_id",
    default=None,
    metavar="DST_ID",
    help="Send it only to this destination (a subscription id or a task callback's "
    "destination id); default: every active destination it was sent to.",
)
def events_redeliver(
    config: str | None, event_id: str, account_id: str, destination_id: str | None
) -> None:
    """Send a stored event again: one new delivery per destination; prints them."""
    settings = database_settings(config)

    async def run() -> list[Delivery]:
        async with opened_store(settings) as store:
            await require_account(store, account_id)
            return await operations.redeliver(
                store, account_id, event_id, destination_id, datetime.now(UTC)
            )

    for delivery in run_command(run()):
        click.echo(
            f"{delivery.id}  {delivery.destination_id}  {delivery.status.value}  {delivery.url}"
        )


def _event_line(event: Event) -> str:
    return f"{event.id}  {event.type.value:<14}  {event.task_id or '-'}  {iso(event.created_at)}"
