"""The official OpenAI SDK against the relay's OpenAI-compatible door (issue 14, item 2): only
the base URL and the key change. ``videos.create`` (multipart, as the SDK sends it),
``retrieve``, ``list``, ``delete``, ``poll`` to completion (a task not started yet reads
``queued``, so ``poll`` waits) and ``download_content``, against the built-in sandbox."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import httpx
import pytest
from openai import AsyncOpenAI, AuthenticationError, BadRequestError, NotFoundError

from tests.api.conftest import InProcessFactory
from tests.e2e.harness import Account, InProcessRelay

# The SDK marks its video methods deprecated (OpenAI's own Sora API is to shut down); the
# routes are the gateways' all the same.
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


async def test_create_poll_download(
    openai_client: AsyncOpenAI, relay: InProcessRelay, account: Account
) -> None:
    video = await openai_client.videos.create(prompt="a fox runs", seconds="8", size="720x1280")
    assert video.object == "video"
    assert video.status == "queued", "never unknown: poll() would return at once"
    assert (video.seconds, video.size, video.progress) == ("8", "720x1280", 0)

    done = await openai_client.videos.poll(video.id, poll_interval_ms=100)
    assert done.status == "completed", done
    assert done.progress == 100
    assert done.completed_at is not None
    assert done.completed_at >= done.created_at
    assert (done.seconds, done.size) == ("8", "720x1280")

    content = await openai_client.videos.download_content(video.id)
    assert content.content[4:8] == b"ftyp", "an MP4 file"

    async with relay.client(account) as client:
        task = (await client.get(f"/v1/tasks/{video.id}")).json()
    assert (task["status"], task["duration"], task["ratio"]) == ("succeeded", 8, "9:16")


async def test_create_as_json_and_with_an_image(
    openai_client: AsyncOpenAI, relay: InProcessRelay, account: Account
) -> None:
    async with relay.client(account) as client:
        answer = await client.post(
            "/openai/v1/videos", json={"prompt": "a fox", "model": "seedance-2.0", "seconds": "4"}
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "queued"

    with_image = await openai_client.videos.create(
        prompt="the cat wakes up", input_reference=("cat.png", PNG, "image/png")
    )
    done = await openai_client.videos.poll(with_image.id, poll_interval_ms=100)
    assert done.status == "completed"


async def test_list_and_delete(start_relay: InProcessFactory) -> None:
    relay = await start_relay(sandbox={"queued_seconds": 30, "running_seconds": 0.4})
    account = await relay.account("alice")
    client = AsyncOpenAI(base_url=f"{relay.url}/openai/v1", api_key=account.api_key)
    try:
        ids = [(await client.videos.create(prompt=f"clip {i}")).id for i in range(5)]
        page = await client.videos.list(limit=2)
        assert [v.id for v in page.data] == ids[::-1][:2]
        assert page.has_more
        every = [v.id async for v in client.videos.list(limit=2)]
        assert every == ids[::-1], "the SDK pages through with after="
        oldest = await client.videos.list(order="asc", limit=10)
        assert [v.id for v in oldest.data] == ids

        gone = await client.videos.delete(ids[0])
        assert (gone.id, gone.deleted, gone.object) == (ids[0], True, "video.deleted")
        failed = await client.videos.retrieve(ids[0])
        assert failed.status == "failed"
        assert failed.error is not None
        assert failed.error.code == "cancelled"
    finally:
        await client.close()


async def test_typed_errors(relay: InProcessRelay, openai_client: AsyncOpenAI) -> None:
    wrong = AsyncOpenAI(base_url=f"{relay.url}/openai/v1", api_key="rk_wrong", max_retries=0)
    try:
        with pytest.raises(AuthenticationError):
            await wrong.videos.retrieve("task_x")
    finally:
        await wrong.close()
    with pytest.raises(NotFoundError):
        await openai_client.videos.retrieve("task_nope")
    with pytest.raises(NotFoundError):
        await openai_client.videos.download_content("task_nope")
    with pytest.raises(BadRequestError) as bad:
        await openai_client.videos.create(prompt="a fox", seconds="99")  # type: ignore[arg-type]
    assert "duration" in str(bad.value)
    with pytest.raises(BadRequestError) as size:
        await openai_client.videos.create(prompt="a fox", size="big")  # type: ignore[arg-type]
    assert size.value.param == "size"
    with pytest.raises(BadRequestError):
        await openai_client.videos.create(
            prompt="a fox", input_reference=("x.txt", b"hello", "text/plain")
        )
    with pytest.raises(BadRequestError) as limit:
        await openai_client.videos.list(limit=1000)
    assert limit.value.param == "limit"
    assert (await openai_client.videos.list()).data == [], "nothing was created"


async def test_content_of_a_stored_video(start_relay: InProcessFactory, tmp_path: Path) -> None:
    relay = await start_relay(outputs={"store": f"file://{tmp_path / 'kept'}", "wait_seconds": 10})
    account = await relay.account("alice")
    client = AsyncOpenAI(base_url=f"{relay.url}/openai/v1", api_key=account.api_key)
    try:
        video = await client.videos.create(prompt="a fox")
        await client.videos.poll(video.id, poll_interval_ms=100)
        async with relay.client(account) as api:
            for _ in range(100):
                task = (await api.get(f"/v1/tasks/{video.id}")).json()
                if task["output"] and task["output"]["status"] == "stored":
                    break
                await asyncio.sleep(0.1)
        assert task["video_url"].startswith(f"{relay.url}/v1/outputs/")
        # The door sends the SDK to the stored copy, which the relay streams.
        async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
            hop = await http.get(
                f"{relay.url}/openai/v1/videos/{video.id}/content",
                headers={"Authorization": f"Bearer {account.api_key}"},
            )
        assert hop.status_code == 307
        assert hop.headers["location"] == task["video_url"]
        content = await client.videos.download_content(video.id)
        assert content.content[4:8] == b"ftyp"
        assert len(content.content) == task["output"]["video"]["size"]
    finally:
        await client.close()


async def test_malformed_bodies_are_openai_400s(relay: InProcessRelay, account: Account) -> None:
    async with relay.client(account) as client:
        broken = await client.post(
            "/openai/v1/videos",
            content=b"--x\r\nnot a part",
            headers={"content-type": "multipart/form-data; boundary=x"},
        )
        not_json = await client.post(
            "/openai/v1/videos", content=b"{", headers={"content-type": "application/json"}
        )
        by_file_id = await client.post(
            "/openai/v1/videos", json={"prompt": "x", "input_reference": {"file_id": "file_1"}}
        )
        listed = (await client.get("/v1/tasks")).json()["data"]
    for answer in (broken, not_json, by_file_id):
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["type"] == "invalid_request_error"
    assert by_file_id.json()["error"]["param"] == "input_reference"
    assert listed == []


async def test_a_create_with_an_idempotency_key_is_made_once(openai_client: AsyncOpenAI) -> None:
    key = {"Idempotency-Key": "clip-7"}
    first = await openai_client.videos.create(prompt="a fox", extra_headers=key)
    again = await openai_client.videos.create(prompt="a fox", extra_headers=key)
    assert again.id == first.id
    assert len((await openai_client.videos.list()).data) == 1
