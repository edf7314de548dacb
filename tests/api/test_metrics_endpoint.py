"""``/metrics`` of a running relay (issue 6): what it counts matches what the API and the
sandbox provider saw, and the state gauges follow the database and the engine. The unit
tests of the counters themselves are in ``tests/test_metrics.py``."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import InProcessFactory
from tests.e2e.conftest import ReceiverFactory
from tests.e2e.harness import ARK_TASKS, Reply, ark_input, eventually, provider_requests

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(k)[label]: v for (n, k), v in samples.items() if n == name}


async def register(client: httpx.AsyncClient, **fields: Any) -> str:
    response = await client.post("/v1/tasks", json={"provider": "sandbox", **fields})
    assert response.status_code == 201, response.text
    task_id: str = response.json()["id"]
    return task_id


async def deliveries(client: httpx.AsyncClient, task_ids: list[str]) -> list[dict[str, Any]]:
    """Every delivery of these tasks' events, with its attempts, as the API shows them."""
    views: list[dict[str, Any]] = []
    for task_id in task_ids:
        events = (await client.get("/v1/events", params={"task_id": task_id})).json()["data"]
        for event in events:
            views += (await client.get(f"/v1/events/{event['id']}/deliveries")).json()["data"]
    return views


async def attempt_outcomes(client: httpx.AsyncClient, task_ids: list[str]) -> Counter[str]:
    """Every recorded attempt's outcome, as the API shows them."""
    return Counter(
        a["outcome"] for view in await deliveries(client, task_ids) for a in view["attempts"]
    )


async def test_metrics_count_deliveries_polls_tasks_and_the_backlog(
    start_relay: InProcessFactory,
    start_receiver: ReceiverFactory,
) -> None:
    # One attempt at a time: while the slow first reply hangs, the next events wait, due.
    relay = await start_relay(delivery={"max_in_flight": 1})
    slow = await start_receiver([Reply(200, delay=2.5)], default=200)
    failing = await start_receiver(default=500)
    account = await relay.account("metrics")
    async with relay.client(account) as client, relay.client() as anonymous:
        before = await scrape(anonymous)  # no API key needed, nothing counted yet
        assert by_label(before, "relay_delivery_attempts_total", "outcome") == {
            "delivered": 0,
            "retry": 0,
            "failed": 0,
            "gone": 0,
        }
        assert value(before, "relay_delivery_latency_seconds_count") == 0
        assert value(before, "relay_delivery_backlog") == 0
        assert value(before, "relay_provider_backoff_seconds", provider="sandbox") == 0

        ok_task = await register(client, input=ark_input(), callback_url=slow.url)
        bad_task = await register(client, input=ark_input(), callback_url=failing.url)
        # A task the provider does not know, and whose id dates it past the provider's
        # retention: expired at the first "not found".
        lost_task = await register(client, provider_task_id="cgt-20260101000000-nosuch")

        async def backlog() -> Samples | None:
            s = await scrape(anonymous)
            waiting = (
                value(s, "relay_delivery_backlog") >= 1
                and value(s, "relay_delivery_attempts_in_flight") == 1
                and value(s, "relay_delivery_backlog_age_seconds") > 0
            )
            return s if waiting else None

        await eventually(
            backlog, within=10, what="a backlog behind the slow receiver", interval=0.2
        )

        async def settled() -> list[dict[str, Any]] | None:
            tasks = [
                (await client.get(f"/v1/tasks/{t}")).json() for t in (ok_task, bad_task, lost_task)
            ]
            if not all(t["status"] in ("succeeded", "expired") for t in tasks):
                return None
            views = await deliveries(client, [ok_task, bad_task, lost_task])
            return tasks if all(v["status"] != "pending" for v in views) else None

        tasks = await eventually(
            settled, within=30, what="every task and delivery settled", interval=0.3
        )
        assert [t["status"] for t in tasks] == ["succeeded", "succeeded", "expired"]

        async def agree() -> tuple[Samples, Counter[str]] | None:
            s = await scrape(anonymous)
            outcomes = await attempt_outcomes(client, [ok_task, bad_task, lost_task])
            counted = {
                k: int(v)
                for k, v in by_label(s, "relay_delivery_attempts_total", "outcome").items()
            }
            # The database gauges may lag by the snapshot's cache: until they are fresh too.
            fresh = (
                value(s, "relay_delivery_backlog") == 0
                and value(s, "relay_tasks", status="running") == 0
            )
            return (
                (s, outcomes)
                if fresh
                and counted == {"delivered": 0, "retry": 0, "failed": 0, "gone": 0, **outcomes}
                else None
            )

        samples, outcomes = await eventually(
            agree, within=10, interval=0.3, what="counters matching the API's attempts"
        )
        assert outcomes["delivered"] >= 1
        assert outcomes["failed"] >= 1
        assert outcomes["retry"] == 3 * outcomes["failed"]
        total = sum(outcomes.values())
        assert value(samples, "relay_delivery_latency_seconds_count") == total
        assert value(samples, "relay_delivery_latency_seconds_bucket", le="+Inf") == total
        # The slow reply took 2.5 s: at least one attempt is above the 1 s bucket.
        assert value(samples, "relay_delivery_latency_seconds_bucket", le="1.0") <= total - 1
        assert value(samples, "relay_delivery_latency_seconds_sum") >= 2.5

        tasks_by_status = by_label(samples, "relay_tasks", "status")
        assert tasks_by_status == {
            "queued": 0,
            "running": 0,
            "succeeded": 2,
            "failed": 0,
            "expired": 1,
            "cancelled": 0,
        }
        assert value(samples, "relay_delivery_backlog") == 0
        assert value(samples, "relay_delivery_backlog_age_seconds") == 0
        assert value(samples, "relay_delivery_attempts_in_flight") == 0

        # Every query the sandbox served was counted once, by what it answered.
        polls = by_label(samples, "relay_provider_polls_total", "outcome")
        queries = [
            r
            for r in await provider_requests(relay.url)
            if r["method"] == "GET" and r["path"].startswith(ARK_TASKS + "/")
        ]
        assert polls["not_found"] == 1
        assert polls["answered"] >= 4
        assert sum(polls.values()) == len(queries)
        assert {
            dict(k).get("provider") for (n, k) in samples if n == "relay_provider_polls_total"
        } == {"sandbox"}


async def test_provider_back_off_shows_in_metrics(start_relay: InProcessFactory) -> None:
    relay = await start_relay()
    account = await relay.account("backoff")
    async with relay.client(account) as client, relay.client() as anonymous:
        response = await anonymous.put(
            "/sandbox/_control/faults", json={"plan": ["503"], "repeat": True}
        )
        assert response.status_code == 200, response.text
        await register(client, provider_task_id="cgt-20260101000000-abcd")

        async def backed_off() -> Samples | None:
            s = await scrape(anonymous)
            return s if value(s, "relay_provider_backoff_seconds", provider="sandbox") > 0 else None

        samples = await eventually(
            backed_off, within=10, what="the provider backed off", interval=0.1
        )
        assert value(samples, "relay_provider_consecutive_faults", provider="sandbox") >= 1
        polls = by_label(samples, "relay_provider_polls_total", "outcome")
        assert polls.get("unavailable", 0) >= 1
        assert "answered" not in polls
        assert value(samples, "relay_tasks", status="queued") == 1
