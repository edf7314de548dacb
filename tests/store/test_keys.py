"""The lifecycle of API keys and of the dashboard sessions they open (``AccountStore``), on
every backend: ids and prefixes, revocation, rotation with and without grace, the limits the
API relies on, sessions that end with their key or at sign-out, and keys issued before keys
had ids (migration 0006)."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from relay.errors import LastActiveKey, TooManyKeys, UnknownAccount
from relay.keys import ApiKey, issue_key, key_id
from relay.models import Account
from relay.store import open_store
from relay.store.interface import Store
from relay.store.postgres import runner as postgres_runner
from relay.store.schema import packaged_migrations
from relay.store.sqlite import runner as sqlite_runner
from tests.store.factories import NOW, at

ALICE_KEY = key_id("hash-alice")


def extra_key(account: Account, name: str, seconds: float, prefix: str | None = None) -> ApiKey:
    """A key of ``account`` whose hash is ``hash-<name>``, created ``seconds`` after NOW."""
    return ApiKey(key_id(f"hash-{name}"), account.id, prefix, at(seconds=seconds), None)


async def test_a_key_is_named_by_its_hash_and_shows_its_prefix(
    store: Store, alice: Account
) -> None:
    assert await store.list_api_keys(alice.id) == [ApiKey(ALICE_KEY, alice.id, None, NOW, None)]
    carol = Account(id="acc_carol", name="carol", created_at=NOW)
    issued = issue_key(carol.id, NOW)
    await store.create_account(carol, issued.hash, "whsec_carol", issued.key.prefix)
    assert await store.list_api_keys(carol.id) == [issued.key]
    assert issued.key.id == key_id(issued.hash)
    assert issued.key.prefix is not None
    assert issued.secret.startswith(issued.key.prefix)
    assert len(issued.key.prefix) == len("rk_") + 8
    assert await store.list_api_keys("acc_nobody") == []


async def test_a_revoked_key_stops_at_once_and_keeps_its_time(
    store: Store, alice: Account, bob: Account
) -> None:
    # Another account's key does not exist for the caller.
    assert await store.revoke_api_key(bob.id, ALICE_KEY, at(seconds=10)) is None
    assert await store.revoke_api_key(alice.id, "key_nothing", at(seconds=10)) is None
    assert await store.account_by_key_hash("hash-alice", at(seconds=10)) == alice

    revoked = await store.revoke_api_key(alice.id, ALICE_KEY, at(seconds=10))
    assert revoked == ApiKey(ALICE_KEY, alice.id, None, NOW, at(seconds=10))
    assert await store.account_by_key_hash("hash-alice", at(seconds=10)) is None
    assert await store.account_by_key_hash("hash-alice", at(days=30)) is None
    assert await store.account_by_key_hash("hash-bob", at(seconds=10)) == bob
    # Revoking again changes nothing.
    again = await store.revoke_api_key(alice.id, ALICE_KEY, at(seconds=99))
    assert again is not None
    assert again.revoked_at == at(seconds=10)


async def test_a_rotation_with_grace_keeps_the_old_key_until_it_ends(
    store: Store, alice: Account
) -> None:
    new = extra_key(alice, "alice-2", 1, prefix="rk_Abcdefgh")
    await store.add_api_key(new, "hash-alice-2", others_until=at(hours=1))
    assert await store.account_by_key_hash("hash-alice", at(minutes=59)) == alice
    assert await store.account_by_key_hash("hash-alice-2", at(minutes=59)) == alice
    assert await store.account_by_key_hash("hash-alice", at(hours=1)) is None
    assert await store.account_by_key_hash("hash-alice-2", at(hours=1)) == alice
    assert await store.list_api_keys(alice.id) == [
        ApiKey(ALICE_KEY, alice.id, None, NOW, at(hours=1)),
        new,
    ]
    # A revocation during the grace ends the old key at once, not at the grace's end.
    revoked = await store.revoke_api_key(alice.id, ALICE_KEY, at(minutes=5))
    assert revoked is not None
    assert revoked.revoked_at == at(minutes=5)
    assert await store.account_by_key_hash("hash-alice", at(minutes=6)) is None
    # A later rotation never extends a key that stops sooner.
    newest = extra_key(alice, "alice-3", 600)
    await store.add_api_key(newest, "hash-alice-3", others_until=at(days=1))
    keys = {k.id: k.revoked_at for k in await store.list_api_keys(alice.id)}
    assert keys == {ALICE_KEY: at(minutes=5), new.id: at(days=1), newest.id: None}


async def test_a_rotation_without_grace_stops_the_other_keys_at_once(
    store: Store, alice: Account, bob: Account
) -> None:
    new = extra_key(alice, "alice-2", 1)
    await store.add_api_key(new, "hash-alice-2", others_until=new.created_at)
    assert await store.account_by_key_hash("hash-alice", at(seconds=1)) is None
    assert await store.account_by_key_hash("hash-alice-2", at(seconds=1)) == alice
    assert await store.account_by_key_hash("hash-bob", at(seconds=1)) == bob  # not bob's


async def test_adding_a_key_is_refused_without_the_account_or_over_the_limit(
    store: Store, alice: Account
) -> None:
    ghost = Account(id="acc_ghost", name="ghost", created_at=NOW)
    with pytest.raises(UnknownAccount):
        await store.add_api_key(extra_key(ghost, "ghost", 1), "hash-ghost")
    await store.add_api_key(extra_key(alice, "alice-2", 1), "hash-alice-2", max_active=2)
    with pytest.raises(TooManyKeys):
        await store.add_api_key(extra_key(alice, "alice-3", 2), "hash-alice-3", max_active=2)
    assert await store.account_by_key_hash("hash-alice-3", at(seconds=3)) is None
    assert len(await store.list_api_keys(alice.id)) == 2
    # Revoked keys do not count.
    await store.revoke_api_key(alice.id, ALICE_KEY, at(seconds=3))
    await store.add_api_key(extra_key(alice, "alice-3", 4), "hash-alice-3", max_active=2)
    assert await store.account_by_key_hash("hash-alice-3", at(seconds=4)) == alice


async def test_keep_last_refuses_to_revoke_the_last_active_key(
    store: Store, alice: Account
) -> None:
    with pytest.raises(LastActiveKey):
        await store.revoke_api_key(alice.id, ALICE_KEY, at(seconds=1), keep_last=True)
    assert await store.account_by_key_hash("hash-alice", at(seconds=1)) == alice
    await store.add_api_key(extra_key(alice, "alice-2", 2), "hash-alice-2")
    revoked = await store.revoke_api_key(alice.id, ALICE_KEY, at(seconds=3), keep_last=True)
    assert revoked is not None
    assert revoked.revoked_at == at(seconds=3)
    with pytest.raises(LastActiveKey):
        await store.revoke_api_key(alice.id, key_id("hash-alice-2"), at(seconds=4), keep_last=True)
    # An already revoked key is no last key: revoking it again is harmless.
    again = await store.revoke_api_key(alice.id, ALICE_KEY, at(seconds=5), keep_last=True)
    assert again is not None
    assert again.revoked_at == at(seconds=3)


async def test_keys_are_found_by_id_or_prefix_in_any_account(
    store: Store, alice: Account, bob: Account
) -> None:
    mine = extra_key(alice, "alice-2", 1, prefix="rk_Samesame")
    theirs = extra_key(bob, "bob-2", 2, prefix="rk_Samesame")
    await store.add_api_key(mine, "hash-alice-2")
    await store.add_api_key(theirs, "hash-bob-2")
    assert await store.find_api_keys(mine.id) == [mine]
    assert await store.find_api_keys(ALICE_KEY) == [ApiKey(ALICE_KEY, alice.id, None, NOW, None)]
    assert await store.find_api_keys("rk_Samesame") == [mine, theirs]
    assert await store.find_api_keys("rk_Nothing") == []


async def test_a_dashboard_session_holds_until_sign_out_expiry_or_its_key_ends(
    store: Store, alice: Account, bob: Account
) -> None:
    await store.open_dashboard_session("s-out", ALICE_KEY, NOW, at(hours=12))
    await store.open_dashboard_session("s-revoked", ALICE_KEY, NOW, at(hours=12))
    await store.open_dashboard_session("s-bob", key_id("hash-bob"), NOW, at(hours=12))
    await store.open_dashboard_session("s-nokey", "key_nothing", NOW, at(hours=12))
    assert await store.dashboard_session_account("s-out", at(hours=1)) == alice.id
    assert await store.dashboard_session_account("s-bob", at(hours=1)) == bob.id
    assert await store.dashboard_session_account("s-nokey", at(hours=1)) is None
    assert await store.dashboard_session_account("s-unknown", at(hours=1)) is None

    await store.end_dashboard_session("s-out")
    assert await store.dashboard_session_account("s-out", at(hours=1)) is None
    assert await store.dashboard_session_account("s-revoked", at(hours=1)) == alice.id

    await store.revoke_api_key(alice.id, ALICE_KEY, at(hours=2))
    assert await store.dashboard_session_account("s-revoked", at(hours=2)) is None
    assert await store.dashboard_session_account("s-bob", at(hours=2)) == bob.id
    assert await store.dashboard_session_account("s-bob", at(hours=12)) is None  # expired


async def test_a_sign_in_forgets_the_expired_sessions(store: Store, bob: Account) -> None:
    bob_key = key_id("hash-bob")
    await store.open_dashboard_session("s-old", bob_key, NOW, at(hours=12))
    await store.open_dashboard_session("s-new", bob_key, at(hours=13), at(hours=25))
    # Asked as of a time it still held: the row is gone.
    assert await store.dashboard_session_account("s-old", at(hours=1)) is None
    assert await store.dashboard_session_account("s-new", at(hours=14)) == bob.id


def stop_before_key_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Migrations stop short of 0006 until ``monkeypatch.undo()``."""

    def older(package: str) -> list[tuple[int, str, str]]:
        return [m for m in packaged_migrations(package) if m[0] < 6]

    monkeypatch.setattr(sqlite_runner, "packaged_migrations", older)
    monkeypatch.setattr(postgres_runner, "packaged_migrations", older)


async def test_keys_issued_before_ids_get_theirs_from_the_migration(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop_before_key_ids(monkeypatch)
    old = open_store(database_url)
    await old.migrate()
    await old.close()
    rows = [
        "INSERT INTO accounts (id, name, callback_secret, created_at) "
        f"VALUES ('acc_old', 'old', 'whsec_old', {NOW.timestamp()})",
        "INSERT INTO api_keys (key_hash, account_id, created_at) "
        f"VALUES ('{'ab' * 32}', 'acc_old', {NOW.timestamp()})",
    ]
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            for row in rows:
                conn.execute(row)
        conn.close()
    else:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as pg:
            for row in rows:
                await pg.execute(row.encode())
    monkeypatch.undo()

    store = open_store(database_url)
    try:
        assert 6 in await store.migrate()
        old_key = ApiKey(key_id("ab" * 32), "acc_old", None, NOW, None)
        assert await store.list_api_keys("acc_old") == [old_key]
        found = await store.account_by_key_hash("ab" * 32, NOW)
        assert found is not None
        assert found.id == "acc_old"
        assert await store.revoke_api_key("acc_old", old_key.id, at(seconds=1)) is not None
        assert await store.account_by_key_hash("ab" * 32, at(seconds=1)) is None
    finally:
        await store.close()
