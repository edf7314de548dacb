"""Poll results saved together (``relay.tasks.saving``), on a real SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest_asyncio

from relay.errors import StoreError
from relay.models import Account, Task, TaskStatus
from relay.store import open_store
from relay.store.interface import Store
from relay.tasks.saving import GroupSaver
from relay.transitions import Change
from tests.store.factories import NOW, at, register


class Watched:
    """The store, recording each write (how many saves it held) and failing on demand."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.writes: list[int] = []
        self.refuse: set[str] = set()
        """Task ids whose save raises, as a write the database refuses."""
        self.lose_answer = False
        """A batch commits, and then its answer is lost (the connection drops at COMMIT)."""

    async def get_task(self, account_id: str, task_id: str) -> Task | None:
        return await self.store.get_task(account_id, task_id)

    async def save_task(self, change: Change, expected_version: int) -> bool:
        self.writes.append(1)
        if change.task.id in self.refuse:
            raise StoreError("refused")
        return await self.store.save_task(change, expected_version)

    async def save_tasks(self, saves: Sequence[tuple[Change, int]]) -> list[bool]:
        self.writes.append(len(saves))
        if any(change.task.id in self.refuse for change, _ in saves):
            raise StoreError("refused")
        saved = await self.store.save_tasks(saves)
        if self.lose_answer:
            raise StoreError("the connection was lost")
        return saved


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = open_store(f"sqlite:///{tmp_path}/r.db")
    await s.migrate()
    await s.create_account(Account(id="acc_a", name="a", created_at=NOW), "h", "whsec_x")
    try:
        yield s
    finally:
        await s.close()


def polled(task: Task, status: TaskStatus = TaskStatus.RUNNING) -> Change:
    return Change(replace(task, status=status, updated_at=at(seconds=1)), ())


async def test_saves_that_arrive_together_are_one_write_and_each_is_fenced(store: Store) -> None:
    account = Account(id="acc_a", name="a", created_at=NOW)
    tasks = [(await register(store, account)).task for _ in range(5)]
    watched = Watched(store)
    saver = GroupSaver(watched)

    results = await asyncio.gather(
        *(saver.save(polled(t), t.version) for t in tasks[:4]),
        saver.save(polled(tasks[4]), tasks[4].version + 1),  # a stale version
    )

    assert results == [True, True, True, True, False]
    assert watched.writes == [5]
    for t in tasks[:4]:
        stored = await store.get_task(account.id, t.id)
        assert stored is not None
        assert (stored.status, stored.version) == (TaskStatus.RUNNING, t.version + 1)


async def test_a_save_alone_is_written_at_once_and_later_ones_form_the_next_batch(
    store: Store,
) -> None:
    account = Account(id="acc_a", name="a", created_at=NOW)
    tasks = [(await register(store, account)).task for _ in range(4)]
    watched = Watched(store)
    saver = GroupSaver(watched)

    first = asyncio.ensure_future(saver.save(polled(tasks[0]), 0))
    await asyncio.sleep(0)  # the first batch is being written
    rest = [asyncio.ensure_future(saver.save(polled(t), 0)) for t in tasks[1:]]
    assert await asyncio.gather(first, *rest) == [True] * 4
    assert watched.writes == [1, 3]


async def test_one_refused_save_fails_only_its_own_poll(store: Store) -> None:
    account = Account(id="acc_a", name="a", created_at=NOW)
    tasks = [(await register(store, account)).task for _ in range(3)]
    watched = Watched(store)
    watched.refuse = {tasks[1].id}
    saver = GroupSaver(watched)

    results = await asyncio.gather(
        *(saver.save(polled(t), 0) for t in tasks), return_exceptions=True
    )

    assert results[0] is True
    assert isinstance(results[1], StoreError)
    assert results[2] is True
    assert watched.writes == [3, 1, 1, 1]  # the batch, then each save alone


async def test_a_batch_that_committed_but_lost_its_answer_counts_as_saved(store: Store) -> None:
    account = Account(id="acc_a", name="a", created_at=NOW)
    tasks = [(await register(store, account)).task for _ in range(3)]
    watched = Watched(store)
    watched.lose_answer = True
    saver = GroupSaver(watched)

    results = await asyncio.gather(
        saver.save(polled(tasks[0]), 0),
        saver.save(polled(tasks[1]), 0),
        saver.save(polled(tasks[2]), 5),  # stale: not written by the batch either
    )

    # Written by the batch: not "stale", or the poll would apply its answer a second time.
    assert list(results) == [True, True, False]
