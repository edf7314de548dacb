"""``GET /v1/events/stream`` end to end: real relays served on loopback, read over real HTTP
with ``httpx-sse``; what the stream sends is compared with the account's feed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from relay.models import Account as ModelAccount
from relay.store import open_store
from tests.api.conftest import InProcessFactory, start_relay
from tests.e2e.harness import (
    Account,
    InProcessRelay,
    ark_input,
    free_port,
    postgres_schema,
    relay_config,
    write_config,
)
from tests.store.factories import register

__all__ = ["start_relay"]


def http(relay: InProcessRelay, account: Account | None) -> httpx.AsyncClient:
    auth = {"Authorization": f"Bearer {account.api_key}"} if account else {}
    return httpx.AsyncClient(base_url=relay.url, headers=auth, timeout=20, trust_env=False)


async def create(relay: InProcessRelay, account: Account, prompt: str = "a fox") -> str:
    async with http(relay, account) as client:
        body = {"provider": "sandbox", "input": ark_input(prompt)}
        created = await client.post("/v1/tasks", json=body)
    assert created.status_code == 201, created.text
    task_id: str = created.json()["id"]
    return task_id


async def feed(relay: InProcessRelay, account: Account, **params: str) -> list[dict[str, Any]]:
    async with http(relay, account) as client:
        got = await client.get("/v1/events", params={"order": "asc", "limit": 200, **params})
    data: list[dict[str, Any]] = got.json()["data"]
    return data


@contextlib.asynccontextmanager
async def stream(
    relay: InProcessRelay, account: Account, **params: str
) -> AsyncIterator[AsyncIterator[ServerSentEvent]]:
    headers = {}
    if "last_event_id" in params:
        headers["Last-Event-ID"] = params.pop("last_event_id")
    async with (
        http(relay, account) as client,
        aconnect_sse(client, "GET", "/v1/events/stream", params=params, headers=headers) as source,
    ):
        assert source.response.status_code == 200, await source.response.aread()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        yield source.aiter_sse()


async def take(events: AsyncIterator[ServerSentEvent], n: int) -> list[ServerSentEvent]:
    got: list[ServerSentEvent] = []

    async def read() -> None:
        async for sse in events:
            if not sse.data:  # a heartbeat (httpx-sse yields comments once an id was seen)
                continue
            got.append(sse)
            if len(got) == n:
                return

    await asyncio.wait_for(read(), timeout=60)  # generous: a loaded machine is slow
    return got


def same_as_feed(got: list[ServerSentEvent], listed: list[dict[str, Any]]) -> None:
    """Each streamed event is the feed's envelope exactly, with its id and type."""
    assert [s.id for s in got] == [e["id"] for e in listed]
    assert [s.event for s in got] == [e["type"] for e in listed]
    assert [json.loads(s.data) for s in got] == listed


async def test_the_stream_sends_each_event_as_delivered_in_order(
    start_relay: InProcessFactory,
) -> None:
    relay = await start_relay()
    account = await relay.account("watcher")
    async with stream(relay, account) as events:
        task_id = await create(relay, account)
        got = await take(events, 3)  # queued, running, succeeded
    same_as_feed(got, await feed(relay, account, task_id=task_id))
    assert got[-1].event == "task.succeeded"


async def test_a_stream_resumed_with_last_event_id_misses_nothing_and_repeats_nothing(
    start_relay: InProcessFactory,
) -> None:
    relay = await start_relay()
    account = await relay.account("resumer")
    async with stream(relay, account) as events:
        first = await create(relay, account, "one")
        [seen] = await take(events, 1)
    # Disconnected: these happen while nobody listens.
    second = await create(relay, account, "two")
    async with http(relay, account) as client:

        async def ended() -> bool:
            task = (await client.get(f"/v1/tasks/{second}")).json()
            return bool(task["status"] == "succeeded")

        for _ in range(200):
            if await ended():
                break
            await asyncio.sleep(0.05)
    async with stream(relay, account, last_event_id=seen.id) as events:
        third = await create(relay, account, "three")
        rest = await take(events, 2 + 3 + 3)  # first's last two, second's three, third's
    everything = await feed(relay, account)
    same_as_feed([seen, *rest], everything)
    assert {e["data"]["id"] for e in everything} == {first, second, third}


async def test_filters_by_type_and_task(start_relay: InProcessFactory) -> None:
    relay = await start_relay()
    account = await relay.account("picky")
    async with stream(relay, account, type="task.succeeded,task.failed") as events:
        await create(relay, account, "ok")
        await create(relay, account, "[fail]")
        got = await take(events, 2)
    assert sorted(s.event for s in got) == ["task.failed", "task.succeeded"]
    other = await create(relay, account, "mine")
    async with stream(relay, account, task_id=other, last_event_id=got[0].id) as events:
        mine = await take(events, 3)
    assert {json.loads(s.data)["data"]["id"] for s in mine} == {other}


async def test_bad_streams_are_refused_clearly(start_relay: InProcessFactory) -> None:
    relay = await start_relay(streams={"max_per_account": 1})
    account = await relay.account("limited")
    async with http(relay, None) as anonymous:
        assert (await anonymous.get("/v1/events/stream")).status_code == 401
    async with http(relay, account) as client:
        bad = await client.get("/v1/events/stream", params={"type": "task.nope"})
        assert bad.status_code == 400
        assert "task.nope" in bad.json()["error"]["message"]
        unknown = await client.get("/v1/events/stream", headers={"Last-Event-ID": "evt_nope"})
        assert unknown.status_code == 400
        assert "Last-Event-ID" in unknown.json()["error"]["message"]
    async with stream(relay, account):
        async with http(relay, account) as client:
            second = await client.get("/v1/events/stream")
        assert second.status_code == 429
        assert second.json()["error"]["code"] == "too_many_streams"
    async with stream(relay, account):  # closing the first freed its place
        pass


async def test_a_stream_resumes_across_a_relay_restart(tmp_path: Path) -> None:
    config = relay_config(tmp_path, free_port())
    path = write_config(tmp_path, config)
    relay = await InProcessRelay(config, path).start()
    try:
        account = await relay.account("patient")
        async with stream(relay, account) as events:
            first = await create(relay, account)
            [seen] = await take(events, 1)
        async with stream(relay, account, last_event_id=seen.id) as events:
            await take(events, 2)  # the task ended before the restart
    finally:
        await relay.stop()
    again = await InProcessRelay(config, path).start()  # the same database, a new process
    try:
        async with stream(again, account, last_event_id=seen.id) as events:
            second = await create(again, account, "after the restart")
            rest = await take(events, 2 + 3)
        same_as_feed([seen, *rest], await feed(again, account))
        assert {json.loads(s.data)["data"]["id"] for s in rest} == {first, second}
    finally:
        await again.stop()


@pytest.mark.postgres
async def test_an_event_committed_by_one_instance_reaches_a_stream_on_another(
    tmp_path: Path,
) -> None:
    async with postgres_schema() as url:
        relays = []
        try:
            for n in (1, 2):
                config = relay_config(tmp_path, free_port()) | {"database_url": url}
                path = write_config(tmp_path, config, f"relay-{n}.yaml")
                relays.append(await InProcessRelay(config, path).start())
            account = await relays[0].account("spread")
            async with stream(relays[1], account) as events:
                task_id = await create(relays[0], account)
                got = await take(events, 3)
            same_as_feed(got, await feed(relays[0], account, task_id=task_id))
        finally:
            for relay in reversed(relays):
                await relay.stop()


async def test_a_head_request_holds_no_stream(start_relay: InProcessFactory) -> None:
    relay = await start_relay(streams={"max_per_account": 1})
    account = await relay.account("header")
    async with http(relay, account) as client:
        for _ in range(3):
            head = await client.head("/v1/events/stream")
            assert head.status_code == 200
            assert head.headers["content-type"].startswith("text/event-stream")
    async with stream(relay, account):  # the one place is still free
        pass


async def test_a_resume_repeats_nothing_a_lagging_tail_reads_late(
    start_relay: InProcessFactory,
) -> None:
    """Events another instance wrote reach this instance's tail only at its next read; a
    client resuming after them (it had them from the other instance) gets none again."""
    relay = await start_relay(streams={"poll_interval": 10})
    account = await relay.account("lagging")
    other = open_store(relay.settings.database_url)  # another instance's writes
    try:
        owner = ModelAccount(id=account.id, name=account.name, created_at=datetime.now(UTC))
        await asyncio.sleep(0.3)  # the hub's first read has passed
        written = [
            await register(other, owner, callback_url=None, next_poll_at=None) for _ in range(3)
        ]
        async with stream(relay, account, last_event_id=written[-1].event.id) as events:
            relay.app.state.services.hub.wake()  # the tail reads the three now
            fresh = await create(relay, account, "after")
            got = await take(events, 3)  # the new task's, never the three again
        assert {json.loads(s.data)["data"]["id"] for s in got} == {fresh}
    finally:
        await other.close()
