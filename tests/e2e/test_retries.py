"""Delivery retries against a real receiver (DESIGN §5): same webhook-id, fresh signatures, the
schedule, 410, 3xx, Retry-After, timeouts and a receiver that is not even listening."""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx
from standardwebhooks import Webhook

from tests.e2e.conftest import ReceiverFactory, RelayFactory
from tests.e2e.harness import (
    FAST_SCHEDULE,
    Account,
    Receiver,
    RelayServer,
    Reply,
    ark_input,
    eventually,
    free_port,
)

SLACK = 0.05
"""Timers fire a little early or late; gaps are checked to this precision from below."""


async def register(client: httpx.AsyncClient, callback_url: str) -> dict[str, Any]:
    response = await client.post(
        "/v1/tasks",
        json={"provider": "sandbox", "input": ark_input(), "callback_url": callback_url},
    )
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


async def succeeded_event(client: httpx.AsyncClient, task_id: str) -> str:
    async def probe() -> str | None:
        events = (
            await client.get("/v1/events", params={"task_id": task_id, "type": "task.succeeded"})
        ).json()["data"]
        return events[0]["id"] if events else None

    return await eventually(probe, within=10, what=f"task.succeeded of {task_id}")


async def settled_delivery(
    client: httpx.AsyncClient,
    event_id: str,
    status: str,
    attempts: int | None,
    within: float = 10,
) -> dict[str, Any]:
    """The event's one delivery once it has ``status`` after ``attempts`` recorded attempts
    (any number: None)."""

    async def probe() -> dict[str, Any] | None:
        response = await client.get(f"/v1/events/{event_id}/deliveries")
        assert response.status_code == 200, response.text
        views = response.json()["data"]
        assert len(views) == 1, views
        view: dict[str, Any] = views[0]
        done = view["status"] == status and (attempts is None or len(view["attempts"]) == attempts)
        return view if done else None

    return await eventually(
        probe, within=within, what=f"delivery of {event_id} {status} after {attempts} attempts"
    )


def gaps(requests: list[Any]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(requests)]


def verify_all(account: Account, requests: list[Any]) -> None:
    hook = Webhook(account.secret)
    for request in requests:
        payload = hook.verify(request.body, request.headers)
        assert payload["id"] == request.webhook_id


async def test_500_500_200_retries_with_the_same_id_and_fresh_signatures(
    relay: RelayServer, start_receiver: ReceiverFactory
) -> None:
    receiver = await start_receiver([Reply(500, body="boom"), Reply(500, body="boom")])
    account = await relay.account("retry")
    async with relay.client(account) as client:
        await register(client, receiver.url)
        requests = await receiver.wait_for(3)
        event_id = requests[0].webhook_id
        view = await settled_delivery(client, event_id, "succeeded", 3)
    await receiver.quiet_for(0.5)
    assert len(receiver.requests) == 3

    assert [r.webhook_id for r in requests] == [event_id] * 3
    assert requests[0].body == requests[1].body == requests[2].body
    verify_all(account, requests)
    stamps = [r.timestamp for r in requests]
    assert stamps == sorted(stamps), "webhook-timestamp is fresh on every attempt"
    assert abs(stamps[-1] - time.time()) < 5
    for a, b in itertools.pairwise(requests):
        same_second = a.timestamp == b.timestamp
        same_signature = a.headers["webhook-signature"] == b.headers["webhook-signature"]
        # The signed string is "{id}.{timestamp}.{body}": it changes exactly with the timestamp.
        assert same_signature == same_second
    for gap, delay in zip(gaps(requests), FAST_SCHEDULE, strict=False):
        assert delay - SLACK <= gap < delay + 1.0, (gaps(requests), FAST_SCHEDULE)

    assert view["attempt_count"] == 3
    assert view["next_attempt_at"] is None
    assert view["url"] == receiver.url
    attempts = view["attempts"]
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert [a["status_code"] for a in attempts] == [500, 500, 200]
    assert [a["outcome"] for a in attempts] == ["retry", "retry", "delivered"]
    assert [a["error"] for a in attempts] == ["HTTP 500", "HTTP 500", None]
    assert [a["response_snippet"] for a in attempts] == ["boom", "boom", "ok"]
    assert all(a["latency_ms"] > 0 for a in attempts)
    assert [a["started_at"] for a in attempts] == sorted(a["started_at"] for a in attempts)


async def test_410_stops_the_delivery_at_once(
    relay: RelayServer, start_receiver: ReceiverFactory
) -> None:
    receiver = await start_receiver(default=410)
    account = await relay.account("gone")
    async with relay.client(account) as client:
        await register(client, receiver.url)
        [request] = await receiver.wait_for(1)
        view = await settled_delivery(client, request.webhook_id, "stopped", 1)
        # Past the whole schedule, nothing more comes.
        await receiver.quiet_for(sum(FAST_SCHEDULE) + 0.5)
        again = await settled_delivery(client, request.webhook_id, "stopped", 1)
    verify_all(account, [request])
    assert view == again
    assert view["attempt_count"] == 1
    assert view["next_attempt_at"] is None
    [attempt] = view["attempts"]
    assert attempt["status_code"] == 410
    assert attempt["outcome"] == "gone"
    assert attempt["error"] == "HTTP 410 Gone"


async def test_a_receiver_that_always_fails_ends_failed_after_the_schedule(
    relay: RelayServer, start_receiver: ReceiverFactory
) -> None:
    receiver = await start_receiver(default=Reply(500, body="down" * 1000))
    account = await relay.account("always500")
    attempts_in_all = len(FAST_SCHEDULE) + 1
    async with relay.client(account) as client:
        await register(client, receiver.url)
        requests = await receiver.wait_for(attempts_in_all)
        view = await settled_delivery(client, requests[0].webhook_id, "failed", attempts_in_all)
        await receiver.quiet_for(1.0)
        # failed, yet the event stays readable and replayable
        event = await client.get(f"/v1/events/{requests[0].webhook_id}")
        assert event.status_code == 200
    assert len(receiver.requests) == attempts_in_all
    assert {r.webhook_id for r in requests} == {requests[0].webhook_id}
    verify_all(account, requests)
    assert event.json()["id"] == requests[0].webhook_id
    assert view["attempt_count"] == attempts_in_all
    assert view["next_attempt_at"] is None
    assert [a["outcome"] for a in view["attempts"]] == ["retry"] * len(FAST_SCHEDULE) + ["failed"]
    assert [a["status_code"] for a in view["attempts"]] == [500] * attempts_in_all
    assert [a["number"] for a in view["attempts"]] == list(range(1, attempts_in_all + 1))
    # DESIGN §5: the first 1 KB of the response body is kept per attempt.
    assert {a["response_snippet"] for a in view["attempts"]} == {"down" * 256}


async def test_a_redirect_is_a_failure_and_is_not_followed(
    relay: RelayServer, start_receiver: ReceiverFactory
) -> None:
    target = await start_receiver()
    receiver = await start_receiver(default=Reply(302, headers={"Location": target.url}))
    account = await relay.account("redirect")
    attempts_in_all = len(FAST_SCHEDULE) + 1
    async with relay.client(account) as client:
        await register(client, receiver.url)
        requests = await receiver.wait_for(attempts_in_all)
        view = await settled_delivery(client, requests[0].webhook_id, "failed", attempts_in_all)
    assert target.requests == [], "a redirect must never be followed"
    verify_all(account, requests)
    assert [a["status_code"] for a in view["attempts"]] == [302] * attempts_in_all
    assert [a["outcome"] for a in view["attempts"]] == ["retry"] * len(FAST_SCHEDULE) + ["failed"]
    assert view["attempts"][0]["error"] == "HTTP 302 (redirects are not followed)"


async def test_connection_refused_is_retried_and_recorded(
    start_relay: RelayFactory, start_receiver: ReceiverFactory
) -> None:
    relay = await start_relay(retry_schedule=[0.5, 0.5, 0.5, 0.5])
    port = free_port()  # nothing listens here yet
    url = f"http://127.0.0.1:{port}/hook"
    account = await relay.account("refused")
    async with relay.client(account) as client:
        task = await register(client, url)
        event_id = await succeeded_event(client, task["id"])
        first = await settled_delivery(client, event_id, "pending", 1)
        [attempt] = first["attempts"]
        assert attempt["status_code"] is None
        assert attempt["outcome"] == "retry"
        assert attempt["error"], "a connection error is recorded on the attempt"
        assert "connect" in attempt["error"].lower(), attempt["error"]
        assert attempt["response_snippet"] is None
        assert first["next_attempt_at"] is not None

        # The receiver comes up: a later attempt gets through.
        receiver = await start_receiver(port=port)
        [request] = await receiver.wait_for(1)
        view = await settled_delivery(client, event_id, "succeeded", None)
    verify_all(account, [request])
    assert request.webhook_id == event_id
    outcomes = [a["outcome"] for a in view["attempts"]]
    assert outcomes[-1] == "delivered"
    assert set(outcomes[:-1]) == {"retry"}
    assert all(a["status_code"] is None and a["error"] for a in view["attempts"][:-1])


async def test_retry_after_is_honoured_for_slow_down_statuses_within_bounds(
    start_relay: RelayFactory, start_receiver: ReceiverFactory
) -> None:
    relay = await start_relay(delivery={"retry_after_max": 1.0})
    receiver = await start_receiver(
        [
            Reply(503, headers={"Retry-After": "3600"}),  # slow down: honoured, capped at 1 s
            Reply(500, headers={"Retry-After": "3600"}),  # not a slow-down status: the schedule
        ]
    )
    account = await relay.account("slowdown")
    async with relay.client(account) as client:
        await register(client, receiver.url)
        requests = await receiver.wait_for(3)
        view = await settled_delivery(client, requests[0].webhook_id, "succeeded", 3)
    verify_all(account, requests)
    first_gap, second_gap = gaps(requests)
    assert 1.0 - SLACK <= first_gap < 2.0, first_gap
    assert FAST_SCHEDULE[1] - SLACK <= second_gap < 1.0, second_gap
    assert [a["status_code"] for a in view["attempts"]] == [503, 500, 200]


async def test_a_receiver_slower_than_the_timeout_is_retried(
    start_relay: RelayFactory, start_receiver: ReceiverFactory
) -> None:
    relay = await start_relay(delivery={"timeout": 0.5})
    receiver: Receiver = await start_receiver([Reply(200, delay=1.5)])
    account = await relay.account("slow")
    async with relay.client(account) as client:
        await register(client, receiver.url)
        requests = await receiver.wait_for(2)
        view = await settled_delivery(client, requests[0].webhook_id, "succeeded", 2)
    verify_all(account, requests)
    timed_out, delivered = view["attempts"]
    assert timed_out["status_code"] is None
    assert timed_out["outcome"] == "retry"
    assert timed_out["error"].startswith("timeout after 0.5 s"), timed_out["error"]
    assert 450 <= timed_out["latency_ms"] < 1500
    assert delivered["status_code"] == 200
    assert delivered["outcome"] == "delivered"


async def test_a_slow_receiver_does_not_stall_the_others(
    start_relay: RelayFactory, start_receiver: ReceiverFactory
) -> None:
    relay = await start_relay(delivery={"max_in_flight_per_destination": 1})
    slow = await start_receiver(default=Reply(200, delay=1.0))
    fast = await start_receiver()
    account = await relay.account("concurrency")
    async with relay.client(account) as client:
        for _ in range(3):
            await register(client, slow.url)
        await slow.wait_for(1)
        started = time.monotonic()
        await register(client, fast.url)
        [request] = await fast.wait_for(1, within=3)
        slow_requests = await slow.wait_for(3, within=10)
    # The fast receiver's event went out while the slow one was still busy...
    assert request.at - started < 1.5
    assert len([r for r in slow.requests if r.at <= request.at]) < 3
    # ...and the slow one never had more than its cap in flight.
    assert slow.max_in_flight == 1
    verify_all(account, [request, *slow_requests])


async def test_a_huge_response_body_is_cut_to_the_snippet(
    relay: RelayServer, start_receiver: ReceiverFactory
) -> None:
    receiver = await start_receiver(default=Reply(200, body="y" * 3_000_000))
    account = await relay.account("huge")
    async with relay.client(account) as client:
        await register(client, receiver.url)
        [request] = await receiver.wait_for(1)
        view = await settled_delivery(client, request.webhook_id, "succeeded", 1)
    assert view["attempts"][0]["response_snippet"] == "y" * 1024


async def test_a_receiver_dripping_its_answer_cannot_hold_an_attempt(
    start_relay: RelayFactory, start_receiver: ReceiverFactory
) -> None:
    relay = await start_relay(delivery={"timeout": 0.5})
    receiver = await start_receiver([Reply(200, drip=True)])
    account = await relay.account("drip")
    async with relay.client(account) as client:
        await register(client, receiver.url)
        requests = await receiver.wait_for(2)
        view = await settled_delivery(client, requests[0].webhook_id, "succeeded", 2)
    dripped, delivered = view["attempts"]
    assert dripped["error"].startswith("timeout after 0.5 s"), dripped
    assert dripped["outcome"] == "retry"
    assert dripped["latency_ms"] < 1500
    assert delivered["outcome"] == "delivered"
