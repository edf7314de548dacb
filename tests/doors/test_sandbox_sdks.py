"""The official SDKs against the relay's built-in sandbox directly (issue 14, item 3): the
sandbox answers where the SDKs look. Ark's task list; Ark's ``callback_url`` pushes on each
status change, unsigned as Ark sends them; the fields the SDK's task model declares; and
new-api's OpenAI-compatible video routes on each new-api flavour."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from openai import AsyncOpenAI
from volcenginesdkarkruntime import AsyncArk
from volcenginesdkarkruntime._exceptions import ArkBadRequestError, ArkNotFoundError

from tests.api.conftest import InProcessFactory
from tests.doors.conftest import MODEL
from tests.e2e.conftest import ReceiverFactory
from tests.e2e.harness import InProcessRelay, Receiver

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

CONTENT = [{"type": "text", "text": "a fox runs through snow"}]


@pytest.fixture
async def sandbox_ark(relay: InProcessRelay) -> AsyncIterator[AsyncArk]:
    client = AsyncArk(base_url=f"{relay.url}/sandbox/ark/api/v3", api_key="any", max_retries=0)
    yield client
    await client.close()


async def test_ark_list_and_declared_fields(sandbox_ark: AsyncArk) -> None:
    first = await sandbox_ark.content_generation.tasks.create(model=MODEL, content=CONTENT)
    second = await sandbox_ark.content_generation.tasks.create(model=MODEL, content=CONTENT)
    listed = await sandbox_ark.content_generation.tasks.list(page_size=10)
    assert [t.id for t in listed.items][:2] == [second.id, first.id]
    chosen = await sandbox_ark.content_generation.tasks.list(task_ids=[first.id])
    assert [t.id for t in chosen.items] == [first.id]
    assert chosen.total == 1
    task = await sandbox_ark.content_generation.tasks.get(task_id=first.id)
    assert (task.service_tier, task.execution_expires_after) == ("default", 172_800)
    with pytest.raises(ArkBadRequestError) as bad:
        await sandbox_ark.content_generation.tasks.create(
            model=MODEL, content=CONTENT, execution_expires_after=60
        )
    assert bad.value.param == "execution_expires_after"
    with pytest.raises(ArkNotFoundError):
        await sandbox_ark.content_generation.tasks.get(task_id="cgt-nope")


async def test_ark_callback_pushes_each_status_unsigned(
    sandbox_ark: AsyncArk, receiver: Receiver
) -> None:
    created = await sandbox_ark.content_generation.tasks.create(
        model=MODEL, content=CONTENT, callback_url=receiver.url
    )
    pushes = await receiver.wait_for(3)
    bodies = [p.json() for p in pushes]
    assert [b["status"] for b in bodies] == ["queued", "running", "succeeded"]
    assert all(b["id"] == created.id for b in bodies)
    final = await sandbox_ark.content_generation.tasks.get(task_id=created.id)
    assert bodies[-1] == final.model_dump(exclude_none=True), "the GET answer, as Ark sends it"
    for push in pushes:
        assert "webhook-signature" not in push.headers, "Ark signs nothing"
        assert "authorization" not in push.headers
    await receiver.quiet_for(0.3)


async def test_ark_callback_of_a_cancelled_task(
    start_relay: InProcessFactory, start_receiver: ReceiverFactory
) -> None:
    relay = await start_relay(sandbox={"queued_seconds": 30, "running_seconds": 0.4})
    receiver = await start_receiver()
    ark = AsyncArk(base_url=f"{relay.url}/sandbox/ark/api/v3", api_key="any", max_retries=0)
    try:
        created = await ark.content_generation.tasks.create(
            model=MODEL, content=CONTENT, callback_url=receiver.url
        )
        await receiver.wait_for(1)
        await ark.content_generation.tasks.delete(created.id)
        pushes = await receiver.wait_for(2)
        assert [p.json()["status"] for p in pushes] == ["queued", "cancelled"]
    finally:
        await ark.close()


@pytest.mark.parametrize("flavor", ["naci", "vastnum", "cubicspaces", "newapi"])
async def test_openai_video_routes_on_new_api_flavours(relay: InProcessRelay, flavor: str) -> None:
    client = AsyncOpenAI(base_url=f"{relay.url}/sandbox/{flavor}/v1", api_key="sk-any")
    try:
        video = await client.videos.create(prompt="a fox runs", seconds="4", model=MODEL)
        assert video.object == "video"
        assert video.status == "queued"
        deadline = time.monotonic() + 15
        while (got := await client.videos.retrieve(video.id)).status != "completed":
            # new-api reads a task it has not polled yet as "unknown": poll() would stop.
            assert got.status in ("unknown", "queued", "in_progress"), got
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        content = await client.videos.download_content(video.id)
        assert content.content[4:8] == b"ftyp"
    finally:
        await client.close()
