"""Routes end to end: a real relay (in-process, served on loopback for its sandbox) with two
sandbox providers of different dialects behind one route. The sandbox breaks one flavour at a
time (per-flavour fault plans), so the other stays healthy."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import InProcessFactory, start_relay
from tests.dashboard.test_task_outputs import task_page
from tests.e2e.harness import Account, InProcessRelay

__all__ = ["start_relay"]

SLOW = {"min_interval": 0.1, "max_interval": 0.5, "expected_duration": 1, "learn": False}
PROVIDERS: dict[str, dict[str, Any]] = {
    "sandbox": {
        "dialect": "ark",
        "path_prefix": "/sandbox/ark/api/v3",
        "api_key": "sandbox",
        "poll": SLOW,
    },
    "cubicspaces": {"preset": "cubicspaces", "sandbox": True, "poll": SLOW, "timeout": 2},
    "seedance2ink": {"preset": "seedance2ink", "sandbox": True, "poll": SLOW},
}
NEUTRAL = {"model": "seedance-2.0-fast", "prompt": "a fox in snow"}


@pytest.fixture
async def relay(start_relay: InProcessFactory) -> InProcessRelay:
    return await start_relay(
        providers=PROVIDERS,
        routes={
            "any": {"providers": ["cubicspaces", "sandbox"]},
            "seeded": {"providers": ["seedance2ink", "sandbox"]},
        },
        sandbox={"queued_seconds": 0.2, "running_seconds": 0.3},
    )


async def break_flavor(relay: InProcessRelay, plan: list[str], flavor: str, **extra: Any) -> None:
    async with httpx.AsyncClient(base_url=relay.url) as control:
        body = {"plan": plan, "flavors": [flavor], **extra}
        answer = await control.put("/sandbox/_control/faults", json=body)
    assert answer.status_code == 200, answer.text


async def creates_at(relay: InProcessRelay, flavor: str) -> int:
    async with httpx.AsyncClient(base_url=relay.url) as control:
        log = (await control.get("/sandbox/_control/requests", params={"flavor": flavor})).json()
    return sum(1 for r in log["data"] if r["method"] == "POST")


async def submit(relay: InProcessRelay, account: Account, **extra: Any) -> httpx.Response:
    async with relay.client(account) as client:
        return await client.post("/v1/tasks", json={"provider": "any", "input": NEUTRAL, **extra})


async def test_a_broken_first_provider_is_asked_once_and_the_second_takes_the_task(
    relay: InProcessRelay,
) -> None:
    account = await relay.account("router")
    await break_flavor(relay, ["429"], "cubicspaces", repeat=True)
    created = await submit(relay, account)
    assert created.status_code == 201, created.text
    task = created.json()
    assert (task["provider"], task["route"]) == ("sandbox", "any")
    steps = task["submissions"]
    assert [(s["provider"], s["outcome"]) for s in steps] == [
        ("cubicspaces", "not_accepted"),
        ("sandbox", "accepted"),
    ]
    assert "429" in steps[0]["error"]
    assert await creates_at(relay, "cubicspaces") == 1
    assert await creates_at(relay, "ark") == 1
    async with relay.client(account) as client:
        listed = (await client.get("/v1/submissions")).json()["data"]
    assert sorted((s["provider"], s["state"]) for s in listed) == [
        ("cubicspaces", "not_accepted"),
        ("sandbox", "accepted"),
    ]


async def test_a_first_provider_whose_answer_is_lost_stops_the_route(
    relay: InProcessRelay,
) -> None:
    account = await relay.account("careful")
    # cubicspaces takes the create and answers after the relay's 2 s timeout.
    await break_flavor(relay, ["slow"], "cubicspaces", timeout_seconds=4)
    lost = await submit(relay, account)
    assert lost.status_code == 502, lost.text
    assert lost.json()["error"]["code"] == "submission_uncertain"
    assert await creates_at(relay, "ark") == 0  # never asked: that could pay twice
    async with relay.client(account) as client:
        listed = (await client.get("/v1/submissions")).json()["data"]
    assert [(s["provider"], s["state"]) for s in listed] == [("cubicspaces", "uncertain")]


async def test_a_route_whose_every_provider_refuses_says_why_for_each(
    relay: InProcessRelay,
) -> None:
    account = await relay.account("unlucky")
    async with httpx.AsyncClient(base_url=relay.url) as control:
        body = {"plan": ["429"], "repeat": True}  # every flavour
        assert (await control.put("/sandbox/_control/faults", json=body)).status_code == 200
    refused = await submit(relay, account)
    assert refused.status_code == 502, refused.text
    error = refused.json()["error"]
    assert error["code"] == "provider_unavailable"
    assert "cubicspaces: not_accepted" in error["message"]
    assert "sandbox: not_accepted" in error["message"]


async def test_a_provider_that_cannot_do_what_is_asked_is_skipped_not_asked(
    relay: InProcessRelay,
) -> None:
    account = await relay.account("picky")
    async with relay.client(account) as client:
        created = await client.post(
            "/v1/tasks", json={"provider": "seeded", "input": {**NEUTRAL, "seed": 7}}
        )
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["provider"] == "sandbox"
    (skipped, took) = task["submissions"]
    assert (skipped["provider"], skipped["outcome"]) == ("seedance2ink", "skipped")
    assert "seed" in skipped["error"]
    assert (took["provider"], took["outcome"]) == ("sandbox", "accepted")
    assert await creates_at(relay, "seedance2ink") == 0


async def test_what_no_provider_of_the_route_can_do_is_the_callers_400(
    relay: InProcessRelay,
) -> None:
    account = await relay.account("impossible")
    refused = await submit(relay, account, input={**NEUTRAL, "resolution": "1080p"})
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "unsupported_by_provider"
    assert "cubicspaces" in error["message"]
    assert "sandbox" in error["message"]


async def test_a_route_name_cannot_track_an_existing_task(relay: InProcessRelay) -> None:
    account = await relay.account("tracker")
    async with relay.client(account) as client:
        answer = await client.post(
            "/v1/tasks", json={"provider": "any", "provider_task_id": "cgt-1"}
        )
    assert answer.status_code == 400
    assert "route" in answer.json()["error"]["message"]


async def test_a_retry_with_the_same_key_after_failover_gets_the_same_task(
    relay: InProcessRelay,
) -> None:
    account = await relay.account("retrier")
    await break_flavor(relay, ["429"], "cubicspaces", repeat=True)
    async with relay.client(account, headers={"Idempotency-Key": "k-1"}) as client:
        body = {"provider": "any", "input": NEUTRAL}
        first = await client.post("/v1/tasks", json=body)
        again = await client.post("/v1/tasks", json=body)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert await creates_at(relay, "ark") == 1


async def test_the_dashboard_shows_the_route_and_each_provider_asked(
    relay: InProcessRelay,
) -> None:
    account = await relay.account("viewer")
    await break_flavor(relay, ["429"], "cubicspaces", repeat=True)
    task = (await submit(relay, account)).json()
    page = (await task_page(relay, account, task["id"])).text
    assert 'id="task-route">any<' in page
    assert "cubicspaces</span> not accepted" in page
    assert "sandbox</span> accepted" in page


async def test_a_native_body_through_a_route_of_several_dialects_is_refused(
    relay: InProcessRelay,
) -> None:
    account = await relay.account("native")
    ark_body = {
        "model": "doubao-seedance-2-0-fast-260128",
        "content": [{"type": "text", "text": "x"}],
    }
    async with relay.client(account) as client:
        refused = await client.post(
            "/v1/tasks", json={"provider": "seeded", "input": ark_body, "input_format": "native"}
        )
    assert refused.status_code == 400, refused.text
    assert "provider-neutral" in refused.json()["error"]["message"]
    assert await creates_at(relay, "seedance2ink") == 0
