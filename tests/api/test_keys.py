"""API keys have a lifecycle (issue 11 item 7): a revoked or rotated-out key is refused from
the next request on; an account manages its own extra keys at ``/v1/keys``; revoking a key
ends the dashboard sessions it opened. Real app in-process, keys revoked through the real
command line (``relay accounts …``) and through the API."""

from __future__ import annotations

import asyncio
import re

import httpx
from click.testing import CliRunner

from relay import cli
from relay.api.keys import MAX_ACTIVE_KEYS
from relay.keys import key_id
from relay.signing import hash_api_key
from tests.api.conftest import InProcessFactory
from tests.e2e.harness import Account, InProcessRelay

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def operator(relay: InProcessRelay, *args: str) -> str:
    """``relay accounts …`` on the relay's database, as an operator runs it beside it."""

    def run() -> str:
        result = CliRunner().invoke(cli.main, [*args, "--config", str(relay.config_path)])
        assert result.exit_code == 0, result.output
        return result.stdout

    return await asyncio.to_thread(run)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == {
        "code": "unauthorized",
        "message": "the API key is not valid",
    }


async def test_a_revoked_key_is_refused_from_the_next_request(
    start_relay: InProcessFactory,
) -> None:
    # Revoked by another process (the CLI): at once only with no key cache on this instance
    # (tests/api/test_key_cache.py has the cache's bounds).
    relay = await start_relay(listen=False, limits={"api_key_cache_seconds": 0})
    alice, bob = await relay.account("alice"), await relay.account("bob")
    async with relay.client(alice) as client, relay.client(bob) as other:
        assert (await client.get("/v1/me")).status_code == 200
        await operator(relay, "accounts", "revoke-key", key_id(hash_api_key(alice.api_key)))
        assert_refused(await client.get("/v1/me"))
        assert_refused(await client.get("/v1/tasks"))
        assert_refused(await client.post("/v1/keys"))  # nor can it issue itself another
        assert (await other.get("/v1/me")).status_code == 200


async def test_a_rotation_replaces_the_key(start_relay: InProcessFactory) -> None:
    relay = await start_relay(listen=False)
    alice = await relay.account("alice")
    printed = await operator(relay, "accounts", "rotate-key", alice.id)
    new_key = re.search(r"^api key:\s+(\S+)$", printed, re.MULTILINE)
    assert new_key
    async with relay.client(alice) as old, relay.client(headers=bearer(new_key[1])) as new:
        assert_refused(await old.get("/v1/me"))
        me = await new.get("/v1/me")
        assert me.status_code == 200
        assert me.json()["id"] == alice.id


async def test_an_account_issues_lists_and_revokes_its_own_keys(
    start_relay: InProcessFactory,
) -> None:
    relay = await start_relay(listen=False)
    alice, bob = await relay.account("alice"), await relay.account("bob")
    first_id = key_id(hash_api_key(alice.api_key))
    async with relay.client(alice) as first, relay.client(bob) as other:
        (listed,) = (await first.get("/v1/keys")).json()["data"]
        assert listed["id"] == first_id
        assert listed["prefix"] == alice.api_key[:11]
        assert (listed["active"], listed["current"], listed["revoked_at"]) == (True, True, None)

        issued = await first.post("/v1/keys")
        assert issued.status_code == 201, issued.text
        assert issued.headers["cache-control"] == "no-store"
        body = issued.json()
        assert body["key"].startswith(body["prefix"])
        assert body["id"] == key_id(hash_api_key(body["key"]))
        assert (body["active"], body["current"]) == (True, False)

        async with relay.client(headers=bearer(body["key"])) as second:
            me = await second.get("/v1/me")
            assert me.json()["id"] == alice.id
            keys = (await second.get("/v1/keys")).json()["data"]
            assert [(k["id"], k["current"]) for k in keys] == [
                (first_id, False),
                (body["id"], True),
            ]
            assert body["key"] not in str(keys)

            # Another account's key is not there for alice, and stays valid.
            bobs = key_id(hash_api_key(bob.api_key))
            assert (await second.delete(f"/v1/keys/{bobs}")).status_code == 404
            assert (await other.get("/v1/me")).status_code == 200

            revoked = await second.delete(f"/v1/keys/{first_id}")
            assert revoked.status_code == 200, revoked.text
            assert revoked.json()["active"] is False
            assert revoked.json()["revoked_at"] is not None
            assert_refused(await first.get("/v1/me"))

            last = await second.delete(f"/v1/keys/{body['id']}")
            assert last.status_code == 409
            assert last.json()["error"]["code"] == "last_active_key"
            assert (await second.get("/v1/me")).status_code == 200

            missing = await second.delete("/v1/keys/key_nope")
            assert missing.status_code == 404
            assert missing.json()["error"]["message"] == "no API key key_nope"


async def test_an_account_has_at_most_so_many_active_keys(start_relay: InProcessFactory) -> None:
    relay = await start_relay(listen=False)
    alice = await relay.account("alice")
    async with relay.client(alice) as client:
        for _ in range(MAX_ACTIVE_KEYS - 1):
            assert (await client.post("/v1/keys")).status_code == 201
        refused = await client.post("/v1/keys")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "too_many_keys"
        assert len((await client.get("/v1/keys")).json()["data"]) == MAX_ACTIVE_KEYS


async def sign_in(browser: httpx.AsyncClient, account: Account) -> None:
    form = await browser.get("/dashboard/login")
    token = CSRF.search(form.text)
    assert token
    signed = await browser.post(
        "/dashboard/login", data={"csrf": token[1], "api_key": account.api_key}
    )
    assert signed.status_code == 303, signed.text
    assert (await browser.get("/dashboard/tasks")).status_code == 200


async def test_revoking_a_key_through_the_api_ends_its_dashboard_sessions(
    start_relay: InProcessFactory,
) -> None:
    relay = await start_relay(listen=False)
    alice = await relay.account("alice")
    async with relay.client(alice) as client, relay.client() as browser:
        await sign_in(browser, alice)
        second = (await client.post("/v1/keys")).json()["key"]
        async with relay.client(headers=bearer(second)) as other:
            first_id = key_id(hash_api_key(alice.api_key))
            assert (await other.delete(f"/v1/keys/{first_id}")).status_code == 200
        ended = await browser.get("/dashboard/tasks")
        assert ended.status_code == 303
        assert ended.headers["location"] == "/dashboard/login"
