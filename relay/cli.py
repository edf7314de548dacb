"""The ``relay`` command. Commands only parse options and call into the package."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click

from relay import operator_actions as operations
from relay.config.settings import Settings, load_settings, redacted
from relay.errors import RelayError
from relay.ids import new_id
from relay.keys import ApiKey, issue_key, key_id, shown_prefix
from relay.logs import LOG_FORMATS, configure_logging
from relay.models import (
    Account,
    Delivery,
    DeliveryStatus,
    Event,
    EventType,
    Subscription,
    SubscriptionStatus,
    iso,
)
from relay.signing import API_KEY_PREFIX, generate_webhook_secret, hash_api_key
from relay.store import open_store
from relay.store.interface import EventQuery, ReplayQuery, Store

T = TypeVar("T")


def _settings(config: str | None) -> Settings:
    try:
        return load_settings(config)
    except RelayError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


config_option = click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML configuration file (default: $RELAY_CONFIG, else built-in defaults).",
)


@click.group()
@click.version_option(package_name="seedance-relay")
def main() -> None:
    """Seedance relay: tracks video tasks at providers and delivers signed webhooks."""


@main.command()
@config_option
@click.option("--host", default=None, help="Override server.host.")
@click.option("--port", type=int, default=None, help="Override server.port.")
@click.option(
    "--role",
    type=click.Choice(["all", "api", "worker"]),
    default="all",
    show_default=True,
    help="api: the HTTP API only; worker: polling and delivery (serving only "
    "/healthz, /readyz and /metrics); all: both. api and worker need "
    "PostgreSQL.",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default=None,
    help="Log lines as JSON (one object a line) or text (for people); default: "
    "$RELAY_LOG_FORMAT, else text on a terminal and JSON otherwise.",
)
def serve(
    config: str | None, host: str | None, port: int | None, role: str, log_format: str | None
) -> None:
    """Run the relay (API, polling and delivery); migrates the database first."""
    import uvicorn

    from relay.app import ROLES, check_runtime, create_app

    settings = _settings(config)
    chosen = next(r for r in ROLES if r == role)
    try:
        check_runtime(settings, chosen)
    except RelayError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if overrides:
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update=overrides)}
        )
    fmt = log_format or os.environ.get("RELAY_LOG_FORMAT") or "auto"
    if fmt not in LOG_FORMATS:
        raise click.ClickException(f"RELAY_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
    configure_logging(settings.log_level, next(f for f in LOG_FORMATS if f == fmt))
    # log_config=None: uvicorn's records go through the handler just configured.
    uvicorn.run(
        create_app(settings, role=chosen),
        host=settings.server.host,
        port=settings.server.port,
        log_config=None,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.delivery.timeout) + 5,
    )


@main.command()
@config_option
def migrate(config: str | None) -> None:
    """Bring the database schema up to date."""
    settings = _settings(config)

    async def run() -> list[int]:
        store = open_store(settings.database_url)
        try:
            return await store.migrate()
        finally:
            await store.close()

    applied = _run(run())
    click.echo(
        f"applied migrations: {', '.join(map(str, applied))}"
        if applied
        else "the database is up to date"
    )


@main.command("check-config")
@config_option
def check_config(config: str | None) -> None:
    """Validate the configuration and print it with secrets hidden."""
    from relay.app import check_runtime

    settings = _settings(config)
    try:
        check_runtime(settings)
    except RelayError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    click.echo(json.dumps(redacted(settings), indent=2))


@main.group()
def accounts() -> None:
    """Manage accounts."""


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
    text = value.strip().lower()
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 365 * 86_400:
        raise click.BadParameter(
            f"{value!r} is not a duration from 0 to 365d (e.g. 90s, 30m, 12h, 7d)", ctx, param
        )
    return timedelta(seconds=seconds)


@accounts.command("create")
@config_option
@click.argument("name")
def accounts_create(config: str | None, name: str) -> None:
    """Create an account; prints its API key and callback secret (shown only once)."""
    settings = _settings(config)
    now = datetime.now(UTC)
    account = Account(id=new_id("acct"), name=name, created_at=now)
    issued = issue_key(account.id, now)
    secret = generate_webhook_secret()

    async def run() -> None:
        async with _migrated_store(settings) as store:
            await store.create_account(account, issued.hash, secret, issued.key.prefix)

    _run(run())
    click.echo(f"account:         {account.id} ({name})")
    click.echo(f"api key:         {issued.secret}")
    click.echo(f"key id:          {issued.key.id}")
    click.echo(f"callback secret: {secret}")
    click.echo("Keep both now: the relay stores only a hash of the key.", err=True)


@accounts.command("keys", short_help="List an account's API keys (never the keys themselves).")
@config_option
@click.argument("account_id", metavar="ACCOUNT_ID")
def accounts_keys(config: str | None, account_id: str) -> None:
    """List an account's API keys, oldest first: key id, the key's first characters ('-' for
    keys issued before they were kept), when it was created (UTC), and whether it works:
    active, active until a time (a rotation's grace), or revoked at a time."""
    settings = _database_settings(config)

    async def run() -> list[ApiKey]:
        async with _migrated_store(settings) as store:
            return await store.list_api_keys(account_id)

    keys = _run(run())
    if not keys:
        raise click.ClickException(f"no account {account_id}")
    now = datetime.now(UTC)
    for key in keys:
        click.echo(_key_line(key, now))


@accounts.command("rotate-key", short_help="Issue a new API key; the old ones stop.")
@config_option
@click.argument("account_id", metavar="ACCOUNT_ID")
@click.option(
    "--grace",
    metavar="DURATION",
    callback=_duration,
    default="0",
    show_default=True,
    help="How long the account's other keys keep working (e.g. 90s, 30m, 12h, 7d; a bare "
    "number is seconds). 0: they stop at once, and with them every dashboard session they "
    "opened.",
)
def accounts_rotate_key(config: str | None, account_id: str, grace: timedelta) -> None:
    """Issue a new API key for the account and print it (shown only once). The account's
    other keys stop working at once, or after --grace: long enough to deploy the new key, for
    a rotation that is not urgent. A key thought leaked should stop at once (the default)."""
    settings = _database_settings(config)
    now = datetime.now(UTC)
    issued = issue_key(account_id, now)

    async def run() -> None:
        async with _migrated_store(settings) as store:
            await store.add_api_key(issued.key, issued.hash, others_until=now + grace)

    _run(run())
    click.echo(f"api key:         {issued.secret}")
    click.echo(f"key id:          {issued.key.id}")
    if grace:
        click.echo(f"The account's other keys keep working until {iso(now + grace)}.", err=True)
    else:
        click.echo("The account's other keys stopped working.", err=True)
    click.echo("Keep the key now: the relay stores only a hash of it.", err=True)


@accounts.command("revoke-key", short_help="Stop an API key at once.")
@config_option
@click.argument("ref", metavar="KEY_ID_OR_PREFIX")
def accounts_revoke_key(config: str | None, ref: str) -> None:
    """Stop one API key at once: its requests are refused (401) and the dashboard sessions
    it opened end, on every relay instance, from their next request on. Name it by its key
    id, by its first characters as `relay accounts keys` shows them, or by the key itself.
    Revoking an account's last key leaves the account without access until
    `relay accounts rotate-key` issues a new one."""
    settings = _database_settings(config)
    now = datetime.now(UTC)
    if ref.startswith(API_KEY_PREFIX) and len(ref) > len(shown_prefix(ref)):
        ref = key_id(hash_api_key(ref))  # the whole key: its id, without keeping it

    async def run() -> ApiKey | None:
        async with _migrated_store(settings) as store:
            found = await store.find_api_keys(ref)
            if len(found) > 1:
                raise click.ClickException(
                    f"{ref} names {len(found)} keys ({', '.join(k.id for k in found)}): "
                    "give the key id"
                )
            if not found:
                return None
            return await store.revoke_api_key(found[0].account_id, found[0].id, now)

    key = _run(run())
    if key is None:
        raise click.ClickException(f"no API key {ref}")
    assert key.revoked_at is not None
    if key.revoked_at < now:
        click.echo(
            f"{key.id} (account {key.account_id}) was already revoked at {iso(key.revoked_at)}"
        )
    else:
        click.echo(f"revoked {key.id} (account {key.account_id}) at {iso(key.revoked_at)}")


def _key_line(key: ApiKey, now: datetime) -> str:
    if key.revoked_at is None:
        state = "active"
    elif key.active(now):
        state = f"active until {iso(key.revoked_at)}"
    else:
        state = f"revoked {iso(key.revoked_at)}"
    return f"{key.id}  {key.prefix or '-':<11}  {iso(key.created_at)}  {state}"


PICKED_UP = (
    "A running relay (`relay serve` on the same database) sends the new deliveries "
    "by itself at its next delivery tick (delivery.tick_seconds, 1 s by default)."
)


def _time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """ISO 8601 with ``Z`` or an offset; without one, UTC."""
    if value is None:
        return None
    try:
        return operations.parse_time(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time (e.g. 2026-06-01T12:00:00Z, "
            "2026-06-01T14:00+02:00, or 2026-06-01 for midnight UTC)",
            ctx,
            param,
        ) from None


account_option = click.option(
    "--account",
    "-a",
    "account_id",
    required=True,
    metavar="ACCOUNT_ID",
    help="The account whose events or subscriptions these are.",
)
since_option = click.option(
    "--since",
    metavar="TIME",
    callback=_time,
    help="Only events created at or after this time (ISO 8601; no offset means UTC).",
)


@main.group()
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
    callback=_time,
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
    settings = _database_settings(config)
    query = EventQuery(
        type=EventType(event_type) if event_type else None,
        task_id=task_id,
        since=since,
        until=until,
        delivery_status=DeliveryStatus.FAILED if failed else None,
    )

    async def run() -> int:
        printed = 0
        async with _store(settings) as store:
            async for event in operations.iter_events(store, account_id, query, limit):
                click.echo(_event_line(event))
                printed += 1
        return printed

    if not _run(run()):
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
    settings = _database_settings(config)

    async def run() -> list[Delivery]:
        async with _store(settings) as store:
            return await operations.redeliver(
                store, account_id, event_id, destination_id, datetime.now(UTC)
            )

    for delivery in _run(run()):
        click.echo(
            f"{delivery.id}  {delivery.destination_id}  {delivery.status.value}  {delivery.url}"
        )


@main.group()
def subscriptions() -> None:
    """List an account's subscriptions and replay events to one."""


@subscriptions.command("list", short_help="List an account's subscriptions.")
@config_option
@account_option
def subscriptions_list(config: str | None, account_id: str) -> None:
    """List an account's subscriptions, newest first: id, status, url, event types, and
    since when it fails or why it was disabled."""
    settings = _database_settings(config)

    async def run() -> int:
        printed = 0
        async with _store(settings) as store:
            async for subscription in operations.iter_subscriptions(store, account_id):
                click.echo(_subscription_line(subscription))
                printed += 1
        return printed

    if not _run(run()):
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
    callback=_time,
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
    settings = _database_settings(config)
    now = datetime.now(UTC)
    query = ReplayQuery(since=since, until=until, only_failed=only_failed)

    async def run() -> tuple[operations.ReplayPlan, int]:
        async with _store(settings) as store:
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

    plan, replayed = _run(run())
    target = f"{sub_id} ({plan.subscription.url})"
    if dry_run:
        click.echo(f"would replay {_events(plan.count)} to {target}")
    else:
        click.echo(f"replayed {_events(replayed)} to {target}")


def _database_settings(config: str | None) -> Settings:
    """Settings for a command that works on an existing database (never creates one)."""
    settings = _settings(config)
    path = settings.sqlite_path
    if path is not None and not os.path.exists(path):
        raise click.ClickException(
            f"no database at {path}: check database_url, or run `relay migrate` first"
        )
    return settings


@asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[Store]:
    store = open_store(settings.database_url)
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def _migrated_store(settings: Settings) -> AsyncIterator[Store]:
    """For the account commands, which an operator may run before the relay that would
    migrate (a new database, or the first command after an upgrade)."""
    async with _store(settings) as store:
        await store.migrate()
        yield store


def _event_line(event: Event) -> str:
    return f"{event.id}  {event.type.value:<14}  {event.task_id or '-'}  {iso(event.created_at)}"


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


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except RelayError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
