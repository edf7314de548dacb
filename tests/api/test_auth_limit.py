"""Failed authentication is rate-limited per client address (issue 6 part 5): after the
burst, a wrong key gets 429 with Retry-After and changes nothing; the right key from the
same address (another tenant behind the same egress) is still served."""

from __future__ import annotations

import httpx

from tests.api.conftest import InProcessFactory
from tests.e2e.harness import ark_input


def assert_limited(response: httpx.Response) -> int:
    assert response.status_code == 429, (response.status_code, response.text)
    assert response.json()["error"]["code"] == "too_many_requests"
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    return retry_after


async def test_wrong_keys_are_rate_limited_per_address(start_relay: InProcessFactory) -> None:
    relay = await start_relay(limits={"auth_failure_burst": 3, "auth_failures_per_minute": 1})
    account = await relay.account("alice")
    async with (
        relay.client(headers={"Authorization": "Bearer rk_guess"}) as guesser,
        relay.client(account) as owner,
    ):
        for _ in range(3):
            assert (await guesser.get("/v1/me")).status_code == 401
        assert_limited(await guesser.get("/v1/me"))
        assert_limited(
            await guesser.post("/v1/tasks", json={"provider": "sandbox", "input": ark_input()})
        )
        # The right key from the same address is served: a tenant sharing the address with
        # a guesser (or with a stale key) is not locked out.
        assert (await owner.get("/v1/me")).status_code == 200
        assert (
            await owner.post("/v1/tasks", json={"provider": "sandbox", "input": ark_input()})
        ).status_code == 201
        assert_limited(await guesser.get("/v1/me"))  # and the guesser still is not
        # No key at all guesses nothing: still the plain 401.
        async with relay.client() as anonymous:
            assert (await anonymous.get("/v1/me")).status_code == 401

    # Another address has a burst of its own: its wrong key is a plain 401.
    async with relay.client(headers={"Authorization": "Bearer rk_guess"}, address="127.0.0.2") as c:
        assert (await c.get("/v1/me")).status_code == 401
    # And it is served.
    async with relay.client(account, address="127.0.0.2") as c:
        me = await c.get("/v1/me")
        assert me.status_code == 200, me.text
        # Only the owner's one task: the guesser's POST while limited changed nothing.
        assert len((await c.get("/v1/tasks")).json()["data"]) == 1


async def test_successes_are_never_limited(start_relay: InProcessFactory) -> None:
    relay = await start_relay(
        listen=False, limits={"auth_failure_burst": 1, "auth_failures_per_minute": 1}
    )
    account = await relay.account("alice")
    async with relay.client(account) as owner:
        for _ in range(30):
            assert (await owner.get("/v1/me")).status_code == 200
