"""What the relay delivers to subscriptions, end to end (DESIGN §4, §5): DELETE stops what was
pending, another account's PATCH redirects nothing, fan-out next to a task callback, test
events, enable/disable with the replay of what was missed, replay windows and the event feed's
``delivery_status`` filter, ``rate_limit`` and the callback secret's rotation. Each test starts
its own relay, with the retry schedule it needs, and watches real receivers.

The API's own rules (validation, pagination, PATCH and DELETE, Idempotency-Key) are in
``tests/api/test_subscriptions.py``; the main flows in ``test_subscribers.py``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.api.test_subscriptions import (
    ALL_TASK_EVENTS,
    PUBLIC_FIELDS,
    assert_error,
    subscribe,
    verified,
)
from tests.e2e.conftest import ReceiverFactory, RelayFactory
from tests.e2e.harness import (
    Receiver,
    RelayServer,
    Reply,
    ark_input,
    eventually,
)

TERMINAL_TYPES = {"task.succeeded", "task.failed", "task.expired", "task.cancelled"}


async def submit(client: httpx.AsyncClient, prompt: str = "a cat", **body: Any) -> str:
    response = await client.post(
        "/v1/tasks", json={"provider": "sandbox", "input": ark_input(prompt), **body}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def task_events(
    client: httpx.AsyncClient, task_id: str, count: int = 3
) -> list[dict[str, Any]]:
    """The task's events, oldest first, once it has ``count`` (the sandbox emits queued,
    running and the outcome)."""

    async def probe() -> list[dict[str, Any]] | None:
        page = (await client.get("/v1/events", params={"task_id": task_id, "order": "asc"})).json()
        found: list[dict[str, Any]] = page["data"]
        return found if len(found) >= count else None

    return await eventually(probe, within=15, what=f"{count} events of {task_id}")


async def deliveries(client: httpx.AsyncClient, event_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/events/{event_id}/deliveries")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["data"]
    return found


async def feed(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/v1/events", params=params)
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()["data"]]


def utc_iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- 1. update and delete: what was pending -----------------------------------------------


async def test_deleting_stops_pending_deliveries_even_one_in_flight(
    start_relay: RelayFactory, start_receiver: ReceiverFactory
) -> None:
    relay = await start_relay(retry_schedule=[1.0, 1.0, 1.0])
    account = await relay.account("deleter")
    slow = await start_receiver(default=Reply(503, delay=0.5))  # attempt in flight at delete
    fast = await start_receiver(default=503)  # attempt answered, retry scheduled at delete
    async with relay.client(account) as client:
        subs = [await subscribe(client, r.url) for r in (slow, fast)]
        task_id = await submit(client)
        await slow.wait_for(1, within=10)
        await fast.wait_for(1, within=10)
        for sub in subs:
            deleted = await client.delete(f"/v1/subscriptions/{sub['id']}")
            assert deleted.status_code == 200, deleted.text
        event_id = slow.requests[0].webhook_id
        assert verified(subs[0]["secret"], slow.requests[0])["data"]["id"] == task_id

        async def stopped() -> list[dict[str, Any]] | None:
            found = await deliveries(client, event_id)
            return found if all(d["status"] == "stopped" for d in found) else None

        found = await eventually(stopped, within=5, what="both deliveries to be stopped")
        assert {d["destination_id"] for d in found} == {s["id"] for s in subs}
        # Past the first retry's time (1 s after each answer): nothing more arrives.
        await asyncio.gather(slow.quiet_for(1.8), fast.quiet_for(1.8))
        assert (len(slow.requests), len(fast.requests)) == (1, 1)
        assert all(
            d["status"] == "stopped" and d["next_attempt_at"] is None
            for d in await deliveries(client, event_id)
        )


async def test_another_accounts_patch_cannot_redirect_pending_deliveries(
    start_relay: RelayFactory, start_receiver: ReceiverFactory
) -> None:
    relay = await start_relay(retry_schedule=[0.6, 0.6, 0.6, 0.6])
    alice, mallory = await relay.account("alice"), await relay.account("mallory")
    owner = await start_receiver(script=[503])  # the first attempt fails: a retry is pending
    thief = await start_receiver()
    async with relay.client(alice) as client, relay.client(mallory) as other:
        sub = await subscribe(client, owner.url)
        await submit(client)
        await owner.wait_for(1, within=10)
        hijack = await other.patch(f"/v1/subscriptions/{sub['id']}", json={"url": thief.url})
        assert_error(hijack, 404, "not_found")

        async def retried() -> bool:
            return len(owner.requests) + len(thief.requests) >= 2

        await eventually(retried, within=5, what="the retry of the failed delivery")
        assert thief.requests == [], "alice's event was delivered to mallory's url"
        assert len(owner.requests) == 2


# --- 2. fan-out ----------------------------------------------------------------------------


async def test_fan_out_follows_each_filter_and_a_failing_receiver_delays_no_one(
    start_relay: RelayFactory, start_receiver: ReceiverFactory
) -> None:
    relay = await start_relay(retry_schedule=[0.5, 1, 1])  # the failing one: 6.5 s at least
    account = await relay.account("fanout")
    everything = await start_receiver()
    terminal = await start_receiver(default=Reply(500, body="down", delay=1.0))
    callback = await start_receiver()
    async with relay.client(account) as client:
        sub_all = await subscribe(client, everything.url, event_types=ALL_TASK_EVENTS)
        sub_terminal = await subscribe(client, terminal.url)
        tasks = [
            await submit(client, prompt, callback_url=callback.url)
            for prompt in ("a cat", "a dog [fail]")
        ]
        events = {t: await task_events(client, t) for t in tasks}
        by_id = {e["id"]: e for evs in events.values() for e in evs}
        assert [[e["type"] for e in events[t]] for t in tasks] == [
            ["task.queued", "task.running", "task.succeeded"],
            ["task.queued", "task.running", "task.failed"],
        ]
        outcomes = {e["id"] for e in by_id.values() if e["type"] in TERMINAL_TYPES}

        await everything.wait_for(6, within=10)
        await callback.wait_for(2, within=10)

        async def both_outcomes_tried() -> bool:
            return {r.webhook_id for r in terminal.requests} == outcomes

        await eventually(both_outcomes_tried, within=10, what="the failing receiver's attempts")
        await asyncio.gather(everything.quiet_for(0.5), callback.quiet_for(0.5))

        # Each destination got exactly what its filter wants, each event once when answered 2xx.
        assert Counter(r.webhook_id for r in everything.requests) == Counter(list(by_id))
        for request in everything.requests:
            assert verified(sub_all["secret"], request) == by_id[request.webhook_id]
        assert sorted(r.webhook_id for r in callback.requests) == sorted(outcomes)
        for request in callback.requests:
            assert verified(account.secret, request) == by_id[request.webhook_id]
        for request in terminal.requests:
            assert verified(sub_terminal["secret"], request)["type"] in TERMINAL_TYPES

        # Independent: the healthy receivers had each outcome before the failing one even
        # answered its first attempt (it takes 1 s to say 500).
        for event_id in outcomes:
            failing_first = terminal.with_id(event_id)[0].at
            for healthy in (everything, callback):
                [got] = healthy.with_id(event_id)
                assert got.at - failing_first < 0.8, (event_id, got.at - failing_first)
        # The failing destination's deliveries are still being retried, the others are done.
        for event_id in outcomes:
            states = {d["destination_id"]: d["status"] for d in await deliveries(client, event_id)}
            assert states[sub_all["id"]] == "succeeded"
            assert states[sub_terminal["id"]] == "pending"
            assert sorted(states.values()) == ["pending", "succeeded", "succeeded"]


# --- 3. test events ------------------------------------------------------------------------


async def test_a_test_event_is_sent_signed_now_and_recorded(
    start_relay: RelayFactory, start_receiver: ReceiverFactory
) -> None:
    relay = await start_relay()
    account = await relay.account("tester")
    good = await start_receiver(script=[Reply(204, body="")])
    bad = await start_receiver(default=Reply(500, body="nope"))
    async with relay.client(account) as client:
        sub = await subscribe(
            client, good.url, event_types=["task.succeeded"], headers={"X-Token": "n8n"}
        )
        answer = await client.post(f"/v1/subscriptions/{sub['id']}/test")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {
            "event_id",
            "delivery_id",
            "delivered",
            "status_code",
            "latency_ms",
            "error",
            "response_snippet",
        }
        assert body["delivered"] is True
        assert body["status_code"] == 204
        assert body["latency_ms"] > 0
        assert body["error"] is None
        assert body["response_snippet"] == ""
        assert body["event_id"].startswith("evt_")
        assert body["delivery_id"].startswith("dlv_")
        # Sent before the answer: the receiver has it already, signed with the sub's secret.
        [request] = good.requests
        assert request.headers["x-token"] == "n8n"  # static headers go along
        payload = verified(sub["secret"], request)
        assert payload["id"] == body["event_id"]
        assert payload["type"] == "relay.test"
        assert payload["data"]["subscription_id"] == sub["id"]
        assert payload["sequence"] == 0
        # Once more, with the default 200 "ok".
        again = (await client.post(f"/v1/subscriptions/{sub['id']}/test")).json()
        assert (again["delivered"], again["status_code"], again["response_snippet"]) == (
            True,
            200,
            "ok",
        )
        assert again["event_id"] != body["event_id"]

        # It is in the feed (the same envelope) with its delivery and the attempt.
        listed = (await client.get("/v1/events", params={"type": "relay.test"})).json()["data"]
        assert [e["id"] for e in listed] == [again["event_id"], body["event_id"]]
        assert listed[1] == payload
        assert (await client.get(f"/v1/events/{body['event_id']}")).json() == payload
        [delivery] = await deliveries(client, body["event_id"])
        assert delivery["id"] == body["delivery_id"]
        assert delivery["destination_id"] == sub["id"]
        assert (delivery["status"], delivery["attempt_count"]) == ("succeeded", 1)
        assert delivery["next_attempt_at"] is None
        [attempt] = delivery["attempts"]
        assert (attempt["number"], attempt["outcome"], attempt["status_code"]) == (
            1,
            "delivered",
            204,
        )
        assert attempt["latency_ms"] == body["latency_ms"]

        # A receiver that says 500: the answer shows it, and no retry follows.
        failing = await subscribe(client, bad.url)
        tried = await client.post(f"/v1/subscriptions/{failing['id']}/test")
        assert tried.status_code == 200, tried.text
        result = tried.json()
        assert (result["delivered"], result["status_code"], result["response_snippet"]) == (
            False,
            500,
            "nope",
        )
        assert result["latency_ms"] > 0
        assert result["error"] is not None
        assert "500" in result["error"]
        assert len(bad.requests) == 1
        verified(failing["secret"], bad.requests[0])
        await bad.quiet_for(1.2)  # the relay's first retry would come after 0.2 s
        [delivery] = await deliveries(client, result["event_id"])
        assert (delivery["status"], delivery["attempt_count"], delivery["next_attempt_at"]) == (
            "failed",
            1,
            None,
        )
        assert delivery["attempts"][0]["status_code"] == 500
        assert delivery["attempts"][0]["response_snippet"] == "nope"
        failed_feed = await feed(client, delivery_status="failed")
        assert failed_feed == [result["event_id"]]

        # A disabled subscription is not tested.
        off = await client.post(f"/v1/subscriptions/{sub['id']}/disable")
        assert off.status_code == 200
        assert_error(await client.post(f"/v1/subscriptions/{sub['id']}/test"), 409, "disabled")
        assert len(good.requests) == 2
        assert len(await feed(client, type="relay.test")) == 3


async def test_a_failed_test_events_attempt_is_recorded_as_failed_not_retry(
    relay: RelayServer, start_receiver: ReceiverFactory
) -> None:
    account = await relay.account("tester")
    bad = await start_receiver(default=Reply(500, body="nope"))
    async with relay.client(account) as client:
        sub = await subscribe(client, bad.url)
        result = (await client.post(f"/v1/subscriptions/{sub['id']}/test")).json()
        [delivery] = await deliveries(client, result["event_id"])
        assert delivery["status"] == "failed"
        assert delivery["attempts"][0]["outcome"] == "failed"


async def test_a_replay_does_not_send_another_subscriptions_test_event(
    relay: RelayServer, start_receiver: ReceiverFactory
) -> None:
    account = await relay.account("tester")
    mine, theirs = await start_receiver(), await start_receiver()
    async with relay.client(account) as client:
        sub = await subscribe(client, mine.url, event_types=ALL_TASK_EVENTS)
        other = await subscribe(client, theirs.url)
        tested = await client.post(f"/v1/subscriptions/{other['id']}/test")
        assert tested.json()["delivered"] is True
        replay = await client.post(f"/v1/subscriptions/{sub['id']}/replay", json={"all": True})
        assert replay.status_code == 202, replay.text
        await asyncio.sleep(0.5)  # proving an absence: what would arrive has arrived
        assert [verified(sub["secret"], r)["data"] for r in mine.requests] == []
        assert replay.json()["replayed"] == 0


# --- 4. enable and disable -----------------------------------------------------------------


async def test_disable_then_enable_replays_what_was_missed_in_order(
    relay: RelayServer, receiver: Receiver
) -> None:
    account = await relay.account("toggler")
    async with relay.client(account) as client:
        sub = await subscribe(client, receiver.url, event_types=ALL_TASK_EVENTS)
        base = f"/v1/subscriptions/{sub['id']}"
        never = await client.post(base + "/enable")  # already active: nothing missed
        assert never.status_code == 200, never.text
        assert (never.json()["replayed"], never.json()["missed_since"]) == (0, None)

        before = await submit(client, "before")
        delivered = await task_events(client, before)
        await receiver.wait_for(3, within=10)

        async def all_recorded() -> bool:
            states = [[d["status"] for d in await deliveries(client, e["id"])] for e in delivered]
            return states == [["succeeded"]] * 3

        await eventually(all_recorded, within=5, what="the deliveries to be recorded")

        off = await client.post(base + "/disable")
        assert off.status_code == 200, off.text
        disabled = off.json()
        assert set(disabled) == PUBLIC_FIELDS
        assert disabled["status"] == "disabled"
        assert disabled["disabled_reason"] == "disabled through the API"
        assert disabled["disabled_at"] is not None
        again = await client.post(base + "/disable")  # disabling twice changes nothing
        assert (again.status_code, again.json()) == (200, disabled)
        assert (await client.get(base)).json() == disabled
        assert_error(await client.post(base + "/replay", json={"all": True}), 409, "disabled")

        missed = [await submit(client, f"missed {i}") for i in range(2)]
        missed_events = [e for t in missed for e in await task_events(client, t)]
        await receiver.quiet_for(0.4)
        assert len(receiver.requests) == 3  # nothing while disabled
        for event in missed_events:
            assert await deliveries(client, event["id"]) == []

        on = await client.post(base + "/enable")
        assert on.status_code == 200, on.text
        enabled = on.json()
        assert set(enabled) == PUBLIC_FIELDS | {"replayed", "missed_since"}
        assert enabled["status"] == "active"
        assert (enabled["disabled_reason"], enabled["disabled_at"]) == (None, None)
        assert enabled["replayed"] == 6
        assert enabled["missed_since"] is not None
        assert enabled["missed_since"] == disabled["disabled_at"]  # nothing was pending

        arrived = await receiver.wait_for(9, within=10)
        await receiver.quiet_for(0.3)
        replayed = [verified(sub["secret"], r) for r in arrived[3:]]
        assert Counter(p["id"] for p in replayed) == Counter(e["id"] for e in missed_events)
        for task_id in missed:
            assert [p["sequence"] for p in replayed if p["data"]["id"] == task_id] == [1, 2, 3]

        # Disable, miss a task, enable without a replay: nothing is re-sent.
        assert (await client.post(base + "/disable")).status_code == 200
        skipped = await submit(client, "skipped")
        await task_events(client, skipped)
        quiet = await client.post(base + "/enable", json={"replay": False})
        assert quiet.status_code == 200, quiet.text
        assert quiet.json()["status"] == "active"
        assert quiet.json()["replayed"] == 0
        assert quiet.json()["missed_since"] is not None
        assert_error(
            await client.post(base + "/enable", json={"replay": "no thanks"}),
            400,
            "invalid_request",
        )
        assert_error(
            await client.post(base + "/enable", json={"replays": False}), 400, "invalid_request"
        )
        await receiver.quiet_for(0.5)
        assert len(receiver.requests) == 9
        # Live again: the next task is delivered as it happens.
        after = await submit(client, "after")
        await receiver.wait_for(12, within=10)
        assert {verified(sub["secret"], r)["data"]["id"] for r in receiver.requests[9:]} == {after}


# --- 5. replay windows, 6. the delivery_status feed ------------------------------------------


async def test_replay_windows_since_and_until(relay: RelayServer, receiver: Receiver) -> None:
    account = await relay.account("replayer")
    async with relay.client(account) as client:
        sub = await subscribe(client, receiver.url, event_types=["task.succeeded"])
        base = f"/v1/subscriptions/{sub['id']}"
        marks, tasks = [datetime.now(UTC)], []
        for i in range(3):
            tasks.append(await submit(client, f"task {i}"))
            await receiver.wait_for(i + 1, within=10)
            marks.append(datetime.now(UTC))
        ids = [r.webhook_id for r in receiver.requests]
        assert [verified(sub["secret"], r)["data"]["id"] for r in receiver.requests] == tasks

        async def replay(body: dict[str, Any], expected: list[str]) -> None:
            before = len(receiver.requests)
            response = await client.post(base + "/replay", json=body)
            assert response.status_code == 202, response.text
            assert response.json() == {"subscription_id": sub["id"], "replayed": len(expected)}
            if expected:
                await receiver.wait_for(before + len(expected), within=10)
            await receiver.quiet_for(0.3)
            assert sorted(r.webhook_id for r in receiver.requests[before:]) == sorted(expected)

        await replay({"since": utc_iso(marks[1]), "until": utc_iso(marks[2])}, [ids[1]])
        await replay({"since": marks[1].isoformat()}, ids[1:])  # +00:00 works like Z
        await replay({"all": True, "until": utc_iso(marks[1])}, [ids[0]])
        # A naive time is UTC.
        await replay({"since": marks[2].replace(tzinfo=None).isoformat()}, [ids[2]])
        await replay({"since": utc_iso(marks[3])}, [])
        await replay({"since": utc_iso(marks[0])}, ids)

        for body in (
            {"since": utc_iso(marks[2]), "until": utc_iso(marks[1])},
            {"since": utc_iso(marks[1]), "until": utc_iso(marks[1])},
            {"since": "2999-01-01T00:00:00Z"},  # an open range ends now
            {"since": "yesterday"},
            {"until": "2026-13-01T00:00:00Z"},
            {"since": "2026-06-06T16:03:11Z" + "0" * 40},
            {"since": 1718000000},
            {"only_failed": "sometimes"},
            {"everything": True},
        ):
            assert_error(await client.post(base + "/replay", json=body), 400, "invalid_request")
        await receiver.quiet_for(0.2)


async def test_only_failed_replays_and_the_feed_of_failed_deliveries(
    start_relay: RelayFactory, start_receiver: ReceiverFactory
) -> None:
    relay = await start_relay(retry_schedule=[0.1, 0.1])  # three attempts, then failed
    account = await relay.account("flaky")
    receiver = await start_receiver(script=[500, 500, 500])
    async with relay.client(account) as client:
        sub = await subscribe(client, receiver.url, event_types=["task.succeeded"])
        base = f"/v1/subscriptions/{sub['id']}"
        lost = await submit(client, "lost")
        await receiver.wait_for(3, within=10)
        lost_event = receiver.requests[0].webhook_id

        async def failed() -> bool:
            [delivery] = await deliveries(client, lost_event)
            return bool(delivery["status"] == "failed")

        await eventually(failed, within=5, what="the delivery to end failed")
        kept = await submit(client, "kept")
        await receiver.wait_for(4, within=10)
        kept_event = receiver.requests[3].webhook_id
        assert verified(sub["secret"], receiver.requests[3])["data"]["id"] == kept
        assert verified(sub["secret"], receiver.requests[0])["data"]["id"] == lost

        assert await feed(client, delivery_status="failed") == [lost_event]
        assert await feed(client, delivery_status="failed", order="asc") == [lost_event]
        assert await feed(client, delivery_status="succeeded") == [kept_event]
        assert await feed(client, delivery_status="pending") == []
        assert await feed(client, delivery_status="failed", type="task.queued") == []
        assert await feed(client, delivery_status="failed", task_id=kept) == []
        for bad in ("nope", "FAILED", ""):
            assert_error(
                await client.get("/v1/events", params={"delivery_status": bad}),
                400,
                "invalid_request",
            )

        replay = await client.post(base + "/replay", json={"all": True, "only_failed": True})
        assert (replay.status_code, replay.json()) == (
            202,
            {"subscription_id": sub["id"], "replayed": 1},
        )
        await receiver.wait_for(5, within=10)
        assert receiver.requests[4].webhook_id == lost_event
        verified(sub["secret"], receiver.requests[4])

        async def replay_succeeded() -> bool:
            return await feed(client, delivery_status="succeeded") == [kept_event, lost_event]

        await eventually(replay_succeeded, within=5, what="the replay's delivery to succeed")
        # Its failed delivery stays on record; delivered since, it is not replayed again.
        assert await feed(client, delivery_status="failed") == [lost_event]
        again = await client.post(base + "/replay", json={"all": True, "only_failed": True})
        assert (again.status_code, again.json()["replayed"]) == (202, 0)
        everything = await client.post(base + "/replay", json={"all": True, "only_failed": False})
        assert (everything.status_code, everything.json()["replayed"]) == (202, 2)
        await receiver.wait_for(7, within=10)
        await receiver.quiet_for(0.3)
        assert sorted(r.webhook_id for r in receiver.requests[5:]) == sorted(
            [lost_event, kept_event]
        )


# --- 8. rate_limit -------------------------------------------------------------------------


async def test_rate_limit_spaces_deliveries_and_without_it_they_burst(
    relay: RelayServer, start_receiver: ReceiverFactory
) -> None:
    account = await relay.account("limited")
    limited, free = await start_receiver(), await start_receiver()
    async with relay.client(account) as client:
        slow = await subscribe(client, limited.url, event_types=["task.succeeded"], rate_limit=5)
        fast = await subscribe(client, free.url, event_types=["task.succeeded"])
        for i in range(6):
            await submit(client, f"task {i}")
        await limited.wait_for(6, within=15)
        await free.wait_for(6, within=15)
        # Replays: six deliveries due at once to each (six tasks, so no ordering between them).
        for sub in (slow, fast):
            replay = await client.post(f"/v1/subscriptions/{sub['id']}/replay", json={"all": True})
            assert (replay.status_code, replay.json()["replayed"]) == (202, 6)
        await free.wait_for(12, within=10)
        await limited.wait_for(12, within=10)
        await asyncio.gather(limited.quiet_for(0.3), free.quiet_for(0.3))

    arrivals = [r.at for r in limited.requests]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.15, gaps  # 5/s: 0.2 s apart, less the arrival jitter
    assert arrivals[11] - arrivals[6] >= 5 * 0.2 * 0.9, arrivals  # the replayed six
    burst = [r.at for r in free.requests[6:]]
    assert burst[-1] - burst[0] < 0.6, burst


# --- 9. the callback secret's rotation -----------------------------------------------------


async def test_callback_deliveries_during_the_grace_verify_with_both_secrets(
    relay: RelayServer, receiver: Receiver
) -> None:
    account = await relay.account("rotator")
    async with relay.client(account) as client:
        assert (await client.get("/v1/callback-secret")).json() == {"secret": account.secret}
        rotated = await client.post("/v1/callback-secret/rotate", json={"grace_seconds": 60})
        assert rotated.status_code == 200, rotated.text
        assert set(rotated.json()) == {"secret", "previous_secret_expires_at"}
        new = rotated.json()["secret"]
        assert new.startswith("whsec_")
        assert new != account.secret
        expires = datetime.fromisoformat(rotated.json()["previous_secret_expires_at"])
        assert 50 < (expires - datetime.now(UTC)).total_seconds() <= 61
        assert (await client.get("/v1/callback-secret")).json() == {"secret": new}
        assert_error(
            await client.post("/v1/callback-secret/rotate", json={"grace_seconds": -1}),
            400,
            "invalid_request",
        )

        task_id = await submit(client, callback_url=receiver.url)
        [request] = await receiver.wait_for(1, within=10)
        tokens = request.headers["webhook-signature"].split()
        assert len(tokens) == 2
        assert all(t.startswith("v1,") for t in tokens)
        with_old, with_new = verified(account.secret, request), verified(new, request)
        assert with_old == with_new
        assert (with_new["type"], with_new["data"]["id"]) == ("task.succeeded", task_id)
