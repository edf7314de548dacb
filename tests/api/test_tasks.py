"""The tasks API on a running relay: tracking a task created at the provider, a failed task,
the callback's event filter, every read endpoint (tasks, events, deliveries: filters, order,
cursors), redelivery, racing refreshes and both ways to pass the API key. The relay runs
in-process and reaches its sandbox over loopback; its callbacks, verified with the
``standardwebhooks`` package, arrive at real receivers.

The newcomer's whole story (an account from the command line, a task, one signed callback)
runs end to end in ``tests/e2e/test_flow.py``.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.e2e.harness import (
    ARK_TASKS,
    MODEL,
    TASK_FIELDS,
    Account,
    InProcessRelay,
    Received,
    Receiver,
    ark_input,
    eventually,
)

ARK_ID = re.compile(r"^cgt-\d{14}-[a-z2-7]{40}$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
TERMINAL = {"succeeded", "failed", "expired", "cancelled"}
TOKENS_720P_5S = 108900  # (5 s * 24 fps + 1) frames of 1280x720, as apiyi's sample bills


async def register(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/tasks", json={"provider": "sandbox", **body})
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


async def wait_terminal(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        task: dict[str, Any] = (await client.get(f"/v1/tasks/{task_id}")).json()
        return task if task["status"] in TERMINAL else None

    return await eventually(probe, within=10, what=f"task {task_id} to finish")


def verified(account: Account, request: Received) -> dict[str, Any]:
    """What a receiver does first: check the signature with a Standard Webhooks library."""
    assert request.method == "POST"
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    payload: dict[str, Any] = Webhook(account.secret).verify(request.body, request.headers)
    assert payload["id"] == request.webhook_id
    assert abs(request.timestamp - time.time()) < 30
    return payload


async def task_events(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/events", params={"task_id": task_id, "order": "asc"})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["data"]
    return events


async def test_tracking_a_task_created_at_the_provider(
    relay: InProcessRelay, receiver: Receiver
) -> None:
    account = await relay.account("bob")
    async with relay.client(headers={"Authorization": "Bearer my-own-provider-key"}) as ark:
        created = await ark.post(ARK_TASKS, json=ark_input("a dog on a skateboard"))
    assert created.status_code == 200, created.text
    provider_task_id = created.json()["id"]
    assert ARK_ID.match(provider_task_id)

    async with relay.client(account) as client:
        task = await register(
            client,
            provider_task_id=provider_task_id,
            callback_url=receiver.url,
            reference="existing",
        )
        assert task["provider_task_id"] == provider_task_id
        assert task["status"] == "queued"
        assert task["model"] is None  # nothing is known until the first poll

        again = await client.post(
            "/v1/tasks", json={"provider": "sandbox", "provider_task_id": provider_task_id}
        )
        assert again.status_code == 409, again.text
        assert again.json()["error"]["code"] == "task_exists"
        assert task["id"] in again.json()["error"]["message"]

        [request] = await receiver.wait_for(1)
        payload = verified(account, request)

    assert payload["type"] == "task.succeeded"
    assert payload["data"]["id"] == task["id"]
    assert payload["data"]["provider_task_id"] == provider_task_id
    assert payload["data"]["status"] == "succeeded"
    assert payload["data"]["model"] == MODEL
    assert payload["data"]["reference"] == "existing"
    assert payload["data"]["metadata"] == {}
    assert payload["data"]["video_url"].startswith(
        f"{relay.url}/sandbox/files/{provider_task_id}.mp4?"
    )


async def test_a_failing_prompt_gives_task_failed(
    relay: InProcessRelay, receiver: Receiver
) -> None:
    account = await relay.account("carol")
    async with relay.client(account) as client:
        task = await register(client, input=ark_input("a cat [fail]"), callback_url=receiver.url)
        [request] = await receiver.wait_for(1)
        payload = verified(account, request)
        final = await wait_terminal(client, task["id"])

    assert payload["type"] == "task.failed"
    data = payload["data"]
    assert set(data) == TASK_FIELDS
    assert data == final
    assert data["status"] == "failed"
    assert data["video_url"] is None
    assert data["usage"] is None
    assert ISO.match(data["completed_at"])
    error = data["error"]
    assert error["code"] == "content_policy"
    assert error["retryable"] is False
    assert error["provider_code"] == "OutputVideoSensitiveContentDetected.PolicyViolation"
    assert "policy" in error["message"]


async def test_callback_events_filter_delivers_running_then_succeeded(
    relay: InProcessRelay, receiver: Receiver
) -> None:
    account = await relay.account("dave")
    async with relay.client(account) as client:
        task = await register(
            client,
            input=ark_input(),
            callback_url=receiver.url,
            callback_events=["task.running", "task.succeeded"],
        )
        requests = await receiver.wait_for(2)
        events = await task_events(client, task["id"])
    await receiver.quiet_for(0.5)

    payloads = [verified(account, r) for r in requests]
    assert [p["type"] for p in payloads] == ["task.running", "task.succeeded"]
    assert [p["sequence"] for p in payloads] == [2, 3]
    assert [p["data"]["status"] for p in payloads] == ["running", "succeeded"]
    assert payloads[0]["data"]["video_url"] is None
    # task.queued happened (sequence 1) but was not asked for.
    assert [e["type"] for e in events] == ["task.queued", "task.running", "task.succeeded"]
    assert [e["id"] for e in events[1:]] == [p["id"] for p in payloads]


async def test_reading_tasks_events_and_deliveries(
    relay: InProcessRelay, receiver: Receiver
) -> None:
    account = await relay.account("erin")
    async with relay.client(account) as client:
        ids = []
        for reference, prompt in (
            ("ref-a", "one"),
            ("ref-b", "two [fail]"),
            ("ref-a", "three"),
            ("ref-c", "four"),
        ):
            task = await register(
                client, input=ark_input(prompt), callback_url=receiver.url, reference=reference
            )
            ids.append(task["id"])
        finals = {i: await wait_terminal(client, i) for i in ids}
        await receiver.wait_for(4)
        newest_first = ids[::-1]

        # one task
        one = await client.get(f"/v1/tasks/{ids[0]}")
        assert one.status_code == 200
        assert one.json() == finals[ids[0]]
        assert one.json()["reference"] == "ref-a"
        assert one.json()["status"] == "succeeded"

        # refresh answers the task (a terminal one is not polled again)
        refreshed = await client.post(f"/v1/tasks/{ids[0]}/refresh")
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json() == finals[ids[0]]

        # task list, filters, order and cursor pages
        listed = (await client.get("/v1/tasks")).json()
        assert [t["id"] for t in listed["data"]] == newest_first
        assert listed["next_cursor"] is None
        asc = (await client.get("/v1/tasks", params={"order": "asc"})).json()
        assert [t["id"] for t in asc["data"]] == ids
        succeeded = (await client.get("/v1/tasks", params={"status": "succeeded"})).json()
        assert [t["id"] for t in succeeded["data"]] == [ids[3], ids[2], ids[0]]
        failed = (await client.get("/v1/tasks", params={"status": "failed"})).json()
        assert [t["id"] for t in failed["data"]] == [ids[1]]
        running = (await client.get("/v1/tasks", params={"status": "running"})).json()
        assert running == {"data": [], "next_cursor": None}
        by_ref = (await client.get("/v1/tasks", params={"reference": "ref-a"})).json()
        assert [t["id"] for t in by_ref["data"]] == [ids[2], ids[0]]
        by_provider = (await client.get("/v1/tasks", params={"provider": "sandbox"})).json()
        assert len(by_provider["data"]) == 4
        assert await pages(client, "/v1/tasks", {"limit": 1}) == [[i] for i in newest_first]
        assert await pages(client, "/v1/tasks", {"limit": 3, "order": "asc"}) == [ids[:3], ids[3:]]

        # the event feed
        feed = (await client.get("/v1/events", params={"limit": 200})).json()
        assert feed["next_cursor"] is None
        all_events = feed["data"]
        assert len(all_events) >= 8  # queued + terminal per task, running when it was seen
        asc_events = (await client.get("/v1/events", params={"order": "asc"})).json()["data"]
        assert asc_events == all_events[::-1]
        terminal = [e for e in all_events if e["type"] in ("task.succeeded", "task.failed")]
        # one terminal event per task (in the order they finished, not registered)
        assert sorted(e["data"]["id"] for e in terminal) == sorted(ids)
        only_succeeded = await client.get("/v1/events", params={"type": "task.succeeded"})
        assert only_succeeded.json()["data"] == [
            e for e in all_events if e["type"] == "task.succeeded"
        ]
        assert len(only_succeeded.json()["data"]) == 3
        for_task = (await client.get("/v1/events", params={"task_id": ids[1]})).json()["data"]
        assert for_task == [e for e in all_events if e["data"]["id"] == ids[1]]
        assert for_task[0]["type"] == "task.failed"
        assert for_task[-1]["type"] == "task.queued"
        all_ids = [e["id"] for e in all_events]
        paged = await pages(client, "/v1/events", {"limit": 3})
        assert [i for page in paged for i in page] == all_ids
        assert all(len(page) == 3 for page in paged[:-1])
        paged_asc = await pages(client, "/v1/events", {"limit": 5, "order": "asc"})
        assert [i for page in paged_asc for i in page] == all_ids[::-1]
        for params, expected in (
            ({"since": "2000-01-01T00:00:00Z"}, all_ids),
            ({"until": "2000-01-01T00:00:00Z"}, []),
            ({"since": "2999-01-01T00:00:00Z"}, []),
            (
                {"until": "2999-01-01T00:00:00+02:00", "type": "task.failed"},
                [e["id"] for e in all_events if e["type"] == "task.failed"],
            ),
        ):
            window = await client.get("/v1/events", params={**params, "limit": 200})
            assert window.status_code == 200, window.text
            assert [e["id"] for e in window.json()["data"]] == expected, params

        # one event, as delivered, and its deliveries
        for request in receiver.requests:
            payload = verified(account, request)
            event = await client.get(f"/v1/events/{request.webhook_id}")
            assert event.status_code == 200
            assert event.json() == payload
            assert event.json() in all_events

        request = receiver.requests[0]
        deliveries = await client.get(f"/v1/events/{request.webhook_id}/deliveries")
        assert deliveries.status_code == 200
        [delivery] = deliveries.json()["data"]
        assert delivery["id"].startswith("dlv_")
        assert delivery["event_id"] == request.webhook_id
        assert delivery["destination_id"].startswith("dst_")
        assert delivery["url"] == receiver.url
        assert delivery["status"] == "succeeded"
        assert delivery["attempt_count"] == 1
        assert delivery["next_attempt_at"] is None
        assert ISO.match(delivery["created_at"])
        [attempt] = delivery["attempts"]
        assert attempt["number"] == 1
        assert attempt["outcome"] == "delivered"
        assert attempt["status_code"] == 200
        assert attempt["error"] is None
        assert attempt["response_snippet"] == "ok"
        assert 0 < attempt["latency_ms"] < 5000
        assert ISO.match(attempt["started_at"])

        # the queued event went nowhere: no destination asked for it
        queued = next(e for e in all_events if e["type"] == "task.queued")
        none = await client.get(f"/v1/events/{queued['id']}/deliveries")
        assert none.json() == {"data": []}


async def pages(client: httpx.AsyncClient, path: str, params: dict[str, Any]) -> list[list[str]]:
    """Walk a list by its cursors; each page's ids."""
    out: list[list[str]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        out.append([item["id"] for item in body["data"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return out
        assert len(out) < 50, "the cursor never ends"


async def test_redeliver_sends_the_same_event_freshly_signed(
    relay: InProcessRelay, receiver: Receiver
) -> None:
    account = await relay.account("frank")
    async with relay.client(account) as client:
        await register(client, input=ark_input(), callback_url=receiver.url)
        [first] = await receiver.wait_for(1)
        event_id = first.webhook_id

        async def recorded() -> dict[str, Any] | None:
            # The relay records the attempt once the receiver has answered, a moment after
            # the receiver has the request.
            [view] = (await client.get(f"/v1/events/{event_id}/deliveries")).json()["data"]
            return view if view["status"] != "pending" else None

        delivery = await eventually(recorded, within=5, what="the first attempt's outcome")
        assert delivery["status"] == "succeeded"

        # The timestamp has a one-second resolution; a redelivery within the same second is
        # signed over the same string, so only a later one can prove the signature is fresh.
        async def next_second() -> bool:
            return int(time.time()) > first.timestamp

        await eventually(next_second, within=3, what="the next second")

        redelivered = await client.post(f"/v1/events/{event_id}/redeliver")
        assert redelivered.status_code == 202, redelivered.text
        [created] = redelivered.json()["data"]
        assert created["event_id"] == event_id
        assert created["destination_id"] == delivery["destination_id"]
        assert created["url"] == receiver.url
        assert created["status"] == "pending"
        assert created["attempt_count"] == 0
        assert created["id"] != delivery["id"]

        second = (await receiver.wait_for(2))[1]
        assert second.webhook_id == event_id
        assert second.body == first.body
        assert second.timestamp > first.timestamp
        assert second.headers["webhook-signature"] != first.headers["webhook-signature"]
        assert verified(account, second) == verified(account, first)

        # One destination by id; an unknown one is a 404.
        again = await client.post(
            f"/v1/events/{event_id}/redeliver", json={"destination_id": delivery["destination_id"]}
        )
        assert again.status_code == 202, again.text
        unknown = await client.post(
            f"/v1/events/{event_id}/redeliver", json={"destination_id": "dst_nope"}
        )
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "not_found"
        await receiver.wait_for(3)
        assert receiver.requests[2].webhook_id == event_id

        async def all_succeeded() -> list[dict[str, Any]] | None:
            views = (await client.get(f"/v1/events/{event_id}/deliveries")).json()["data"]
            done = len(views) == 3 and all(v["status"] == "succeeded" for v in views)
            return views if done else None

        views = await eventually(all_succeeded, within=5, what="three succeeded deliveries")
    assert [len(v["attempts"]) for v in views] == [1, 1, 1]
    assert len({v["id"] for v in views}) == 3
    await receiver.quiet_for(0.5)
    assert len(receiver.requests) == 3


async def test_racing_refreshes_emit_each_event_once(
    relay: InProcessRelay, receiver: Receiver
) -> None:
    """Refreshes and scheduled polls race on the same task (optimistic concurrency): the
    task still gets one event per status and one terminal delivery."""
    account = await relay.account("racer")
    async with relay.client(account) as client:
        task = await register(client, input=ark_input(), callback_url=receiver.url)
        seen: list[str] = []
        while not seen or seen[-1] not in TERMINAL:
            answers = await asyncio.gather(
                *(client.post(f"/v1/tasks/{task['id']}/refresh") for _ in range(8))
            )
            assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
            statuses = [a.json()["status"] for a in answers]
            seen.extend(statuses)
            assert len(seen) < 2000, "the task never finished"
        events = await task_events(client, task["id"])
        [request] = await receiver.wait_for(1)
    await receiver.quiet_for(0.5)

    assert seen[-1] == "succeeded"
    order = ["queued", "running", "succeeded"]
    ranks = [order.index(s) for s in seen]
    assert ranks[0] <= ranks[-1]
    types = [e["type"] for e in events]
    assert types in (
        ["task.queued", "task.running", "task.succeeded"],
        ["task.queued", "task.succeeded"],
    )
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert len(receiver.requests) == 1
    assert request.webhook_id == events[-1]["id"]
    assert verified(account, request)["data"]["status"] == "succeeded"


@pytest.mark.parametrize("header", ["Authorization", "X-API-Key"])
async def test_both_auth_headers_register_tasks(
    relay: InProcessRelay, receiver: Receiver, header: str
) -> None:
    account = await relay.account(f"gina-{header}")
    value = f"Bearer {account.api_key}" if header == "Authorization" else account.api_key
    async with relay.client(headers={header: value}) as client:
        task = await register(client, input=ark_input(), callback_url=receiver.url)
        [request] = await receiver.wait_for(1)
    assert verified(account, request)["data"]["id"] == task["id"]
