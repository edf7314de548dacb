"""What the command modules share: the common options, loading settings, opening the store
and running a command's coroutine."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

import click

from relay import operator_actions as operations
from relay.config.settings import Settings, load_settings
from relay.errors import RelayError, UnknownAccount
from relay.store import open_store
from relay.store.interface import Store

T = TypeVar("T")

config_option = click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML configuration file (default: $RELAY_CONFIG, else built-in defaults).",
)


def parse_time_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> datetime | None:
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
    callback=parse_time_option,
    help="Only events created at or after this time (ISO 8601; no offset means UTC).",
)

PICKED_UP = (
    "A running relay (`relay serve` on the same database) sends the new deliveries "
    "by itself at its next delivery tick (delivery.tick_seconds, 1 s by default)."
)


def read_settings(config: str | None) -> Settings:
    try:
        return load_settings(config)
    except RelayError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


def database_settings(config: str | None) -> Settings:
    """Settings for a command that works on an existing database (never creates one)."""
    settings = read_settings(config)
    path = settings.sqlite_path
    if path is not None and not os.path.exists(path):
        raise click.ClickException(
            f"no database at {path}: check database_url, or run `relay migrate` first"
        )
    return settings


@asynccontextmanager
async def opened_store(settings: Settings) -> AsyncIterator[Store]:
    store = open_store(settings.database_url)
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def migrated_store(settings: Settings) -> AsyncIterator[Store]:
    """For the account commands, which an operator may run before the relay that would
    migrate (a new database, or the first command after an upgrade)."""
    async with opened_store(settings) as store:
        await store.migrate()
        yield store


async def require_account(store: Store, account_id: str) -> None:
    """Refuse an account id that names no account: a typo must not read as "nothing found"."""
    if await store.callback_secret(account_id) is None:
        raise UnknownAccount(f"no account {account_id} (`relay accounts list` shows them)")


def run_command(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except RelayError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
