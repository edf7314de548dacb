"""Budgets end to end: the operator sets an account's daily budget with the CLI; a submission
that would pass it is refused with 402 ``budget_exceeded`` before anything reaches a provider,
and a route moves on to a provider whose price still fits."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from relay import cli
from tests.api.conftest import InProcessFactory, start_relay
from tests.e2e.harness import Account, InProcessRelay, eventually
from tests.routes.test_failover import NEUTRAL, PROVIDERS, creates_at

__all__ = ["start_relay"]

PRICES = {
    "sandbox": {"models": {"*": {"per_task": "0.10"}}},
    "cubicspaces": {"models": {"*": {"per_task": "0.30"}}},
}


async def budget(relay: InProcessRelay, *args: str) -> str:
    def run() -> tuple[int, str]:
        result = CliRunner().invoke(
            cli.main, ["accounts", "budget", *args, "--config", str(relay.config_path)]
        )
        return result.exit_code, result.output

    code, output = await asyncio.to_thread(run)
    assert code == 0, output
    return output


async def succeeded(relay: InProcessRelay, account: Account, body: dict[str, Any]) -> None:
    async with relay.client(account) as client:
        created = await client.post("/v1/tasks", json=body)
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]

        async def done() -> bool:
            task = (await client.get(f"/v1/tasks/{task_id}")).json()
            return bool(task["status"] == "succeeded" and task["cost"])

        await eventually(done, within=15, what="the task to succeed with its cost")


async def test_a_submission_past_the_budget_is_refused_before_any_provider_is_asked(
    start_relay: InProcessFactory, tmp_path: Path
) -> None:
    relay = await start_relay(
        providers=PROVIDERS,
        prices=PRICES,
        routes={"any": {"providers": ["cubicspaces", "sandbox"]}},
        sandbox={"queued_seconds": 0.2, "running_seconds": 0.3},
    )
    account = await relay.account("thrifty")
    assert "no budget" in await budget(relay, account.id)
    said = await budget(relay, account.id, "--daily", "0.55")
    assert "0.55 USD per day; spent 0" in said

    await succeeded(relay, account, {"provider": "cubicspaces", "input": NEUTRAL})  # 0.30
    asked = await creates_at(relay, "cubicspaces")
    async with relay.client(account) as client:
        refused = await client.post("/v1/tasks", json={"provider": "cubicspaces", "input": NEUTRAL})
        assert refused.status_code == 402, refused.text
        error = refused.json()["error"]
        assert error["code"] == "budget_exceeded"
        assert "daily budget of 0.55 USD has 0.2500 left" in error["message"]
        assert "likely costs 0.30" in error["message"]
        assert await creates_at(relay, "cubicspaces") == asked  # nothing was sent
        listed = (await client.get("/v1/submissions")).json()["data"]
        assert len(listed) == 1  # no intent was written either

        # Through the route, the cheaper provider still fits: 0.30 + 0.10 <= 0.55.
        routed = await client.post("/v1/tasks", json={"provider": "any", "input": NEUTRAL})
        assert routed.status_code == 201, routed.text
        steps = [(s["provider"], s["outcome"]) for s in routed.json()["submissions"]]
        assert steps == [("cubicspaces", "skipped"), ("sandbox", "accepted")]
    assert "spent 0.3" in await budget(relay, account.id)
    assert "no budget" in await budget(relay, account.id, "--clear")
    async with relay.client(account) as client:
        again = await client.post("/v1/tasks", json={"provider": "cubicspaces", "input": NEUTRAL})
    assert again.status_code == 201, again.text


async def test_the_budget_command_refuses_what_it_cannot_mean(
    start_relay: InProcessFactory,
) -> None:
    relay = await start_relay(listen=False)

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(
            cli.main, ["accounts", "budget", *args, "--config", str(relay.config_path)]
        )
        return result.exit_code, result.output

    account = await relay.account("someone")
    for args, why in (
        (("acct_nope",), "no account"),
        ((account.id, "--daily", "-1"), "not an amount"),
        ((account.id, "--daily", "1", "--monthly", "2"), "one of"),
        ((account.id, "--monthly", "5", "--currency", "usd"), "ISO 4217"),
    ):
        code, output = await asyncio.to_thread(run, *args)
        assert code != 0, (args, output)
        assert why in output, (args, output)


async def test_a_cheapest_route_asks_the_cheaper_provider_first(
    start_relay: InProcessFactory,
) -> None:
    relay = await start_relay(
        providers=PROVIDERS,
        prices=PRICES,
        routes={"thrifty": {"providers": ["cubicspaces", "sandbox"], "strategy": "cheapest"}},
        sandbox={"queued_seconds": 0.2, "running_seconds": 0.3},
    )
    account = await relay.account("bargain")
    async with relay.client(account) as client:
        created = await client.post("/v1/tasks", json={"provider": "thrifty", "input": NEUTRAL})
    assert created.status_code == 201, created.text
    assert [(s["provider"], s["outcome"]) for s in created.json()["submissions"]] == [
        ("sandbox", "accepted")
    ]
    assert await creates_at(relay, "cubicspaces") == 0


async def test_a_refusal_is_not_the_keys_answer_and_other_currencies_are_not_guessed(
    start_relay: InProcessFactory,
) -> None:
    relay = await start_relay(
        providers=PROVIDERS,
        prices={**PRICES, "cubicspaces": {"currency": "EUR", "models": {"*": {"per_task": "1"}}}},
        sandbox={"queued_seconds": 0.2, "running_seconds": 0.3},
    )
    account = await relay.account("careful")
    await budget(relay, account.id, "--daily", "0.05")
    key = {"Idempotency-Key": "k-budget"}
    body = {"provider": "sandbox", "input": NEUTRAL}
    async with relay.client(account, headers=key) as client:
        refused = await client.post("/v1/tasks", json=body)  # 0.10 > 0.05
        assert refused.status_code == 402, refused.text
        await budget(relay, account.id, "--daily", "5")
        again = await client.post("/v1/tasks", json=body)  # the key kept no 402
        assert again.status_code == 201, again.text
    async with relay.client(account) as client:
        euros = await client.post("/v1/tasks", json={"provider": "cubicspaces", "input": NEUTRAL})
    assert euros.status_code == 402, euros.text
    assert "priced in EUR" in euros.json()["error"]["message"]
    assert await creates_at(relay, "cubicspaces") == 0


async def test_unfinished_tasks_count_against_the_budget_until_they_fail(
    start_relay: InProcessFactory,
) -> None:
    """A burst cannot pass the budget: each unfinished task counts at its estimate, until it
    fails (then it costs nothing) or succeeds (then at its real cost)."""
    relay = await start_relay(
        providers=PROVIDERS,
        prices=PRICES,
        sandbox={"queued_seconds": 0.2, "running_seconds": 2.0},
    )
    account = await relay.account("bursty")
    await budget(relay, account.id, "--daily", "0.55")
    failing = {"model": "seedance-2.0-fast", "prompt": "a fox [fail]"}
    async with relay.client(account) as client:
        first = await client.post("/v1/tasks", json={"provider": "cubicspaces", "input": failing})
        assert first.status_code == 201, first.text
        second = await client.post("/v1/tasks", json={"provider": "cubicspaces", "input": NEUTRAL})
        assert second.status_code == 402, second.text
        assert "once its 1 unfinished tasks are paid for" in second.json()["error"]["message"]
        cheaper = await client.post("/v1/tasks", json={"provider": "sandbox", "input": NEUTRAL})
        assert cheaper.status_code == 201, cheaper.text  # 0.30 + 0.10 fits in 0.55
        task_id = first.json()["id"]

        async def failed() -> bool:
            return bool((await client.get(f"/v1/tasks/{task_id}")).json()["status"] == "failed")

        await eventually(failed, within=15, what="the first task to fail")
        # It costs nothing now: 0.10 (still counted, or spent) + 0.30 fits.
        again = await client.post("/v1/tasks", json={"provider": "cubicspaces", "input": NEUTRAL})
        assert again.status_code == 201, again.text
