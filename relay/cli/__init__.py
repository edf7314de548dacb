"""The ``relay`` command. Commands only parse options and call into the package; each
module holds one part of them, and this one puts them under ``main``."""

from __future__ import annotations

import click

from relay.cli import budgets as _budgets  # noqa: F401 - registers `accounts budget`
from relay.cli.accounts import accounts
from relay.cli.events import events
from relay.cli.listen import listen
from relay.cli.serve import check_config, migrate, serve
from relay.cli.subscriptions import subscriptions
from relay.cli.tasks import tasks


@click.group()
@click.version_option(package_name="seedance-relay")
def main() -> None:
    """Seedance relay: tracks video tasks at providers and delivers signed webhooks."""


main.add_command(serve)
main.add_command(migrate)
main.add_command(check_config)
main.add_command(accounts)
main.add_command(events)
main.add_command(subscriptions)
main.add_command(tasks)
main.add_command(listen)
