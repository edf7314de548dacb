"""The sandbox's files through a real server on loopback, where a connection can drop: the
``cut`` and ``stall`` faults, and a reader hanging up mid-video stopping the stream."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn

from relay.sandbox.app import Sandbox
from relay.sandbox.media import expected_sha256, video_bytes
from relay.sandbox.simulation import SandboxSettings
from tests.clock import FakeClock
from tests.sandbox.support import AUTH, T0, json_of

TASKS = "/ark/api/v3/contents/generations/tasks"
BODY = {"model": "m", "content": [{"type": "text", "text": "x"}]}
SIZE = 1_000_000


@asynccontextmanager
async def serving(video_bytes: int = SIZE) -> AsyncIterator[tuple[Sandbox, httpx.AsyncClient]]:
    """A sandbox on a real uvicorn server (its clock fake), and a client over loopback."""
    clock = FakeClock(T0)
    sandbox = Sandbox(SandboxSettings(video_bytes=video_bytes), clock)
    server = uvicorn.Server(
        uvicorn.Config(sandbox.app, host="127.0.0.1", port=0, lifespan="off", log_level="critical")
    )
    serving = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            assert not serving.done()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as http:
            task_id = json_of(await http.post(TASKS, headers=AUTH, json=BODY))["id"]
            clock.advance(8)
            http.headers["x-test-task"] = task_id
            yield sandbox, http
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=10)
        await sandbox.aclose()


async def video_url(http: httpx.AsyncClient) -> tuple[str, str]:
    task_id = http.headers["x-test-task"]
    answer = json_of(await http.get(f"{TASKS}/{task_id}", headers=AUTH))
    return task_id, answer["content"]["video_url"]


async def file_log(http: httpx.AsyncClient, count: int) -> list[dict[str, object]]:
    """The file log once it holds ``count`` records (a stream logs when it ends)."""
    started = time.monotonic()
    while len(log := json_of(await http.get("/_control/files"))["data"]) < count:
        assert time.monotonic() - started < 5, log
        await asyncio.sleep(0.02)
    return list(log)


async def test_cut_promises_the_whole_video_and_drops_the_connection() -> None:
    async with serving() as (_, http):
        task_id, url = await video_url(http)
        json_of(
            await http.put("/_control/file-faults", json={"plan": ["cut"], "after_bytes": 70000})
        )
        received = bytearray()

        async def download() -> None:
            async with http.stream("GET", url) as response:
                assert response.headers["content-length"] == str(SIZE)
                async for chunk in response.aiter_raw():
                    received.extend(chunk)

        with pytest.raises(httpx.RemoteProtocolError):
            await download()
        assert bytes(received) == video_bytes(task_id, SIZE)[:70000]
        [record] = await file_log(http, 1)
        assert (record["fault"], record["status"], record["bytes"]) == ("cut", 200, 70000)

        # A resume from where it broke gets the rest: the whole file checks out.
        rest = await http.get(url, headers={"Range": f"bytes={len(received)}-"})
        assert rest.status_code == 206
        whole = bytes(received) + rest.content
        assert hashlib.sha256(whole).hexdigest() == expected_sha256(task_id, SIZE)


async def test_cut_never_delivers_the_whole_body_even_when_asked_past_it() -> None:
    async with serving(video_bytes=5000) as (_, http):
        _, url = await video_url(http)
        json_of(
            await http.put("/_control/file-faults", json={"plan": ["cut"], "after_bytes": 10**9})
        )
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(url)
        [record] = await file_log(http, 1)
        assert record["bytes"] == 4999


async def test_stall_pauses_mid_body_then_serves_the_rest() -> None:
    async with serving() as (_, http):
        task_id, url = await video_url(http)
        fault = {"plan": ["stall", "stall"], "after_bytes": 100_000, "timeout_seconds": 30}
        json_of(await http.put("/_control/file-faults", json=fault))
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await http.get(url, timeout=0.3)
        # The stalled stream ends when its reader hangs up, not 30 s later.
        [record] = await file_log(http, 1)
        assert (record["fault"], record["status"]) == ("stall", 499)
        assert record["bytes"] == 100_000
        assert time.monotonic() - started < 5

        fault = {"plan": ["stall"], "after_bytes": 100_000, "timeout_seconds": 0.2}
        json_of(await http.put("/_control/file-faults", json=fault))
        video = await http.get(url, timeout=5)
        assert hashlib.sha256(video.content).hexdigest() == expected_sha256(task_id, SIZE)


async def test_a_reader_hanging_up_stops_the_stream() -> None:
    async with serving(video_bytes=2**30) as (_, http):
        _, url = await video_url(http)
        async with http.stream("GET", url) as response:
            assert response.headers["content-length"] == str(2**30)
            async for _ in response.aiter_raw():
                break
        [record] = await file_log(http, 1)
        assert record["status"] == 499
        assert isinstance(record["bytes"], int)
        assert record["bytes"] < 2**30 // 10  # not the whole gigabyte
