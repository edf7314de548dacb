"""The official Volcengine Ark SDK against the relay's Ark door (issue 14, item 1): only the
base URL and the key change. Tasks go to the built-in sandbox through the relay, finish as
ordinary relay tasks, and a ``callback_url`` receives Ark's task object, signed with
Standard Webhooks headers (checked with the ``standardwebhooks`` library)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from volcenginesdkarkruntime import Ark, AsyncArk
from volcenginesdkarkruntime._exceptions import (
    ArkAuthenticationError,
    ArkBadRequestError,
    ArkNotFoundError,
)

from tests.api.conftest import InProcessFactory
from tests.doors.conftest import MODEL
from tests.e2e.conftest import ReceiverFactory
from tests.e2e.harness import (
    Account,
    InProcessRelay,
    Receiver,
    free_port,
    postgres_schema,
    relay_config,
    write_config,
)

CONTENT = [{"type": "text", "text": "a fox runs through snow"}]


async def finished(ark: AsyncArk, task_id: str, within: float = 20.0) -> Any:
    """The task once Ark would call it finished; fails the test after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        task = await ark.content_generation.tasks.get(task_id=task_id)
        if task.status not in ("queued", "running"):
            return task
        assert time.monotonic() < deadline, f"task {task_id} still {task.status}"
        await asyncio.sleep(0.1)


async def test_create_get_poll_and_download(
    ark: AsyncArk, relay: InProcessRelay, account: Account
) -> None:
    created = await ark.content_generation.tasks.create(
        model=MODEL, content=CONTENT, resolution="720p", ratio="16:9", duration=5
    )
    first = await ark.content_generation.tasks.get(task_id=created.id)
    assert first.id == created.id
    assert first.status in ("queued", "running")

    task = await finished(ark, created.id)
    assert task.status == "succeeded", task
    assert task.model == MODEL
    assert task.content.video_url
    assert task.usage.completion_tokens > 0
    assert (task.resolution, task.ratio, task.duration) == ("720p", "16:9", 5)
    assert task.service_tier == "default"
    assert task.execution_expires_after == 172_800
    assert task.created_at <= task.updated_at
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        video = await http.get(task.content.video_url)
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp", "an MP4 file"

    # An ordinary relay task: in /v1/tasks with the same outcome.
    async with relay.client(account) as client:
        listed = (await client.get("/v1/tasks")).json()["data"]
    assert [(t["id"], t["status"], t["provider"]) for t in listed] == [
        (created.id, "succeeded", "sandbox")
    ]


async def test_list_filters_and_pages(ark: AsyncArk) -> None:
    ids = [
        (await ark.content_generation.tasks.create(model=MODEL, content=CONTENT)).id
        for _ in range(3)
    ]
    other = await ark.content_generation.tasks.create(model="other-model", content=CONTENT)
    for task_id in [*ids, other.id]:
        await finished(ark, task_id)

    everything = await ark.content_generation.tasks.list(page_size=10)
    assert everything.total == 4
    assert [t.id for t in everything.items] == [other.id, *reversed(ids)], "newest first"

    first = await ark.content_generation.tasks.list(page_num=1, page_size=2, model=MODEL)
    second = await ark.content_generation.tasks.list(page_num=2, page_size=2, model=MODEL)
    assert (first.total, second.total) == (3, 3)
    assert [t.id for t in first.items + second.items] == list(reversed(ids))

    chosen = await ark.content_generation.tasks.list(task_ids=[ids[0], other.id])
    assert sorted(t.id for t in chosen.items) == sorted([ids[0], other.id])
    assert chosen.total == 2

    succeeded = await ark.content_generation.tasks.list(status="succeeded", page_size=500)
    assert succeeded.total == 4
    assert all(t.status == "succeeded" for t in succeeded.items)
    none = await ark.content_generation.tasks.list(status="queued")
    assert (none.total, none.items) == (0, [])


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[InProcessRelay, AsyncArk, Account]]:
    """An Ark client of a relay on SQLite, and of one on PostgreSQL (where the callback's
    body format is stored and read by the other backend's queries)."""
    async with contextlib.AsyncExitStack() as stack:
        config = relay_config(tmp_path, free_port())
        if request.param == "postgresql":
            config["database_url"] = await stack.enter_async_context(postgres_schema())
        relay = InProcessRelay(config, write_config(tmp_path, config))
        await relay.start()
        stack.push_async_callback(relay.stop)
        account = await relay.account("alice")
        ark = AsyncArk(base_url=f"{relay.url}/ark/api/v3", api_key=account.api_key, max_retries=0)
        stack.push_async_callback(ark.close)
        yield relay, ark, account


async def test_callback_gets_arks_task_object_signed(
    any_store: tuple[InProcessRelay, AsyncArk, Account], receiver: Receiver
) -> None:
    relay, ark, account = any_store
    created = await ark.content_generation.tasks.create(
        model=MODEL, content=CONTENT, callback_url=receiver.url
    )
    task = await finished(ark, created.id)
    assert task.status == "succeeded"

    deadline = time.monotonic() + 10
    while not any(r.json().get("status") == "succeeded" for r in receiver.requests):
        assert time.monotonic() < deadline, "no succeeded callback"
        await asyncio.sleep(0.05)
    bodies = []
    for request in receiver.requests:
        # Signed over the exact bytes received, with the account's callback secret.
        bodies.append(Webhook(account.secret).verify(request.body, request.headers))
        assert request.headers["content-type"] == "application/json"
    statuses = [b["status"] for b in bodies]
    assert statuses[-1] == "succeeded"
    assert statuses == sorted(statuses, key=["queued", "running", "succeeded"].index)
    final = bodies[-1]
    assert final["id"] == created.id
    assert final["content"]["video_url"] == task.content.video_url
    assert final["usage"] == {
        "completion_tokens": task.usage.completion_tokens,
        "total_tokens": task.usage.total_tokens,
    }
    assert "data" not in final, "Ark's object, not the relay's envelope"
    assert "type" not in final
    assert len({r.webhook_id for r in receiver.requests}) == len(receiver.requests)

    # Redelivered (an ordinary relay event): Ark's object again, signed again.
    async with relay.client(account) as client:
        events = (await client.get("/v1/events", params={"task_id": created.id})).json()["data"]
        succeeded = next(e for e in events if e["type"] == "task.succeeded")
        await receiver.quiet_for(0.2)
        before = len(receiver.requests)
        again = await client.post(f"/v1/events/{succeeded['id']}/redeliver")
        assert again.status_code == 202, again.text
    redelivered = (await receiver.wait_for(before + 1))[-1]
    assert redelivered.webhook_id == succeeded["id"]
    assert Webhook(account.secret).verify(redelivered.body, redelivered.headers) == final


async def test_callback_carries_the_stored_video(
    start_relay: InProcessFactory, start_receiver: ReceiverFactory, tmp_path: Path
) -> None:
    relay = await start_relay(outputs={"store": f"file://{tmp_path / 'kept'}", "wait_seconds": 10})
    account = await relay.account("alice")
    receiver = await start_receiver()
    ark = AsyncArk(base_url=f"{relay.url}/ark/api/v3", api_key=account.api_key, max_retries=0)
    try:
        created = await ark.content_generation.tasks.create(
            model=MODEL, content=CONTENT, callback_url=receiver.url
        )
        deadline = time.monotonic() + 15
        while not any(r.json().get("status") == "succeeded" for r in receiver.requests):
            assert time.monotonic() < deadline, "no succeeded callback"
            await asyncio.sleep(0.05)
        done = next(r for r in receiver.requests if r.json()["status"] == "succeeded")
        body = Webhook(account.secret).verify(done.body, done.headers)
        url = body["content"]["video_url"]
        assert url.startswith(f"{relay.url}/v1/outputs/"), "the durable link"
        task = await ark.content_generation.tasks.get(task_id=created.id)
        assert task.content.video_url == url
        async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
            video = await http.get(url)
        assert video.status_code == 200
        assert video.content[4:8] == b"ftyp"
    finally:
        await ark.close()


async def test_delete_cancels_a_queued_task(start_relay: InProcessFactory) -> None:
    relay = await start_relay(sandbox={"queued_seconds": 30, "running_seconds": 0.4})
    account = await relay.account("alice")
    ark = AsyncArk(base_url=f"{relay.url}/ark/api/v3", api_key=account.api_key, max_retries=0)
    try:
        queued = await ark.content_generation.tasks.create(model=MODEL, content=CONTENT)
        # Ark answers an empty object, which the SDK reads as a task of nothing.
        assert (await ark.content_generation.tasks.delete(queued.id)).id is None
        task = await ark.content_generation.tasks.get(task_id=queued.id)
        assert task.status == "cancelled"
        # Finished: Ark forgets it and answers {}; the relay keeps its record.
        assert (await ark.content_generation.tasks.delete(queued.id)).id is None
        assert (await ark.content_generation.tasks.get(task_id=queued.id)).status == "cancelled"
    finally:
        await ark.close()


async def test_delete_refuses_a_running_task(start_relay: InProcessFactory) -> None:
    slow = await start_relay(sandbox={"queued_seconds": 0.1, "running_seconds": 30})
    account = await slow.account("bob")
    ark = AsyncArk(base_url=f"{slow.url}/ark/api/v3", api_key=account.api_key, max_retries=0)
    try:
        running = await ark.content_generation.tasks.create(model=MODEL, content=CONTENT)
        deadline = time.monotonic() + 10
        while (await ark.content_generation.tasks.get(task_id=running.id)).status != "running":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        with pytest.raises(ArkBadRequestError) as refused:
            await ark.content_generation.tasks.delete(running.id)
        assert refused.value.status_code == 400
        task = await ark.content_generation.tasks.get(task_id=running.id)
        assert task.status == "running"
    finally:
        await ark.close()


async def test_typed_errors(relay: InProcessRelay, ark: AsyncArk) -> None:
    wrong = AsyncArk(base_url=f"{relay.url}/ark/api/v3", api_key="rk_wrong", max_retries=0)
    try:
        with pytest.raises(ArkAuthenticationError):
            await wrong.content_generation.tasks.get(task_id="task_x")
    finally:
        await wrong.close()

    with pytest.raises(ArkNotFoundError) as unknown:
        await ark.content_generation.tasks.get(task_id="task_nope")
    assert unknown.value.code == "ResourceNotFound"
    with pytest.raises(ArkNotFoundError):
        await ark.content_generation.tasks.delete("task_nope")

    with pytest.raises(ArkBadRequestError) as bad:
        await ark.content_generation.tasks.create(model=MODEL, content=CONTENT, duration=99)
    assert (bad.value.code, bad.value.param) == ("InvalidParameter", "duration")
    with pytest.raises(ArkBadRequestError) as missing:
        await ark.content_generation.tasks.create(model=MODEL, content=[])
    assert (missing.value.code, missing.value.param) == ("MissingParameter", "content")
    with pytest.raises(ArkBadRequestError) as listing:
        await ark.content_generation.tasks.list(page_size=501)
    assert listing.value.param == "page_size"
    with pytest.raises(ArkBadRequestError) as hook:
        await ark.content_generation.tasks.create(
            model=MODEL, content=CONTENT, callback_url="ftp://example.com/x"
        )
    assert hook.value.param == "callback_url"
    # Nothing was created by the refused requests.
    assert (await ark.content_generation.tasks.list()).total == 0


async def test_the_sync_client_too(relay: InProcessRelay, account: Account) -> None:
    """``Ark`` (blocking), as most scripts use it, in a thread beside the loop serving it."""

    def run() -> tuple[str, str]:
        with Ark(base_url=f"{relay.url}/ark/api/v3", api_key=account.api_key) as ark:
            created = ark.content_generation.tasks.create(model=MODEL, content=CONTENT)
            return created.id, ark.content_generation.tasks.get(task_id=created.id).status

    task_id, status = await asyncio.to_thread(run)
    assert task_id.startswith("task_")
    assert status in ("queued", "running")


async def test_the_door_submits_through_a_configured_route(start_relay: InProcessFactory) -> None:
    relay = await start_relay(
        routes={"main": {"providers": ["sandbox"]}}, front_doors={"ark": {"provider": "main"}}
    )
    account = await relay.account("alice")
    ark = AsyncArk(base_url=f"{relay.url}/ark/api/v3", api_key=account.api_key, max_retries=0)
    try:
        created = await ark.content_generation.tasks.create(model=MODEL, content=CONTENT)
        assert (await finished(ark, created.id)).status == "succeeded"
        async with relay.client(account) as client:
            task = (await client.get(f"/v1/tasks/{created.id}")).json()
        assert (task["route"], task["provider"]) == ("main", "sandbox")
        # Options only an Ark provider takes cannot go through a route.
        with pytest.raises(ArkBadRequestError) as refused:
            await ark.content_generation.tasks.create(model=MODEL, content=CONTENT, frames=121)
        assert refused.value.param == "frames"
    finally:
        await ark.close()


async def test_a_door_aimed_at_nothing_is_not_served(start_relay: InProcessFactory) -> None:
    relay = await start_relay(front_doors={"ark": {"provider": "elsewhere"}})
    account = await relay.account("alice")
    async with relay.client(account) as client:
        answer = await client.get("/ark/api/v3/contents/generations/tasks")
        assert answer.status_code == 404
        served = await client.get("/openai/v1/videos")
        assert served.status_code == 200


async def test_options_only_ark_takes_go_natively_to_an_ark_provider(
    ark: AsyncArk, relay: InProcessRelay, account: Account
) -> None:
    created = await ark.content_generation.tasks.create(
        model=MODEL, content=CONTENT, camera_fixed=True, seed=42
    )
    task = await finished(ark, created.id)
    assert (task.status, task.seed) == ("succeeded", 42)
    async with relay.client(account) as client:
        sent = (await client.get("/v1/submissions")).json()["data"]
    assert len(sent) == 1


async def test_a_create_with_an_idempotency_key_is_made_once(ark: AsyncArk) -> None:
    key = {"Idempotency-Key": "order-42"}
    first = await ark.content_generation.tasks.create(
        model=MODEL, content=CONTENT, extra_headers=key
    )
    again = await ark.content_generation.tasks.create(
        model=MODEL, content=CONTENT, extra_headers=key
    )
    assert again.id == first.id
    assert (await ark.content_generation.tasks.list()).total == 1
