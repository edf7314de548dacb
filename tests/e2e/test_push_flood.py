"""Whoever holds a task's inbound push URL may call it as often as they like; each call that
made the relay query the provider spent the operator's quota (and a provider answering 429
backs off every tenant). A flood of pushes is counted here at the provider, the sandbox's
seedance2.ink emulation (which pushes), through its own request log.

The URL is the one the relay hands the provider: the operator's ``secret_key`` (set here)
makes the same token, as a captured URL would carry it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.signing import Tokens
from relay.tasks.tracker import PUSH_RECHECKS
from tests.e2e.harness import (
    RelayServer,
    api_client,
    eventually,
    free_port,
    provider_requests,
    relay_config,
    write_config,
)

SECRET = "operator-secret-key-0123456789"
SLOW_POLL = {"min_interval": 60, "max_interval": 60, "expected_duration": 60, "learn": False}
"""The relay's own polls come too late to be counted: every query here is a push's."""
FLOOD = 500


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[RelayServer]:
    config = relay_config(
        tmp_path,
        free_port(),
        # A task runs 3 s at the sandbox, a "[slow]" one 15 s.
        sandbox={"running_seconds": 3},
        providers={"ink": {"preset": "seedance2ink", "sandbox": True, "poll": SLOW_POLL}},
    )
    config["secret_key"] = SECRET
    server = RelayServer(config, write_config(tmp_path, config))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def create(client: httpx.AsyncClient, prompt: str) -> dict[str, Any]:
    created = await client.post(
        "/v1/tasks",
        json={"provider": "ink", "input": {"model": "seedance-2.0", "prompt": prompt}},
    )
    assert created.status_code == 201, created.text
    task: dict[str, Any] = created.json()
    return task


async def flood(relay: RelayServer, account_id: str, task_id: str) -> None:
    token = Tokens(SECRET).inbound("ink", account_id, task_id, datetime.now(UTC))
    limits = httpx.Limits(max_connections=FLOOD)
    # What is counted is the provider's queries, not how fast the flood is answered: on a
    # busy machine (five test workers on two cores) some pushes wait longer than 10 s.
    async with api_client(relay.url, limits=limits, timeout=60) as anyone:
        answers = await asyncio.gather(
            *(
                anyone.post(f"/v1/inbound/ink/{token}", json={"status": "SUCCESS"})
                for _ in range(FLOOD)
            )
        )
    assert {a.status_code for a in answers} == {202}


async def queries(relay: RelayServer, task: dict[str, Any]) -> int:
    path = f"/video/generations/{task['provider_task_id']}"
    return sum(
        1
        for r in await provider_requests(relay.url)
        if r["method"] == "GET" and r["path"].endswith(path)
    )


@pytest.mark.slow
async def test_a_flood_of_pushes_costs_the_provider_what_one_push_costs(
    relay: RelayServer,
) -> None:
    account = await relay.account("alice")
    async with relay.client(account) as client:
        running = await create(client, "[slow] a fox")
        finished = await create(client, "a hare")

        # While the task runs at the provider: one look at once, then its few rechecks.
        await flood(relay, account.id, running["id"])
        await asyncio.sleep(1)
        # One push costs a look and at most PUSH_RECHECKS quick rechecks, one every 2 s (some
        # came while the flood was still arriving); no other push counts.
        assert 1 <= await queries(relay, running) <= 1 + PUSH_RECHECKS

        # Once the task is finished (the provider's own push told the relay), nothing.
        async def succeeded() -> bool:
            task = (await client.get(f"/v1/tasks/{finished['id']}")).json()
            return bool(task["status"] == "succeeded")

        await eventually(succeeded, within=15, what="the pushed task to succeed")
        before = await queries(relay, finished)
        await flood(relay, account.id, finished["id"])
        await asyncio.sleep(0.5)
        assert await queries(relay, finished) == before
