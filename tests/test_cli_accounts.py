"""The account commands ``relay accounts create | keys | rotate-key | revoke-key``, run through
click's ``CliRunner`` against a real SQLite file; whether a key still opens its account is
asked of the store, as the API asks it on every request."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner, Result

from relay.cli import main
from relay.keys import ApiKey, key_id
from relay.models import Account
from relay.signing import hash_api_key
from relay.store import open_store
from relay.store.interface import Store

T = TypeVar("T")
KEY_LINE = re.compile(r"^api key:\s+(\S+)$", re.MULTILINE)
ID_LINE = re.compile(r"^key id:\s+(\S+)$", re.MULTILINE)
ACCOUNT_LINE = re.compile(r"^account:\s+(\S+) ", re.MULTILINE)


@dataclass(frozen=True)
class Relay:
    path: Path
    config: Path

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(main, [*args, "--config", str(self.config)])

    def store(self, fn: Callable[[Store], Awaitable[T]]) -> T:
        async def go() -> T:
            store = open_store(f"sqlite:///{self.path}")
            try:
                return await fn(store)
            finally:
                await store.close()

        return asyncio.run(go())

    def opens(self, key: str, after: float = 0) -> str | None:
        """The account id ``key`` opens now (or ``after`` seconds from now), if any."""
        when = datetime.now(UTC) + timedelta(seconds=after)
        account = self.store(lambda s: s.account_by_key_hash(hash_api_key(key), when))
        return account.id if account else None

    def create(self, name: str) -> tuple[str, str, str]:
        """``accounts create``: the account id, its API key and the key's id."""
        done = self.run("accounts", "create", name)
        assert done.exit_code == 0, done.output
        return _found(ACCOUNT_LINE, done), _found(KEY_LINE, done), _found(ID_LINE, done)

    def rotate(self, account_id: str, *options: str) -> tuple[str, str, Result]:
        done = self.run("accounts", "rotate-key", account_id, *options)
        assert done.exit_code == 0, done.output
        return _found(KEY_LINE, done), _found(ID_LINE, done), done

    def keys(self, account_id: str) -> list[str]:
        done = self.run("accounts", "keys", account_id)
        assert done.exit_code == 0, done.output
        return done.stdout.splitlines()


def _found(pattern: re.Pattern[str], result: Result) -> str:
    match = pattern.search(result.stdout)
    assert match, result.output
    return match.group(1)


@pytest.fixture
def relay(tmp_path: Path) -> Relay:
    config = tmp_path / "relay.yaml"
    config.write_text(f"database_url: sqlite:///{tmp_path / 'relay.db'}\n", encoding="utf-8")
    return Relay(tmp_path / "relay.db", config)


def test_keys_lists_ids_and_prefixes_never_the_key(relay: Relay) -> None:
    account_id, key, kid = relay.create("acme")
    assert kid == key_id(hash_api_key(key))
    (line,) = relay.keys(account_id)
    assert line.split() == [kid, key[:11], line.split()[2], "active"]
    assert key not in line
    assert hash_api_key(key) not in line


def test_rotate_key_stops_the_other_keys_at_once_by_default(relay: Relay) -> None:
    account_id, old, old_id = relay.create("acme")
    _, other, _ = relay.create("other")
    new, new_id, done = relay.rotate(account_id)
    assert "stopped working" in done.stderr
    assert relay.opens(old) is None
    assert relay.opens(new) == account_id
    assert relay.opens(other) is not None  # another account's key is untouched
    first, second = relay.keys(account_id)
    assert first.startswith(old_id)
    assert " revoked " in first
    assert second.startswith(new_id)
    assert second.endswith("active")


def test_rotate_key_with_grace_keeps_the_old_key_until_it_ends(relay: Relay) -> None:
    account_id, old, _ = relay.create("acme")
    new, _, done = relay.rotate(account_id, "--grace", "1h")
    assert "keep working until" in done.stderr
    assert relay.opens(old) == account_id
    assert relay.opens(old, after=3590) == account_id
    assert relay.opens(old, after=3610) is None
    assert relay.opens(new, after=3610) == account_id
    assert " active until " in relay.keys(account_id)[0]


def test_revoke_key_by_id_by_prefix_or_by_the_key_itself(relay: Relay) -> None:
    account_id, first, first_id = relay.create("acme")
    second, _, _ = relay.rotate(account_id, "--grace", "1d")
    third, _, _ = relay.rotate(account_id, "--grace", "1d")
    for ref, key in ((first_id, first), (second[:11], second), (third, third)):
        done = relay.run("accounts", "revoke-key", ref)
        assert done.exit_code == 0, done.output
        assert done.stdout.startswith("revoked key_")
        assert relay.opens(key) is None, ref
    assert third not in done.output  # the key itself is never printed back
    again = relay.run("accounts", "revoke-key", first_id)
    assert again.exit_code == 0
    assert "already revoked" in again.stdout


def test_revoke_key_refuses_an_unknown_or_ambiguous_name(relay: Relay) -> None:
    account_id, key, _ = relay.create("acme")
    missing = relay.run("accounts", "revoke-key", "key_nothing")
    assert missing.exit_code == 1
    assert "no API key key_nothing" in missing.output

    now = datetime.now(UTC)
    twin = ApiKey(key_id("hash-twin"), account_id, key[:11], now, None)
    relay.store(lambda s: s.add_api_key(twin, "hash-twin"))
    ambiguous = relay.run("accounts", "revoke-key", key[:11])
    assert ambiguous.exit_code == 1
    assert "names 2 keys" in ambiguous.output
    assert relay.opens(key) == account_id  # nothing revoked


def test_account_commands_refuse_bad_input(relay: Relay) -> None:
    relay.store(lambda s: s.migrate())
    nobody = relay.run("accounts", "rotate-key", "acct_nobody")
    assert nobody.exit_code == 1
    assert "no account acct_nobody" in nobody.output
    listing = relay.run("accounts", "keys", "acct_nobody")
    assert listing.exit_code == 1
    assert "no account acct_nobody" in listing.output
    account_id, _, _ = relay.create("acme")
    for grace in ("-5", "2y", "nan", "400d", ""):
        refused = relay.run("accounts", "rotate-key", account_id, "--grace", grace)
        assert refused.exit_code == 2, grace
        assert "is not a duration" in refused.output
    assert len(relay.keys(account_id)) == 1  # nothing issued


def test_an_account_created_before_key_ids_is_listed_by_its_hash(relay: Relay) -> None:
    """An account made through the store without a prefix (as older relays made them)."""

    async def legacy(store: Store) -> None:
        await store.migrate()
        account = Account("acc_old", "old", datetime.now(UTC))
        await store.create_account(account, hash_api_key("rk_old-key"), "whsec_b2xk")

    relay.store(legacy)
    (line,) = relay.keys("acc_old")
    assert line.split()[:2] == [key_id(hash_api_key("rk_old-key")), "-"]
