"""Operational events (``relay.operational``) end to end: a real relay, real receivers, the
sandbox provider broken through its control API. Each event goes, in the account's feed, only
to the subscriptions that named its type: never to one on the default filter, never to one
that asked for task events only, never to another account, and never to the subscription a
``subscription.disabled`` is about.

The 410 test runs on SQLite and PostgreSQL (the disable and its event are written in one
transaction of the store); the others on SQLite, and on PostgreSQL when it is there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from relay import cli
from relay.models import OPERATIONAL_EVENT_TYPES
from tests.e2e.conftest import ReceiverFactory
from tests.e2e.harness import (
    InProcessRelay,
    Receiver,
    ark_input,
    eventually,
    free_port,
    postgres_schema,
    relay_config,
    write_config,
)

Start = Callable[..., Awaitable[InProcessRelay]]
OPS = frozenset(t.value for t in OPERATIONAL_EVENT_TYPES)


@pytest.fixture(params=["sqlite", "postgres"])
async def start(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Start]:
    """Start the app in-process on a fresh SQLite file or PostgreSQL schema."""
    started: list[InProcessRelay] = []
    async with contextlib.AsyncExitStack() as stack:
        url = (
            await stack.enter_async_context(postgres_schema())
            if request.param == "postgres"
            else None
        )

        async def start(**overrides: Any) -> InProcessRelay:
            config = relay_config(tmp_path, free_port(), **overrides)
            if url is not None:
                config["database_url"] = url
            relay = InProcessRelay(config, write_config(tmp_path, config))
            started.append(relay)
            return await relay.start()

        try:
            yield start
        finally:
            for relay in reversed(started):
                await relay.stop()


async def subscribe(
    client: httpx.AsyncClient, url: str, types: Sequence[str] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url}
    if types is not None:
        body["event_types"] = list(types)
    response = await client.post("/v1/subscriptions", json=body)
    assert response.status_code == 201, response.text
    sub: dict[str, Any] = response.json()
    return sub


async def register(client: httpx.AsyncClient, callback_url: str | None = None) -> str:
    body: dict[str, Any] = {"provider": "sandbox", "input": ark_input()}
    if callback_url is not None:
        body["callback_url"] = callback_url
    response = await client.post("/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def types_of(receiver: Receiver) -> list[str]:
    return [r.json()["type"] for r in receiver.requests]


async def received(receiver: Receiver, type_: str, within: float = 10) -> dict[str, Any]:
    """The first event of ``type_`` the receiver got, once it has."""

    async def probe() -> dict[str, Any] | None:
        for r in receiver.requests:
            event: dict[str, Any] = r.json()
            if event["type"] == type_:
                return event
        return None

    return await eventually(probe, within=within, what=f"{type_} at {receiver.url}")


async def test_a_410_tells_the_subscriptions_that_asked_for_subscription_disabled(
    start: Start, start_receiver: ReceiverFactory
) -> None:
    relay = await start()
    gone = await start_receiver(default=410)
    ops, plain, tasks_only, other = [await start_receiver() for _ in range(4)]
    account, stranger = await relay.account("ops"), await relay.account("stranger")
    async with relay.client(account) as client, relay.client(stranger) as theirs:
        # The subscription answering 410 asked for subscription.disabled itself: it must
        # still never receive its own.
        gone_sub = await subscribe(client, gone.url, ["task.succeeded", "subscription.disabled"])
        await subscribe(client, ops.url, ["subscription.disabled"])
        await subscribe(client, plain.url)
        await subscribe(client, tasks_only.url, ["task.succeeded", "task.failed"])
        await subscribe(theirs, other.url, sorted(OPS))
        task_id = await register(client)

        event = await received(ops, "subscription.disabled")
        data = event["data"]
        assert data["subscription_id"] == gone_sub["id"]
        assert data["cause"] == "gone"
        assert "410" in data["reason"]
        assert data["subscription"]["status"] == "disabled"
        assert data["subscription"]["url"] == gone.url
        assert event["sequence"] == 0

        # In the account's feed, exactly as delivered.
        listed = (await client.get("/v1/events", params={"type": "subscription.disabled"})).json()[
            "data"
        ]
        assert listed == [event]
        await received(plain, "task.succeeded")
        await received(tasks_only, "task.succeeded")
        await ops.quiet_for(0.5)

    assert types_of(gone) == ["task.succeeded"]
    assert gone.requests[0].json()["data"]["id"] == task_id
    assert types_of(ops) == ["subscription.disabled"]
    assert types_of(plain) == ["task.succeeded"]
    assert types_of(tasks_only) == ["task.succeeded"]
    assert other.requests == []


async def test_a_delivery_out_of_retries_emits_delivery_exhausted_and_failing_once(
    start: Start, start_receiver: ReceiverFactory
) -> None:
    relay = await start(retry_schedule=[0.1, 0.1], operational_events={"failing_after": 2})
    failing = await start_receiver(default=500)
    ops, plain = [await start_receiver() for _ in range(2)]
    callback = await start_receiver(default=503)
    account = await relay.account("ops")
    async with relay.client(account) as client:
        sub = await subscribe(client, failing.url, ["task.succeeded"])
        await subscribe(client, ops.url, ["delivery.exhausted", "subscription.failing"])
        await subscribe(client, plain.url)
        task_id = await register(client, callback.url)

        first = await received(ops, "delivery.exhausted")
        await eventually(
            lambda: _count(ops, "delivery.exhausted", 2), within=10, what="both exhaustions"
        )
        await received(ops, "subscription.failing")
        await received(plain, "task.succeeded")
        await ops.quiet_for(0.5)

        succeeded = (
            await client.get("/v1/events", params={"task_id": task_id, "type": "task.succeeded"})
        ).json()["data"][0]

    exhausted = {
        r.json()["data"]["destination"]: r.json()["data"]
        for r in ops.requests
        if r.json()["type"] == "delivery.exhausted"
    }
    assert first["data"]["event_id"] == succeeded["id"]
    to_sub = exhausted[sub["id"]]
    assert to_sub["event_id"] == succeeded["id"]
    assert to_sub["task_id"] == task_id
    assert to_sub["url"] == failing.url
    assert to_sub["attempts"] == 3
    assert to_sub["last_status_code"] == 500
    assert to_sub["last_error"] == "HTTP 500"
    # The task's callback ran out too: its destination is the callback URL's origin.
    to_callback = next(d for k, d in exhausted.items() if k != sub["id"])
    assert to_callback["url"] == callback.url
    assert to_callback["last_status_code"] == 503
    assert len(failing.requests) == 3

    failing_events = [r.json() for r in ops.requests if r.json()["type"] == "subscription.failing"]
    assert len(failing_events) == 1, "once per failing period"
    assert failing_events[0]["data"]["subscription_id"] == sub["id"]
    assert failing_events[0]["data"]["consecutive_failures"] == 2
    assert sorted(types_of(ops)) == [
        "delivery.exhausted",
        "delivery.exhausted",
        "subscription.failing",
    ]
    assert types_of(plain) == ["task.succeeded"]


async def _count(receiver: Receiver, type_: str, n: int) -> bool:
    return types_of(receiver).count(type_) >= n


async def test_a_broken_provider_is_announced_unhealthy_then_recovered(
    start: Start, start_receiver: ReceiverFactory
) -> None:
    relay = await start(
        operational_events={"provider_unhealthy_after": 1, "provider_check_seconds": 0.1}
    )
    ops, plain, recovered_only = [await start_receiver() for _ in range(3)]
    account = await relay.account("ops")
    async with relay.client(account) as client:
        await subscribe(client, ops.url, ["provider.unhealthy", "provider.recovered"])
        await subscribe(client, plain.url)
        await subscribe(client, recovered_only.url, ["provider.recovered"])
        # Every provider request fails until the faults are cleared.
        response = await client.put(
            "/sandbox/_control/faults", json={"plan": ["500"], "repeat": True}
        )
        assert response.status_code == 200, response.text
        response = await client.post(
            "/v1/tasks", json={"provider": "sandbox", "input": ark_input()}
        )
        unhealthy = await received(ops, "provider.unhealthy")
        assert unhealthy["data"]["provider"] == "sandbox"
        assert unhealthy["data"]["consecutive_faults"] >= 1
        assert unhealthy["data"]["last_fault"]
        assert types_of(ops) == ["provider.unhealthy"]
        assert recovered_only.requests == []

        response = await client.delete("/sandbox/_control/faults")
        assert response.status_code == 200, response.text
        # Once its back-off has run out a task goes through: the provider answers again.

        async def accepted() -> bool:
            body = {"provider": "sandbox", "input": ark_input()}
            return (await client.post("/v1/tasks", json=body)).status_code == 201

        await eventually(accepted, within=10, what="a task accepted after the back-off")
        recovered = await received(ops, "provider.recovered", within=15)
        assert recovered["data"]["provider"] == "sandbox"
        assert recovered["data"]["consecutive_faults"] == 0
        await received(recovered_only, "provider.recovered")
        await received(plain, "task.succeeded", within=15)
        await ops.quiet_for(0.5)

    assert types_of(ops) == ["provider.unhealthy", "provider.recovered"]
    assert types_of(recovered_only) == ["provider.recovered"]
    assert set(types_of(plain)) <= {"task.succeeded", "task.failed"}


async def test_a_refusal_for_budget_emits_budget_exceeded_once_per_period(
    start: Start, start_receiver: ReceiverFactory
) -> None:
    relay = await start(prices={"sandbox": {"models": {"*": {"per_task": "0.10"}}}})
    ops, plain = await start_receiver(), await start_receiver()
    account = await relay.account("thrifty")
    said = await budget(relay, account.id, "--daily", "0.05")
    assert "0.05 USD per day" in said
    async with relay.client(account) as client:
        await subscribe(client, ops.url, ["budget.exceeded"])
        await subscribe(client, plain.url)
        for _ in range(2):
            body = {"provider": "sandbox", "input": ark_input()}
            refused = await client.post("/v1/tasks", json=body)
            assert refused.status_code == 402, refused.text
        event = await received(ops, "budget.exceeded")
        await ops.quiet_for(0.5)

    data = event["data"]
    assert data["budget"] == {"period": "day", "amount": "0.05", "currency": "USD"}
    assert data["provider"] == "sandbox"
    assert Decimal(data["likely_cost"]) == Decimal("0.10")
    assert Decimal(data["spent"]) == 0
    assert "daily budget of 0.05 USD" in data["reason"]
    assert types_of(ops) == ["budget.exceeded"], "once per budget period"
    assert plain.requests == []


async def budget(relay: InProcessRelay, *args: str) -> str:
    """``relay accounts budget ...`` against the relay's configuration, as an operator."""

    def run() -> tuple[int, str]:
        result = CliRunner().invoke(
            cli.main, ["accounts", "budget", *args, "--config", str(relay.config_path)]
        )
        return result.exit_code, result.output

    code, output = await asyncio.to_thread(run)
    assert code == 0, output
    return output
