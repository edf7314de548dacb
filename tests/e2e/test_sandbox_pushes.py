"""The relay's own sandbox is served on the relay's port to anyone, and its seedance2.ink
emulation pushes to whatever ``webhookUrl`` a caller gives. Inside a relay it pushes to the
relay itself directly, and anywhere else only where the network policy lets webhooks go: it
is no way around the SSRF defence."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import RelayFactory
from tests.e2e.harness import Receiver, api_client, eventually

INK = "/sandbox/seedance2ink/api/open/v1/video/generations"
SLOW_POLL = {"min_interval": 30, "max_interval": 60, "expected_duration": 60}
"""The relay's own polls come too late for the test: only the push can finish the task."""


async def test_the_sandbox_pushes_to_the_relay_but_not_to_another_local_port(
    start_relay: RelayFactory, receiver: Receiver
) -> None:
    relay = await start_relay(
        network={"allow_networks": []},  # the default policy: public addresses only
        providers={"ink": {"preset": "seedance2ink", "sandbox": True, "poll": SLOW_POLL}},
    )
    account = await relay.account("alice")
    async with relay.client(account) as client, api_client(relay.url) as anyone:
        # Through the relay: the push comes back to the relay's own inbound URL.
        created = await client.post(
            "/v1/tasks",
            json={
                "provider": "ink",
                "input": {"model": "seedance-2.0", "prompt": "a fox", "duration": 5},
            },
        )
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]

        async def succeeded() -> bool:
            task = (await client.get(f"/v1/tasks/{task_id}")).json()
            return bool(task["status"] == "succeeded")

        await eventually(succeeded, within=10, what="the pushed task to succeed")

        # Straight at the sandbox, as anyone may: a webhookUrl on another local port.
        direct = await anyone.post(
            INK,
            headers={"Authorization": "Bearer anything"},
            json={
                "model": "seedance-2.0",
                "prompt": "x",
                "duration": 5,
                "webhookUrl": receiver.url,
            },
        )
        assert direct.status_code == 200, direct.text
        request_id = direct.json()["requestId"]

        async def refused() -> dict[str, Any] | None:
            log = (await anyone.get("/sandbox/_control/pushes")).json()["data"]
            mine = [r for r in log if r["task_id"] == request_id]
            return mine[0] if mine else None

        record = await eventually(refused, within=10, what="the sandbox's push attempt")
    assert record["status"] is None
    assert "loopback address" in record["error"], record
    assert receiver.requests == []


async def test_a_sandbox_request_body_is_bounded(start_relay: RelayFactory) -> None:
    relay = await start_relay()
    async with api_client(relay.url) as anyone:
        huge = b'{"prompt": "' + b"x" * 2_000_000 + b'"}'
        answer = await anyone.post(
            INK,
            content=huge,
            headers={"Authorization": "Bearer anything", "content-type": "application/json"},
        )
    assert 400 <= answer.status_code < 500, answer.text
