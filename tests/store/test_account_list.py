"""``list_accounts`` on every backend: what ``relay accounts list`` shows, every account
oldest first with how many of its keys work at the time asked about."""

from __future__ import annotations

from relay.keys import ApiKey, key_id
from relay.models import Account
from relay.store.interface import Store
from relay.store.values import AccountSummary
from tests.store.factories import NOW, at


async def test_accounts_are_listed_oldest_first_with_their_active_keys(
    store: Store, alice: Account, bob: Account
) -> None:
    assert await store.list_accounts(NOW) == [AccountSummary(alice, 1), AccountSummary(bob, 1)]

    # A rotation with an hour's grace: two keys work until it ends, then one.
    rotated = ApiKey(key_id("hash-alice-2"), alice.id, None, at(seconds=10), None)
    await store.add_api_key(rotated, "hash-alice-2", others_until=at(seconds=3600))
    assert (await store.list_accounts(at(seconds=20)))[0] == AccountSummary(alice, 2)
    assert (await store.list_accounts(at(seconds=3601)))[0] == AccountSummary(alice, 1)

    # An account whose every key is revoked is still listed, with none.
    await store.revoke_api_key(bob.id, key_id("hash-bob"), at(seconds=30))
    assert (await store.list_accounts(at(seconds=31)))[1] == AccountSummary(bob, 0)


async def test_no_accounts_is_an_empty_list(store: Store) -> None:
    assert await store.list_accounts(NOW) == []
