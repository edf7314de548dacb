"""The provider-facing API: cancel where each dialect can, the inbound webhook of push providers
(a forged call changes nothing), provider health, and image moderation passed through to the
provider that offers it. The relay runs in-process and reaches its sandbox providers over
loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.api.conftest import InProcessFactory
from tests.e2e.harness import Account, InProcessRelay, Receiver, eventually

SLOW = {"min_interval": 0.2, "max_interval": 0.5, "expected_duration": 5, "learn": False}
PROVIDERS: dict[str, dict[str, Any]] = {
    "sandbox": {
        "dialect": "ark",
        "path_prefix": "/sandbox/ark/api/v3",
        "api_key": "sandbox",
        "poll": SLOW,
    },
    "naci": {"preset": "naci", "sandbox": True, "poll": SLOW},
    "cubicspaces": {"preset": "cubicspaces", "sandbox": True, "poll": SLOW},
    # Only its push can bring news in time: its safety poll is a minute.
    "seedance2ink": {
        "preset": "seedance2ink",
        "sandbox": True,
        "poll": {"min_interval": 60, "max_interval": 60, "expected_duration": 60},
    },
}
PROMPT = {"model": "seedance-2.0-fast", "prompt": "a fox in snow"}


@pytest.fixture
async def relay(start_relay: InProcessFactory) -> InProcessRelay:
    # Queued for 1.5 s, then running for 2 s: time to cancel in either state.
    return await start_relay(
        providers=PROVIDERS, sandbox={"queued_seconds": 1.5, "running_seconds": 2.0}
    )


async def submit(
    client: httpx.AsyncClient, provider: str, receiver: Receiver, **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/tasks",
        json={"provider": provider, "input": dict(PROMPT), "callback_url": receiver.url, **extra},
    )
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


async def status_of(client: httpx.AsyncClient, task_id: str) -> str:
    return str((await client.get(f"/v1/tasks/{task_id}")).json()["status"])


def events_of(account: Account, receiver: Receiver, task_id: str) -> list[str]:
    types = []
    for request in receiver.requests:
        payload = Webhook(account.secret).verify(request.body, request.headers)
        if payload["data"]["id"] == task_id:
            types.append(str(payload["type"]))
    return types


async def test_cancel_where_the_provider_can_and_409_where_it_cannot(
    relay: InProcessRelay, receiver: Receiver
) -> None:
    account = await relay.account("alice")
    async with relay.client(account) as client:
        ink_queued = await submit(client, "seedance2ink", receiver)
        ark_queued = await submit(client, "sandbox", receiver)
        naci = await submit(client, "naci", receiver)

        for task in (ink_queued, ark_queued):
            response = await client.post(f"/v1/tasks/{task['id']}/cancel")
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["status"], body["error"]["code"]) == ("cancelled", "cancelled")
        refused = await client.post(f"/v1/tasks/{naci['id']}/cancel")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "not_supported"

        # seedance2.ink also cancels a task that is already processing; Ark does not.
        ink_running = await submit(client, "seedance2ink", receiver)
        ark_running = await submit(client, "sandbox", receiver)
        await eventually(
            lambda: _running(client, ark_running["id"]), within=10, what="the Ark task to run"
        )
        ark_refused = await client.post(f"/v1/tasks/{ark_running['id']}/cancel")
        assert ark_refused.status_code == 409
        assert ark_refused.json()["error"]["code"] == "not_supported"
        ink_cancel = await client.post(f"/v1/tasks/{ink_running['id']}/cancel")
        assert (ink_cancel.status_code, ink_cancel.json()["status"]) == (200, "cancelled")

        # A finished task cannot be cancelled, and another account's task does not exist.
        await eventually(
            lambda: _done(client, ark_running["id"]), within=10, what="the Ark task to finish"
        )
        finished = await client.post(f"/v1/tasks/{ark_running['id']}/cancel")
        assert (finished.status_code, finished.json()["error"]["code"]) == (409, "task_finished")
        bob = await relay.account("bob")
        async with relay.client(bob) as other:
            assert (await other.post(f"/v1/tasks/{ink_queued['id']}/cancel")).status_code == 404

        # Each cancelled task told its receiver once, and the provider agrees.
        for task in (ink_queued, ark_queued, ink_running):
            await receiver_has(account, receiver, task["id"])
            assert events_of(account, receiver, task["id"]) == ["task.cancelled"]
        await asyncio.sleep(0.5)  # seedance2.ink pushes on cancel: no second event comes
        for task in (ink_queued, ark_queued, ink_running):
            assert events_of(account, receiver, task["id"]) == ["task.cancelled"]
            assert await status_of(client, task["id"]) == "cancelled"


async def receiver_has(account: Account, receiver: Receiver, task_id: str) -> None:
    async def arrived() -> list[str]:
        return events_of(account, receiver, task_id)

    await eventually(arrived, within=10, what=f"a callback for {task_id}")


async def _running(client: httpx.AsyncClient, task_id: str) -> bool:
    return await status_of(client, task_id) == "running"


async def _done(client: httpx.AsyncClient, task_id: str) -> bool:
    return await status_of(client, task_id) == "succeeded"


async def test_the_inbound_webhook_trusts_only_its_own_tokens(
    relay: InProcessRelay, receiver: Receiver
) -> None:
    account = await relay.account("alice")
    async with relay.client(account) as client:
        live = await submit(client, "seedance2ink", receiver)
        done = await submit(client, "seedance2ink", receiver)
        # The push (the safety poll is a minute away) brings the result.
        await eventually(lambda: _done(client, done["id"]), within=10, what="the pushed result")
        pushes = (await client.get("/sandbox/_control/pushes")).json()["data"]
        [push] = [p for p in pushes if p["task_id"] == done["provider_task_id"]]
        url = httpx.URL(push["url"])
        assert url.path.startswith("/v1/inbound/seedance2ink/")
        token = url.path.rsplit("/", 1)[1]

        # What has ended is delivered first: from here on, any callback would be an extra one.
        await receiver_has(account, receiver, done["id"])
        if await status_of(client, live["id"]) not in ("queued", "running"):
            await receiver_has(account, receiver, live["id"])

        async with relay.client() as provider:
            before = await client.get(f"/v1/tasks/{live['id']}")
            tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
            for path in (
                f"/v1/inbound/seedance2ink/{tampered}",
                f"/v1/inbound/seedance2ink/{token}x",
                f"/v1/inbound/naci/{token}",  # another provider's endpoint
                "/v1/inbound/seedance2ink/not-a-token",
            ):
                forged = await provider.post(
                    path, json={"requestId": "req_x", "status": "succeeded"}
                )
                assert (forged.status_code, forged.json()["error"]["code"]) == (404, "not_found"), (
                    path
                )
            assert (await provider.post(url.path, content=b"x" * 70_000)).status_code == 413
            # A genuine duplicate is harmless: the task has ended, nothing more is sent.
            duplicate = await provider.post(url.path, json={"status": "succeeded"})
            assert duplicate.status_code == 202
        await receiver.quiet_for(0.3)
        assert events_of(account, receiver, done["id"]) == ["task.succeeded"]
        after = await client.get(f"/v1/tasks/{live['id']}")
        assert after.json()["updated_at"] == before.json()["updated_at"]
        assert after.json()["status"] == before.json()["status"]


async def test_providers_are_listed_with_their_health_and_abilities(relay: InProcessRelay) -> None:
    account = await relay.account("alice")
    async with relay.client(account) as client:
        response = await client.get("/v1/providers")
        assert response.status_code == 200, response.text
        listed = {p["name"]: p for p in response.json()["data"]}
        assert sorted(listed) == sorted(PROVIDERS)
        assert {
            n: (p["dialect"], p["can_cancel"], p["pushes"], p["moderation"])
            for n, p in listed.items()
        } == {
            "sandbox": ("ark", True, False, False),
            "naci": ("unified", False, False, False),
            "cubicspaces": ("ark", True, False, True),
            "seedance2ink": ("seedance2ink", True, True, False),
        }
        assert all(p["healthy"] and p["consecutive_faults"] == 0 for p in listed.values())
        async with relay.client() as anonymous:
            assert (await anonymous.get("/v1/providers")).status_code == 401


async def test_image_moderation_is_passed_through(relay: InProcessRelay) -> None:
    account = await relay.account("alice")
    async with relay.client(account) as client:
        ok = await client.post(
            "/v1/providers/cubicspaces/moderations",
            json={
                "model": "doubao-seedance-2.0",
                "images": ["https://example.com/product.png", "https://example.com/reject.png"],
            },
        )
        assert ok.status_code == 200, ok.text
        data = ok.json()["data"]
        assert [(i["source_url"], i["passed"]) for i in data["items"]] == [
            ("https://example.com/product.png", True),
            ("https://example.com/reject.png", False),
        ]
        assert data["items"][0]["asset_url"].startswith("asset://")
        # The provider's own refusal comes back as it said it.
        bad = await client.post(
            "/v1/providers/cubicspaces/moderations", json={"model": "doubao-seedance-2.0"}
        )
        assert 400 <= bad.status_code < 500
        unsupported = await client.post(
            "/v1/providers/naci/moderations",
            json={"model": "m", "images": ["https://x.example/a.png"]},
        )
        assert (unsupported.status_code, unsupported.json()["error"]["code"]) == (
            409,
            "not_supported",
        )
        unknown = await client.post("/v1/providers/nope/moderations", json={})
        assert unknown.status_code == 404
