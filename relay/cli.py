"""The ``relay`` command. Commands only parse options and call into the package."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from relay.config import Settings, load_settings, redacted
from relay.errors import RelayError
from relay.ids import new_id
from relay.models import Account
from relay.signing import generate_api_key, generate_webhook_secret, hash_api_key
from relay.store import open_store

T = TypeVar("T")


def _settings(config: str | None) -> Settings:
    try:
        return load_settings(config)
    except RelayError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


config_option = click.option(
    "--config", "-c", type=click.Path(dir_okay=False), default=None,
    help="YAML configuration file (default: $RELAY_CONFIG, else built-in defaults).")


@click.group()
@click.version_option(package_name="seedance-relay")
def main() -> None:
    """Seedance relay: tracks video tasks at providers and delivers signed webhooks."""


@main.command()
@config_option
@click.option("--host", default=None, help="Override server.host.")
@click.option("--port", type=int, default=None, help="Override server.port.")
def serve(config: str | None, host: str | None, port: int | None) -> None:
    """Run the relay (API, polling and delivery); migrates the database first."""
    import uvicorn

    from relay.app import check_runtime, create_app

    settings = _settings(config)
    try:
        check_runtime(settings)
    except RelayError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if overrides:
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update=overrides)})
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Every tick and every provider request at INFO would drown what matters.
    for noisy in ("apscheduler", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    uvicorn.run(create_app(settings), host=settings.server.host, port=settings.server.port,
                log_level=settings.log_level, timeout_graceful_shutdown=int(
                    settings.delivery.timeout) + 5)


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
    click.echo(f"applied migrations: {', '.join(map(str, applied))}" if applied
               else "the database is up to date")


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


@accounts.command("create")
@config_option
@click.argument("name")
def accounts_create(config: str | None, name: str) -> None:
    """Create an account; prints its API key and callback secret (shown only once)."""
    settings = _settings(config)
    account = Account(id=new_id("acct"), name=name, created_at=datetime.now(UTC))
    api_key = generate_api_key()
    secret = generate_webhook_secret()

    async def run() -> None:
        store = open_store(settings.database_url)
        try:
            await store.migrate()
            await store.create_account(account, hash_api_key(api_key), secret)
        finally:
            await store.close()

    _run(run())
    click.echo(f"account:         {account.id} ({name})")
    click.echo(f"api key:         {api_key}")
    click.echo(f"callback secret: {secret}")
    click.echo("Keep both now: the relay stores only a hash of the key.", err=True)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except RelayError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
