"""Running the relay: ``serve``, ``migrate`` and ``check-config``."""

from __future__ import annotations

import json
import os

import click

from relay.cli.shared import config_option, read_settings, run_command
from relay.config.settings import redacted
from relay.errors import RelayError
from relay.logs import LOG_FORMATS, configure_logging
from relay.store import open_store


@click.command()
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

    settings = read_settings(config)
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


@click.command()
@config_option
def migrate(config: str | None) -> None:
    """Bring the database schema up to date."""
    settings = read_settings(config)

    async def run() -> list[int]:
        store = open_store(settings.database_url)
        try:
            return await store.migrate()
        finally:
            await store.close()

    applied = run_command(run())
    click.echo(
        f"applied migrations: {', '.join(map(str, applied))}"
        if applied
        else "the database is up to date"
    )


@click.command("check-config")
@config_option
def check_config(config: str | None) -> None:
    """Validate the configuration and print it with secrets hidden."""
    from relay.app import check_runtime

    settings = read_settings(config)
    try:
        check_runtime(settings)
    except RelayError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    click.echo(json.dumps(redacted(settings), indent=2))
