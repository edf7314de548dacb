"""Account commands: ``accounts create``, ``list``, ``keys``, ``rotate-key`` and
``revoke-key``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from relay.cli.shared import (
    config_option,
    database_settings,
    migrated_store,
    read_settings,
    run_command,
)
from relay.ids import new_id
from relay.keys import ApiKey, issue_key, key_id, shown_prefix
from relay.models import Account, iso
from relay.signing import API_KEY_PREFIX, generate_webhook_secret, hash_api_key
from relay.store.values import AccountSummary


@click.group()
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
    settings = read_settings(config)
    now = datetime.now(UTC)
    account = Account(id=new_id("acct"), name=name, created_at=now)
    issued = issue_key(account.id, now)
    secret = generate_webhook_secret()

    async def run() -> None:
        async with migrated_store(settings) as store:
            await store.create_account(account, issued.hash, secret, issued.key.prefix)

    run_command(run())
    click.echo(f"account:         {account.id} ({name})")
    click.echo(f"api key:         {issued.secret}")
    click.echo(f"key id:          {issued.key.id}")
    click.echo(f"callback secret: {secret}")
    click.echo("Keep both now: the relay stores only a hash of the key.", err=True)


@accounts.command("list", short_help="List every account.")
@config_option
def accounts_list(config: str | None) -> None:
    """List every account, oldest first: id, name, created at (UTC), and how many API keys
    work now (0: the account has no access until `relay accounts rotate-key` gives it one)."""
    settings = database_settings(config)

    async def run() -> list[AccountSummary]:
        async with migrated_store(settings) as store:
            return await store.list_accounts(datetime.now(UTC))

    found = run_command(run())
    if not found:
        click.echo("no accounts (`relay accounts create NAME` makes one)", err=True)
    for s in found:
        keys = "1 active key" if s.active_keys == 1 else f"{s.active_keys} active keys"
        click.echo(f"{s.account.id}  {s.account.name}  {iso(s.account.created_at)}  {keys}")


@accounts.command("keys", short_help="List an account's API keys (never the keys themselves).")
@config_option
@click.argument("account_id", metavar="ACCOUNT_ID")
def accounts_keys(config: str | None, account_id: str) -> None:
    """List an account's API keys, oldest first: key id, the key's first characters ('-' for
    keys issued before they were kept), when it was created (UTC), and whether it works:
    active, active until a time (a rotation's grace), or revoked at a time."""
    settings = database_settings(config)

    async def run() -> list[ApiKey]:
        async with migrated_store(settings) as store:
            return await store.list_api_keys(account_id)

    keys = run_command(run())
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
    settings = database_settings(config)
    now = datetime.now(UTC)
    issued = issue_key(account_id, now)

    async def run() -> None:
        async with migrated_store(settings) as store:
            await store.add_api_key(issued.key, issued.hash, others_until=now + grace)

    run_command(run())
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
    settings = database_settings(config)
    now = datetime.now(UTC)
    if ref.startswith(API_KEY_PREFIX) and len(ref) > len(shown_prefix(ref)):
        ref = key_id(hash_api_key(ref))  # the whole key: its id, without keeping it

    async def run() -> ApiKey | None:
        async with migrated_store(settings) as store:
            found = await store.find_api_keys(ref)
            if len(found) > 1:
                raise click.ClickException(
                    f"{ref} names {len(found)} keys ({', '.join(k.id for k in found)}): "
                    "give the key id"
                )
            if not found:
                return None
            return await store.revoke_api_key(found[0].account_id, found[0].id, now)

    key = run_command(run())
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
