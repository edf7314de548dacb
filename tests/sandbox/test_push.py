"""seedance2.ink's webhook push: the final result, POSTed to ``webhookUrl`` when the task
ends, identical to the GET answer; retried a little; harmless whatever the receiver does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiohttp import web

from relay.clock import SystemClock
from relay.sandbox.simulation import SandboxSettings, decode_task_id
from tests.clock import FakeClock
from tests.sandbox.support import AUTH, json_of, served

TASKS = "/sandbox/seedance2ink/api/open/v1/video/generations"
FAST_TASKS = SandboxSettings(queued_seconds=0.2, running_seconds=0.3)


@dataclass
class Arrival:
    at: datetime
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP receiver on 127.0.0.1 answering ``statuses`` in turn (then 200)."""

    statuses: list[int] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)
    url: str = ""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.arrivals.append(
            Arrival(datetime.now(UTC), dict(request.headers), await request.read())
        )
        self.arrived.set()
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def next_arrival(self, within: float = 5.0) -> Arrival:
        count = len(self.arrivals)
        while len(self.arrivals) == count:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), within)
        return self.arrivals[-1]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    found.url = f"http://{host}:{port}/hook"
    try:
        yield found
    finally:
        await runner.cleanup()


def create_body(url: str, prompt: str = "A river, cinematic") -> dict[str, Any]:
    return {"model": "seedance-2.0", "prompt": prompt, "duration": 5, "webhookUrl": url}


@pytest.mark.parametrize("prompt", ["A river", "A river [fail]"])
async def test_the_push_is_the_get_answer_at_the_finish_time(
    receiver: Receiver, prompt: str
) -> None:
    async with served(SystemClock(), FAST_TASKS) as (sandbox, http):
        created = json_of(
            await http.post(TASKS, headers=AUTH, json=create_body(receiver.url, prompt))
        )
        request_id = created["requestId"]
        task = decode_task_id(request_id)
        assert task is not None
        arrival = await receiver.next_arrival()
        late = (arrival.at - task.finished_at).total_seconds()
        assert -0.05 <= late < 0.5
        got = await http.get(f"{TASKS}/{request_id}", headers=AUTH)
        assert arrival.body == got.content
        assert got.json()["status"] == ("failed" if "[fail]" in prompt else "succeeded")
        assert arrival.headers["Content-Type"] == "application/json"
        assert not {"Authorization", "webhook-signature", "X-Signature"} & set(arrival.headers)
        await sandbox.pushes.drain()
        assert len(receiver.arrivals) == 1
        log = json_of(await http.get("/sandbox/_control/pushes"))["data"]
        assert [(r["task_id"], r["url"], r["attempt"], r["status"], r["error"]) for r in log] == [
            (request_id, receiver.url, 1, 200, None)
        ]


async def test_a_cancelled_task_is_pushed_at_once_and_only_once(receiver: Receiver) -> None:
    settings = SandboxSettings(queued_seconds=0.3, running_seconds=5)
    async with served(SystemClock(), settings) as (sandbox, http):
        request_id = json_of(await http.post(TASKS, headers=AUTH, json=create_body(receiver.url)))[
            "requestId"
        ]
        await asyncio.sleep(0.4)  # processing by now
        started = time.monotonic()
        json_of(await http.post(f"{TASKS}/{request_id}/cancel", headers=AUTH))
        arrival = await receiver.next_arrival()
        assert time.monotonic() - started < 0.5
        assert arrival.body == (await http.get(f"{TASKS}/{request_id}", headers=AUTH)).content
        assert b'"status":"cancelled"' in arrival.body
        await sandbox.pushes.drain()
        assert sandbox.pushes.pending == 0
        assert len(receiver.arrivals) == 1


async def test_non_2xx_answers_are_retried_then_given_up(receiver: Receiver) -> None:
    receiver.statuses = [500, 503, 500, 500]
    async with served(SystemClock(), FAST_TASKS, push_retry_delays=(0.05, 0.05)) as (sandbox, http):
        request_id = json_of(await http.post(TASKS, headers=AUTH, json=create_body(receiver.url)))[
            "requestId"
        ]
        await asyncio.sleep(0.5)
        await sandbox.pushes.drain()
        assert len(receiver.arrivals) == 3
        assert len({arrival.body for arrival in receiver.arrivals}) == 1
        assert [(r.attempt, r.status) for r in sandbox.pushes.log] == [(1, 500), (2, 503), (3, 500)]
        # The sandbox does not care: it answers as before.
        assert (
            json_of(await http.get(f"{TASKS}/{request_id}", headers=AUTH))["status"] == "succeeded"
        )


async def test_a_retry_that_succeeds_stops_the_retries() -> None:
    answers = iter([httpx.Response(502), httpx.Response(204)])
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers)

    async with served(
        SystemClock(),
        FAST_TASKS,
        push_transport=httpx.MockTransport(handler),
        push_retry_delays=(0.01, 0.01),
    ) as (sandbox, http):
        json_of(await http.post(TASKS, headers=AUTH, json=create_body("https://hooks.test/x")))
        await asyncio.sleep(0.5)
        await sandbox.pushes.drain()
        assert [r.status for r in sandbox.pushes.log] == [502, 204]
        assert len(seen) == 2
        assert seen[0].headers["user-agent"] == "seedance2ink-webhook/1.0"


async def test_unreachable_and_broken_receivers_are_harmless() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with served(
        SystemClock(),
        FAST_TASKS,
        push_transport=httpx.MockTransport(broken),
        push_retry_delays=(0.01,),
    ) as (sandbox, http):
        request_id = json_of(
            await http.post(TASKS, headers=AUTH, json=create_body("https://nowhere.test/hook"))
        )["requestId"]
        await asyncio.sleep(0.5)
        await sandbox.pushes.drain()
        assert [(r.attempt, r.status, r.error) for r in sandbox.pushes.log] == [
            (1, None, "ConnectError: connection refused"),
            (2, None, "ConnectError: connection refused"),
        ]
        assert json_of(await http.get(f"{TASKS}/{request_id}", headers=AUTH))["success"]
        assert (await http.delete("/sandbox/_control/pushes")).status_code == 204
        assert json_of(await http.get("/sandbox/_control/pushes")) == {"data": []}


async def test_a_closed_port_is_harmless(receiver: Receiver) -> None:
    closed = receiver.url.rsplit(":", 1)[0] + ":9/hook"  # discard port: nothing listens
    async with served(SystemClock(), FAST_TASKS, push_retry_delays=()) as (sandbox, http):
        json_of(await http.post(TASKS, headers=AUTH, json=create_body(closed)))
        await asyncio.sleep(0.5)
        await sandbox.pushes.drain()
        [record] = sandbox.pushes.log
        assert record.status is None
        assert record.error is not None


async def test_closing_the_sandbox_cancels_pending_pushes(clock: FakeClock) -> None:
    sent: list[httpx.Request] = []

    def take(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    transport = httpx.MockTransport(take)
    async with served(clock, push_transport=transport) as (sandbox, http):
        json_of(await http.post(TASKS, headers=AUTH, json=create_body("https://x.test/h")))
        assert sandbox.pushes.pending == 1
    assert sandbox.pushes.pending == 0
    assert sent == []


async def test_no_webhook_no_push(clock: FakeClock) -> None:
    async with served(clock) as (sandbox, http):
        body = create_body("https://x.test/h")
        del body["webhookUrl"]
        json_of(await http.post(TASKS, headers=AUTH, json=body))
        assert sandbox.pushes.pending == 0
