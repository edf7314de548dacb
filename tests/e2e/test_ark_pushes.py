"""Ark pushes as hints: a relay submitting to an Ark provider that keeps ``callback_url``
(Ark itself, apiyi) hands it the relay's signed inbound URL, and the provider's push makes
the relay look at the task at once, so it is seen finished long before its next poll.

The provider is the relay's own sandbox, whose ark and apiyi flavours POST the task to a
create's ``callback_url`` on each status change, unsigned, as Ark does; the relay's own
polls are a minute apart here, so only a push can bring the result in time. A provider
configured with ``pushes: false`` is given no ``callback_url`` (the sandbox pushes nothing),
and a push the relay did not sign, or one whose body lies, changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.signing import Tokens
from tests.e2e.harness import (
    Account,
    RelayServer,
    api_client,
    eventually,
    free_port,
    provider_requests,
    relay_config,
    write_config,
)

SECRET = "operator-secret-key-0123456789"
SLOW_POLL = {"min_interval": 60, "max_interval": 60, "expected_duration": 60, "learn": False}
"""The relay's own polls come a minute apart: anything sooner is a push's doing."""
QUEUED, RUNNING = 0.3, 2.6
"""The sandbox's phases: a task ends 2.9 s after it is created, a "[slow]" one 13.3 s."""
SLOW_END = QUEUED + 5 * RUNNING
MODEL = "doubao-seedance-2-0-fast-260128"
PROVIDERS: dict[str, dict[str, Any]] = {
    # Ark itself and apiyi (which passes Ark's path through) push by their presets' default.
    "ark": {"preset": "ark", "sandbox": True, "poll": SLOW_POLL},
    "apiyi": {"preset": "apiyi", "sandbox": True, "poll": SLOW_POLL},
    # The same apiyi, told not to: some mirrors drop the field, or refuse it.
    "quiet": {"preset": "apiyi", "sandbox": True, "poll": SLOW_POLL, "pushes": False},
}


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[RelayServer]:
    config = relay_config(
        tmp_path,
        free_port(),
        sandbox={"queued_seconds": QUEUED, "running_seconds": RUNNING},
        providers=PROVIDERS,
    )
    # The operator's key makes the same tokens as the relay, as a captured URL carries them.
    config["secret_key"] = SECRET
    server = RelayServer(config, write_config(tmp_path, config))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def create(client: httpx.AsyncClient, provider: str, prompt: str) -> dict[str, Any]:
    created = await client.post(
        "/v1/tasks",
        json={
            "provider": provider,
            "input": {"model": MODEL, "content": [{"type": "text", "text": prompt}]},
        },
    )
    assert created.status_code == 201, created.text
    task: dict[str, Any] = created.json()
    return task


async def status(client: httpx.AsyncClient, task_id: str) -> str:
    answer = await client.get(f"/v1/tasks/{task_id}")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["status"])


async def pushes_for(relay: RelayServer, provider_task_id: str) -> list[dict[str, Any]]:
    """The sandbox's log of its pushes of one task (each attempt, with its URL)."""
    async with api_client(relay.url) as anyone:
        answer = await anyone.get("/sandbox/_control/pushes")
    assert answer.status_code == 200, answer.text
    return [r for r in answer.json()["data"] if r["task_id"] == provider_task_id]


async def queries_of(relay: RelayServer, provider_task_id: str) -> int:
    return sum(
        1
        for r in await provider_requests(relay.url)
        if r["method"] == "GET" and r["path"].endswith(f"/tasks/{provider_task_id}")
    )


@pytest.mark.parametrize("provider", ["ark", "apiyi"])
async def test_a_push_makes_the_task_seen_finished_long_before_its_next_poll(
    relay: RelayServer, provider: str
) -> None:
    account = await relay.account("alice")
    async with relay.client(account) as client:
        started = time.monotonic()
        task = await create(client, provider, "a fox in the snow")

        async def succeeded() -> bool:
            return await status(client, task["id"]) == "succeeded"

        # The next scheduled poll is a minute away; the task ends 2.9 s in.
        await eventually(succeeded, within=15, what=f"the {provider} task to be seen succeeded")
        seen_after = time.monotonic() - started
    assert seen_after < 15, seen_after

    # It was the provider's push, to the relay's own signed inbound URL for this provider.
    pushed = await pushes_for(relay, task["provider_task_id"])
    assert pushed, "the provider was given no callback_url"
    prefix = f"{relay.url}/v1/inbound/{provider}/"
    assert all(r["url"].startswith(prefix) for r in pushed), pushed
    assert {r["status"] for r in pushed if r["status"] is not None} <= {202, 404}
    assert 202 in {r["status"] for r in pushed}, pushed


async def test_a_task_is_seen_finished_within_a_second_or_two_of_its_end(
    relay: RelayServer,
) -> None:
    account = await relay.account("dave")
    async with relay.client(account) as client:
        started = time.monotonic()
        # Long enough that the quick looks a first push earns are over before it ends.
        task = await create(client, "ark", "[slow] a fox in the snow")

        async def succeeded() -> bool:
            return await status(client, task["id"]) == "succeeded"

        await eventually(succeeded, within=SLOW_END + 2.5, what="the task to be seen succeeded")
    assert time.monotonic() - started < SLOW_END + 2.5


async def test_a_provider_told_not_to_push_gets_no_callback_url(relay: RelayServer) -> None:
    account = await relay.account("bob")
    async with relay.client(account) as client:
        task = await create(client, "quiet", "a fox in the snow")
        pushing = await create(client, "apiyi", "a fox in the snow")

        async def pushed_one() -> bool:
            return await status(client, pushing["id"]) == "succeeded"

        # By the time the pushing twin is seen finished, the quiet one has long ended at the
        # provider too, and nothing told the relay: it waits for its poll, a minute away.
        await eventually(pushed_one, within=15, what="the pushing twin to be seen succeeded")
        await eventually(
            lambda: pushes_for(relay, pushing["provider_task_id"]),
            within=5,
            what="the sandbox's log of the twin's pushes",
        )
        assert await status(client, task["id"]) in ("queued", "running")
    assert await pushes_for(relay, task["provider_task_id"]) == []


async def test_a_forged_push_changes_nothing_and_a_lying_one_is_checked(
    relay: RelayServer,
) -> None:
    account = await relay.account("carol")
    async with relay.client(account) as client, api_client(relay.url) as anyone:
        # Quiet, so that every push here is the test's; "[slow]" runs five times longer.
        task = await create(client, "quiet", "[slow] a fox in the snow")
        provider_id = task["provider_task_id"]
        before = await queries_of(relay, provider_id)
        lie = {"id": provider_id, "model": MODEL, "status": "succeeded", "content": {}}

        # Not signed by this relay: another secret, another provider's token, no token.
        elsewhere = Tokens("some-other-secret-0123456789").inbound(
            "quiet", account.id, task["id"], datetime.now(UTC)
        )
        for path in (
            f"/v1/inbound/quiet/{elsewhere}",
            f"/v1/inbound/quiet/{token(account, 'apiyi', task['id'])}",
            f"/v1/inbound/quiet/{token(account, 'quiet', task['id'])}x",
            "/v1/inbound/quiet/",
        ):
            answer = await anyone.post(path, json=lie)
            assert answer.status_code in (404, 405), (path, answer.status_code, answer.text)
        assert await queries_of(relay, provider_id) == before  # the provider was not asked
        assert await status(client, task["id"]) in ("queued", "running")

        # Signed, but its body lies: the relay believes only the provider's own answer.
        answer = await anyone.post(
            f"/v1/inbound/quiet/{token(account, 'quiet', task['id'])}", json=lie
        )
        assert answer.status_code == 202, answer.text

        async def asked() -> bool:
            return await queries_of(relay, provider_id) > before

        await eventually(asked, within=5, what="the relay to confirm the push with a query")
        assert await status(client, task["id"]) in ("queued", "running")
        events = (await client.get("/v1/events", params={"task_id": task["id"]})).json()
        assert "task.succeeded" not in {e["type"] for e in events["data"]}


def token(account: Account, provider: str, task_id: str) -> str:
    return Tokens(SECRET).inbound(provider, account.id, task_id, datetime.now(UTC))
