"""Fresh video URLs for late sends: the real sandbox (which signs a finished task's URLs again
for each new 24 h window), a real SQLite store and a fake clock."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from relay.delivery.fresh_urls import OutputRefresher
from relay.models import DueDelivery, EventType, TaskStatus, iso
from relay.tasks.registration import ProviderPlan
from tests.tasks.tracker_env import POLL, POST, Env, at, create_body, get, sandbox_video_url

DAY = 86400


async def succeeded(env: Env) -> tuple[str, str, DueDelivery]:
    """A task that finished at T0+8 (its URL expires at T0+8+24h) and a delivery of its
    ``task.succeeded`` event as the delivery engine would claim it."""
    task = await env.register(input=create_body())
    await env.step(10)
    [*_, event] = await env.events(task)
    assert event.type is EventType.TASK_SUCCEEDED
    assert event.url_expires_at == at(8 + DAY)
    assert task.provider_task_id is not None
    due = DueDelivery(
        pk=1,
        id="dlv_1",
        event_id=event.id,
        destination_key="k",
        url="https://hooks.example.com/a",
        body=event.body,
        secrets=(),
        attempt_count=4,
        account_id=env.account.id,
        task_id=task.id,
        url_expires_at=event.url_expires_at,
    )
    return task.id, task.provider_task_id, due


def refresher(env: Env) -> OutputRefresher:
    plan = ProviderPlan(client=env.client, poll=POLL, max_age=3600)
    return OutputRefresher(store=env.store, providers={"sandbox": plan}, clock=env.clock)


def unchanged_but(original: str, sent: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parts of a refreshed body that must differ; everything else must be equal."""
    before, after = json.loads(original), json.loads(sent)
    notice = after.pop("relay_notice")
    changed = {k: after["data"].pop(k) for k in ("video_url", "video_url_expires_at")}
    for k in changed:
        before["data"].pop(k)
    assert after == before  # same id, type, sequence, timestamp and task fields
    return notice, changed


async def test_a_url_is_refreshed_only_once_it_is_about_to_expire(env: Env) -> None:
    _, _, due = await succeeded(env)
    outputs = refresher(env)
    assert not outputs.needs_refresh(due, at(8 + DAY - 61))
    assert outputs.needs_refresh(due, at(8 + DAY - 60))
    assert not outputs.needs_refresh(
        DueDelivery(
            pk=2,
            id="dlv_2",
            event_id="evt",
            destination_key="k",
            url="u",
            body="{}",
            secrets=(),
            attempt_count=0,
        ),
        at(10 * DAY),
    )


async def test_an_expired_url_is_fetched_again_from_the_provider(env: Env) -> None:
    task_id, ptid, due = await succeeded(env)
    outputs = refresher(env)
    env.clock.advance(DAY + 60)  # T0+DAY+70: the URL signed at T0+8 died at T0+DAY+8
    sent = await outputs.body_for(due)
    notice, changed = unchanged_but(due.body, sent)
    assert changed == {
        "video_url": sandbox_video_url(ptid, at(8 + DAY)),
        "video_url_expires_at": iso(at(8 + 2 * DAY)),
    }
    assert notice["code"] == "video_url_refreshed"
    assert iso(at(8 + DAY)) in notice["message"]
    assert env.recorder.requests == [POST, get(ptid), get(ptid)]  # a poll, then the refresh
    # The task keeps the fresh URL, without an event: its status did not change.
    stored = await env.store.get_task(env.account.id, task_id)
    assert stored is not None
    assert (stored.status, stored.video_url, stored.video_url_expires_at, stored.sequence) == (
        TaskStatus.SUCCEEDED,
        changed["video_url"],
        at(8 + 2 * DAY),
        2,
    )
    # Another late send of the event reuses it: the provider is not asked again.
    assert await outputs.body_for(due) == sent
    assert len(env.recorder.requests) == 3


async def test_deliveries_of_one_event_due_together_ask_the_provider_once(env: Env) -> None:
    _, ptid, due = await succeeded(env)
    outputs = refresher(env)
    env.clock.advance(DAY + 60)
    bodies = await asyncio.gather(*(outputs.body_for(due) for _ in range(5)))
    assert len(set(bodies)) == 1
    assert env.recorder.requests.count(get(ptid)) == 2  # the poll, then one refresh


async def test_a_task_past_the_providers_retention_is_sent_with_a_notice(env: Env) -> None:
    _, _, due = await succeeded(env)
    outputs = refresher(env)
    env.clock.advance(8 * DAY)
    requests = len(env.recorder.requests)
    sent = json.loads(await outputs.body_for(due))
    assert sent["data"] == json.loads(due.body)["data"]  # the old URL, said to be dead
    assert sent["relay_notice"]["code"] == "video_url_expired"
    assert "keeps tasks 7 days" in sent["relay_notice"]["message"]
    assert len(env.recorder.requests) == requests  # nothing to ask


async def test_a_provider_that_cannot_answer_leaves_the_url_with_a_notice(env: Env) -> None:
    task_id, _, due = await succeeded(env)
    outputs = refresher(env)
    env.clock.advance(2 * DAY)
    env.recorder.failing = 503
    sent = json.loads(await outputs.body_for(due))
    assert sent["relay_notice"]["code"] == "video_url_expired"
    assert "did not answer" in sent["relay_notice"]["message"]
    stored = await env.store.get_task(env.account.id, task_id)
    assert stored is not None
    assert stored.video_url_expires_at == at(8 + DAY)
    # Once it answers again, the next late send gets a fresh URL.
    env.recorder.failing = None
    env.clock.advance(timedelta(minutes=10).total_seconds())
    assert json.loads(await outputs.body_for(due))["relay_notice"]["code"] == "video_url_refreshed"
