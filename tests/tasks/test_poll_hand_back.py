"""At shutdown every claimed poll is made or handed back, also one claimed by a tick the
scheduler cancelled mid-claim."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from relay.ids import new_id
from relay.jobs import interruptible
from relay.models import Task, TaskStatus
from relay.store.interface import Store
from relay.tasks.registration import ProviderPlan
from relay.tasks.tracker import Tracker
from relay.transitions import registered
from tests.tasks.tracker_env import POLL, T0, Env


class WriteGoesOn:
    """The store, whose claim write goes on once begun, whoever stops waiting for it: as on
    SQLite (the writer thread runs a started job to its end; run_in_executor's future can
    only be cancelled before the thread takes it) and on PostgreSQL (a statement the server
    ran commits, whether or not its answer is read)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.begun = asyncio.Event()
        self.write: asyncio.Future[list[Task]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def claim_due_polls(
        self, now: datetime, limits: Mapping[str, int], lease_seconds: float, owner: str
    ) -> list[Task]:
        self.write = asyncio.ensure_future(
            self._store.claim_due_polls(now, limits, lease_seconds, owner)
        )
        self.begun.set()
        return await asyncio.shield(self.write)


async def test_a_tick_pass_cancelled_by_the_scheduler_mid_claim_has_its_claims_handed_back(
    env: Env,
) -> None:
    ptid = await env.sandbox_task()
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
    await env.store.create_task(registered(task, T0, lambda: new_id("evt")), None)
    store = WriteGoesOn(env.store)
    tracker = Tracker(
        owner="relay_test",
        store=store,
        providers={"sandbox": ProviderPlan(client=env.client, poll=POLL, max_age=3600)},
        clock=env.clock,
        rng=random.Random(2),
        on_events=env.on_events,
        lease_seconds=120,
    )
    env.trackers.append(tracker)

    # What relay.jobs schedules: the poll-due job (tracker.poll_due, i.e. pump.run) runs as a
    # task of APScheduler's own, and the lifespan's scheduler.shutdown(wait=False) cancels
    # the jobs still running (relay.jobs' `interruptible` swallows that).
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(interruptible(tracker.poll_due), "interval", seconds=0.01, max_instances=1)
    scheduler.start()
    await asyncio.wait_for(store.begun.wait(), 5)
    scheduler.shutdown(wait=False)  # what relay.app's lifespan does first at shutdown
    await asyncio.sleep(0.05)
    assert store.write is not None
    [claimed] = await store.write  # the claim was written all the same
    assert claimed.id == task.id

    await tracker.shut_down(grace=0.2)

    # shut_down promises: a claim is either polled here, or handed back (due again at once,
    # for anyone), never left to wait out its 120 s lease.
    stored = await env.store.get_task(env.account.id, task.id)
    assert stored is not None
    if stored.poll_count == 0:
        again = await env.store.claim_due_polls(env.clock.now(), {"sandbox": 5}, 30, "other")
        assert [t.id for t in again] == [task.id], (
            f"neither polled nor handed back: next poll at {stored.next_poll_at}"
        )
