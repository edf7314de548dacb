"""Poll results saved together: one write transaction for all the polls that finished
while the previous one was being written (group commit).

The first save after a quiet spell is written at once (on the next turn of the event loop,
so the saves of polls that finished in the same turn join it); while a batch is being
written, the saves that arrive wait for the next one. Under load the database thread then
commits once for many polls instead of once a poll, and when it is quiet nothing waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from relay.models import Task
from relay.transitions import Change

MAX_BATCH = 256
"""Saves written in one transaction at most: a transaction holds the writer that long."""


class SavesTasks(Protocol):
    async def save_task(self, change: Change, expected_version: int) -> bool: ...

    async def get_task(self, account_id: str, task_id: str) -> Task | None: ...

    async def save_tasks(self, saves: Sequence[tuple[Change, int]]) -> list[bool]: ...


class GroupSaver:
    def __init__(self, store: SavesTasks, max_batch: int = MAX_BATCH) -> None:
        self._store = store
        self._max = max_batch
        self._waiting: list[tuple[Change, int, asyncio.Future[bool]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def save(self, change: Change, expected_version: int) -> bool:
        """``save_task``, in the next batch: True when written, False when the stored
        task was no longer at ``expected_version``."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((change, expected_version, done))
        if self._writing is None:
            self._writing = asyncio.ensure_future(self._write())
        return await done

    async def settle(self) -> None:
        """Wait until nothing is being written."""
        while self._writing is not None:
            await asyncio.wait([self._writing])

    async def _write(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max], self._waiting[self._max :]
                try:
                    await self._write_batch(batch)
                except BaseException:
                    # Cancelled (the loop is closing): no poll may wait for ever.
                    for _, _, done in batch:
                        done.cancel()
                    raise
        finally:
            self._writing = None

    async def _write_batch(self, batch: list[tuple[Change, int, asyncio.Future[bool]]]) -> None:
        failed = False
        if len(batch) > 1:
            try:
                saved = await self._store.save_tasks([(c, v) for c, v, _ in batch])
            except Exception:
                # One bad change (or the database going away) must fail only its own poll:
                # the saves are written again one by one, each with its own outcome.
                failed = True
            else:
                for (_, _, done), ok in zip(batch, saved, strict=True):
                    _resolve(done, ok)
                return

        async def alone(change: Change, version: int, done: asyncio.Future[bool]) -> None:
            try:
                ok = await self._store.save_task(change, version)
                if not ok and failed:
                    ok = await self._written(change, version)
            except Exception as exc:
                if not done.done():
                    done.set_exception(exc)
            else:
                _resolve(done, ok)

        # Side by side: an outage fails them all within one wait for a connection, not one
        # wait each, one after the other.
        await asyncio.gather(*(alone(c, v, d) for c, v, d in batch))

    async def _written(self, change: Change, version: int) -> bool:
        """Whether a batch that failed wrote ``change`` all the same: a connection lost
        while the commit went through tells the writer nothing. Then the task is at the next
        version with this change's time and poll count; a poll told "stale" instead would
        apply its answer again and count itself twice."""
        t = change.task
        stored = await self._store.get_task(t.account_id, t.id)
        return (
            stored is not None
            and stored.version == version + 1
            and stored.updated_at == t.updated_at
            and stored.poll_count == t.poll_count
        )


def _resolve(done: asyncio.Future[bool], ok: bool) -> None:
    if not done.done():  # (the poll waiting on it may have been cancelled)
        done.set_result(ok)
