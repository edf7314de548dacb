"""A push provider's inbound URL expires: it is good for the provider's slowest task (its
``max_age``) plus ``INBOUND_GRACE``, then answers exactly what a forged one does, without a
query to the provider. URLs of the untimed format that earlier relays handed out still bring
pushes for the tasks they were made for, while those are young enough.

The relay runs in-process on a clock the test moves; it reaches its sandbox seedance2.ink
over loopback, whose request log counts the provider's queries. The URLs are made with the
operator's ``secret_key``, as the relay made them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from itsdangerous import URLSafeSerializer

from relay.signing import INBOUND_GRACE, Tokens
from tests.clock import FakeClock
from tests.e2e.harness import (
    InProcessRelay,
    eventually,
    free_port,
    provider_requests,
    relay_config,
    write_config,
)

SECRET = "operator-secret-key-0123456789"
MAX_AGE = 60.0
NEVER = {"min_interval": 100_000, "max_interval": 100_000, "expected_duration": 60, "learn": False}
"""The relay's own polls never come during the test: every query is a push's."""


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def relay(tmp_path: Path, clock: FakeClock) -> AsyncIterator[InProcessRelay]:
    config = relay_config(
        tmp_path,
        free_port(),
        # Tasks run far longer than the test: the sandbox's own push never comes.
        sandbox={"running_seconds": 100_000},
        providers={
            "ink": {"preset": "seedance2ink", "sandbox": True, "poll": NEVER, "max_age": MAX_AGE}
        },
    )
    config["secret_key"] = SECRET
    server = InProcessRelay(config, write_config(tmp_path, config), clock=clock)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def create(client: httpx.AsyncClient) -> dict[str, Any]:
    created = await client.post(
        "/v1/tasks",
        json={"provider": "ink", "input": {"model": "seedance-2.0", "prompt": "a fox"}},
    )
    assert created.status_code == 201, created.text
    task: dict[str, Any] = created.json()
    return task


def untimed(account_id: str, task_id: str) -> str:
    """An inbound token exactly as relays made them before tokens carried their time."""
    return str(URLSafeSerializer(SECRET, salt="inbound").dumps(["ink", account_id, task_id]))


async def queries(relay: InProcessRelay, task: dict[str, Any]) -> int:
    path = f"/video/generations/{task['provider_task_id']}"
    return sum(
        1
        for r in await provider_requests(relay.url)
        if r["method"] == "GET" and r["path"].endswith(path)
    )


async def test_an_expired_push_url_is_refused_without_a_provider_query(
    relay: InProcessRelay, clock: FakeClock
) -> None:
    account = await relay.account("alice")
    issued = clock.now()
    async with relay.client(account) as client, relay.client() as provider:
        task, witness = await create(client), await create(client)
        token = Tokens(SECRET).inbound("ink", account.id, task["id"], issued)
        # A URL that is good asks the provider about its task (the witness: the same push,
        # the same counting).
        fresh = Tokens(SECRET).inbound("ink", account.id, witness["id"], issued)
        assert (await provider.post(f"/v1/inbound/ink/{fresh}", json={})).status_code == 202

        async def looked() -> bool:
            return await queries(relay, witness) > 0

        await eventually(looked, within=10, what="the push's query")

        clock.advance(MAX_AGE + INBOUND_GRACE + 1)
        forged = await provider.post("/v1/inbound/ink/not-a-token", json={})
        for old in (token, untimed(account.id, task["id"])):
            expired = await provider.post(f"/v1/inbound/ink/{old}", json={"status": "SUCCESS"})
            assert (expired.status_code, expired.json()) == (404, forged.json())
        await asyncio.sleep(0.5)
        assert await queries(relay, task) == 0
        assert (await client.get(f"/v1/tasks/{task['id']}")).json()["status"] == "queued"


async def test_an_untimed_push_url_of_an_earlier_relay_still_brings_pushes(
    relay: InProcessRelay, clock: FakeClock
) -> None:
    account = await relay.account("alice")
    async with relay.client(account) as client, relay.client() as provider:
        task = await create(client)
        clock.advance(MAX_AGE)  # as slow as a task at this provider gets
        answer = await provider.post(f"/v1/inbound/ink/{untimed(account.id, task['id'])}", json={})
        assert answer.status_code == 202, answer.text

        async def looked() -> bool:
            return await queries(relay, task) > 0

        await eventually(looked, within=10, what="the push's query")
