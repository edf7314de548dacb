"""Running the relay: ``serve``, ``migrate`` and ``check-config``."""

from __future__ import annotations

import json
import logging
import os

import click

from relay.cli.serving import RelayServer, StartupFailed, is_loopback, listen, one_line
from relay.cli.shared import config_option, read_settings, run_command
from relay.config.settings import Settings, redacted
from relay.config.startup_warnings import startup_warnings
from relay.errors import RelayError
from relay.logs import LOG_FORMATS, configure_logging
from relay.store import open_store

log = logging.getLogger("relay")

DEV_NETWORKS = ("127.0.0.0/8", "::1")
"""What ``--dev`` lets webhooks reach: receivers on this machine."""


@click.command()
@config_option
@click.option("--host", default=None, help="Override server.host.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Override server.port.")
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
@click.option(
    "--access-log/--no-access-log",
    default=None,
    help="Log one line per HTTP request (uvicorn's access log, at info); default: "
    "server.access_log, which is off.",
)
@click.option(
    "--dev",
    is_flag=True,
    help="For trying the relay on one machine: webhooks may also go to this machine "
    f"({', '.join(DEV_NETWORKS)}), which the network policy refuses otherwise. Serves on "
    "a loopback host only.",
)
def serve(
    config: str | None,
    host: str | None,
    port: int | None,
    role: str,
    log_format: str | None,
    access_log: bool | None,
    dev: bool,
) -> None:
    """Run the relay (API, polling and delivery); migrates the database first."""
    import uvicorn

    from relay.app import ROLES, check_runtime, create_app, own_address

    settings = read_settings(config)
    chosen = next(r for r in ROLES if r == role)
    try:
        check_runtime(settings, chosen)
    except RelayError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    overrides = {
        k: v
        for k, v in (("host", host), ("port", port), ("access_log", access_log))
        if v is not None
    }
    if overrides:
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update=overrides)}
        )
    if dev:
        settings = _dev_settings(settings)
    fmt = log_format or os.environ.get("RELAY_LOG_FORMAT") or "auto"
    if fmt not in LOG_FORMATS:
        raise click.ClickException(f"RELAY_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
    configure_logging(settings.log_level, next(f for f in LOG_FORMATS if f == fmt))
    try:
        sock = listen(settings.server.host, settings.server.port)
    except StartupFailed as exc:
        raise click.ClickException(str(exc)) from None
    if dev:
        log.warning(
            "--dev: webhooks may go to this machine (%s); never use it on a relay that "
            "others can reach",
            ", ".join(DEV_NETWORKS),
        )
    try:
        app = create_app(settings, role=chosen)
    except Exception as exc:
        sock.close()
        raise click.ClickException(one_line(exc)) from None
    address = own_address(settings)
    ready = f"relay ready on {address} as {chosen}"
    if chosen != "worker" and settings.dashboard.enabled:
        ready += f"; dashboard: {address}/dashboard/"
    server = RelayServer(
        # log_config=None: uvicorn's records go through the handler just configured.
        uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            log_level=settings.log_level,
            access_log=settings.server.access_log,
            timeout_graceful_shutdown=int(settings.delivery.timeout) + 5,
        ),
        lifespan=lambda: app.router.lifespan_context(app),
        ready=ready,
    )
    server.run(sockets=[sock])
    if server.failure is not None:
        raise click.ClickException(server.failure)


def _dev_settings(settings: Settings) -> Settings:
    if not is_loopback(settings.server.host):
        raise click.ClickException(
            f"--dev serves on a loopback host only (server.host is {settings.server.host}): "
            "it lets webhooks reach this machine, which a relay others can reach must not "
            "allow"
        )
    network = settings.network.model_validate(
        {
            **settings.network.model_dump(),
            "allow_networks": [*settings.network.allow_networks, *DEV_NETWORKS],
        }
    )
    return settings.model_copy(update={"network": network})


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
    """Validate the configuration and print it with secrets hidden; the warnings `relay
    serve` would log go to stderr, one a line."""
    from relay.app import check_runtime, own_address

    settings = read_settings(config)
    try:
        check_runtime(settings)
    except RelayError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    click.echo(json.dumps(redacted(settings), indent=2))
    for warning in startup_warnings(settings, own_address(settings)):
        click.echo(f"warning: {warning}", err=True)
