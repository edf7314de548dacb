"""One tenant must not stall another's deliveries, and a rate limit must not cause duplicates
(issue 11). A real relay process with its sandbox provider, two accounts, real receivers on
loopback: the noisy account's receivers hold sends (black holes that accept a connection and
never answer, or subscriptions at the slowest rate allowed) while a victim account's latency
is measured, from the request that makes a delivery due to its arrival at the receiver.

The relay runs with 32 slots and 16 per destination, so that five black holes (or four
subscriptions) of one account could hold every slot, as they did with the default 256/64 in
the report; the rule at stake is the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.delivery.fairness import MIN_RATE_LIMIT
from tests.e2e.harness import (
    HOST,
    Account,
    Receiver,
    RelayProcess,
    RelayServer,
    api_client,
    ark_input,
    create_account_in_process,
    eventually,
    free_port,
    relay_config,
    write_config,
)

pytestmark = pytest.mark.slow

SLOTS = {"max_in_flight": 32, "max_in_flight_per_destination": 16}
PROBES = 10
PROBE_PATIENCE = 4.0
"""Seconds a latency probe waits for its delivery before it counts as lost (infinitely slow)."""


class BlackHoles:
    """Servers on loopback that accept connections and read requests, and never answer."""

    def __init__(self, n: int) -> None:
        self.ports = [free_port() for _ in range(n)]
        self.open = 0
        self._servers: list[asyncio.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()

    def url(self, i: int) -> str:
        return f"http://{HOST}:{self.ports[i % len(self.ports)]}/hook"

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self._writers.add(writer)
        try:
            with contextlib.suppress(ConnectionError):
                while await reader.read(65536):
                    pass
        finally:
            self.open -= 1
            self._writers.discard(writer)
            writer.close()

    async def __aenter__(self) -> BlackHoles:
        for port in self.ports:
            self._servers.append(await asyncio.start_server(self._hold, HOST, port))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            writer.close()
        for server in self._servers:
            await server.wait_closed()


class TurnCoat:
    """A receiver on loopback that answers every request at once (a quick receiver) until
    ``hang`` is set; from then on it reads requests and never answers them."""

    def __init__(self) -> None:
        self.port = free_port()
        self.hang = False
        self.answered = 0
        self.held = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def url(self, i: int) -> str:
        return f"http://{HOST}:{self.port}/hook/{i}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                if self.hang:
                    self.held += 1
                    try:
                        while await reader.read(65536):
                            pass
                    finally:
                        self.held -= 1
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
                self.answered += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def __aenter__(self) -> TurnCoat:
        self._server = await asyncio.start_server(self._serve, HOST, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()


def authed(url: str, account: Account) -> httpx.AsyncClient:
    return api_client(url, headers={"Authorization": f"Bearer {account.api_key}"})


async def submit(client: httpx.AsyncClient, **body: Any) -> str:
    response = await client.post(
        "/v1/tasks", json={"provider": "sandbox", "input": ark_input(), **body}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def subscribe(client: httpx.AsyncClient, url: str, **body: Any) -> str:
    response = await client.post("/v1/subscriptions", json={"url": url, **body})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@contextlib.asynccontextmanager
async def relay_process(tmp_path: Path, **delivery: Any) -> AsyncIterator[RelayProcess]:
    config = relay_config(tmp_path, free_port(), delivery=delivery)
    relay = RelayProcess(
        write_config(tmp_path, config), config["server"]["port"], tmp_path / "relay.log"
    )
    try:
        yield await relay.start()
    finally:
        await relay.ensure_dead()


async def arrival(receiver: Receiver, n: int, asked: float) -> float:
    """Seconds from ``asked`` to the ``n``-th request's arrival; inf past ``PROBE_PATIENCE``."""
    while True:
        if len(receiver.requests) >= n:
            return receiver.requests[n - 1].at - asked
        if time.monotonic() - asked > PROBE_PATIENCE:
            return float("inf")
        await asyncio.sleep(0.01)


async def victim_latencies(relay: RelayProcess, victim: Account, receiver: Receiver) -> list[float]:
    """The victim registers a task with a callback; once it has arrived, the event is
    redelivered ``PROBES`` times, one after the other: seconds from each request to its
    arrival (``inf`` for one that did not arrive within ``PROBE_PATIENCE``)."""
    async with authed(relay.url, victim) as client:
        await submit(client, callback_url=receiver.url)
        [first] = await receiver.wait_for(1, within=15)
        latencies = []
        for n in range(2, PROBES + 2):
            asked = time.monotonic()
            response = await client.post(f"/v1/events/{first.webhook_id}/redeliver")
            assert response.status_code == 202, response.text
            latencies.append(await arrival(receiver, n, asked))
            await receiver.wait_for(n, within=30)  # a late one too, before the next probe
            await asyncio.sleep(0.1)
        return latencies


async def test_another_account_s_black_holes_leave_the_victim_s_latency_alone(
    tmp_path: Path,
) -> None:
    async with (
        BlackHoles(5) as holes,
        Receiver() as receiver,
        # Black holes keep their sends for the whole test: a timeout longer than it.
        relay_process(tmp_path, timeout=25, **SLOTS) as relay,
    ):
        noisy = await create_account_in_process(relay.config_path, "noisy")
        victim = await create_account_in_process(relay.config_path, "victim")
        async with authed(relay.url, noisy) as client:
            # 40 callbacks to five black holes: more than all 32 slots.
            for i in range(40):
                await submit(client, callback_url=holes.url(i))

        async def holding() -> int:
            return holes.open if holes.open >= 16 else 0

        await eventually(holding, within=20, what="the black holes to hold 16 sends")
        latencies = await victim_latencies(relay, victim, receiver)
        # The noisy account's share (half the slots) is all it holds.
        assert holes.open == 16, holes.open
    assert statistics.median(latencies) < 1.0, latencies
    assert max(latencies) < PROBE_PATIENCE, latencies


async def test_another_account_s_quick_receivers_that_all_start_hanging_leave_the_victim_alone(
    tmp_path: Path,
) -> None:
    """Sends to quick receivers are not counted against the account's share, so the noisy
    account's four quick subscriptions may take more than half the slots; when they all hang
    at once, the slots it took stay held for a timeout, and the eighth of the slots reserved
    for others (4 of 32) is what keeps the victim's deliveries going."""
    async with (
        TurnCoat() as turncoat,
        Receiver() as receiver,
        relay_process(tmp_path, timeout=25, **SLOTS) as relay,
    ):
        noisy = await create_account_in_process(relay.config_path, "noisy")
        victim = await create_account_in_process(relay.config_path, "victim")
        async with authed(relay.url, noisy) as client:
            for i in range(4):
                await subscribe(client, turncoat.url(i), event_types=["task.queued"])
            await submit(client)  # one quick answer from each: all four are quick

            async def all_answered() -> bool:
                return turncoat.answered == 4

            await eventually(all_answered, within=10, what="four quick answers")
            turncoat.hang = True
            # 12 tasks at once, four deliveries each: 48 due, more than all 32 slots.
            await asyncio.gather(*(submit(client) for _ in range(12)))

        async def past_the_share() -> int:
            return turncoat.held if turncoat.held > 16 else 0

        await eventually(past_the_share, within=10, what="more sends held than the share")
        await asyncio.sleep(1.5)  # the hanging receivers are no longer quick
        latencies = await victim_latencies(relay, victim, receiver)
        # More than its share, never more than all the slots but the four reserved.
        assert 16 < turncoat.held <= 28, turncoat.held
    assert statistics.median(latencies) < 1.0, latencies
    assert max(latencies) < PROBE_PATIENCE, latencies


async def test_another_account_s_slowest_rate_subscriptions_leave_the_victim_alone(
    tmp_path: Path,
) -> None:
    async with (
        Receiver() as noisy_receiver,
        Receiver() as receiver,
        relay_process(tmp_path, **SLOTS) as relay,
    ):
        noisy = await create_account_in_process(relay.config_path, "noisy")
        victim = await create_account_in_process(relay.config_path, "victim")
        every_event = ["task.queued", "task.running", "task.progress", "task.succeeded"]
        async with authed(relay.url, noisy) as client:
            subs = [
                await subscribe(
                    client,
                    f"{noisy_receiver.url}/{i}",
                    event_types=every_event,
                    rate_limit=MIN_RATE_LIMIT,
                )
                for i in range(4)
            ]
            # Four subscriptions, three events or more per task: 48 or more deliveries.
            for _ in range(4):
                await submit(client)
            # One send each goes out at once, the rest waits for its turn (100 s).
            await noisy_receiver.wait_for(4, within=15)
        latencies = await victim_latencies(relay, victim, receiver)
        assert sorted(r.path for r in noisy_receiver.requests) == sorted(
            f"/hook/{i}" for i in range(4)
        ), subs
    assert statistics.median(latencies) < 1.0, latencies
    assert max(latencies) < PROBE_PATIENCE, latencies


async def test_a_rate_limited_subscription_with_a_short_lease_gets_each_event_once(
    tmp_path: Path,
) -> None:
    # Two sends a second for about 16 events: the last waits 8 s for its turn, four leases.
    async with Receiver() as receiver, relay_process(tmp_path, timeout=1, lease_seconds=2) as relay:
        account = await create_account_in_process(relay.config_path, "limited")
        async with authed(relay.url, account) as client:
            await subscribe(
                client,
                receiver.url,
                event_types=["task.queued", "task.running", "task.progress", "task.succeeded"],
                rate_limit=2,
            )
            tasks = [await submit(client) for _ in range(4)]

            async def all_events() -> list[str] | None:
                ids: list[str] = []
                for task in tasks:
                    page = await client.get("/v1/events", params={"task_id": task, "limit": 100})
                    found = page.json()["data"]
                    if not any(e["type"] == "task.succeeded" for e in found):
                        return None
                    ids += [e["id"] for e in found]
                return ids

            events = await eventually(all_events, within=20, what="every task to succeed")
            await receiver.wait_for(len(events), within=30)
            await receiver.quiet_for(2.5)  # longer than a lease: a second claim would show
            assert Counter(r.webhook_id for r in receiver.requests) == Counter(events)
            arrivals = [r.at for r in receiver.requests]
            assert arrivals[-1] - arrivals[0] >= (len(events) - 1) * 0.5 * 0.9
            # Each delivery's history holds the one attempt that was made.
            for event_id in events:
                views = (await client.get(f"/v1/events/{event_id}/deliveries")).json()["data"]
                assert [len(v["attempts"]) for v in views] == [1], views


async def test_a_rate_limit_below_the_bound_is_refused_and_names_it(
    relay: RelayServer, receiver: Receiver
) -> None:
    account = await relay.account("careful")
    async with relay.client(account) as client:
        for rate in (1e-300, MIN_RATE_LIMIT / 2):
            response = await client.post(
                "/v1/subscriptions", json={"url": receiver.url, "rate_limit": rate}
            )
            assert response.status_code == 400, response.text
            message = response.json()["error"]["message"]
            assert "rate_limit" in message, message
            assert "0.01" in message, message
        sub = await subscribe(client, receiver.url, rate_limit=MIN_RATE_LIMIT)
        patched = await client.patch(f"/v1/subscriptions/{sub}", json={"rate_limit": 0.001})
        assert patched.status_code == 400, patched.text
        assert "0.01" in patched.json()["error"]["message"]
        listed = (await client.get("/v1/subscriptions")).json()["data"]
        assert [s["rate_limit"] for s in listed] == [MIN_RATE_LIMIT]


async def test_a_raised_or_removed_rate_limit_applies_at_the_next_claim(tmp_path: Path) -> None:
    """A subscription at the slowest rate gets its first event at once and the next one
    100 s later; raised (or removed), the events waiting go out at once, not after the old
    rate's interval."""
    every_event = ["task.queued", "task.running", "task.progress", "task.succeeded"]
    async with Receiver() as receiver, relay_process(tmp_path) as relay:
        account = await create_account_in_process(relay.config_path, "changing")
        async with authed(relay.url, account) as client:
            subs = [
                await subscribe(
                    client,
                    f"{receiver.url}/{i}",
                    event_types=every_event,
                    rate_limit=MIN_RATE_LIMIT,
                )
                for i in range(2)
            ]
            task = await submit(client)

            async def all_events() -> list[str] | None:
                page = await client.get("/v1/events", params={"task_id": task, "limit": 100})
                found = page.json()["data"]
                done = any(e["type"] == "task.succeeded" for e in found)
                return [e["id"] for e in found] if done else None

            events = await eventually(all_events, within=15, what="the task to succeed")
            assert len(events) >= 3, events
            # One event each went out at once; the others wait for the gate (100 s).
            await receiver.wait_for(2, within=10)
            await receiver.quiet_for(0.5)
            assert len(receiver.requests) == 2
            for sub, change in zip(subs, (50, None), strict=True):
                patched = await client.patch(
                    f"/v1/subscriptions/{sub}", json={"rate_limit": change}
                )
                assert patched.status_code == 200, patched.text
            await receiver.wait_for(2 * len(events), within=5)
            for i in range(2):
                got = [r.webhook_id for r in receiver.requests if r.path == f"/hook/{i}"]
                assert sorted(got) == sorted(events), (i, got)
