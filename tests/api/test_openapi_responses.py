"""Every answer of the relay, through every operation, fits what ``/openapi.json`` documents
for its status: a client-side response hook validates each one against the response models
(strict, through JSON, no extra or missing field) while a full flow runs: tasks, callbacks
with a failed attempt, the event feed, deliveries, redelivery, subscriptions from create to
delete, moderation, a provider's push, and the usual refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from pydantic import ValidationError

from relay.api.openapi import documented_answer, find_operation
from relay.api.operations import OPERATIONS
from tests.api.conftest import InProcessFactory
from tests.e2e.harness import Account, InProcessRelay, Receiver, ark_input, eventually

SLOW = {"min_interval": 0.1, "max_interval": 0.5, "expected_duration": 2, "learn": False}
PROVIDERS: dict[str, dict[str, Any]] = {
    "sandbox": {
        "dialect": "ark",
        "path_prefix": "/sandbox/ark/api/v3",
        "api_key": "sandbox",
        "poll": SLOW,
    },
    "cubicspaces": {"preset": "cubicspaces", "sandbox": True, "poll": SLOW},
    "seedance2ink": {"preset": "seedance2ink", "sandbox": True, "poll": SLOW},
}
PROMPT = {"model": "seedance-2.0-fast", "prompt": "a fox in snow"}


class Checker:
    """An httpx response hook: each answer of a documented operation against its model."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.seen: set[tuple[str, str, int]] = set()

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        request = response.request
        op = find_operation(request.method, request.url.path)
        if op is None:  # the sandbox's own endpoints
            assert request.url.path.startswith("/sandbox/"), request.url.path
            return
        where = f"{request.method} {request.url.path} -> {response.status_code}"
        self.seen.add((op.method, op.path, response.status_code))
        answer = documented_answer(op, response.status_code)
        if answer is None:
            self.problems.append(f"{where}: an undocumented status: {response.text[:300]}")
            return
        media = response.headers.get("content-type", "").split(";")[0]
        if answer.media_type != "*/*" and media != answer.media_type:
            self.problems.append(f"{where}: {media}, documented {answer.media_type}")
        if answer.model is not None:
            try:
                answer.model.model_validate_json(response.content, strict=True)
            except ValidationError as exc:
                self.problems.append(
                    f"{where}: not a {answer.model.__name__}: {exc}\n{response.text[:500]}"
                )


@pytest.fixture
async def relay(start_relay: InProcessFactory, tmp_path: Path) -> InProcessRelay:
    return await start_relay(
        providers=PROVIDERS,
        sandbox={"queued_seconds": 1.0, "running_seconds": 0.5},
        outputs={"store": f"file://{tmp_path / 'outputs'}"},
        prices={"sandbox": {"models": {"*": {"per_million_tokens": "1.40"}}}},
        routes={"any": {"providers": ["cubicspaces", "sandbox"]}},
    )


def checked(client: httpx.AsyncClient, checker: Checker) -> httpx.AsyncClient:
    client.event_hooks = {"response": [checker]}
    return client


async def test_every_answer_of_a_full_flow_is_what_the_document_says(
    relay: InProcessRelay, start_receiver: Any
) -> None:
    checker = Checker()
    receiver: Receiver = await start_receiver(script=[500])  # one failed attempt first
    account = await relay.account("flow")
    async with checked(relay.client(), checker) as anonymous:
        for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/metrics"):
            assert (await anonymous.get(path)).status_code == 200, path
        assert (await anonymous.get("/v1/me")).status_code == 401
    async with checked(relay.client(account), checker) as client:
        await account_and_providers(client)
        task = await tasks(client, receiver)
        await outputs(client, task)
        await usage_and_routes(client)
        await events(client, task)
        await subscriptions(client, receiver)
        await submissions(client)
        await moderation_and_push(client, relay, receiver, checker)
    await live_stream(relay, account, checker)

    assert not checker.problems, "\n\n".join(checker.problems)
    answered = {(m, p) for m, p, status in checker.seen if 200 <= status < 300}
    missing = {op.key for op in OPERATIONS} - answered
    assert not missing, f"operations the flow never saw succeed: {sorted(missing)}"
    refusals = {status for _, _, status in checker.seen if status >= 400}
    assert {400, 401, 404, 409, 410, 413, 416} <= refusals, refusals


async def account_and_providers(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/me")).status_code == 200
    assert (await client.get("/v1/callback-secret")).status_code == 200
    assert (
        await client.post("/v1/callback-secret/rotate", json={"grace_seconds": 60})
    ).status_code == 200
    assert (await client.get("/v1/providers")).status_code == 200
    assert (await client.get("/v1/keys")).status_code == 200
    issued = await client.post("/v1/keys")
    assert issued.status_code == 201, issued.text
    assert (await client.delete(f"/v1/keys/{issued.json()['id']}")).status_code == 200
    assert (await client.delete("/v1/keys/key_nope")).status_code == 404


async def tasks(client: httpx.AsyncClient, receiver: Receiver) -> dict[str, Any]:
    body = {
        "provider": "sandbox",
        "input": ark_input(),
        "callback_url": receiver.url,
        "callback_events": ["task.queued", "task.succeeded"],
        "reference": "r-1",
        "metadata": {"projectId": "p"},
    }
    key = {"Idempotency-Key": "flow-1"}
    created = await client.post("/v1/tasks", json=body, headers=key)
    assert created.status_code == 201, created.text
    again = await client.post("/v1/tasks", json=body, headers=key)
    assert (again.status_code, again.headers["idempotent-replayed"]) == (201, "true")
    reused = await client.post("/v1/tasks", json={**body, "reference": "r-2"}, headers=key)
    assert reused.status_code == 409
    tracked = await client.post(
        "/v1/tasks", json={"provider": "sandbox", "provider_task_id": "cgt-unknown-1"}
    )
    assert tracked.status_code == 201, tracked.text
    to_cancel = await client.post(
        "/v1/tasks", json={"provider": "sandbox", "input": ark_input("cancel me")}
    )
    cancelled = await client.post(f"/v1/tasks/{to_cancel.json()['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    again_cancelled = await client.post(f"/v1/tasks/{to_cancel.json()['id']}/cancel")
    assert again_cancelled.status_code == 409
    task_id = created.json()["id"]
    assert (await client.post(f"/v1/tasks/{task_id}/refresh")).status_code == 200
    page = await client.get("/v1/tasks", params={"limit": 1, "order": "asc"})
    assert page.json()["next_cursor"]
    rest = await client.get(
        "/v1/tasks", params={"limit": 1, "order": "asc", "cursor": page.json()["next_cursor"]}
    )
    assert rest.status_code == 200
    assert (await client.get("/v1/tasks", params={"status": "nope"})).status_code == 400
    assert (await client.get("/v1/tasks/task_nope")).status_code == 404
    assert (await client.post("/v1/tasks", json={"provider": "sandbox"})).status_code == 400
    huge = await client.post(
        "/v1/tasks",
        content=b"{" + b" " * 70_000 + b"}",
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413

    async def done() -> dict[str, Any] | None:
        answer: dict[str, Any] = (await client.get(f"/v1/tasks/{task_id}")).json()
        return answer if answer["status"] == "succeeded" else None

    return await eventually(done, within=15, what="the task to succeed")


async def usage_and_routes(client: httpx.AsyncClient) -> None:
    """A task through a route, and what the account's tasks cost."""
    routed = await client.post("/v1/tasks", json={"provider": "any", "input": PROMPT})
    assert routed.status_code == 201, routed.text
    grouped = await client.get("/v1/usage", params={"group_by": "provider"})
    assert grouped.status_code == 200, grouped.text
    assert grouped.json()["totals"], grouped.text  # the succeeded sandbox task has a cost
    assert (await client.get("/v1/usage", params={"since": "yesterday"})).status_code == 400


async def outputs(client: httpx.AsyncClient, task: dict[str, Any]) -> None:
    """The stored video's stable link, whole, a range, past the end, HEAD; then deleted."""

    async def stored() -> dict[str, Any] | None:
        answer: dict[str, Any] = (await client.get(f"/v1/tasks/{task['id']}")).json()
        return answer if answer["output"]["status"] == "stored" else None

    task = await eventually(stored, within=15, what="the video's copy")
    link = httpx.URL(task["video_url"]).path
    assert link.startswith("/v1/outputs/"), task
    assert (await client.get(link)).status_code == 200
    assert (await client.get(link, headers={"Range": "bytes=0-9"})).status_code == 206
    assert (await client.get(link, headers={"Range": "bytes=999999999-"})).status_code == 416
    assert (await client.head(link)).status_code == 200
    assert (await client.get("/v1/outputs/not-a-token")).status_code == 404
    deleted = await client.delete(f"/v1/tasks/{task['id']}/outputs")
    assert deleted.status_code == 200, deleted.text
    assert (await client.get(link)).status_code == 410
    assert (await client.delete("/v1/tasks/task_nope/outputs")).status_code == 404


async def submissions(client: httpx.AsyncClient) -> None:
    """A create whose answer is lost (the provider answers 500) and one refused while the
    relay backs the provider off: listed, read, and the lost one settled by hand."""
    faults = await client.put(
        "/sandbox/_control/faults", json={"plan": ["500"], "flavors": ["ark"]}
    )
    assert faults.status_code == 200, faults.text
    key = {"Idempotency-Key": "lost-1"}
    body = {"provider": "sandbox", "input": ark_input("lost")}
    lost = await client.post("/v1/tasks", json=body, headers=key)
    assert (lost.status_code, lost.json()["error"]["code"]) == (502, "submission_uncertain")
    again = await client.post("/v1/tasks", json=body, headers=key)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "submission_uncertain")
    refused = await client.post("/v1/tasks", json={**body, "input": ark_input("backed off")})
    assert (refused.status_code, refused.json()["error"]["code"]) == (502, "provider_unavailable")
    listed = await client.get("/v1/submissions", params={"limit": 1})
    assert listed.status_code == 200, listed.text
    assert listed.json()["next_cursor"]
    rest = await client.get("/v1/submissions", params={"cursor": listed.json()["next_cursor"]})
    assert rest.status_code == 200
    uncertain = await client.get("/v1/submissions", params={"state": "uncertain"})
    [open_] = [s for s in uncertain.json()["data"] if s["idempotency_key"] == "lost-1"]
    assert (await client.get(f"/v1/submissions/{open_['id']}")).status_code == 200
    neither = await client.post(f"/v1/submissions/{open_['id']}/resolve", json={})
    assert neither.status_code == 400
    dropped = await client.post(f"/v1/submissions/{open_['id']}/resolve", json={"abandon": True})
    assert (dropped.status_code, dropped.json()["state"]) == (200, "abandoned"), dropped.text
    twice = await client.post(f"/v1/submissions/{open_['id']}/resolve", json={"abandon": True})
    assert twice.status_code == 409


async def events(client: httpx.AsyncClient, task: dict[str, Any]) -> None:
    feed = await client.get("/v1/events", params={"task_id": task["id"], "order": "asc"})
    assert feed.status_code == 200
    event_id = feed.json()["data"][-1]["id"]
    assert (await client.get(f"/v1/events/{event_id}")).status_code == 200

    async def attempted() -> bool:
        listed = (await client.get(f"/v1/events/{event_id}/deliveries")).json()["data"]
        return bool(listed and listed[0]["attempts"])

    await eventually(attempted, within=10, what="an attempt")
    assert (await client.post(f"/v1/events/{event_id}/redeliver")).status_code == 202
    assert (
        await client.post(f"/v1/events/{event_id}/redeliver", json={"destination_id": "dst_nope"})
    ).status_code == 404
    assert (await client.get("/v1/events", params={"since": "yesterday"})).status_code == 400


async def live_stream(relay: InProcessRelay, account: Account, checker: Checker) -> None:
    """The stream never ends, so it is read over real HTTP, not through the checker."""
    headers = {"Authorization": f"Bearer {account.api_key}"}
    async with (
        httpx.AsyncClient(base_url=relay.url, headers=headers, timeout=10) as client,
        aconnect_sse(client, "GET", "/v1/events/stream") as source,
    ):
        op = find_operation("GET", "/v1/events/stream")
        assert op is not None
        answer = documented_answer(op, source.response.status_code)
        assert answer is not None, source.response.status_code
        assert source.response.headers["content-type"].split(";")[0] == answer.media_type
        checker.seen.add((op.method, op.path, source.response.status_code))


async def subscriptions(client: httpx.AsyncClient, receiver: Receiver) -> None:
    made = await client.post(
        "/v1/subscriptions",
        json={
            "target_url": receiver.url,
            "event_types": ["task.succeeded"],
            "headers": {"X-Token": "t"},
            "description": "flow",
        },
    )
    assert made.status_code == 201, made.text
    sub = f"/v1/subscriptions/{made.json()['id']}"
    assert (await client.get("/v1/subscriptions", params={"limit": 1})).status_code == 200
    assert (await client.get(sub)).status_code == 200
    assert (await client.patch(sub, json={"rate_limit": 5})).status_code == 200
    tested = await client.post(sub + "/test")
    assert tested.status_code == 200, tested.text
    test_event = tested.json()["event_id"]
    assert (await client.get(f"/v1/events/{test_event}")).status_code == 200
    assert (await client.get(f"/v1/events/{test_event}/deliveries")).status_code == 200
    assert (await client.post(sub + "/disable")).status_code == 200
    assert (await client.post(sub + "/test")).status_code == 409
    assert (await client.post(sub + "/replay", json={"all": True})).status_code == 409
    assert (await client.post(sub + "/enable", json={"replay": True})).status_code == 200
    assert (
        await client.post(
            sub + "/replay", json={"since": "2020-01-01T00:00:00Z", "only_failed": False}
        )
    ).status_code == 202
    assert (await client.post(sub + "/rotate-secret")).status_code == 200
    assert (await client.delete(sub)).status_code == 200
    assert (await client.get(sub)).status_code == 404


async def moderation_and_push(
    client: httpx.AsyncClient, relay: InProcessRelay, receiver: Receiver, checker: Checker
) -> None:
    moderated = await client.post(
        "/v1/providers/cubicspaces/moderations",
        json={"model": "doubao-seedance-2.0", "images": ["https://example.com/product.png"]},
    )
    assert moderated.status_code == 200, moderated.text
    assert (
        await client.post("/v1/providers/sandbox/moderations", json={"images": []})
    ).status_code == 409
    pushed = await client.post(
        "/v1/tasks",
        json={"provider": "seedance2ink", "input": dict(PROMPT), "callback_url": receiver.url},
    )
    assert pushed.status_code == 201, pushed.text
    provider_task_id = pushed.json()["provider_task_id"]

    async def push_url() -> str | None:
        pushes = (await client.get("/sandbox/_control/pushes")).json()["data"]
        urls = [p["url"] for p in pushes if p["task_id"] == provider_task_id]
        return str(urls[0]) if urls else None

    path = httpx.URL(await eventually(push_url, within=10, what="the provider's push")).path
    async with checked(relay.client(), checker) as provider:
        assert (await provider.post(path, json={"status": "succeeded"})).status_code == 202
        assert (await provider.post(path + "x", json={})).status_code == 404
