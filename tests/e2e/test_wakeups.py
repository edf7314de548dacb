"""New work is dispatched when it falls due, not at the scheduler's next tick: these relays
tick every 30 s, so anything that arrives within seconds was woken on time."""

from __future__ import annotations

import time

from tests.e2e.conftest import ReceiverFactory, RelayFactory
from tests.e2e.harness import Reply, ark_input

SLOW_TICKS = {"polling": {"tick_seconds": 30}, "delivery": {"tick_seconds": 30}}


async def test_polls_and_the_callback_follow_the_schedule_not_the_tick(
    start_relay: RelayFactory, start_receiver: ReceiverFactory
) -> None:
    relay = await start_relay(**SLOW_TICKS)
    receiver = await start_receiver()
    account = await relay.account("wake")
    async with relay.client(account) as client:
        started = time.monotonic()
        created = await client.post(
            "/v1/tasks",
            json={"provider": "sandbox", "input": ark_input(), "callback_url": receiver.url},
        )
        assert created.status_code == 201, created.text
        # queued 0.2 s + running 0.4 s at the sandbox, polls every 0.1-0.5 s.
        [request] = await receiver.wait_for(1, within=5)
    assert request.json()["type"] == "task.succeeded"
    assert time.monotonic() - started < 5


async def test_a_retry_goes_out_when_it_falls_due_not_at_the_tick(
    start_relay: RelayFactory, start_receiver: ReceiverFactory
) -> None:
    relay = await start_relay(retry_schedule=[0.5], **SLOW_TICKS)
    receiver = await start_receiver([Reply(500)])
    account = await relay.account("retry-wake")
    async with relay.client(account) as client:
        created = await client.post(
            "/v1/tasks",
            json={"provider": "sandbox", "input": ark_input(), "callback_url": receiver.url},
        )
        assert created.status_code == 201, created.text
        first, second = await receiver.wait_for(2, within=6)
    assert first.webhook_id == second.webhook_id
    assert 0.4 <= second.at - first.at < 3.0
