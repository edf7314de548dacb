"""``key_holder_by_hash``, on every backend: the account and the key (when it stops
working, which bounds how long an instance may keep it: ``relay.keys.KeyCache``), only while
the key is active."""

from __future__ import annotations

from datetime import timedelta

from relay.keys import ApiKey, KeyHolder, key_id
from relay.models import Account
from relay.store.interface import Store
from tests.store.factories import NOW, at


async def test_the_holder_of_an_active_key_with_when_it_stops(
    store: Store, alice: Account, bob: Account
) -> None:
    alice_key = ApiKey(key_id("hash-alice"), alice.id, None, NOW, None)
    assert await store.key_holder_by_hash("hash-alice", NOW) == KeyHolder(alice, alice_key)
    assert await store.key_holder_by_hash("hash-nobody", NOW) is None

    # A rotation with grace: the old key works until the grace ends, and says when.
    second = ApiKey(key_id("hash-alice-2"), alice.id, "rk_abcdefgh", at(seconds=1), None)
    await store.add_api_key(second, "hash-alice-2", others_until=at(hours=1))
    held = await store.key_holder_by_hash("hash-alice", at(minutes=59))
    assert held == KeyHolder(alice, ApiKey(alice_key.id, alice.id, None, NOW, at(hours=1)))
    assert await store.key_holder_by_hash("hash-alice", at(hours=1)) is None
    assert await store.key_holder_by_hash("hash-alice-2", at(hours=1)) == KeyHolder(alice, second)

    await store.revoke_api_key(bob.id, key_id("hash-bob"), at(seconds=10))
    assert await store.key_holder_by_hash("hash-bob", at(seconds=10)) is None
    assert await store.key_holder_by_hash("hash-bob", at(seconds=10) - timedelta(seconds=1))
