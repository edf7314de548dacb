"""The tracker claims no more polls than a provider can begin soon (``relay.polling.claims``),
and still polls every due task once; tasks of a provider no longer configured are failed."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx

from relay.ids import new_id
from relay.models import Task, TaskStatus
from relay.store.interface import Store
from relay.store.values import TaskQuery
from relay.tasks.dispatch import PROVIDERS_CHECK
from relay.tasks.registration import ProviderPlan
from relay.tasks.tracker import Tracker
from relay.transitions import Change, registered
from tests.tasks.tracker_env import POLL, T0, Env


class Counting:
    """The store, counting the polls claimed and not yet saved (held in memory)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.held = 0
        self.most_held = 0
        self.claims: list[Mapping[str, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def claim_due_polls(
        self, now: datetime, limits: Mapping[str, int], lease_seconds: float, owner: str
    ) -> list[Task]:
        self.claims.append(dict(limits))
        tasks = await self._store.claim_due_polls(now, limits, lease_seconds, owner)
        self.held += len(tasks)
        self.most_held = max(self.most_held, self.held)
        return tasks

    async def save_task(self, change: Change, expected_version: int) -> bool:
        saved = await self._store.save_task(change, expected_version)
        self.held -= 1
        return saved

    async def save_tasks(self, saves: Sequence[tuple[Change, int]]) -> list[bool]:
        saved = await self._store.save_tasks(saves)
        self.held -= len(saves)
        return saved


async def test_claims_stop_at_what_the_provider_can_begin_and_every_task_is_polled_once(
    env: Env,
) -> None:
    tasks = [await env.sandbox_task() for _ in range(30)]
    for ptid in tasks:
        await env.store.create_task(*_tracked(env, ptid))
    counting = Counting(env.store)
    tracker = Tracker(
        owner="relay_test",
        store=counting,
        providers={
            "sandbox": ProviderPlan(client=env.client, poll=POLL, max_age=3600, polls_ahead=6)
        },
        clock=env.clock,
        rng=random.Random(2),
        on_events=env.on_events,
    )
    env.trackers.append(tracker)
    env.recorder.requests.clear()

    await tracker.poll_due()
    await tracker.drain()

    assert counting.most_held <= 6
    assert len(counting.claims) >= 5  # refilled as polls finished, never more than 6 at once
    polled = Counter(path.rsplit("/", 1)[1] for _, path in env.recorder.requests)
    assert polled == Counter(tasks)  # each due task polled exactly once
    for ptid in tasks:
        page = await env.store.list_tasks(env.account.id, TaskQuery(reference=ptid))
        assert page.items[0].poll_count == 1


async def test_tasks_of_a_provider_no_longer_configured_are_claimed_and_failed(env: Env) -> None:
    task = await env.register(provider_task_id=await env.sandbox_task())
    stored = await env.stored(task)
    retired = Change(replace(stored, provider="retired", next_poll_at=env.clock.now()), ())
    assert await env.store.save_task(retired, stored.version)

    # The tracker looked for providers at its first pass; it looks again each minute.
    await env.step(PROVIDERS_CHECK)

    gone = await env.stored(task)
    assert gone.status is TaskStatus.FAILED
    assert gone.error is not None
    assert "no longer configured" in gone.error.message


class Hanging(httpx.AsyncBaseTransport):
    """A provider that takes every request and never answers."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_shut_down_cancels_polls_past_the_grace_and_hands_their_claims_back(
    env: Env,
) -> None:
    ptid = await env.sandbox_task()
    await env.store.create_task(*_tracked(env, ptid))
    hanging = Hanging()
    env.recorder.inner = hanging
    await env.tracker.poll_due()
    await asyncio.wait_for(hanging.entered.wait(), 5)

    loop = asyncio.get_running_loop()
    started = loop.time()
    await env.tracker.shut_down(grace=0.2)

    assert loop.time() - started < 2
    # Due again at once, for anyone: not at the end of the lease the claim took.
    [again] = await env.store.claim_due_polls(env.clock.now(), {"sandbox": 5}, 30, "other")
    assert again.provider_task_id == ptid


def _tracked(env: Env, ptid: str) -> tuple[Change, None]:
    """A task tracked by its provider task id, its first poll due now."""
    task = Task(
        id=new_id("task"),
        account_id=env.account.id,
        provider="sandbox",
        provider_task_id=ptid,
        status=TaskStatus.QUEUED,
        created_at=T0,
        updated_at=T0,
        reference=ptid,
        next_poll_at=T0,
    )
    return registered(task, T0, lambda: new_id("evt")), None
