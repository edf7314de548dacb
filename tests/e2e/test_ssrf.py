"""SSRF defence when a delivery connects (DESIGN §5, issue 6 part 4): a destination on a
non-public address is a failed attempt with the reason, nothing sent; redirects are never
followed; what the operator allows is reached, and only that. The harness allows loopback (its
receivers are on 127.0.0.1); these tests start relays that do not.

The refusals at registration are in ``tests/api/test_ssrf_registration.py``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.test_ssrf_registration import PUBLIC_ONLY, assert_refused
from tests.e2e.conftest import ReceiverFactory, RelayFactory
from tests.e2e.harness import Receiver, RelayServer, Reply, ark_input, eventually


async def deliveries_of(client: httpx.AsyncClient, event_id: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = (await client.get(f"/v1/events/{event_id}/deliveries")).json()[
        "data"
    ]
    return data


async def test_a_delivery_to_a_refused_address_is_a_failed_attempt_with_the_reason(
    start_relay: RelayFactory, receiver: Receiver
) -> None:
    """A subscription registered while loopback was allowed; the operator then tightens the
    policy (or the receiver's name now resolves elsewhere): every attempt is refused at
    connect time, recorded with its reason, and the receiver never hears a byte."""
    first = await start_relay()
    account = await first.account("alice")
    async with first.client(account) as client:
        created = await client.post("/v1/subscriptions", json={"url": receiver.url})
        assert created.status_code == 201, created.text
        sub = created.json()
    await first.stop()

    relay = await start_relay(network=PUBLIC_ONLY)  # the same database
    async with relay.client(account) as client:
        tested = (await client.post(f"/v1/subscriptions/{sub['id']}/test")).json()
        assert tested["delivered"] is False
        assert tested["status_code"] is None
        assert "refused: 127.0.0.1 is a loopback address" in tested["error"]

        task = (
            await client.post("/v1/tasks", json={"provider": "sandbox", "input": ark_input()})
        ).json()
        events = await eventually(
            lambda: _terminal_events(client, task["id"]),
            within=10,
            what="the task's terminal event",
        )

        async def failed() -> list[dict[str, Any]] | None:
            views = await deliveries_of(client, events[0]["id"])
            return views if views and views[0]["status"] == "failed" else None

        [view] = await eventually(failed, within=10, what="the refused delivery to fail")
    assert view["url"] == receiver.url
    assert len(view["attempts"]) == 4  # the harness's schedule: retried, each time refused
    for attempt in view["attempts"]:
        assert attempt["status_code"] is None
        assert attempt["error"].startswith(
            "DestinationRefused: refused: 127.0.0.1 is a loopback address (network policy"
        ), attempt
        assert attempt["response_snippet"] is None
    assert receiver.requests == []


async def _terminal_events(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]] | None:
    data: list[dict[str, Any]] = (
        await client.get("/v1/events", params={"task_id": task_id, "type": "task.succeeded"})
    ).json()["data"]
    return data or None


async def test_a_redirect_to_a_private_address_is_not_followed(
    start_relay: RelayFactory, start_receiver: ReceiverFactory
) -> None:
    """The first receiver answers 302 towards another (loopback, so allowed here: only not
    following redirects keeps it from being reached) and towards a private address."""
    hidden = await start_receiver()
    redirector = await start_receiver(default=Reply(302, {"Location": hidden.url}))
    private = await start_receiver(default=Reply(307, {"Location": "http://10.0.0.5/admin"}))
    relay = await start_relay()
    account = await relay.account("alice")
    async with relay.client(account) as client:
        for target in (redirector, private):
            sub = (await client.post("/v1/subscriptions", json={"url": target.url})).json()
            tested = (await client.post(f"/v1/subscriptions/{sub['id']}/test")).json()
            assert tested["delivered"] is False
            assert tested["status_code"] in (302, 307)
            assert "redirects are not followed" in tested["error"]
            await client.delete(f"/v1/subscriptions/{sub['id']}")

        # A task's callback through the delivery engine: retried, never redirected.
        task = (
            await client.post(
                "/v1/tasks",
                json={"provider": "sandbox", "input": ark_input(), "callback_url": redirector.url},
            )
        ).json()
        events = await eventually(
            lambda: _terminal_events(client, task["id"]),
            within=10,
            what="the task's terminal event",
        )

        async def failed() -> list[dict[str, Any]] | None:
            views = await deliveries_of(client, events[0]["id"])
            return views if views and views[0]["status"] == "failed" else None

        [view] = await eventually(failed, within=10, what="the redirected delivery to fail")
    assert {a["status_code"] for a in view["attempts"]} == {302}
    assert len(redirector.with_id(events[0]["id"])) == 4
    await hidden.quiet_for(0.2)
    assert hidden.requests == []


@pytest.mark.parametrize("allow", [["127.0.0.1"], ["127.0.0.0/8"]])
async def test_the_operator_can_allow_a_local_receiver(
    start_relay: RelayFactory, receiver: Receiver, allow: list[str]
) -> None:
    relay: RelayServer = await start_relay(network={"allow_networks": allow})
    account = await relay.account("alice")
    async with relay.client(account) as client:
        sub = (await client.post("/v1/subscriptions", json={"url": receiver.url})).json()
        tested = (await client.post(f"/v1/subscriptions/{sub['id']}/test")).json()
        assert tested["delivered"] is True, tested
        # Still only what was allowed: ::1 is not.
        refused = await client.post(
            "/v1/subscriptions", json={"url": f"http://[::1]:{receiver.port}/hook"}
        )
        assert_refused(refused, "url", "::1 is a loopback address")
    assert len(receiver.requests) == 1
