"""The subscriber API's edges, end to end (DESIGN §3 to §5, §7): every validation rule of
``/v1/subscriptions`` with its exact 4xx, cursor pagination, PATCH and DELETE (which stops
what was pending), fan-out next to a task callback, test events, enable/disable with the
replay of what was missed, replay windows, the event feed's ``delivery_status`` filter,
``Idempotency-Key``, ``rate_limit`` and the callback secret's rotation.

The main flows (Zapier's REST hook, a subscription's secret rotation, an outage then a replay,
static headers) are in ``test_subscribers.py``. Pure API checks share one relay (``world``);
tests that watch deliveries start their own, with the retry schedule they need.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from standardwebhooks import Webhook

from tests.e2e.conftest import ReceiverFactory, RelayFactory
from tests.e2e.harness import (
    Account,
    Received,
    Receiver,
    RelayServer,
    Reply,
    ark_input,
    eventually,
    free_port,
    relay_config,
    write_config,
)

ALL_TASK_EVENTS = [
    "task.queued",
    "task.running",
    "task.progress",
    "task.succeeded",
    "task.failed",
    "task.expired",
    "task.cancelled",
]
TERMINAL_TYPES = {"task.succeeded", "task.failed", "task.expired", "task.cancelled"}
PUBLIC_FIELDS = {
    "id",
    "url",
    "event_types",
    "description",
    "headers",
    "rate_limit",
    "status",
    "disabled_reason",
    "disabled_at",
    "failing_since",
    "last_success_at",
    "previous_secret_expires_at",
    "created_at",
    "updated_at",
}
"""A subscription as GET shows it; the create (and a rotation) add ``secret``."""

on_world = pytest.mark.asyncio(loop_scope="module")
"""Tests on the module's shared relay run in the module's event loop."""


# --- helpers -------------------------------------------------------------------------------


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    assert message
    return message


async def subscribe(client: httpx.AsyncClient, url: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/subscriptions", json={"url": url, **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def submit(client: httpx.AsyncClient, prompt: str = "a cat", **body: Any) -> str:
    response = await client.post(
        "/v1/tasks", json={"provider": "sandbox", "input": ark_input(prompt), **body}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def verified(secret: str, request: Received) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    assert payload["id"] == request.webhook_id
    return payload


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


# --- one relay for the API-only tests ------------------------------------------------------


class World:
    relay: RelayServer
    receiver: Receiver
    """Answers 200 on every path: each test's subscriptions get a path of their own."""
    alice: Account
    bob: Account
    clean: Account
    """Only ever sends bad subscription bodies: it must still have no subscription."""
    lister: Account

    def url(self) -> str:
        return f"{self.receiver.url}/{uuid.uuid4().hex}"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp: Path = tmp_path_factory.mktemp("subscriptions_api")
    config = relay_config(tmp, free_port())
    w = World()
    w.relay = await RelayServer(config, write_config(tmp, config)).start()
    w.receiver = await Receiver().start()
    try:
        w.alice, w.bob, w.clean, w.lister = [
            await w.relay.account(name) for name in ("alice", "bob", "clean", "lister")
        ]
        yield w
    finally:
        await w.receiver.stop()
        await w.relay.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def alice(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with world.relay.client(world.alice) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="module")
async def bob(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with world.relay.client(world.bob) as client:
        yield client


# --- 1. create, read, list -----------------------------------------------------------------


@on_world
async def test_create_answers_the_whole_subscription_and_the_secret_once(
    world: World, alice: httpx.AsyncClient
) -> None:
    url = world.url()
    response = await alice.post(
        "/v1/subscriptions",
        json={
            "url": url,
            "event_types": ["task.succeeded", "task.failed", "task.succeeded"],
            "description": "my zap",
            "headers": {"X-Token": "t0ps3cret", "Authorization": "B x"},
            "rate_limit": 5,
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    created = response.json()
    assert set(created) == PUBLIC_FIELDS | {"secret"}
    assert created["id"].startswith("sub_")
    assert created["secret"].startswith("whsec_")
    assert created["url"] == url
    assert created["event_types"] == ["task.failed", "task.succeeded"]  # sorted, deduplicated
    assert created["description"] == "my zap"
    assert created["headers"] == ["Authorization", "X-Token"]  # names only, never values
    assert "t0ps3cret" not in response.text
    assert created["rate_limit"] == 5
    assert created["status"] == "active"
    for unset in (
        "disabled_reason",
        "disabled_at",
        "failing_since",
        "last_success_at",
        "previous_secret_expires_at",
    ):
        assert created[unset] is None, unset
    assert created["created_at"] == created["updated_at"]
    assert created["created_at"].endswith("Z")

    # GET shows the same, never the secret; nor does the list.
    got = await alice.get(f"/v1/subscriptions/{created['id']}")
    assert got.status_code == 200
    assert got.json() == {k: v for k, v in created.items() if k != "secret"}
    assert created["secret"] not in got.text
    listed = (await alice.get("/v1/subscriptions")).json()["data"]
    mine = [s for s in listed if s["id"] == created["id"]]
    assert mine == [got.json()]
    assert all("secret" not in s for s in listed)
    assert (await alice.delete(f"/v1/subscriptions/{created['id']}")).status_code == 200


@on_world
async def test_url_or_target_url_or_both_when_equal(world: World, alice: httpx.AsyncClient) -> None:
    for body in ({"url": world.url()}, {"target_url": world.url()}):
        created = await alice.post("/v1/subscriptions", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["url"] == next(iter(body.values()))
        assert created.json()["event_types"] is None  # no filter: the terminal types
        assert created.json()["headers"] == []
        assert created.json()["description"] is None
        assert created.json()["rate_limit"] is None
    same = world.url()
    both = await alice.post("/v1/subscriptions", json={"url": same, "target_url": same})
    assert both.status_code == 201, both.text
    assert both.json()["url"] == same
    # The edges that are still allowed.
    edge = await alice.post(
        "/v1/subscriptions",
        json={
            "url": world.url(),
            "description": "d" * 500,
            "headers": {f"X-H{i}": "v" * 1024 for i in range(10)},
            "rate_limit": 0.5,
            "event_types": ALL_TASK_EVENTS,
        },
    )
    assert edge.status_code == 201, edge.text
    assert len(edge.json()["headers"]) == 10
    assert edge.json()["event_types"] == sorted(ALL_TASK_EVENTS)
    # (Gone again: at 0.5/s, deliveries to it would outlive the module's other tests.)
    assert (await alice.delete(f"/v1/subscriptions/{edge.json()['id']}")).status_code == 200


@on_world
async def test_relay_test_is_refused_in_a_filter(world: World, alice: httpx.AsyncClient) -> None:
    """Like a task's ``callback_events``: a test event goes to the one subscription tested,
    whatever its filter, so naming it there could only make a replay send other
    subscriptions' test events."""
    refused = await alice.post(
        "/v1/subscriptions",
        json={"url": world.url(), "event_types": ["relay.test", "task.succeeded"]},
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "invalid_request")
    assert "relay.test" in refused.json()["error"]["message"]


HOOK = "https://hooks.example.com/catch/1"

BAD_CREATES = [
    pytest.param({}, id="no-url"),
    pytest.param({"url": None}, id="null-url"),
    pytest.param({"description": "x"}, id="only-a-description"),
    pytest.param({"url": HOOK, "target_url": HOOK + "2"}, id="url-and-target-url-differ"),
    pytest.param({"url": "not a url"}, id="not-a-url"),
    pytest.param({"url": "hooks.example.com/catch"}, id="no-scheme"),
    pytest.param({"url": "ftp://hooks.example.com/catch"}, id="ftp"),
    pytest.param({"target_url": "ftp://hooks.example.com/catch"}, id="ftp-target-url"),
    pytest.param({"url": "https://user:pw@hooks.example.com/c"}, id="credentials"),
    pytest.param({"url": "http:///no/host/at/all"}, id="no-host"),
    pytest.param({"url": "https://hooks.example.com/a b"}, id="space"),
    pytest.param({"url": "https://hooks.example.com/" + "x" * 2100}, id="url-too-long"),
    pytest.param({"url": ["https://hooks.example.com/c"]}, id="url-not-a-string"),
    pytest.param({"url": HOOK, "event_types": ["task.exploded"]}, id="unknown-event-type"),
    pytest.param({"url": HOOK, "event_types": []}, id="no-event-types"),
    pytest.param({"url": HOOK, "event_types": "task.succeeded"}, id="event-types-not-a-list"),
    pytest.param(
        {"url": HOOK, "headers": {"webhook-signature": "v1,x"}}, id="header-webhook-signature"
    ),
    pytest.param({"url": HOOK, "headers": {"Webhook-Id": "evt_1"}}, id="header-webhook-id"),
    pytest.param(
        {"url": HOOK, "headers": {"Content-Type": "text/plain"}}, id="header-content-type"
    ),
    pytest.param({"url": HOOK, "headers": {"Host": "evil.example"}}, id="header-host"),
    pytest.param({"url": HOOK, "headers": {"X-Token": "caf\u00e9"}}, id="non-ascii-value"),
    pytest.param({"url": HOOK, "headers": {"X-Token": "a\r\nX-Evil: 1"}}, id="crlf-in-value"),
    pytest.param({"url": HOOK, "headers": {"X-Token": "v" * 1025}}, id="value-too-long"),
    pytest.param({"url": HOOK, "headers": {"Bad Name": "x"}}, id="bad-header-name"),
    pytest.param({"url": HOOK, "headers": {"X-Token": 5}}, id="value-not-a-string"),
    pytest.param({"url": HOOK, "headers": ["X-Token: x"]}, id="headers-not-an-object"),
    pytest.param(
        {"url": HOOK, "headers": {f"X-H{i}": "v" for i in range(11)}}, id="eleven-headers"
    ),
    pytest.param({"url": HOOK, "rate_limit": 0}, id="rate-limit-zero"),
    pytest.param({"url": HOOK, "rate_limit": -1}, id="rate-limit-negative"),
    pytest.param({"url": HOOK, "rate_limit": 10_001}, id="rate-limit-too-high"),
    pytest.param({"url": HOOK, "rate_limit": "fast"}, id="rate-limit-not-a-number"),
    pytest.param({"url": HOOK, "description": "d" * 501}, id="description-too-long"),
    pytest.param({"url": HOOK, "colour": "red"}, id="unknown-field"),
    pytest.param(
        {"url": HOOK, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
        id="secret-is-not-an-input",
    ),
    pytest.param({"url": HOOK, "status": "disabled"}, id="status-is-not-an-input"),
]


@on_world
@pytest.mark.parametrize("body", BAD_CREATES)
async def test_bad_create_bodies_are_400_and_create_nothing(
    world: World, body: dict[str, Any]
) -> None:
    async with world.relay.client(world.clean) as client:
        response = await client.post("/v1/subscriptions", json=body)
        assert_error(response, 400, "invalid_request")
        assert (await client.get("/v1/subscriptions")).json() == {"data": [], "next_cursor": None}


@on_world
async def test_bodies_that_are_not_json_objects_are_400(world: World) -> None:
    async with world.relay.client(world.clean) as client:
        for raw in (b"", b"[]", b'{"url": ', b'"https://hooks.example.com/c"'):
            response = await client.post(
                "/v1/subscriptions", content=raw, headers={"content-type": "application/json"}
            )
            assert_error(response, 400, "invalid_json")
        assert (await client.get("/v1/subscriptions")).json()["data"] == []


@on_world
async def test_the_list_is_newest_first_and_a_cursor_walks_it(world: World) -> None:
    async with world.relay.client(world.lister) as client:
        created = [
            (await subscribe(client, world.url(), description=f"n{i}"))["id"] for i in range(4)
        ]
        gone = created.pop(1)
        assert (await client.delete(f"/v1/subscriptions/{gone}")).status_code == 200
        newest_first = created[::-1]

        page = (await client.get("/v1/subscriptions")).json()
        assert [s["id"] for s in page["data"]] == newest_first
        assert page["next_cursor"] is None

        walked, cursor, pages = [], None, 0
        while True:
            params: dict[str, Any] = {"limit": 1}
            if cursor is not None:
                params["cursor"] = cursor
            response = await client.get("/v1/subscriptions", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            assert len(body["data"]) == 1
            walked += [s["id"] for s in body["data"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
            assert isinstance(cursor, str)
        assert (walked, pages) == (newest_first, 3)

        two = (await client.get("/v1/subscriptions", params={"limit": 2})).json()
        rest = (
            await client.get("/v1/subscriptions", params={"limit": 2, "cursor": two["next_cursor"]})
        ).json()
        assert [s["id"] for s in two["data"] + rest["data"]] == newest_first
        assert rest["next_cursor"] is None

        for params in ({"cursor": "garbage"}, {"cursor": two["next_cursor"] + "x"}):
            assert_error(
                await client.get("/v1/subscriptions", params=params), 400, "invalid_cursor"
            )
        # A cursor of another list (events run in either order) is not a subscription cursor.
        for params in ({"limit": 0}, {"limit": 201}, {"limit": "ten"}, {"order": "asc"}):
            assert_error(
                await client.get("/v1/subscriptions", params=params), 400, "invalid_request"
            )

    # Another account sees none of them.
    async with world.relay.client(world.bob) as other:
        theirs = (await other.get("/v1/subscriptions", params={"limit": 200})).json()["data"]
        assert not {s["id"] for s in theirs} & set(created)


# --- 1. update and delete --------------------------------------------------------------------


@on_world
async def test_patch_changes_each_field_and_null_clears_the_optional_ones(
    world: World, alice: httpx.AsyncClient
) -> None:
    sub = await subscribe(
        alice, world.url(), description="first", rate_limit=3, headers={"X-Token": "a"}
    )
    path = f"/v1/subscriptions/{sub['id']}"

    async def patch(body: dict[str, Any]) -> dict[str, Any]:
        response = await alice.patch(path, json=body)
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        assert set(found) == PUBLIC_FIELDS  # no secret
        return found

    moved = world.url()
    assert (await patch({"url": moved}))["url"] == moved
    moved_again = world.url()
    assert (await patch({"target_url": moved_again}))["url"] == moved_again
    assert (await patch({"event_types": ["task.running", "task.failed"]}))["event_types"] == [
        "task.failed",
        "task.running",
    ]
    assert (await patch({"event_types": None}))["event_types"] is None
    assert (await patch({"headers": {"Authorization": "Bearer n", "X-Other": "o"}}))["headers"] == [
        "Authorization",
        "X-Other",
    ]
    assert (await patch({"headers": None}))["headers"] == []
    changed = await patch({"description": "second", "rate_limit": 7.5})
    assert (changed["description"], changed["rate_limit"]) == ("second", 7.5)
    cleared = await patch({"description": None, "rate_limit": None})
    assert (cleared["description"], cleared["rate_limit"]) == (None, None)
    assert cleared["url"] == moved_again  # what was not named is kept
    assert cleared["id"] == sub["id"]
    assert cleared["created_at"] == sub["created_at"]
    assert cleared["status"] == "active"
    assert (await alice.get(path)).json() == cleared

    refused: list[dict[str, Any]] = [
        {"url": None},
        {"target_url": None},
        {},
        {"url": "ftp://hooks.example.com/c"},
        {"event_types": []},
        {"event_types": ["task.exploded"]},
        {"headers": {"Webhook-Signature": "v1,x"}},
        {"headers": {f"X-H{i}": "v" for i in range(11)}},
        {"headers": {"X-Token": "\u00e9"}},
        {"rate_limit": 0},
        {"description": "d" * 501},
        {"colour": "red"},
        {"status": "disabled"},
        {"secret": "whsec_x"},
    ]
    for body in refused:
        assert_error(await alice.patch(path, json=body), 400, "invalid_request")
    assert_error(await alice.patch(path, content=b""), 400, "invalid_json")
    assert (await alice.get(path)).json() == cleared  # nothing refused changed anything


@on_world
async def test_patch_with_url_and_a_different_target_url_is_refused_like_a_create(
    world: World, alice: httpx.AsyncClient
) -> None:
    sub = await subscribe(alice, world.url())
    response = await alice.patch(
        f"/v1/subscriptions/{sub['id']}", json={"url": world.url(), "target_url": world.url()}
    )
    assert_error(response, 400, "invalid_request")
    assert (await alice.get(f"/v1/subscriptions/{sub['id']}")).json()["url"] == sub["url"]


@on_world
async def test_another_accounts_subscription_is_404_on_every_route(
    world: World, alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    sub = await subscribe(alice, world.url(), description="alice's")
    before = (await alice.get(f"/v1/subscriptions/{sub['id']}")).json()
    base = f"/v1/subscriptions/{sub['id']}"
    attempts = [
        ("GET", base, None),
        ("PATCH", base, {"description": "bob's now"}),
        ("PATCH", base, {"url": world.url()}),
        ("DELETE", base, None),
        ("POST", base + "/enable", None),
        ("POST", base + "/enable", {"replay": False}),
        ("POST", base + "/disable", None),
        ("POST", base + "/rotate-secret", None),
        ("POST", base + "/rotate-secret", {"grace_seconds": 0}),
        ("POST", base + "/test", None),
        ("POST", base + "/replay", {}),
        ("POST", base + "/replay", None),
    ]
    for method, path, body in attempts:
        response = await bob.request(method, path, json=body)
        assert_error(response, 404, "not_found")
        assert sub["id"] in response.json()["error"]["message"]
    # And none of it changed alice's subscription: not even its secret.
    assert (await alice.get(base)).json() == before
    tested = await alice.post(base + "/test")
    assert tested.status_code == 200, tested.text
    [request] = [r for r in world.receiver.requests if r.webhook_id == tested.json()["event_id"]]
    assert len(request.headers["webhook-signature"].split()) == 1
    verified(sub["secret"], request)


@on_world
async def test_delete_twice_is_200_then_404_and_the_subscription_is_gone(
    world: World, alice: httpx.AsyncClient
) -> None:
    sub = await subscribe(alice, world.url())
    base = f"/v1/subscriptions/{sub['id']}"
    first = await alice.delete(base)
    assert (first.status_code, first.json()) == (200, {"id": sub["id"], "deleted": True})
    assert_error(await alice.delete(base), 404, "not_found")
    for method, path, body in (
        ("GET", base, None),
        ("PATCH", base, {"description": "x"}),
        ("POST", base + "/enable", None),
        ("POST", base + "/disable", None),
        ("POST", base + "/rotate-secret", None),
        ("POST", base + "/test", None),
        ("POST", base + "/replay", {}),
    ):
        assert_error(await alice.request(method, path, json=body), 404, "not_found")
    listed = (await alice.get("/v1/subscriptions", params={"limit": 200})).json()["data"]
    assert sub["id"] not in {s["id"] for s in listed}


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
        replay = await client.post(f"/v1/subscriptions/{sub['id']}/replay", json={})
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
        assert_error(await client.post(base + "/replay", json={}), 409, "disabled")

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
        await replay({"until": utc_iso(marks[1])}, [ids[0]])
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

        replay = await client.post(base + "/replay", json={"only_failed": True})
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
        again = await client.post(base + "/replay", json={"only_failed": True})
        assert (again.status_code, again.json()["replayed"]) == (202, 0)
        everything = await client.post(base + "/replay", json={"only_failed": False})
        assert (everything.status_code, everything.json()["replayed"]) == (202, 2)
        await receiver.wait_for(7, within=10)
        await receiver.quiet_for(0.3)
        assert sorted(r.webhook_id for r in receiver.requests[5:]) == sorted(
            [lost_event, kept_event]
        )


# --- 7. Idempotency-Key --------------------------------------------------------------------


@on_world
async def test_idempotent_subscription_create(
    world: World, alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    key = f"sub-{uuid.uuid4()}"
    url = world.url()
    body = {"url": url, "event_types": ["task.succeeded"], "description": "once"}

    first = await alice.post("/v1/subscriptions", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    second = await alice.post("/v1/subscriptions", json=body, headers={"Idempotency-Key": key})
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["content-type"].startswith("application/json")
    assert second.json() == first.json()  # the same subscription, the same secret

    async def subscriptions_at(client: httpx.AsyncClient, where: str) -> list[str]:
        listed = (await client.get("/v1/subscriptions", params={"limit": 200})).json()["data"]
        return [s["id"] for s in listed if s["url"] == where]

    assert await subscriptions_at(alice, url) == [first.json()["id"]]

    other = await alice.post(
        "/v1/subscriptions", json={**body, "description": "twice"}, headers={"Idempotency-Key": key}
    )
    assert_error(other, 409, "idempotency_key_reused")
    assert_error(
        await alice.post("/v1/subscriptions", json={"url": url}, headers={"Idempotency-Key": key}),
        409,
        "idempotency_key_reused",
    )
    assert await subscriptions_at(alice, url) == [first.json()["id"]]

    # Keys are per account: bob's same key with the same body is bob's own first request.
    bobs = await bob.post("/v1/subscriptions", json=body, headers={"Idempotency-Key": key})
    assert bobs.status_code == 201, bobs.text
    assert "idempotent-replayed" not in bobs.headers
    assert bobs.json()["id"] != first.json()["id"]
    assert await subscriptions_at(bob, url) == [bobs.json()["id"]]
    assert await subscriptions_at(alice, url) == [first.json()["id"]]

    # Without the key, the same body is another subscription.
    plain = await alice.post("/v1/subscriptions", json=body)
    assert plain.status_code == 201
    assert len(await subscriptions_at(alice, url)) == 2


@on_world
async def test_an_idempotent_400_is_replayed_as_the_same_400(
    world: World, alice: httpx.AsyncClient
) -> None:
    key = f"bad-{uuid.uuid4()}"
    bad = {"url": "ftp://hooks.example.com/catch"}
    first = await alice.post("/v1/subscriptions", json=bad, headers={"Idempotency-Key": key})
    assert_error(first, 400, "invalid_request")
    assert "idempotent-replayed" not in first.headers
    second = await alice.post("/v1/subscriptions", json=bad, headers={"Idempotency-Key": key})
    assert_error(second, 400, "invalid_request")
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    # The key is spent on that body: a corrected body needs a new key.
    fixed = await alice.post(
        "/v1/subscriptions", json={"url": world.url()}, headers={"Idempotency-Key": key}
    )
    assert_error(fixed, 409, "idempotency_key_reused")


@on_world
async def test_malformed_idempotency_keys_are_400_and_create_nothing(
    world: World, alice: httpx.AsyncClient
) -> None:
    url = world.url()
    keys = [b"has space", b"x" * 256, b"", b"tab\tkey", "caf\u00e9".encode()]
    for key in keys:
        for path, body in (
            ("/v1/subscriptions", {"url": url}),
            ("/v1/tasks", {"provider": "sandbox", "input": ark_input(), "reference": url}),
        ):
            response = await alice.post(path, json=body, headers={b"Idempotency-Key": key})
            assert_error(response, 400, "invalid_idempotency_key")
    listed = (await alice.get("/v1/subscriptions", params={"limit": 200})).json()["data"]
    assert url not in {s["url"] for s in listed}
    tasks = (await alice.get("/v1/tasks", params={"reference": url})).json()["data"]
    assert tasks == []
    # The longest key allowed, and every printable ASCII character, are fine.
    for fine in ("k" * 255, "".join(chr(c) for c in range(0x21, 0x7F))):
        ok = await alice.post(
            "/v1/subscriptions", json={"url": world.url()}, headers={"Idempotency-Key": fine}
        )
        assert ok.status_code == 201, ok.text


@on_world
async def test_idempotent_task_create(
    world: World, alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    key = f"task-{uuid.uuid4()}"
    reference = f"order-{uuid.uuid4()}"
    body = {"provider": "sandbox", "input": ark_input("idempotent"), "reference": reference}

    first = await alice.post("/v1/tasks", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    second = await alice.post("/v1/tasks", json=body, headers={"Idempotency-Key": key})
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()

    async def tasks_of(client: httpx.AsyncClient) -> list[str]:
        listed = (await client.get("/v1/tasks", params={"reference": reference})).json()
        return [t["id"] for t in listed["data"]]

    assert await tasks_of(alice) == [first.json()["id"]]

    changed = await alice.post(
        "/v1/tasks", json={**body, "metadata": {"n": 2}}, headers={"Idempotency-Key": key}
    )
    assert_error(changed, 409, "idempotency_key_reused")
    # The same key on the other POST is another request, not a replay.
    assert_error(
        await alice.post(
            "/v1/subscriptions", json={"url": world.url()}, headers={"Idempotency-Key": key}
        ),
        409,
        "idempotency_key_reused",
    )
    bobs = await bob.post("/v1/tasks", json=body, headers={"Idempotency-Key": key})
    assert bobs.status_code == 201, bobs.text
    assert "idempotent-replayed" not in bobs.headers
    assert bobs.json()["id"] != first.json()["id"]
    assert await tasks_of(bob) == [bobs.json()["id"]]
    assert await tasks_of(alice) == [first.json()["id"]]

    # A refused body is remembered too.
    bad_key = f"task-bad-{uuid.uuid4()}"
    bad = {"provider": "sandbox", "provider_task_id": "t", "input": ark_input()}
    refused = [
        await alice.post("/v1/tasks", json=bad, headers={"Idempotency-Key": bad_key})
        for _ in range(2)
    ]
    for response in refused:
        assert_error(response, 400, "invalid_request")
    assert refused[0].json() == refused[1].json()
    assert refused[1].headers["idempotent-replayed"] == "true"


@on_world
async def test_concurrent_requests_with_one_key_create_one_subscription(
    world: World, alice: httpx.AsyncClient
) -> None:
    key = f"race-{uuid.uuid4()}"
    url = world.url()
    answers = await asyncio.gather(
        *(
            alice.post("/v1/subscriptions", json={"url": url}, headers={"Idempotency-Key": key})
            for _ in range(6)
        )
    )
    fresh = [a for a in answers if a.status_code == 201 and "idempotent-replayed" not in a.headers]
    assert len(fresh) == 1, [(a.status_code, a.headers.get("idempotent-replayed")) for a in answers]
    for answer in answers:
        if answer.status_code == 201:
            assert answer.json() == fresh[0].json()
        else:
            assert_error(answer, 409, "idempotency_key_in_use")
    listed = (await alice.get("/v1/subscriptions", params={"limit": 200})).json()["data"]
    assert [s["id"] for s in listed if s["url"] == url] == [fresh[0].json()["id"]]


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
            replay = await client.post(f"/v1/subscriptions/{sub['id']}/replay", json={})
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
