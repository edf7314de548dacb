"""A claim that renews the lease of a poll still under way here still says whether more is
due: the due tasks its limit left behind are claimed at once, not at the next tick."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest_asyncio

from relay.models import Account, Task
from relay.store import open_store
from relay.store.interface import Store
from relay.tasks.dispatch import PollDispatch
from relay.transitions import Change
from tests.clock import FakeClock
from tests.store.factories import NOW, at, make_account, register


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = open_store(f"sqlite:///{tmp_path}/r.db")
    await s.migrate()
    yield s
    await s.close()


async def test_due_tasks_left_by_a_lease_renewal_are_claimed_without_the_tick(
    store: Store,
) -> None:
    alice: Account = await make_account(store, "alice")
    hung = (await register(store, alice, provider="p", next_poll_at=at(seconds=-1))).task
    a = (await register(store, alice, provider="p", next_poll_at=at(seconds=30.2))).task
    b = (await register(store, alice, provider="p", next_poll_at=at(seconds=30.4))).task
    clock = FakeClock(NOW)
    polled: list[str] = []
    hang = asyncio.Event()

    async def poll(task: Task) -> None:
        polled.append(task.id)
        if task.id == hung.id:
            await hang.wait()  # a provider that hangs past the lease
            return
        done = replace(task, next_poll_at=at(hours=1), poll_count=task.poll_count + 1)
        await store.save_task(Change(done), task.version)

    d = PollDispatch(
        store=store,
        ahead={"p": 4},
        batch_size=2,
        lease_seconds=30,
        owner="me",
        clock=clock,
        poll=poll,
    )
    await d.pump.run()
    assert polled == [hung.id]

    clock.advance(31)  # the hung poll's lease ran out; a and b are due
    await d.pump.run()  # (the timer armed for a's due time, or the tick)
    for _ in range(50):
        await asyncio.sleep(0.01)  # a's poll finishes; any wake or timer would fire now
    try:
        # b is due and the provider has room (2 held of 4): nothing claims it until the tick.
        assert b.id in polled, (
            f"b is due and not claimed; timer armed: {d.pump.timer_armed}; polled: "
            f"{['hung' if i == hung.id else 'a' if i == a.id else 'b' for i in polled]}"
        )
    finally:
        hang.set()
        d.pump.stop()
        await d.drain()
