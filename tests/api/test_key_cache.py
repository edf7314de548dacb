"""API keys are kept a few seconds by the instance that looked them up (issue 17 item 4): a
key revoked on that instance is refused from its next request on, one revoked elsewhere (the
CLI, another instance: the same database, not this instance's cache) once
``limits.api_key_cache_seconds`` has passed on the relay's clock, and no kept key outlives
the moment it stops working. Real app in-process with a test clock; the cache alone for its
bounds."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from click.testing import CliRunner

from relay import cli
from relay.keys import ApiKey, KeyCache, KeyHolder, key_id
from relay.models import Account as StoredAccount
from relay.signing import hash_api_key
from tests.clock import FakeClock
from tests.e2e.harness import InProcessRelay, free_port, relay_config, write_config

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def operator(relay: InProcessRelay, *args: str) -> None:
    """``relay accounts …`` on the relay's database: another process's write."""

    def run() -> None:
        result = CliRunner().invoke(cli.main, [*args, "--config", str(relay.config_path)])
        assert result.exit_code == 0, result.output

    await asyncio.to_thread(run)


async def started(tmp_path: Path, clock: FakeClock, **limits: object) -> InProcessRelay:
    config = relay_config(tmp_path, free_port(), limits=limits)
    relay = InProcessRelay(config, write_config(tmp_path, config), listen=False, clock=clock)
    return await relay.start()


def refused(response: httpx.Response) -> bool:
    return response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


async def test_a_key_revoked_on_this_instance_is_refused_at_once(tmp_path: Path) -> None:
    clock = FakeClock(datetime.now(UTC))
    relay = await started(tmp_path, clock)
    try:
        alice = await relay.account("alice")
        async with relay.client(alice) as first:
            assert (await first.get("/v1/me")).status_code == 200  # kept from here on
            second = (await first.post("/v1/keys")).json()["key"]
            async with relay.client(headers={"Authorization": f"Bearer {second}"}) as other:
                assert (await other.get("/v1/me")).status_code == 200
                first_id = key_id(hash_api_key(alice.api_key))
                assert (await other.delete(f"/v1/keys/{first_id}")).status_code == 200
                assert refused(await first.get("/v1/me"))  # no time has passed
                assert (await other.get("/v1/me")).status_code == 200
    finally:
        await relay.stop()


async def test_a_key_revoked_elsewhere_is_refused_once_the_cache_time_has_passed(
    tmp_path: Path,
) -> None:
    start = datetime.now(UTC)
    clock = FakeClock(start)
    relay = await started(tmp_path, clock, api_key_cache_seconds=60)
    try:
        alice = await relay.account("alice")
        async with relay.client(alice) as client:
            assert (await client.get("/v1/me")).status_code == 200  # kept until start + 60 s
            await operator(relay, "accounts", "revoke-key", key_id(hash_api_key(alice.api_key)))
            clock.current = start + timedelta(seconds=59.9)
            # Still kept: the revocation was written by another process.
            assert (await client.get("/v1/me")).status_code == 200
            clock.current = start + timedelta(seconds=60)
            assert refused(await client.get("/v1/me"))
            assert refused(await client.get("/v1/tasks"))
    finally:
        await relay.stop()


async def test_without_a_cache_time_a_key_revoked_elsewhere_is_refused_at_once(
    tmp_path: Path,
) -> None:
    clock = FakeClock(datetime.now(UTC))
    relay = await started(tmp_path, clock, api_key_cache_seconds=0)
    try:
        alice = await relay.account("alice")
        async with relay.client(alice) as client:
            assert (await client.get("/v1/me")).status_code == 200
            await operator(relay, "accounts", "revoke-key", key_id(hash_api_key(alice.api_key)))
            clock.current = datetime.now(UTC)  # the CLI revoked it on the real clock
            assert refused(await client.get("/v1/me"))
    finally:
        await relay.stop()


async def test_a_sign_in_looks_the_key_up_and_the_cache_learns_the_answer(
    tmp_path: Path,
) -> None:
    start = datetime.now(UTC)
    clock = FakeClock(start)
    relay = await started(tmp_path, clock, api_key_cache_seconds=60)
    try:
        alice = await relay.account("alice")
        async with relay.client(alice) as client, relay.client() as browser:
            assert (await client.get("/v1/me")).status_code == 200  # kept
            await operator(relay, "accounts", "revoke-key", key_id(hash_api_key(alice.api_key)))
            clock.current = datetime.now(UTC)  # the CLI revoked it on the real clock
            assert clock.current < start + timedelta(seconds=60)
            form = await browser.get("/dashboard/login")
            token = CSRF.search(form.text)
            assert token
            signed = await browser.post(
                "/dashboard/login", data={"csrf": token[1], "api_key": alice.api_key}
            )
            assert signed.status_code == 401  # looked up, not taken from the cache
            assert refused(await client.get("/v1/me"))  # and no longer kept
    finally:
        await relay.stop()


async def test_a_rotated_out_key_is_kept_no_longer_than_its_grace(tmp_path: Path) -> None:
    start = datetime.now(UTC)
    clock = FakeClock(start)
    relay = await started(tmp_path, clock, api_key_cache_seconds=300)
    try:
        alice = await relay.account("alice")
        async with relay.client(alice) as client:
            # The rotation's grace (2 s on the real clock, which the CLI reads) ends long
            # before the 300 s the key could otherwise be kept.
            await operator(relay, "accounts", "rotate-key", alice.id, "--grace", "2s")
            rotated = datetime.now(UTC)
            assert (await client.get("/v1/me")).status_code == 200  # kept from here on
            clock.current = rotated + timedelta(seconds=2)
            assert clock.current < start + timedelta(seconds=300)
            assert refused(await client.get("/v1/me"))
    finally:
        await relay.stop()


# --- the cache alone ---------------------------------------------------------------------


def holder(account: str = "acc_1", key: str = "key_1", stops: datetime | None = None) -> KeyHolder:
    return KeyHolder(
        StoredAccount(id=account, name=account, created_at=NOW),
        ApiKey(key, account, "rk_abcdefgh", NOW, stops),
    )


def test_an_entry_holds_for_the_cache_time_only() -> None:
    cache = KeyCache(ttl=5)
    cache.put("h1", holder(), NOW)
    assert cache.get("h1", NOW + timedelta(seconds=4.999)) == holder()
    assert cache.get("h1", NOW + timedelta(seconds=5)) is None
    assert cache.get("h2", NOW) is None


def test_an_entry_never_outlives_its_key() -> None:
    cache = KeyCache(ttl=60)
    stops = NOW + timedelta(seconds=2)
    cache.put("h1", holder(stops=stops), NOW)
    assert cache.get("h1", stops - timedelta(microseconds=1)) is not None
    assert cache.get("h1", stops) is None
    cache.put("h2", holder(stops=NOW), NOW)  # already stopped: not kept
    assert cache.get("h2", NOW - timedelta(seconds=1)) is None


def test_forgetting_a_key_or_a_hash() -> None:
    cache = KeyCache(ttl=60)
    cache.put("h1", holder("acc_1", "key_1"), NOW)
    cache.put("h2", holder("acc_1", "key_2"), NOW)
    cache.put("h3", holder("acc_2", "key_3"), NOW)
    cache.forget_key("key_1")
    assert [cache.get(h, NOW) is not None for h in ("h1", "h2", "h3")] == [False, True, True]
    cache.drop("h2")
    assert [cache.get(h, NOW) is not None for h in ("h1", "h2", "h3")] == [False, False, True]
    cache.drop("h3")
    assert cache.get("h3", NOW) is None


def test_a_zero_cache_time_keeps_nothing_and_the_size_is_bounded() -> None:
    off = KeyCache(ttl=0)
    off.put("h1", holder(), NOW)
    assert off.get("h1", NOW) is None
    small = KeyCache(ttl=60, max_keys=3)
    for i in range(10):
        small.put(f"h{i}", holder(key=f"key_{i}"), NOW)
        assert sum(small.get(f"h{j}", NOW) is not None for j in range(10)) <= 3
    assert small.get("h9", NOW) is not None
