"""``POST /v1/tasks`` with an ``Idempotency-Key`` that submits a task, in fewer writes (issue
17): the key's reservation reads its latest submission, and the 201 is kept in the
transaction that writes the task, so the request makes no separate read of the submission
and no write of its answer after. What a client sees does not change: a replay is the very
bytes first sent, a failure after the task was written still answers the retry with that
task (now the kept 201 itself), and a failure before it leaves the retry to submit again or
to meet the uncertain submission. Each test runs on SQLite and on PostgreSQL (skipped without
``RELAY_TEST_POSTGRES_URL``), against the built-in sandbox provider."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.errors import StoreError
from relay.services import Services
from tests.e2e.harness import (
    Account,
    InProcessRelay,
    ark_input,
    free_port,
    postgres_schema,
    relay_config,
    write_config,
)

KEY = "order-77-attempt"


@pytest.fixture(params=["sqlite", "postgresql"])
async def relay(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[InProcessRelay]:
    async with contextlib.AsyncExitStack() as stack:
        config = relay_config(tmp_path, free_port())
        if request.param == "postgresql":
            config["database_url"] = await stack.enter_async_context(postgres_schema())
        relay = InProcessRelay(config, write_config(tmp_path, config))
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


def services(relay: InProcessRelay) -> Services:
    found: Services = relay.app.state.services
    return found


def spy(relay: InProcessRelay, monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    """Every call of the relay's store method ``name`` (its arguments), passed through."""
    store = services(relay).store
    real: Callable[..., Awaitable[Any]] = getattr(store, name)
    calls: list[Any] = []

    async def counted(*args: Any) -> Any:
        calls.append(args)
        return await real(*args)

    monkeypatch.setattr(store, name, counted)
    return calls


def create(prompt: str = "a fox") -> dict[str, Any]:
    return {"provider": "sandbox", "input": ark_input(prompt), "reference": "order-77"}


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/v1/tasks", json=body, headers={"Idempotency-Key": KEY})


async def provider_creates(relay: InProcessRelay) -> int:
    async with httpx.AsyncClient(base_url=relay.url, timeout=10) as http:
        response = await http.get("/sandbox/_control/requests")
    assert response.status_code == 200, response.text
    return sum(r["method"] == "POST" for r in response.json()["data"])


async def tasks(client: httpx.AsyncClient) -> list[str]:
    return [t["id"] for t in (await client.get("/v1/tasks")).json()["data"]]


async def kept(relay: InProcessRelay, account: Account) -> tuple[int | None, str | None]:
    """What the store keeps as the key's answer (a reservation attempt that cannot take it)."""
    svc = services(relay)
    now = svc.clock.now()
    reply = await svc.store.reserve_idempotency_key(account.id, KEY, "-", "peek", now, now)
    assert reply is not None
    return reply.status_code, reply.body


async def test_the_201_is_kept_with_its_task_and_replayed_byte_for_byte(
    relay: InProcessRelay,
    account: Account,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads = spy(relay, monkeypatch, "submission_for_key")
    finishes = spy(relay, monkeypatch, "finish_idempotency_key")
    first = await post(client, create())
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    # The submission was read with the reservation; the answer written with the task.
    assert (reads, finishes) == ([], [])
    assert await kept(relay, account) == (201, first.text)
    again = await post(client, create())
    assert (again.status_code, again.headers["idempotent-replayed"]) == (201, "true")
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert await tasks(client) == [first.json()["id"]]
    assert await provider_creates(relay) == 1
    # Another body with the key is still refused.
    other = await post(client, create("a hare"))
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_key_reused")


async def test_a_failure_after_the_task_was_written_answers_the_retry_with_it(
    relay: InProcessRelay,
    account: Account,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database takes the task (and the answer with it) and the request fails after,
    say on its way back: the retry is answered with that 201, never a second create."""
    store = services(relay).store
    real = store.create_task

    async def written_then_lost(*args: Any) -> None:
        await real(*args)
        raise StoreError("the connection broke after the commit")

    monkeypatch.setattr(store, "create_task", written_then_lost)
    failed = await post(client, create())
    assert failed.status_code == 503, failed.text
    monkeypatch.setattr(store, "create_task", real)
    [task_id] = await tasks(client)
    status, body = await kept(relay, account)
    assert status == 201
    assert body is not None
    retry = await post(client, create())
    assert (retry.status_code, retry.headers["idempotent-replayed"]) == (201, "true")
    assert retry.text == body
    assert retry.json()["id"] == task_id
    assert await provider_creates(relay) == 1
    assert await tasks(client) == [task_id]


async def test_a_refused_create_lets_the_retry_submit_again(
    relay: InProcessRelay, account: Account, client: httpx.AsyncClient
) -> None:
    """The provider certainly took nothing (a 429): no answer is kept, and the retry's
    reservation finds the key's submission settled ``not_accepted`` and submits again."""
    async with httpx.AsyncClient(base_url=relay.url, timeout=10) as http:
        response = await http.put("/sandbox/_control/faults", json={"plan": ["429"]})
        assert response.status_code == 200, response.text
    refused = await post(client, create())
    assert refused.status_code == 502, refused.text
    assert refused.json()["error"]["code"] == "provider_unavailable"
    assert await tasks(client) == []
    # The 429 backs the provider off (about a second): retries meanwhile are refused the
    # same way without reaching it, each settled not_accepted in turn.
    for _ in range(50):
        retry = await post(client, create())
        if retry.status_code != 502:
            break
        assert retry.json()["error"]["code"] == "provider_unavailable", retry.text
        await asyncio.sleep(0.1)
    assert retry.status_code == 201, retry.text
    assert "idempotent-replayed" not in retry.headers
    states = [s["state"] for s in (await client.get("/v1/submissions")).json()["data"]]
    assert states[0] == "accepted", states
    assert set(states[1:]) == {"not_accepted"}, states
    assert await provider_creates(relay) == 2
    replay = await post(client, create())
    assert (replay.headers["idempotent-replayed"], replay.content) == ("true", retry.content)


async def test_a_lost_answer_is_never_sent_again_for_the_retry(
    relay: InProcessRelay, client: httpx.AsyncClient
) -> None:
    """The provider's answer is lost (a 500): 502 ``submission_uncertain``, nothing kept; the
    retry's reservation finds the uncertain submission and answers from it, and another
    body with the key is refused while it is unsettled. One create at the provider."""
    async with httpx.AsyncClient(base_url=relay.url, timeout=10) as http:
        response = await http.put("/sandbox/_control/faults", json={"plan": ["500"]})
        assert response.status_code == 200, response.text
    lost = await post(client, create())
    assert (lost.status_code, lost.json()["error"]["code"]) == (502, "submission_uncertain")
    retry = await post(client, create())
    assert (retry.status_code, retry.json()["error"]["code"]) == (409, "submission_uncertain")
    other = await post(client, create("a hare"))
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert await provider_creates(relay) == 1
    assert await tasks(client) == []
