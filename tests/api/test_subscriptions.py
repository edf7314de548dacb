"""The subscriptions API (DESIGN §3 to §5, §7): every validation rule of ``/v1/subscriptions``
with its exact 4xx, cursor pagination, PATCH and DELETE, another account's 404s, and
``Idempotency-Key`` on subscriptions and tasks. One relay, in-process (``world``), serves the
module.

What the relay then delivers to subscriptions (fan-out, test events, disable and enable with
the replay of what was missed, replays, ``rate_limit``, rotations) is in
``tests/e2e/test_subscription_deliveries.py``; the main flows in ``tests/e2e/test_subscribers.py``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from standardwebhooks import Webhook

from tests.e2e.harness import (
    Account,
    InProcessRelay,
    Received,
    Receiver,
    ark_input,
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

pytestmark = [
    # Tests on the module's shared relay run in the module's event loop.
    pytest.mark.asyncio(loop_scope="module"),
    # One worker runs the module, so that its relay is started once.
    pytest.mark.xdist_group("api_subscriptions"),
]


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


def verified(secret: str, request: Received) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    assert payload["id"] == request.webhook_id
    return payload


# --- one relay for the module ---------------------------------------------------------------


class World:
    relay: InProcessRelay
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
    w.relay = await InProcessRelay(config, write_config(tmp, config)).start()
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
        {"url": HOOK, "secret": "whsec_tooshort"},
        id="secret-not-24-bytes-of-base64",
    ),
    pytest.param({"url": HOOK, "status": "disabled"}, id="status-is-not-an-input"),
]


@pytest.mark.parametrize("body", BAD_CREATES)
async def test_bad_create_bodies_are_400_and_create_nothing(
    world: World, body: dict[str, Any]
) -> None:
    async with world.relay.client(world.clean) as client:
        response = await client.post("/v1/subscriptions", json=body)
        assert_error(response, 400, "invalid_request")
        assert (await client.get("/v1/subscriptions")).json() == {"data": [], "next_cursor": None}


async def test_bodies_that_are_not_json_objects_are_400(world: World) -> None:
    async with world.relay.client(world.clean) as client:
        for raw in (b"", b"[]", b'{"url": ', b'"https://hooks.example.com/c"'):
            response = await client.post(
                "/v1/subscriptions", content=raw, headers={"content-type": "application/json"}
            )
            assert_error(response, 400, "invalid_json")
        assert (await client.get("/v1/subscriptions")).json()["data"] == []


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


async def test_patch_with_url_and_a_different_target_url_is_refused_like_a_create(
    world: World, alice: httpx.AsyncClient
) -> None:
    sub = await subscribe(alice, world.url())
    response = await alice.patch(
        f"/v1/subscriptions/{sub['id']}", json={"url": world.url(), "target_url": world.url()}
    )
    assert_error(response, 400, "invalid_request")
    assert (await alice.get(f"/v1/subscriptions/{sub['id']}")).json()["url"] == sub["url"]


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
        ("POST", base + "/replay", {"all": True}),
        ("POST", base + "/replay", {"since": "2020-01-01T00:00:00Z"}),
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
        ("POST", base + "/replay", {"all": True}),
    ):
        assert_error(await alice.request(method, path, json=body), 404, "not_found")
    listed = (await alice.get("/v1/subscriptions", params={"limit": 200})).json()["data"]
    assert sub["id"] not in {s["id"] for s in listed}


# --- 7. Idempotency-Key --------------------------------------------------------------------


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
