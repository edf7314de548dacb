"""A SQLite relay whose disk fills up: an outage that says so and heals by itself.

A real relay process keeps its database on a small tmpfs. A filler file takes all but a little
of it, and the relay's own writes (registrations, polls, events, deliveries) use up the rest.
While writes fail, every API answer is 201 or a 503 ``database_unavailable`` with
``Retry-After`` (never a 500), reads keep answering, and ``/readyz`` answers 503. Once the
filler is deleted the relay takes writes again without a restart, and every task it accepted,
before or after, ends succeeded with its callback delivered. Skipped where a tmpfs cannot be
mounted (not root)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import (
    Receiver,
    RelayProcess,
    api_client,
    ark_input,
    create_account_in_process,
    eventually,
    free_port,
    relay_config,
    write_config,
)
from tests.store.test_sqlite_full_disk import fill, small_disk

pytestmark = pytest.mark.slow

WORKERS = 6
"""Clients registering at once while the disk fills."""


async def register(client: httpx.AsyncClient, n: int, callback: str) -> httpx.Response:
    return await client.post(
        "/v1/tasks",
        json={
            "provider": "sandbox",
            "input": ark_input(f"disk {n}"),
            "callback_url": callback,
            "reference": f"disk-{n}",
        },
    )


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers.get("retry-after", "").isdigit(), response.headers
    assert int(response.headers["retry-after"]) > 0


async def test_a_full_disk_answers_503_and_the_relay_heals_when_space_returns(
    tmp_path: Path,
) -> None:
    with small_disk(tmp_path / "disk", "8m") as disk:
        receiver = Receiver()
        config = relay_config(
            tmp_path,
            free_port(),
            # A poll whose result could not be saved is polled again when its lease ends.
            polling={"tick_seconds": 0.2, "lease_seconds": 2},
        ) | {"database_url": f"sqlite:///{disk / 'relay.db'}"}
        config_path = write_config(tmp_path, config)
        account = await create_account_in_process(config_path, "disk")
        relay = RelayProcess(config_path, config["server"]["port"], tmp_path / "relay.log")
        accepted: list[str] = []
        answers: dict[int, int] = {}
        serial = iter(range(10**6))
        try:
            await receiver.start()
            await relay.start()
            key = {"Authorization": f"Bearer {account.api_key}"}
            async with api_client(relay.url, headers=key) as client:
                for _ in range(5):
                    response = await register(client, next(serial), receiver.url)
                    assert response.status_code == 201, response.text
                    accepted.append(response.json()["id"])

                filler = fill(disk, leave=256 * 1024)
                failed_at: float | None = None

                async def load() -> None:
                    nonlocal failed_at
                    deadline = time.monotonic() + 15
                    while time.monotonic() < deadline:
                        if failed_at is not None and time.monotonic() > failed_at + 2:
                            return  # two seconds of outage seen
                        response = await register(client, next(serial), receiver.url)
                        answers[response.status_code] = answers.get(response.status_code, 0) + 1
                        if response.status_code == 201:
                            accepted.append(response.json()["id"])
                        else:
                            assert_unavailable(response)
                            assert response.json()["error"]["code"] == "database_unavailable"
                            failed_at = failed_at or time.monotonic()

                await asyncio.gather(*(load() for _ in range(WORKERS)))
                assert failed_at is not None, f"the disk never filled: {answers}"
                assert set(answers) <= {201, 503}, answers

                ready = await client.get("/readyz")
                assert_unavailable(ready)
                assert ready.json()["status"] == "unavailable"
                listed = await client.get("/v1/tasks", params={"limit": 5})
                assert listed.status_code == 200, "reads still answer on a full disk"

                os.remove(filler)

                async def ready_again() -> bool:
                    return (await client.get("/readyz")).status_code == 200

                await eventually(ready_again, within=10, what="/readyz once space returned")
                for _ in range(5):
                    response = await register(client, next(serial), receiver.url)
                    assert response.status_code == 201, response.text
                    accepted.append(response.json()["id"])

                async def all_succeeded() -> bool:
                    for task_id in accepted:
                        task = await client.get(f"/v1/tasks/{task_id}")
                        assert task.status_code == 200, f"accepted task {task_id} lost"
                        if task.json()["status"] != "succeeded":
                            return False
                    return True

                await eventually(
                    all_succeeded, within=15, interval=0.2, what="every accepted task succeeded"
                )

                def delivered() -> set[str]:
                    return {
                        body["data"]["id"]
                        for body in (r.json() for r in receiver.requests)
                        if body["type"] == "task.succeeded"
                    }

                async def all_delivered() -> set[str] | None:
                    return delivered() if delivered() >= set(accepted) else None

                await eventually(
                    all_delivered, within=10, interval=0.2, what="a callback for every task"
                )
                events = await client.get(
                    "/v1/events", params={"type": "task.succeeded", "limit": 200}
                )
                assert {e["data"]["id"] for e in events.json()["data"]} >= set(accepted)

            assert relay.proc is not None
            assert relay.proc.returncode is None, relay.log()
            log = relay.log()
            assert "Exception in ASGI application" not in log
            # An outage is reported, not repeated for each of its failed requests and ticks.
            assert 1 <= log.count("database error on") <= 2, log
            assert log.count("pass skipped") <= 4, log
            wal = disk / "relay.db-wal"
            assert not wal.exists() or wal.stat().st_size <= 5 * 2**20, "the log stays small"
        finally:
            await relay.ensure_dead()
            await receiver.stop()
        print(f"answers while the disk filled: {answers}; {len(accepted)} tasks accepted")
