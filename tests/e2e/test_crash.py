"""At-least-once across a crash (DESIGN §5, §8): the relay runs as a real process, is killed
with SIGKILL, and a new process on the same SQLite file delivers everything that was written."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.e2e.harness import (
    Account,
    Receiver,
    RelayProcess,
    api_client,
    ark_input,
    create_account,
    eventually,
    free_port,
    relay_config,
    write_config,
)

TASKS = 20
# Long enough that nothing runs out of attempts while the receiver is down, short enough that
# what is pending comes due within a second of the restart.
PATIENT_SCHEDULE = [0.5] * 40

pytestmark = pytest.mark.slow


def authed(url: str, account: Account) -> httpx.AsyncClient:
    return api_client(url, headers={"Authorization": f"Bearer {account.api_key}"})


async def register_many(client: httpx.AsyncClient, callback_url: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        response = await client.post(
            "/v1/tasks",
            json={
                "provider": "sandbox",
                "input": ark_input(f"crash test {i}"),
                "callback_url": callback_url,
                "reference": f"crash-{i}",
            },
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def succeeded_events(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/v1/events", params={"type": "task.succeeded", "limit": 200})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["data"]
    return events


async def deliveries(client: httpx.AsyncClient, event_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/events/{event_id}/deliveries")
    assert response.status_code == 200, response.text
    views: list[dict[str, Any]] = response.json()["data"]
    return views


def assert_clean_log(log: str) -> None:
    assert "Traceback" not in log, log
    assert "delivery task crashed" not in log, log


async def test_sigkill_with_a_down_receiver_loses_no_event(tmp_path: Path) -> None:
    receiver_port = free_port()  # nothing listens here until after the crash
    callback_url = f"http://127.0.0.1:{receiver_port}/hook"
    config = relay_config(tmp_path, free_port(), retry_schedule=PATIENT_SCHEDULE)
    config_path = write_config(tmp_path, config)
    account = await create_account(config_path, "crash")
    first = RelayProcess(config_path, config["server"]["port"], tmp_path / "run1.log")
    second = RelayProcess(config_path, config["server"]["port"], tmp_path / "run2.log")
    receiver = Receiver(port=receiver_port)
    try:
        await first.start()
        async with authed(first.url, account) as client:
            task_ids = await register_many(client, callback_url, TASKS)

            async def all_pending_after_a_failure() -> list[dict[str, Any]] | None:
                listed = (
                    await client.get("/v1/tasks", params={"status": "succeeded", "limit": 200})
                ).json()["data"]
                if len(listed) < TASKS:
                    return None
                events = await succeeded_events(client)
                if len(events) < TASKS:
                    return None
                for event in events:
                    views = await deliveries(client, event["id"])
                    if not (len(views) == 1 and views[0]["attempts"]):
                        return None
                return events

            events = await eventually(
                all_pending_after_a_failure,
                within=20,
                interval=0.2,
                what="20 succeeded tasks with a failed attempt each",
            )
            event_ids = {e["id"] for e in events}
            assert {e["data"]["id"] for e in events} == set(task_ids)
            for event_id in event_ids:
                [view] = await deliveries(client, event_id)
                assert view["status"] == "pending", view
                assert view["url"] == callback_url
                for attempt in view["attempts"]:
                    assert attempt["status_code"] is None
                    assert attempt["outcome"] == "retry"
                    assert attempt["error"]

        assert await first.kill(signal.SIGKILL) == -signal.SIGKILL
        assert_clean_log(first.log())

        await receiver.start()
        await second.start()
        requests = await receiver.wait_for(TASKS, within=20)
        hook = Webhook(account.secret)
        for request in requests:
            payload = hook.verify(request.body, request.headers)
            assert payload["id"] == request.webhook_id
            assert payload["type"] == "task.succeeded"
            assert payload["data"]["status"] == "succeeded"
        # Nothing was in flight at the crash (the receiver was down): no duplicates at all.
        await receiver.quiet_for(1.0)
        counts = Counter(r.webhook_id for r in receiver.requests)
        assert set(counts) == event_ids, "every written event arrives"
        assert set(counts.values()) == {1}, f"duplicates: {counts}"

        async with authed(second.url, account) as client:

            async def all_recorded() -> bool:
                for event_id in event_ids:
                    views = await deliveries(client, event_id)
                    if [v["status"] for v in views] != ["succeeded"]:
                        return False
                return True

            await eventually(all_recorded, within=10, what="every delivery recorded succeeded")
            for event_id in event_ids:
                [view] = await deliveries(client, event_id)
                attempts = view["attempts"]
                assert len(attempts) >= 2
                assert view["attempt_count"] == len(attempts)
                assert [a["number"] for a in attempts] == list(range(1, len(attempts) + 1))
                assert [a["outcome"] for a in attempts] == ["retry"] * (len(attempts) - 1) + [
                    "delivered"
                ]
                assert attempts[-1]["status_code"] == 200
            # The restart neither lost nor re-emitted events.
            assert {e["id"] for e in await succeeded_events(client)} == event_ids
    finally:
        await first.ensure_dead()
        await second.ensure_dead()
        await receiver.stop()
    assert_clean_log(second.log())


async def test_sigkill_while_tasks_run_and_deliveries_flow(tmp_path: Path) -> None:
    """Killed in the middle of polling and delivering: every task still ends, and every event
    written arrives (duplicates are allowed here: attempts may be in flight at the crash)."""
    config = relay_config(tmp_path, free_port(), retry_schedule=PATIENT_SCHEDULE)
    config_path = write_config(tmp_path, config)
    account = await create_account(config_path, "midflight")
    first = RelayProcess(config_path, config["server"]["port"], tmp_path / "run1.log")
    second = RelayProcess(config_path, config["server"]["port"], tmp_path / "run2.log")
    async with Receiver() as receiver:
        try:
            await first.start()
            async with authed(first.url, account) as client:
                task_ids = await register_many(client, receiver.url, TASKS)
                await receiver.wait_for(3, within=15)
            assert await first.kill(signal.SIGKILL) == -signal.SIGKILL
            arrived_before = len(receiver.requests)

            await second.start()
            async with authed(second.url, account) as client:

                async def all_succeeded() -> list[dict[str, Any]] | None:
                    events = await succeeded_events(client)
                    return events if len(events) >= TASKS else None

                events = await eventually(
                    all_succeeded, within=20, what="all 20 tasks to succeed after the restart"
                )
                event_ids = {e["id"] for e in events}
                # One terminal event per task: the crash did not make a second one.
                assert sorted(e["data"]["id"] for e in events) == sorted(task_ids)
                assert len(events) == TASKS

                async def everything_arrived() -> bool:
                    return {r.webhook_id for r in receiver.requests} >= event_ids

                await eventually(
                    everything_arrived, within=20, what="every task.succeeded at the receiver"
                )
                for event_id in event_ids:

                    async def settled(event_id: str = event_id) -> bool:
                        views = await deliveries(client, event_id)
                        return [v["status"] for v in views] == ["succeeded"]

                    await eventually(settled, within=10, what=f"{event_id} recorded")
        finally:
            await first.ensure_dead()
            await second.ensure_dead()

    hook = Webhook(account.secret)
    for request in receiver.requests:
        assert hook.verify(request.body, request.headers)["id"] == request.webhook_id
    assert {r.webhook_id for r in receiver.requests} == event_ids
    counts = Counter(r.webhook_id for r in receiver.requests)
    # A duplicate can only be an event whose attempt was cut off by the kill, i.e. one that
    # had arrived before it.
    early = {r.webhook_id for r in receiver.requests[:arrived_before]}
    assert {i for i, n in counts.items() if n > 1} <= early, counts
    assert_clean_log(first.log())
    assert_clean_log(second.log())


async def test_sigterm_stops_the_relay_cleanly(tmp_path: Path) -> None:
    """A graceful stop (what a platform sends on deploy) exits 0 and logs no error."""
    config = relay_config(tmp_path, free_port())
    config_path = write_config(tmp_path, config)
    account = await create_account(config_path, "graceful")
    relay = RelayProcess(config_path, config["server"]["port"], tmp_path / "run.log")
    async with Receiver() as receiver:
        try:
            await relay.start()
            async with authed(relay.url, account) as client:
                await register_many(client, receiver.url, 2)
                await receiver.wait_for(2)
            # uvicorn shuts down gracefully, then re-raises the signal it caught: -15 is its
            # normal exit for SIGTERM (0 would do as well).
            assert await relay.kill(signal.SIGTERM) in (0, -signal.SIGTERM), relay.log()
        finally:
            await relay.ensure_dead()
    assert_clean_log(relay.log())
    assert "ERROR" not in relay.log(), relay.log()
