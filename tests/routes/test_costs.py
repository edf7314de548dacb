"""Costs end to end: a relay with a price table, three sandbox tasks at two providers; each
succeeded task carries its cost, and ``GET /v1/usage`` totals equal the sum of those costs to
the cent, overall and per provider, route and day."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.api.conftest import InProcessFactory, start_relay
from tests.e2e.harness import Account, InProcessRelay, eventually
from tests.routes.test_failover import NEUTRAL, PROVIDERS

__all__ = ["start_relay"]

PRICES = {
    "sandbox": {"currency": "USD", "models": {"*": {"per_million_tokens": "1.40"}}},
    "cubicspaces": {"currency": "USD", "models": {"*": {"per_task": "0.3333"}}},
}


async def priced_relay(start_relay: InProcessFactory) -> InProcessRelay:
    """A relay with ``PRICES`` for its two sandbox providers and a route ``any`` over them."""
    return await start_relay(
        providers=PROVIDERS,
        prices=PRICES,
        routes={"any": {"providers": ["cubicspaces", "sandbox"]}},
        sandbox={"queued_seconds": 0.2, "running_seconds": 0.3},
    )


async def three_priced_tasks(relay: InProcessRelay, account: Account) -> list[dict[str, Any]]:
    """Two tasks at ``sandbox`` and one through ``any`` (it lands at cubicspaces), once all
    three succeeded, as the API shows them."""
    async with relay.client(account) as client:
        ids = []
        for provider in ("sandbox", "sandbox", "any"):
            created = await client.post("/v1/tasks", json={"provider": provider, "input": NEUTRAL})
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])

        async def finished() -> list[dict[str, Any]] | None:
            tasks = [(await client.get(f"/v1/tasks/{i}")).json() for i in ids]
            return tasks if all(t["status"] == "succeeded" for t in tasks) else None

        found: list[dict[str, Any]] = await eventually(finished, within=20, what="three tasks")
        return found


async def test_three_tasks_cost_what_usage_totals_say(start_relay: InProcessFactory) -> None:
    relay = await priced_relay(start_relay)
    account = await relay.account("payer")
    other = await relay.account("someone-else")
    tasks = await three_priced_tasks(relay, account)
    async with relay.client(account) as client:
        costs = [t["cost"] for t in tasks]
        assert all(c is not None and c["currency"] == "USD" for c in costs), costs
        assert costs[2] == {
            "amount": "0.3333",
            "currency": "USD",
            "basis": "1 task \u00d7 0.3333 USD",
        }
        tokens = tasks[0]["usage"]["completion_tokens"]
        expected = (Decimal("1.40") * tokens / 1_000_000).quantize(Decimal("0.0001"))
        assert Decimal(costs[0]["amount"]) == expected
        assert "tokens" in costs[0]["basis"]
        spent = sum(Decimal(c["amount"]) for c in costs)

        usage = (await client.get("/v1/usage")).json()
        assert usage["totals"] == [{"currency": "USD", "amount": str(spent), "tasks": 3}]
        by_provider = (await client.get("/v1/usage", params={"group_by": "provider"})).json()
        assert {g["key"]: Decimal(g["amount"]) for g in by_provider["groups"]} == {
            "sandbox": Decimal(costs[0]["amount"]) + Decimal(costs[1]["amount"]),
            "cubicspaces": Decimal(costs[2]["amount"]),
        }
        by_route = (await client.get("/v1/usage", params={"group_by": "route"})).json()
        assert {g["key"]: g["tasks"] for g in by_route["groups"]} == {None: 2, "any": 1}
        by_day = (await client.get("/v1/usage", params={"group_by": "day"})).json()
        assert sum(Decimal(g["amount"]) for g in by_day["groups"]) == spent
        backwards = {"since": usage["until"], "until": usage["since"]}
        since_later = await client.get("/v1/usage", params=backwards)
        assert since_later.status_code == 400
        assert (await client.get("/v1/usage", params={"group_by": "week"})).status_code == 400
        for extreme in ({"until": "0001-01-01T00:00:00Z"}, {"since": "9999-12-31T23:59:59-01:00"}):
            assert (await client.get("/v1/usage", params=extreme)).status_code == 400
    async with relay.client(other) as stranger:
        assert (await stranger.get("/v1/usage")).json()["totals"] == []
