"""Input no database can store is refused at the edge, the same on both backends (issue 11,
item 5): PostgreSQL's text and jsonb refuse a NUL character (``\\x00``, ``\\u0000``), which
SQLite takes. A NUL anywhere in a JSON body (a value or a key, however deep), a path id or a
query parameter is a 400 ``invalid_request`` naming where it was, before any query runs: no
503, no ERROR in the log, nothing written.

Each test runs on a relay on SQLite and on one on PostgreSQL (skipped without
``RELAY_TEST_POSTGRES_URL``, see ``tests/e2e/harness.py``'s ``postgres_schema``).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import (
    Account,
    InProcessRelay,
    ark_input,
    free_port,
    postgres_schema,
    relay_config,
    write_config,
)

NUL = "\x00"
HOOK = "https://hooks.example.com/in"


@pytest.fixture(params=["sqlite", "postgresql"])
async def relay(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[InProcessRelay]:
    async with contextlib.AsyncExitStack() as stack:
        config = relay_config(tmp_path, free_port())
        if request.param == "postgresql":
            config["database_url"] = await stack.enter_async_context(postgres_schema())
        relay = InProcessRelay(config, write_config(tmp_path, config), listen=False)
        await relay.start()
        stack.push_async_callback(relay.stop)
        yield relay


@pytest.fixture
async def account(relay: InProcessRelay) -> Account:
    return await relay.account("alice")


@pytest.fixture
async def client(relay: InProcessRelay, account: Account) -> AsyncIterator[httpx.AsyncClient]:
    async with relay.client(account) as c:
        yield c


def assert_refused(response: httpx.Response, *phrases: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == "invalid_request", error
    assert "NUL character" in error["message"], error
    for phrase in phrases:
        assert phrase in error["message"], (phrase, error)


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The ERROR records the relay logs during the test (checked at its end)."""
    caplog.set_level(logging.WARNING)
    return caplog.records


def no_errors(records: list[logging.LogRecord]) -> None:
    bad = [r.getMessage() for r in records if r.levelno >= logging.ERROR]
    assert not bad, bad


def task(**fields: Any) -> dict[str, Any]:
    return {"provider": "sandbox", "provider_task_id": "cgt-20260606160057-nul", **fields}


BODIES: list[tuple[str, dict[str, Any], str]] = [
    # (path, body, where the message must say the NUL is)
    ("/v1/tasks", task(provider_task_id=f"cgt-{NUL}"), "provider_task_id"),
    ("/v1/tasks", task(reference=f"order{NUL}1"), "reference"),
    ("/v1/tasks", task(provider=f"sand{NUL}box"), "provider"),
    ("/v1/tasks", task(metadata={"note": f"a{NUL}b"}), "metadata.note"),
    ("/v1/tasks", task(metadata={f"k{NUL}": 1}), "metadata"),
    ("/v1/tasks", task(metadata={"deep": [{"x": [f"{NUL}"]}]}), "metadata.deep[0].x[0]"),
    (
        "/v1/tasks",
        {"provider": "sandbox", "input": ark_input(f"a cat{NUL}")},
        "input.content[0].text",
    ),
    ("/v1/tasks", task(callback_url=f"{HOOK}?t={NUL}"), "callback_url"),
    ("/v1/subscriptions", {"url": HOOK, "description": f"d{NUL}"}, "description"),
    ("/v1/subscriptions", {"url": HOOK, "headers": {"X-Token": f"t{NUL}k"}}, "headers.X-Token"),
    ("/v1/subscriptions", {"url": HOOK, "headers": {f"X-{NUL}": "v"}}, "headers"),
    ("/v1/subscriptions", {"url": f"{HOOK}/{NUL}"}, "url"),
    ("/v1/subscriptions", {"url": HOOK, "event_types": [f"task.{NUL}"]}, "event_types[0]"),
]


async def test_a_nul_in_a_body_is_400_and_writes_nothing(
    client: httpx.AsyncClient, errors: list[logging.LogRecord]
) -> None:
    for path, body, where in BODIES:
        assert_refused(await client.post(path, json=body), where)
        # The same with an Idempotency-Key (stored with its answer): still refused.
        assert_refused(
            await client.post(path, json=body, headers={"Idempotency-Key": "nul-1"}), where
        )
    sub = await client.post("/v1/subscriptions", json={"url": HOOK})
    assert sub.status_code == 201, sub.text
    sub_id = sub.json()["id"]
    for body, where in (
        ({"description": f"x{NUL}"}, "description"),
        ({"headers": {"Authorization": f"Bearer {NUL}"}}, "headers.Authorization"),
    ):
        assert_refused(await client.patch(f"/v1/subscriptions/{sub_id}", json=body), where)
    assert_refused(
        await client.post(f"/v1/subscriptions/{sub_id}/replay", json={"since": f"2026{NUL}"}),
        "since",
    )
    assert (await client.get("/v1/tasks")).json()["data"] == []
    [only] = (await client.get("/v1/subscriptions")).json()["data"]
    assert only["description"] is None
    assert not only["headers"]
    no_errors(errors)


PATHS = [
    ("GET", "/v1/tasks/task_%00x"),
    ("POST", "/v1/tasks/task_%00x/refresh"),
    ("POST", "/v1/tasks/task_%00x/cancel"),
    ("GET", "/v1/events/evt_%00"),
    ("GET", "/v1/events/evt_%00/deliveries"),
    ("POST", "/v1/events/evt_%00/redeliver"),
    ("GET", "/v1/subscriptions/sub_%00"),
    ("PATCH", "/v1/subscriptions/sub_%00"),
    ("DELETE", "/v1/subscriptions/sub_%00"),
    ("POST", "/v1/subscriptions/sub_%00/test"),
    ("POST", "/v1/providers/%00/moderations"),
]


async def test_a_nul_in_a_path_id_is_400(
    client: httpx.AsyncClient, errors: list[logging.LogRecord]
) -> None:
    for method, path in PATHS:
        body = {"description": "d"} if method == "PATCH" else None
        # Sent percent-encoded, as a client must; the server decodes the path.
        response = await client.request(method, path, json=body)
        assert_refused(response, "path")
    no_errors(errors)


QUERIES = [
    ("/v1/tasks", {"reference": f"r{NUL}"}),
    ("/v1/tasks", {"provider": NUL}),
    ("/v1/tasks", {"cursor": f"c{NUL}"}),
    ("/v1/events", {"task_id": f"task_{NUL}"}),
    ("/v1/events", {"since": f"2026-01-01{NUL}"}),
    ("/v1/subscriptions", {"cursor": NUL}),
    ("/v1/tasks", {f"x{NUL}": "1"}),
]


async def test_a_nul_in_a_query_parameter_is_400(
    client: httpx.AsyncClient, errors: list[logging.LogRecord]
) -> None:
    for path, params in QUERIES:
        assert_refused(await client.get(path, params=params), "query")
    no_errors(errors)


async def test_a_nul_in_a_header_is_refused_before_the_database(
    relay: InProcessRelay, account: Account, errors: list[logging.LogRecord]
) -> None:
    """(Real servers refuse a raw NUL in a header line themselves; ASGI lets it through.)"""
    auth = {"Authorization": f"Bearer {account.api_key}"}
    for headers, status in (
        ({**auth, "Idempotency-Key": f"k{NUL}"}, 400),
        ({"Authorization": f"Bearer {account.api_key}{NUL}"}, 401),
        ({"X-API-Key": NUL}, 401),
    ):
        async with relay.client(headers=headers) as c:
            response = await c.post("/v1/tasks", json=task())
        assert response.status_code == status, response.text
    no_errors(errors)


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def test_a_nul_in_a_dashboard_form_path_or_query_is_400(
    relay: InProcessRelay, account: Account, errors: list[logging.LogRecord]
) -> None:
    async with relay.client() as browser:
        form = await browser.get("/dashboard/login")
        token = CSRF.search(form.text)
        assert token, form.text
        signed_in = await browser.post(
            "/dashboard/login", data={"csrf": token.group(1), "api_key": account.api_key}
        )
        assert signed_in.status_code == 303, signed_in.text
        page = await browser.get("/dashboard/events")
        token = CSRF.search(page.text)
        assert token, page.text
        refused = await browser.post(
            "/dashboard/events/evt_x/redeliver",
            data={"csrf": token.group(1), "destination_id": f"dst_{NUL}"},
        )
        assert refused.status_code == 400, refused.text
        assert "NUL character" in refused.text
        for path in ("/dashboard/tasks/task_%00", "/dashboard/tasks?provider=%00"):
            assert_refused(await browser.get(path))
    no_errors(errors)
