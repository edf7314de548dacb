"""SSRF defence at registration (DESIGN §5, issue 6 part 4): a callback URL or a subscription
on a non-public address is refused when registered or moved there, with a 400 naming the field
and the reason, and nothing is written. The relays here allow no private network (the harness
allows loopback for its receivers).

The same defence when a delivery connects, and redirects, are in ``tests/e2e/test_ssrf.py``.
"""

from __future__ import annotations

import httpx

from tests.api.conftest import InProcessFactory
from tests.e2e.harness import Receiver, ark_input

PUBLIC_ONLY: dict[str, list[str]] = {"allow_networks": []}


def assert_refused(response: httpx.Response, field: str, *phrases: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == "destination_not_allowed", error
    assert error["message"].startswith(f"{field}: refused: "), error
    for phrase in phrases:
        assert phrase in error["message"], (phrase, error)


REFUSED_URLS = [
    # (a URL, what the refusal must say)
    ("http://127.0.0.1:{port}/hook", "127.0.0.1 is a loopback address"),
    ("http://localhost:{port}/hook", "localhost resolves to a loopback"),
    ("http://2130706433:{port}/hook", "resolves to a loopback"),
    ("http://[::1]:{port}/hook", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]:{port}/hook", "loopback address (127.0.0.1 in IPv6 form)"),
    ("http://10.0.0.5/hook", "10.0.0.5 is a private address"),
    ("https://192.168.1.20/hook", "192.168.1.20 is a private address"),
    ("http://172.20.0.1:8080/", "172.20.0.1 is a private address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata"),
    ("http://100.64.12.1/hook", "carrier-grade NAT"),
    ("http://0.0.0.0:{port}/hook", "0.0.0.0 is an unspecified"),
    ("http://[fe80::1]/hook", "fe80::1 is a link-local address"),
    ("http://[fd00::1]/hook", "fd00::1 is a private address"),
    ("http://224.0.0.251/hook", "224.0.0.251 is a multicast address"),
]


async def test_registration_refuses_non_public_destinations_and_writes_nothing(
    start_relay: InProcessFactory, receiver: Receiver
) -> None:
    relay = await start_relay(listen=False, network=PUBLIC_ONLY)
    account = await relay.account("alice")
    async with relay.client(account) as client:
        for template, phrase in REFUSED_URLS:
            url = template.format(port=receiver.port)
            assert_refused(
                await client.post(
                    "/v1/tasks",
                    json={"provider": "sandbox", "input": ark_input(), "callback_url": url},
                ),
                "callback_url",
                phrase,
            )
            assert_refused(await client.post("/v1/subscriptions", json={"url": url}), "url", phrase)
            assert_refused(
                await client.post("/v1/subscriptions", json={"target_url": url}),
                "target_url",
                phrase,
            )
        # An Idempotency-Key does not turn a refusal into a write either.
        url = receiver.url
        for _ in range(2):
            assert_refused(
                await client.post(
                    "/v1/tasks",
                    json={"provider": "sandbox", "input": ark_input(), "callback_url": url},
                    headers={"Idempotency-Key": "ssrf-1"},
                ),
                "callback_url",
                "loopback",
            )
        assert (await client.get("/v1/tasks")).json() == {"data": [], "next_cursor": None}
        assert (await client.get("/v1/subscriptions")).json()["data"] == []
        assert (await client.get("/v1/events")).json()["data"] == []
    await receiver.quiet_for(0.3)
    assert receiver.requests == []


async def test_a_subscription_cannot_be_moved_to_a_refused_address(
    start_relay: InProcessFactory, receiver: Receiver
) -> None:
    relay = await start_relay(listen=False, network=PUBLIC_ONLY)
    account = await relay.account("alice")
    async with relay.client(account) as client:
        # A name that does not resolve (yet) is accepted: it is checked at each connection.
        created = await client.post(
            "/v1/subscriptions", json={"url": "https://hooks.example.invalid/in"}
        )
        assert created.status_code == 201, created.text
        sub = created.json()
        for body, field in (
            ({"url": receiver.url}, "url"),
            ({"target_url": "http://169.254.169.254/"}, "target_url"),
        ):
            moved = await client.patch(f"/v1/subscriptions/{sub['id']}", json=body)
            assert_refused(moved, field)
        after = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
        assert after["url"] == "https://hooks.example.invalid/in"
        assert after["updated_at"] == sub["updated_at"]
