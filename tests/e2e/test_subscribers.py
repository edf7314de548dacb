"""Subscribers end to end, as the issue asks to see them: a Zapier-style REST hook from the
connection test to the 410 that switches it off, secret rotation verified by the
``standardwebhooks`` library, and a receiver outage followed by a replay."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.e2e.conftest import ReceiverFactory, RelayFactory
from tests.e2e.harness import (
    Account,
    Received,
    Receiver,
    RelayServer,
    ark_input,
    eventually,
)

ALL_TASK_EVENTS = [
    "task.queued",
    "task.running",
    "task.progress",
    "task.succeeded",
    "task.failed",
    "task.expired",
    "task.cancelled",
]


async def subscribe(client: httpx.AsyncClient, url: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/subscriptions", json={"target_url": url, **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["id"].startswith("sub_")
    assert created["secret"].startswith("whsec_")
    return created


async def submit(client: httpx.AsyncClient, prompt: str = "a cat") -> str:
    response = await client.post(
        "/v1/tasks", json={"provider": "sandbox", "input": ark_input(prompt)}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def verified(secret: str, request: Received) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


async def test_zapier_subscribes_samples_receives_and_is_switched_off_by_410(
    relay: RelayServer, start_receiver: ReceiverFactory
) -> None:
    account = await relay.account("zapier-user")
    zap = await start_receiver()
    async with relay.client(account) as zapier:
        # Authentication test: the connection label comes from /v1/me.
        me = await zapier.get("/v1/me")
        assert (me.status_code, me.json()["name"]) == (200, "zapier-user")
        # performSubscribe.
        sub = await subscribe(zapier, zap.url, event_types=["task.succeeded"])
        assert (sub["url"], sub["event_types"], sub["status"]) == (
            zap.url,
            ["task.succeeded"],
            "active",
        )

        first = await submit(zapier)
        [request] = await zap.wait_for(1, within=10)
        delivered = verified(sub["secret"], request)
        assert (delivered["type"], delivered["data"]["id"]) == ("task.succeeded", first)

        # performList: the sample list is newest first, each item the delivered envelope.
        second = await submit(zapier, "a dog")
        await zap.wait_for(2, within=10)
        samples = (await zapier.get("/v1/events", params={"type": "task.succeeded"})).json()
        assert [e["data"]["id"] for e in samples["data"]] == [second, first]
        assert samples["data"][1] == delivered

        # The Zap is turned off: Zapier answers 410 from now on.
        zap.default = zap.default.__class__(410)
        third = await submit(zapier, "a bird")
        gone = await zap.wait_for(3, within=10)
        assert verified(sub["secret"], gone[2])["data"]["id"] == third

        async def disabled() -> dict[str, Any] | None:
            found: dict[str, Any] = (await zapier.get(f"/v1/subscriptions/{sub['id']}")).json()
            return found if found["status"] == "disabled" else None

        off = await eventually(disabled, within=5, what="the subscription to be disabled")
        assert off["disabled_reason"] == "the receiver answered 410 Gone"
        # No further attempts: neither for new events nor a retry of the 410.
        fourth = await submit(zapier, "a fish")
        await wait_finished(zapier, fourth)
        await zap.quiet_for(1.0)
        assert len(zap.requests) == 3
        # performUnsubscribe.
        deleted = await zapier.delete(f"/v1/subscriptions/{sub['id']}")
        assert deleted.status_code == 200
        assert (await zapier.get(f"/v1/subscriptions/{sub['id']}")).status_code == 404


async def wait_finished(client: httpx.AsyncClient, task_id: str) -> None:
    async def done() -> bool:
        task = (await client.get(f"/v1/tasks/{task_id}")).json()
        return bool(task["status"] == "succeeded")

    await eventually(done, within=10, what=f"{task_id} to succeed")


async def test_rotation_signs_with_both_secrets_during_the_grace_only(
    relay: RelayServer, receiver: Receiver
) -> None:
    account = await relay.account("alice")
    async with relay.client(account) as client:
        sub = await subscribe(client, receiver.url)
        old = sub["secret"]
        rotated = await client.post(
            f"/v1/subscriptions/{sub['id']}/rotate-secret", json={"grace_seconds": 2}
        )
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        assert new != old
        assert rotated.json()["previous_secret_expires_at"] is not None
        await submit(client)
        [during] = await receiver.wait_for(1, within=10)
        assert len(during.headers["webhook-signature"].split()) == 2
        assert verified(old, during) == verified(new, during)
        await asyncio.sleep(2.1)  # the grace ends
        await submit(client)
        [_, after] = await receiver.wait_for(2, within=10)
        assert len(after.headers["webhook-signature"].split()) == 1
        assert verified(new, after)["type"] == "task.succeeded"
        with pytest.raises(WebhookVerificationError):
            verified(old, after)

        # The account's callback secret rotates the same way.
        callback = await client.post("/v1/callback-secret/rotate")
        assert callback.status_code == 200
        assert (await client.get("/v1/callback-secret")).json()["secret"] == callback.json()[
            "secret"
        ]


async def test_an_outage_then_a_replay_delivers_everything_once_per_success_in_order(
    start_relay: RelayFactory, start_receiver: ReceiverFactory
) -> None:
    # Five attempts within about two seconds; the receiver is down for the first four.
    relay = await start_relay(retry_schedule=[0.3, 0.3, 0.3, 0.3, 0.5, 1, 1])
    account = await relay.account("alice")
    receiver = await start_receiver(script=[503] * 4)
    async with relay.client(account) as client:
        sub = await subscribe(client, receiver.url, event_types=ALL_TASK_EVENTS)
        tasks = [await submit(client, f"task {i}") for i in range(3)]
        events = await all_events(client, tasks)
        assert len(events) == 9  # queued, running, succeeded for each

        async def everything_arrived() -> bool:
            ok = Counter(r.webhook_id for r in successful(receiver))
            return set(ok) == set(events)

        await eventually(everything_arrived, within=20, what="every event after the outage")
        assert Counter(r.webhook_id for r in successful(receiver)) == Counter(events)
        assert [r.headers.get("webhook-id") for r in receiver.requests[:4]] != []

        # Replay the lot: each event once more, each task's events in sequence order, even
        # when the first one sent fails once and is retried: the task's later events wait.
        before = len(receiver.requests)
        receiver.script(503)
        replay = await client.post(f"/v1/subscriptions/{sub['id']}/replay", json={"all": True})
        assert (replay.status_code, replay.json()["replayed"]) == (202, 9)
        await receiver.wait_for(before + 10, within=15)
        await receiver.quiet_for(0.5)
        refused = verified(sub["secret"], receiver.requests[before])
        replayed = [verified(sub["secret"], r) for r in receiver.requests[before + 1 :]]
        assert Counter(p["id"] for p in replayed) == Counter(events)
        assert refused["sequence"] == 1
        for task_id in tasks:
            sequences = [p["sequence"] for p in replayed if p["data"]["id"] == task_id]
            assert sequences == [1, 2, 3], task_id
        # Replays keep the event id, with a fresh timestamp and signature.
        assert all(
            r.timestamp >= receiver.requests[before - 1].timestamp
            for r in receiver.requests[before:]
        )


def successful(receiver: Receiver) -> list[Received]:
    """Requests the receiver answered 2xx: every request after its scripted failures."""
    return receiver.requests[4:]


async def all_events(client: httpx.AsyncClient, tasks: list[str]) -> list[str]:
    async def finished() -> list[str] | None:
        ids = []
        for task_id in tasks:
            page = (
                await client.get("/v1/events", params={"task_id": task_id, "order": "asc"})
            ).json()
            if [e["type"] for e in page["data"]] != [
                "task.queued",
                "task.running",
                "task.succeeded",
            ]:
                return None
            ids += [e["id"] for e in page["data"]]
        return ids

    return await eventually(finished, within=15, what="every task to finish")


async def test_verified_deliveries_carry_the_subscriptions_static_headers(
    relay: RelayServer, receiver: Receiver
) -> None:
    account: Account = await relay.account("n8n-user")
    async with relay.client(account) as client:
        sub = await subscribe(client, receiver.url, headers={"Authorization": "Bearer n8n-token"})
        assert sub["headers"] == ["Authorization"]  # values are not shown back
        await submit(client)
        [request] = await receiver.wait_for(1, within=10)
        assert request.headers["authorization"] == "Bearer n8n-token"
        assert verified(sub["secret"], request)["type"] == "task.succeeded"
