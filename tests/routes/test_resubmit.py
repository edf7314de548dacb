"""Resubmission end to end: a real relay (in-process, served on loopback for its sandbox)
whose route submits a task again on its next provider when the first one fails it for a
reason of its own. The sandbox fails a task only at one flavour with ``[fail@FLAVOUR]``:
seedance2.ink words that failure as ``provider_error``, Ark as a moderation refusal."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import InProcessFactory, start_relay
from tests.e2e.harness import Account, InProcessRelay, eventually
from tests.routes.test_failover import PROVIDERS, break_flavor, creates_at

__all__ = ["start_relay"]

ROUTE = {"providers": ["seedance2ink", "sandbox"], "resubmit_on": ["provider_error"]}
TWO_ROUNDS = {
    "providers": ["seedance2ink", "seedance2ink_b", "sandbox"],
    "resubmit_on": ["provider_error"],
}


@pytest.fixture
async def relay(start_relay: InProcessFactory) -> InProcessRelay:
    return await start_relay(
        # A short timeout at Ark, so a lost answer to the resubmission is quickly known lost.
        providers={
            **PROVIDERS,
            "sandbox": {**PROVIDERS["sandbox"], "timeout": 2},
            # A second reseller of the seedance2.ink kind: it fails what the first fails.
            "seedance2ink_b": PROVIDERS["seedance2ink"],
        },
        routes={
            "resubmitting": ROUTE,
            "once": {"providers": ["seedance2ink", "sandbox"]},
            "one_round": {**TWO_ROUNDS, "max_resubmits": 1},
            "two_rounds": {**TWO_ROUNDS, "max_resubmits": 2},
            "ark_first": {
                "providers": ["sandbox", "seedance2ink"],
                "resubmit_on": ["provider_error"],
            },
        },
        sandbox={"queued_seconds": 0.2, "running_seconds": 0.3},
    )


async def submit(relay: InProcessRelay, account: Account, route: str, prompt: str) -> str:
    body = {"provider": route, "input": {"model": "seedance-2.0-fast", "prompt": prompt}}
    async with relay.client(account) as client:
        created = await client.post("/v1/tasks", json=body)
    assert created.status_code == 201, created.text
    task_id: str = created.json()["id"]
    return task_id


async def finished(relay: InProcessRelay, account: Account, task_id: str) -> dict[str, Any]:
    async with relay.client(account) as client:

        async def ended() -> dict[str, Any] | None:
            task: dict[str, Any] = (await client.get(f"/v1/tasks/{task_id}")).json()
            return task if task["status"] in ("succeeded", "failed", "expired") else None

        return await eventually(ended, within=20, what=f"task {task_id} to end")


async def event_types(relay: InProcessRelay, account: Account, task_id: str) -> list[str]:
    async with relay.client(account) as client:
        feed = (await client.get("/v1/events", params={"task_id": task_id, "limit": 100})).json()
    return [e["type"] for e in sorted(feed["data"], key=lambda e: e["sequence"])]


def outcomes(task: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["provider"], s["outcome"]) for s in task["submissions"]]


async def test_a_task_its_provider_fails_is_resubmitted_and_keeps_its_id(
    relay: InProcessRelay,
) -> None:
    account = await relay.account("resubmitter")
    task_id = await submit(relay, account, "resubmitting", "a fox [fail@seedance2ink]")
    task = await finished(relay, account, task_id)
    assert task["id"] == task_id
    assert (task["status"], task["provider"], task["route"]) == (
        "succeeded",
        "sandbox",
        "resubmitting",
    )
    assert task["error"] is None
    assert task["video_url"]
    assert outcomes(task) == [
        ("seedance2ink", "accepted"),
        ("seedance2ink", "failed"),
        ("sandbox", "accepted"),
    ]
    assert task["submissions"][1]["error"].startswith("provider_error")
    assert await creates_at(relay, "seedance2ink") == 1
    assert await creates_at(relay, "ark") == 1
    types = await event_types(relay, account, task_id)
    # Never terminal in between: one resubmission, then the success; never a failure.
    assert "task.failed" not in types
    assert types.index("task.resubmitted") < types.index("task.succeeded")
    assert types.count("task.resubmitted") == 1
    async with relay.client(account) as client:
        subs = (await client.get("/v1/submissions")).json()["data"]
    assert sorted((s["provider"], s["state"]) for s in subs) == [
        ("sandbox", "accepted"),
        ("seedance2ink", "accepted"),
    ]
    assert {s["task_id"] for s in subs} == {task_id}


async def test_without_resubmit_on_the_failure_is_final(relay: InProcessRelay) -> None:
    account = await relay.account("once")
    task = await finished(
        relay, account, await submit(relay, account, "once", "[fail@seedance2ink]")
    )
    assert (task["status"], task["error"]["code"]) == ("failed", "provider_error")
    assert outcomes(task) == [("seedance2ink", "accepted")]
    assert await creates_at(relay, "ark") == 0


async def test_a_failure_that_is_the_callers_is_never_resubmitted(relay: InProcessRelay) -> None:
    account = await relay.account("moderated")
    task_id = await submit(relay, account, "ark_first", "[fail@ark]")
    task = await finished(relay, account, task_id)
    assert (task["status"], task["error"]["code"]) == ("failed", "content_policy")
    assert outcomes(task) == [("sandbox", "accepted")]
    assert await creates_at(relay, "seedance2ink") == 0


async def test_max_resubmits_bounds_the_rounds(relay: InProcessRelay) -> None:
    account = await relay.account("rounds")
    prompt = "a fox [fail@seedance2ink]"  # fails at both seedance2.ink resellers
    once = await finished(relay, account, await submit(relay, account, "one_round", prompt))
    assert (once["status"], once["provider"]) == ("failed", "seedance2ink_b")
    assert once["error"]["code"] == "provider_error"
    assert outcomes(once) == [
        ("seedance2ink", "accepted"),
        ("seedance2ink", "failed"),
        ("seedance2ink_b", "accepted"),
    ]
    assert await creates_at(relay, "ark") == 0  # a second round was not allowed
    twice = await finished(relay, account, await submit(relay, account, "two_rounds", prompt))
    assert (twice["status"], twice["provider"]) == ("succeeded", "sandbox")
    assert [o for _, o in outcomes(twice)] == [
        "accepted",
        "failed",
        "accepted",
        "failed",
        "accepted",
    ]
    assert await creates_at(relay, "ark") == 1


async def test_a_resubmission_that_fails_again_with_the_callers_reason_ends(
    relay: InProcessRelay,
) -> None:
    # Fails at both: seedance2ink's provider_error is resubmitted, then Ark's moderation
    # failure is final (the caller's: never resubmitted).
    account = await relay.account("twice")
    task = await finished(relay, account, await submit(relay, account, "resubmitting", "[fail]"))
    assert (task["status"], task["provider"], task["error"]["code"]) == (
        "failed",
        "sandbox",
        "content_policy",
    )
    assert outcomes(task) == [
        ("seedance2ink", "accepted"),
        ("seedance2ink", "failed"),
        ("sandbox", "accepted"),
    ]


async def test_when_no_other_provider_takes_it_the_task_fails_as_it_failed_saying_why(
    relay: InProcessRelay,
) -> None:
    account = await relay.account("nowhere")
    await break_flavor(relay, ["429"], "ark", repeat=True)
    task = await finished(
        relay, account, await submit(relay, account, "resubmitting", "[fail@seedance2ink]")
    )
    assert (task["status"], task["provider"]) == ("failed", "seedance2ink")
    assert task["error"]["code"] == "provider_error"
    assert "not resubmitted" in task["error"]["message"]
    assert "sandbox: not_accepted" in task["error"]["message"]
    assert outcomes(task) == [
        ("seedance2ink", "accepted"),
        ("seedance2ink", "failed"),
        ("sandbox", "not_accepted"),
    ]
    assert "task.resubmitted" not in await event_types(relay, account, task["id"])


async def test_a_lost_answer_to_the_resubmission_waits_and_is_never_sent_twice(
    relay: InProcessRelay,
) -> None:
    account = await relay.account("patient")
    # Ark takes the resubmission and answers after the relay's timeout: uncertain.
    await break_flavor(relay, ["slow"], "ark", timeout_seconds=4)
    task_id = await submit(relay, account, "resubmitting", "[fail@seedance2ink]")
    async with relay.client(account) as client:

        async def waiting() -> dict[str, Any] | None:
            task: dict[str, Any] = (await client.get(f"/v1/tasks/{task_id}")).json()
            return task if task["submissions"][-1]["outcome"] == "uncertain" else None

        task = await eventually(waiting, within=30, what="an uncertain resubmission")
        assert task["status"] in ("queued", "running")  # open, not failed
        subs = (await client.get("/v1/submissions", params={"state": "uncertain"})).json()
        [uncertain] = subs["data"]
        assert (uncertain["provider"], uncertain["task_id"]) == ("sandbox", None)
        # Looks at the task meanwhile never ask Ark again.
        for _ in range(3):
            assert (await client.post(f"/v1/tasks/{task_id}/refresh")).status_code == 200

        # The sandbox logs the slow create once it has answered it (after 4 s).
        async def asked_once() -> bool:
            return await creates_at(relay, "ark") == 1

        await eventually(asked_once, within=10, what="Ark's create to be logged")
        # A person says nothing was made: no provider is left, so the task fails.
        resolved = await client.post(
            f"/v1/submissions/{uncertain['id']}/resolve", json={"abandon": True}
        )
        assert resolved.status_code == 200, resolved.text
        assert (await client.post(f"/v1/tasks/{task_id}/refresh")).status_code == 200
    task = await finished(relay, account, task_id)
    assert task["status"] == "failed"
    assert "not resubmitted" in task["error"]["message"]
    assert await creates_at(relay, "ark") == 1


def test_resubmit_on_refuses_the_callers_own_failures() -> None:
    from pydantic import ValidationError

    from relay.config.routes import RouteSettings

    with pytest.raises(ValidationError):
        RouteSettings.model_validate({"providers": ["a"], "resubmit_on": ["content_policy"]})
    with pytest.raises(ValidationError):
        RouteSettings.model_validate({"providers": ["a"], "resubmit_on": ["invalid_request"]})
    assert RouteSettings.model_validate(ROUTE).max_resubmits == 1


async def test_a_task_waiting_on_its_resubmission_is_cancelled_without_asking_anyone(
    relay: InProcessRelay,
) -> None:
    account = await relay.account("changed_mind")
    await break_flavor(relay, ["slow"], "ark", timeout_seconds=4)  # its answer gets lost
    task_id = await submit(relay, account, "resubmitting", "[fail@seedance2ink]")
    async with relay.client(account) as client:

        async def waiting() -> bool:
            task = (await client.get(f"/v1/tasks/{task_id}")).json()
            return bool(task["submissions"][-1]["outcome"] == "uncertain")

        await eventually(waiting, within=30, what="an uncertain resubmission")
        cancelled = await client.post(f"/v1/tasks/{task_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
    assert (await finished_or_cancelled(relay, account, task_id))["status"] == "cancelled"
    types = await event_types(relay, account, task_id)
    assert "task.cancelled" in types
    assert "task.failed" not in types


async def test_a_look_while_a_provider_is_asked_to_take_the_task_asks_nobody(
    relay: InProcessRelay,
) -> None:
    account = await relay.account("hasty")
    await break_flavor(relay, ["slow"], "ark", timeout_seconds=1)  # answers within 2 s
    task_id = await submit(relay, account, "resubmitting", "[fail@seedance2ink]")
    async with relay.client(account) as client:

        async def held() -> bool:
            task = (await client.get(f"/v1/tasks/{task_id}")).json()
            return bool(task["submissions"][-1]["outcome"] == "failed")

        await eventually(held, within=30, what="the failure, while Ark is asked")
        for _ in range(5):  # the look that holds the resubmission is asking Ark
            looked = await client.post(f"/v1/tasks/{task_id}/refresh")
            assert looked.status_code == 200, looked.text
            assert looked.json()["status"] in ("queued", "running")
    task = await finished(relay, account, task_id)
    assert (task["status"], task["provider"]) == ("succeeded", "sandbox")
    # The looks neither asked anyone nor wrote a step: the holder's ask went through.
    assert outcomes(task) == [
        ("seedance2ink", "accepted"),
        ("seedance2ink", "failed"),
        ("sandbox", "accepted"),
    ]
    assert await creates_at(relay, "ark") == 1


async def finished_or_cancelled(
    relay: InProcessRelay, account: Account, task_id: str
) -> dict[str, Any]:
    async with relay.client(account) as client:
        task: dict[str, Any] = (await client.get(f"/v1/tasks/{task_id}")).json()
        return task
