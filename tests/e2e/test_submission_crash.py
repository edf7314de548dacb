"""A relay killed (SIGKILL) while a provider is still answering a create: the provider took
the task and was paid, the relay has no task yet. The caller retries with the same
Idempotency-Key and gets that very task (found in the provider's task list), never a stuck
key and never a second create. The provider is a relay process of its own serving the
sandbox, so it outlives the killed relay and its request log counts every create."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.e2e.harness import (
    Receiver,
    RelayProcess,
    api_client,
    ark_input,
    create_account,
    eventually,
    free_port,
    postgres_schema,
    provider_config,
    provider_requests,
    relay_config,
    sandbox_provider,
    write_config,
)

pytestmark = pytest.mark.slow

CREATE_TAKES = 6.0
"""Seconds the provider takes to answer a create it has already taken."""
KILL_AFTER = 2.0


@contextlib.asynccontextmanager
async def database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'relay.db'}"
    else:
        async with postgres_schema() as url:
            yield url


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_a_kill_during_a_slow_create_leaves_no_stuck_key_and_no_second_create(
    tmp_path: Path, kind: str
) -> None:
    """SQLite serves one instance, so the restarted relay knows at once that whatever was
    pending is its dead predecessor's. PostgreSQL cannot tell a dead instance from a live
    one: the retry meets 409 ``idempotency_key_in_use`` with ``Retry-After`` until the dead
    request's lease (15 s) runs out, then the same answer."""
    async with database(kind, tmp_path) as url:
        await crash_during_create(tmp_path, url)


async def crash_during_create(tmp_path: Path, database_url: str) -> None:
    provider_port, relay_port = free_port(), free_port()
    provider = RelayProcess(
        write_config(
            tmp_path,
            provider_config(tmp_path, provider_port, queued_seconds=0.5, running_seconds=1.0),
            "provider.yaml",
        ),
        provider_port,
        tmp_path / "provider.log",
    )
    config = relay_config(
        tmp_path,
        relay_port,
        sandbox={"enabled": False},
        providers={
            "sandbox": sandbox_provider(
                provider.url, min_interval=0.2, max_interval=0.5, expected_duration=1.5
            )
            | {"timeout": 30}
        },
    )
    config_path = write_config(tmp_path, config | {"database_url": database_url})
    relay = RelayProcess(config_path, relay_port, tmp_path / "relay-1.log")
    again = RelayProcess(config_path, relay_port, tmp_path / "relay-2.log")
    receiver = Receiver()
    try:
        await provider.start()
        await receiver.start()
        account = await create_account(config_path, "payer")
        await relay.start()
        async with api_client(provider.url) as control:
            plan = {"plan": ["slow"], "timeout_seconds": CREATE_TAKES}
            assert (await control.put("/sandbox/_control/faults", json=plan)).status_code == 200
        body: dict[str, Any] = {
            "provider": "sandbox",
            "input": ark_input("paid for once"),
            "callback_url": receiver.url,
            "reference": "order-1",
        }
        headers = {
            "Authorization": f"Bearer {account.api_key}",
            "Idempotency-Key": "order-1-create",
        }
        async with api_client(relay.url, headers=headers) as client:
            first = asyncio.create_task(client.post("/v1/tasks", json=body))
            await asyncio.sleep(KILL_AFTER)
            await relay.kill(signal.SIGKILL)
            with pytest.raises(httpx.TransportError):
                await first

        await again.start()
        async with api_client(again.url, headers=headers) as client:

            async def answered() -> httpx.Response | None:
                response = await client.post("/v1/tasks", json=body)
                if response.status_code == 409:
                    code = response.json()["error"]["code"]
                    assert code in ("idempotency_key_in_use", "submission_in_flight"), code
                    assert 1 <= int(response.headers.get("retry-after", "1")) <= 15
                    return None
                return response

            retry = await eventually(answered, within=40, interval=1, what="the retry's answer")
            assert retry.status_code == 201, retry.text
            task = retry.json()
            # Asked again, the same answer: the same task.
            assert (await client.post("/v1/tasks", json=body)).json()["id"] == task["id"]
            listed = (await client.get("/v1/submissions")).json()["data"]
            assert [(s["state"], s["task_id"]) for s in listed] == [("accepted", task["id"])]

        async def creates() -> list[dict[str, Any]] | None:
            # The provider logs a request once it has answered it, CREATE_TAKES after.
            found = [
                r
                for r in await provider_requests(provider.url)
                if r["method"] == "POST" and r["path"].endswith("/contents/generations/tasks")
            ]
            return found or None

        assert len(await eventually(creates, within=15, what="the create in the log")) == 1
        await asyncio.sleep(1)
        assert len(await creates() or []) == 1
        # The task the provider made is the one tracked, and its result reaches the caller.
        assert task["provider_task_id"].startswith("cgt-")
        assert task["reference"] == "order-1"

        async def succeeded() -> dict[str, Any] | None:
            for request in receiver.requests:
                event = Webhook(account.secret).verify(request.body, request.headers)
                if event["type"] == "task.succeeded":
                    return dict(event)
            return None

        event = await eventually(succeeded, within=20, what="the task.succeeded callback")
        assert event["data"]["id"] == task["id"]
        assert "Traceback" not in again.log()
    finally:
        for process in (relay, again, provider):
            await process.ensure_dead()
        await receiver.stop()
