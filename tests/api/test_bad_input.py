"""Bad input: every mistake is a 4xx with ``{"error": {"code", "message"}}``, never a 5xx, and
writes nothing (DESIGN §7). One relay (in-process, see ``tests/api/conftest.py``) serves the
whole module; the account the bad requests come from must still have no task and no event at
the end of each test."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.e2e.harness import (
    Account,
    InProcessRelay,
    Receiver,
    ark_input,
    eventually,
    free_port,
    relay_config,
    write_config,
)

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    # One worker runs the module, so that its relay is started once.
    pytest.mark.xdist_group("api_bad_input"),
]

MAX_BODY = 65536  # limits.max_body_bytes of relay_config
TRACKED = "cgt-20260606160057-tracked"  # any id: registering with it polls nothing at once


class World:
    """One relay; ``clean`` only ever sends bad input; ``owner`` has a task and an event."""

    relay: InProcessRelay
    receiver: Receiver
    clean: Account
    owner: Account
    owner_task: dict[str, Any]
    owner_event_id: str


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp: Path = tmp_path_factory.mktemp("bad_input")
    # Its authentication tests send dozens of wrong keys from one address (the rate limit on
    # them has its own tests, in test_auth_limit.py).
    config = relay_config(tmp, free_port(), limits={"auth_failure_burst": 10_000})
    w = World()
    w.relay = await InProcessRelay(config, write_config(tmp, config)).start()
    w.receiver = await Receiver().start()
    try:
        w.clean = await w.relay.account("clean")
        w.owner = await w.relay.account("owner")
        async with w.relay.client(w.owner) as client:
            created = await client.post(
                "/v1/tasks",
                json={
                    "provider": "sandbox",
                    "input": ark_input(),
                    "callback_url": w.receiver.url,
                    "reference": "owner-ref",
                },
            )
            assert created.status_code == 201, created.text
            w.owner_task = created.json()
            [request] = await w.receiver.wait_for(1)
            w.owner_event_id = request.webhook_id
        yield w
    finally:
        await w.receiver.stop()
        await w.relay.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """The clean account's client; after the test, its account must still be empty.

    (Compared with what it held before the test, so that a bad request that does write fails
    its own test, not every later one too.)"""
    async with world.relay.client(world.clean) as c:
        before = [(await c.get(path)).json() for path in ("/v1/tasks", "/v1/events")]
        yield c
        after = [(await c.get(path)).json() for path in ("/v1/tasks", "/v1/events")]
        assert after == before, "a refused request wrote a task or an event"
        assert after == [{"data": [], "next_cursor": None}] * 2


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    return message


def task(**fields: Any) -> bytes:
    return json.dumps({"provider": "sandbox", **fields}).encode()


# --- POST /v1/tasks bodies -------------------------------------------------------------------

BAD_BODIES = [
    pytest.param(b'{"provider": "sandbox", ', 400, "invalid_json", id="malformed-json"),
    pytest.param(b"[]", 400, "invalid_json", id="json-array"),
    pytest.param(b'[{"provider": "sandbox"}]', 400, "invalid_json", id="json-array-of-object"),
    pytest.param(b'"sandbox"', 400, "invalid_json", id="json-string"),
    pytest.param(b"null", 400, "invalid_json", id="json-null"),
    pytest.param(b"", 400, "invalid_json", id="empty-body"),
    pytest.param(b"   \n", 400, "invalid_json", id="blank-body"),
    pytest.param(b'{"provider": "\xff\xfe"}', 400, "invalid_json", id="not-utf8"),
    pytest.param(
        b"[" * 100_000 + b"]" * 100_000, 413, "payload_too_large", id="too-deep-and-too-big"
    ),
    pytest.param(b"[" * 20_000 + b"]" * 20_000, 400, "invalid_json", id="too-deep"),
    pytest.param(
        b'{"provider": "sandbox", "provider_task_id": "t", "metadata": {"x": NaN}}',
        400,
        "invalid_json",
        id="nan",
    ),
    pytest.param(
        b'{"provider": "sandbox", "provider_task_id": "t", "metadata": {"x": 1e999}}',
        400,
        "invalid_json",
        id="infinite-number",
    ),
    pytest.param(
        b'{"provider": "sandbox", "provider_task_id": "t", "metadata": {"x": 1'
        + b"0" * 5000
        + b"}}",
        400,
        "invalid_json",
        id="huge-integer",
    ),
    pytest.param(
        task(provider="nope", provider_task_id=TRACKED),
        400,
        "unknown_provider",
        id="unknown-provider",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, input=ark_input()), 400, "invalid_request", id="both-sources"
    ),
    pytest.param(task(), 400, "invalid_request", id="neither-source"),
    pytest.param(
        json.dumps({"provider_task_id": TRACKED}).encode(), 400, "invalid_request", id="no-provider"
    ),
    pytest.param(
        task(provider="", provider_task_id=TRACKED), 400, "invalid_request", id="empty-provider"
    ),
    pytest.param(
        task(provider=5, provider_task_id=TRACKED),
        400,
        "invalid_request",
        id="provider-not-a-string",
    ),
    pytest.param(task(provider_task_id=""), 400, "invalid_request", id="empty-task-id"),
    pytest.param(task(input="a cat"), 400, "invalid_request", id="input-not-an-object"),
    pytest.param(
        task(input={"model": "x", "content": []}),
        400,
        "provider_rejected",
        id="input-the-provider-refuses",
    ),
    pytest.param(
        task(input={"model": "x"}),
        400,
        "unsupported_by_provider",
        id="neutral-input-without-the-prompt-ark-needs",
    ),
    pytest.param(
        task(input={"model": "x", "prompt": "p", "ratio": "5:4"}),
        400,
        "invalid_input",
        id="neutral-input-with-a-bad-ratio",
    ),
    pytest.param(
        task(input={"model": "x", "content": []}, input_format="unified"),
        400,
        "invalid_input",
        id="unified-format-with-native-keys",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, input_format="native"),
        400,
        "invalid_request",
        id="input-format-without-input",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, callback_url="ftp://x/y"),
        400,
        "invalid_request",
        id="ftp-callback",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, callback_url="ftp://example.com/hook"),
        400,
        "invalid_request",
        id="ftp-callback-long",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, callback_url="not a url"),
        400,
        "invalid_request",
        id="not-a-url",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, callback_url="http://[::1/x"),
        400,
        "invalid_request",
        id="url-with-a-broken-ipv6-host",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, callback_url="http://exa\u00e4" + "m" * 70 + ".com/"),
        400,
        "invalid_request",
        id="url-with-an-invalid-idna-host",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, callback_url="https://user:pw@a.example/h"),
        400,
        "invalid_request",
        id="url-with-credentials",
    ),
    pytest.param(
        b'{"provider": "sandbox", "provider_task_id": "t", "metadata": {"a": "\\udfff"}}',
        400,
        "invalid_json",
        id="lone-surrogate",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, callback_url="http:///no-host/at/all"),
        400,
        "invalid_request",
        id="url-without-host",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, callback_url="https://a.example/h x"),
        400,
        "invalid_request",
        id="url-with-space",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, callback_url="https://a.example/" + "x" * 2100),
        400,
        "invalid_request",
        id="url-too-long",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, callback_url=["https://a.example/h"]),
        400,
        "invalid_request",
        id="url-not-a-string",
    ),
    pytest.param(
        task(
            provider_task_id=TRACKED,
            callback_url="https://a.example/h",
            callback_events=["task.exploded"],
        ),
        400,
        "invalid_request",
        id="unknown-event-type",
    ),
    pytest.param(
        task(
            provider_task_id=TRACKED,
            callback_url="https://a.example/h",
            callback_events=["relay.test"],
        ),
        400,
        "invalid_request",
        id="non-task-event-type",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, callback_url="https://a.example/h", callback_events=[]),
        400,
        "invalid_request",
        id="no-event-types",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, callback_events="task.succeeded"),
        400,
        "invalid_request",
        id="event-types-not-a-list",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, metadata={"blob": "x" * (16 * 1024)}),
        400,
        "invalid_request",
        id="metadata-over-16k",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, metadata=["a"]),
        400,
        "invalid_request",
        id="metadata-not-an-object",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, reference="r" * 257),
        400,
        "invalid_request",
        id="reference-too-long",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, colour="red"), 400, "invalid_request", id="unknown-field"
    ),
    pytest.param(
        task(provider_task_id=TRACKED, metadata={"pad": "x" * MAX_BODY}),
        413,
        "payload_too_large",
        id="oversized-body",
    ),
    pytest.param(
        b'{"provider": "sandbox", "provider_task_id": "t", "metadata": '
        + b'{"a": ' * 40
        + b"1"
        + b"}" * 40
        + b"}",
        400,
        "invalid_json",
        id="nested-deeper-than-32",
    ),
    pytest.param(
        b'{"provider": "sandbox", "provider_task_id": "t", "input": '
        + b"[" * 40
        + b"]" * 40
        + b"}",
        400,
        "invalid_json",
        id="nested-arrays-deeper-than-32",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, metadata={"k" * 257: 1}),
        400,
        "invalid_json",
        id="object-key-too-long",
    ),
    pytest.param(
        task(provider_task_id=TRACKED, metadata={"blob": "\u00e9" * 8300}),
        400,
        "invalid_request",
        id="metadata-over-16k-as-utf8",
    ),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_BODIES)
async def test_bad_task_bodies(
    client: httpx.AsyncClient, body: bytes, status: int, code: str
) -> None:
    response = await client.post(
        "/v1/tasks", content=body, headers={"content-type": "application/json"}
    )
    assert_error(response, status, code)


async def test_an_oversized_chunked_body_is_refused_without_a_length(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"provider": "sandbox", "provider_task_id": "t", "metadata": {"pad": "'
        for _ in range(MAX_BODY // 4096 + 2):
            yield b"x" * 4096
        yield b'"}}'

    response = await client.post("/v1/tasks", content=chunks())
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


async def test_a_body_just_under_the_limit_is_read(client: httpx.AsyncClient) -> None:
    # The limit is the body size, not a smaller guess: this one is refused for its metadata.
    body = task(provider_task_id=TRACKED, metadata={"pad": "x" * (MAX_BODY - 200)})
    assert len(body) < MAX_BODY
    message = assert_error(await client.post("/v1/tasks", content=body), 400, "invalid_request")
    assert "metadata" in message


async def test_the_nesting_limit_is_32_levels(client: httpx.AsyncClient) -> None:
    def nested(depth: int) -> bytes:  # the body itself is level 1
        return (
            b'{"provider": "sandbox", "provider_task_id": "t", "colour": '
            + b"[" * (depth - 1)
            + b"]" * (depth - 1)
            + b"}"
        )

    # 32 levels pass the JSON bounds and are refused by the model (unknown field).
    message = assert_error(
        await client.post("/v1/tasks", content=nested(32)), 400, "invalid_request"
    )
    assert "colour" in message
    message = assert_error(await client.post("/v1/tasks", content=nested(33)), 400, "invalid_json")
    assert "deeper than 32" in message


BAD_IDEMPOTENCY_KEYS = [
    pytest.param(b"k" * 256, id="too-long"),
    pytest.param(b"two words", id="space"),
    pytest.param(b"caf\xc3\xa9", id="not-ascii"),
    pytest.param(b"tab\there", id="control-character"),
]


@pytest.mark.parametrize("key", BAD_IDEMPOTENCY_KEYS)
async def test_bad_idempotency_keys_are_refused(client: httpx.AsyncClient, key: bytes) -> None:
    response = await client.post(
        "/v1/tasks", content=task(provider_task_id=TRACKED), headers=[(b"Idempotency-Key", key)]
    )
    assert_error(response, 400, "invalid_idempotency_key")


BAD_STATIC_HEADERS = [
    pytest.param({"X-Token": "a\r\nX-Injected: 1"}, id="crlf-in-value"),
    pytest.param({"X-Token": "a\nb"}, id="newline-in-value"),
    pytest.param({"X-Token": "caf\u00e9"}, id="non-ascii-value"),
    pytest.param({"X-Token": "v" * 1025}, id="value-too-long"),
    pytest.param({"X Token": "v"}, id="space-in-name"),
    pytest.param({"X-Token:": "v"}, id="colon-in-name"),
    pytest.param({"": "v"}, id="empty-name"),
    pytest.param({"Content-Type": "text/plain"}, id="reserved-name"),
    pytest.param({"webhook-signature": "v1,forged"}, id="signature-name"),
    pytest.param({f"X-H{i}": "v" for i in range(11)}, id="too-many"),
    pytest.param({"X-Token": 5}, id="value-not-a-string"),
]


@pytest.mark.parametrize("headers", BAD_STATIC_HEADERS)
async def test_bad_subscription_headers_are_refused(
    client: httpx.AsyncClient, headers: dict[str, Any]
) -> None:
    response = await client.post(
        "/v1/subscriptions", json={"url": "https://hooks.example.com/in", "headers": headers}
    )
    assert_error(response, 400, "invalid_request")
    assert (await client.get("/v1/subscriptions")).json()["data"] == []


BAD_QUERY_LENGTHS = [
    ("/v1/tasks", {"cursor": "c" * 600}),
    ("/v1/events", {"cursor": "c" * 600}),
    ("/v1/subscriptions", {"cursor": "c" * 600}),
    ("/v1/events", {"task_id": "t" * 200}),
    ("/v1/tasks", {"reference": "r" * 300}),
    ("/v1/tasks", {"provider": "p" * 100}),
]


@pytest.mark.parametrize(("path", "params"), BAD_QUERY_LENGTHS)
async def test_overlong_query_values_are_400(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    assert_error(await client.get(path, params=params), 400, "invalid_request")


# --- authentication -------------------------------------------------------------------------

AUTH_CASES = [
    pytest.param({}, id="no-key"),
    pytest.param({"Authorization": "Bearer rk_wrong"}, id="wrong-bearer"),
    pytest.param({"X-API-Key": "rk_wrong"}, id="wrong-x-api-key"),
    pytest.param({"Authorization": "Bearer"}, id="empty-bearer"),
    pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic-auth"),
]
AUTHED_ROUTES = [
    ("GET", "/v1/me"),
    ("GET", "/v1/callback-secret"),
    ("GET", "/v1/tasks"),
    ("POST", "/v1/tasks"),
    ("GET", "/v1/tasks/task_x"),
    ("POST", "/v1/tasks/task_x/refresh"),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/evt_x"),
    ("GET", "/v1/events/evt_x/deliveries"),
    ("POST", "/v1/events/evt_x/redeliver"),
]


HOSTILE_KEYS = [
    pytest.param({"X-API-Key": "rk_" + "x" * 8000}, id="huge-key"),
    pytest.param({"Authorization": b"Bearer rk_\xff\xfe"}, id="non-ascii-key"),
    pytest.param({"Authorization": "Bearer rk_a\tb"}, id="control-character-key"),
]


@pytest.mark.parametrize("headers", [*AUTH_CASES, *HOSTILE_KEYS])
async def test_missing_or_wrong_api_key_is_401_everywhere(
    world: World, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    async with world.relay.client(headers=headers) as anonymous:
        for method, path in AUTHED_ROUTES:
            body = task(provider_task_id=TRACKED) if method == "POST" else None
            response = await anonymous.request(method, path, content=body)
            assert_error(response, 401, "unauthorized")


async def test_the_api_key_of_one_account_is_not_the_secret_of_another(
    world: World, client: httpx.AsyncClient
) -> None:
    # The callback secret is not an API key.
    async with world.relay.client(headers={"X-API-Key": world.clean.secret}) as wrong:
        assert_error(await wrong.get("/v1/me"), 401, "unauthorized")


# --- not found ------------------------------------------------------------------------------

NOT_FOUND = [
    ("GET", "/v1/tasks/task_nope"),
    ("POST", "/v1/tasks/task_nope/refresh"),
    ("GET", "/v1/events/evt_nope"),
    ("GET", "/v1/events/evt_nope/deliveries"),
    ("POST", "/v1/events/evt_nope/redeliver"),
    ("GET", "/v2/tasks"),
    ("GET", "/v1/nope"),
    ("POST", "/v1/nope"),
    ("GET", "/v1/tasks/task_nope/nope"),
]


@pytest.mark.parametrize(("method", "path"), NOT_FOUND)
async def test_unknown_objects_and_routes_are_404(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    assert_error(await client.request(method, path), 404, "not_found")


async def test_a_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    assert_error(await client.delete("/v1/tasks"), 405, "method_not_allowed")
    assert_error(await client.put("/v1/me"), 405, "method_not_allowed")


async def test_another_accounts_task_and_event_are_404(
    world: World, client: httpx.AsyncClient
) -> None:
    task_id, event_id = world.owner_task["id"], world.owner_event_id
    for method, path in (
        ("GET", f"/v1/tasks/{task_id}"),
        ("POST", f"/v1/tasks/{task_id}/refresh"),
        ("GET", f"/v1/events/{event_id}"),
        ("GET", f"/v1/events/{event_id}/deliveries"),
        ("POST", f"/v1/events/{event_id}/redeliver"),
    ):
        message = assert_error(await client.request(method, path), 404, "not_found")
        assert world.owner.id not in message
    for path, params in (
        ("/v1/tasks", {"reference": "owner-ref"}),
        ("/v1/tasks", {"status": "succeeded"}),
        ("/v1/events", {"task_id": task_id}),
        ("/v1/events", {"type": "task.succeeded"}),
    ):
        listed = await client.get(path, params=params)
        assert listed.json() == {"data": [], "next_cursor": None}

    # The owner still sees both, and the refused redelivery sent nothing.
    async with world.relay.client(world.owner) as owner:
        assert (await owner.get(f"/v1/tasks/{task_id}")).status_code == 200
        views = (await owner.get(f"/v1/events/{event_id}/deliveries")).json()["data"]
    assert len(views) == 1
    assert len(world.receiver.with_id(event_id)) == 1


async def test_bad_redeliver_bodies_create_no_delivery(
    world: World, client: httpx.AsyncClient
) -> None:
    event_id = world.owner_event_id
    async with world.relay.client(world.owner) as owner:
        before = (await owner.get(f"/v1/events/{event_id}/deliveries")).json()["data"]
        for body, status, code in (
            (b"{", 400, "invalid_json"),
            (b"[]", 400, "invalid_json"),
            (b'{"destination_id": 5}', 400, "invalid_request"),
            (b'{"destination": "dst_x"}', 400, "invalid_request"),
            (b'{"destination_id": "dst_nope"}', 404, "not_found"),
        ):
            response = await owner.post(f"/v1/events/{event_id}/redeliver", content=body)
            assert_error(response, status, code)
        after = (await owner.get(f"/v1/events/{event_id}/deliveries")).json()["data"]
    assert after == before
    assert len(world.receiver.with_id(event_id)) == 1


# --- query strings --------------------------------------------------------------------------

BAD_QUERIES = [
    pytest.param("/v1/tasks", {"cursor": "garbage"}, "invalid_cursor", id="tasks-bad-cursor"),
    pytest.param("/v1/events", {"cursor": "garbage"}, "invalid_cursor", id="events-bad-cursor"),
    pytest.param("/v1/tasks", {"limit": "abc"}, "invalid_request", id="limit-not-a-number"),
    pytest.param("/v1/tasks", {"limit": "0"}, "invalid_request", id="limit-zero"),
    pytest.param("/v1/tasks", {"limit": "-1"}, "invalid_request", id="limit-negative"),
    pytest.param("/v1/tasks", {"limit": "201"}, "invalid_request", id="limit-too-big"),
    pytest.param("/v1/events", {"limit": "1.5"}, "invalid_request", id="limit-fraction"),
    pytest.param("/v1/tasks", {"status": "done"}, "invalid_request", id="bad-status"),
    pytest.param("/v1/tasks", {"status": "SUCCEEDED"}, "invalid_request", id="status-case"),
    pytest.param("/v1/tasks", {"order": "sideways"}, "invalid_request", id="tasks-bad-order"),
    pytest.param("/v1/events", {"order": "random"}, "invalid_request", id="events-bad-order"),
    pytest.param("/v1/events", {"type": "task.exploded"}, "invalid_request", id="bad-type"),
    pytest.param("/v1/events", {"since": "yesterday"}, "invalid_request", id="bad-since"),
    pytest.param("/v1/events", {"until": "2026-13-45"}, "invalid_request", id="bad-until"),
]


@pytest.mark.parametrize(("path", "params", "code"), BAD_QUERIES)
async def test_bad_query_strings_are_400(
    client: httpx.AsyncClient, path: str, params: dict[str, str], code: str | None
) -> None:
    assert_error(await client.get(path, params=params), 400, code)


async def test_a_cursor_made_for_another_order_is_refused(world: World) -> None:
    async with world.relay.client(world.owner) as owner:
        page = (await owner.get("/v1/events", params={"limit": 1})).json()
        cursor = page["next_cursor"]
        assert cursor, "the owner has more than one event"
        assert (
            await owner.get("/v1/events", params={"limit": 1, "cursor": cursor})
        ).status_code == 200
        refused = await owner.get("/v1/events", params={"order": "asc", "cursor": cursor})
        assert_error(refused, 400, "invalid_cursor")
        # A cursor is not a way into another list either: a task cursor on events, tampered.
        tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
        assert_error(
            await owner.get("/v1/events", params={"cursor": tampered}), 400, "invalid_cursor"
        )


async def test_the_owner_task_was_delivered_once(world: World) -> None:
    """Sanity of the module's world: nothing above wrote, retried or re-sent anything."""
    async with world.relay.client(world.owner) as owner:

        async def one_task() -> bool:
            listed = (await owner.get("/v1/tasks")).json()["data"]
            return [t["id"] for t in listed] == [world.owner_task["id"]]

        await eventually(one_task, within=5, what="the owner's single task")
    assert [r.webhook_id for r in world.receiver.requests] == [world.owner_event_id]
