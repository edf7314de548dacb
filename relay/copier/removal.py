"""Deleting stored copies: when the account asks (``DELETE /v1/tasks/{id}/outputs``) and when
they pass ``outputs.retention_days`` (in batches, from the housekeeping job).

Objects go first, then the record: a crash between leaves a record that still says stored
over a missing object (its link answers 404, and the next deletion finishes the job), never
an object the relay forgot it holds. The task then points at the provider's link again and
records when and why (``output.deleted_at``, ``output.deleted_reason``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import timedelta

from relay.clock import Clock
from relay.copies.rules import removed
from relay.copies.values import CopyState, OutputCopy
from relay.errors import UnknownObject, UnknownTask
from relay.models import Task
from relay.outputs.interface import OutputStore
from relay.outputs.links import OutputLinks
from relay.store.interface import Store
from relay.tasks.verdicts import event_id

log = logging.getLogger("relay.outputs")

SAVE_TRIES = 5
ASKED = "deleted at the account's request"


class NoOutputs(UnknownObject):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} has no copied outputs")


@dataclass(frozen=True)
class KeptOutputs:
    """What the HTTP layer needs to serve and delete stored outputs."""

    store: OutputStore
    links: OutputLinks
    remover: Remover
    link_lifetime: int


class Remover:
    def __init__(
        self,
        *,
        store: Store,
        outputs: OutputStore,
        links: OutputLinks,
        clock: Clock,
        on_events: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._outputs = outputs
        self._links = links
        self._clock = clock
        self._on_events = on_events

    async def remove(self, account_id: str, task_id: str) -> Task:
        """Delete every stored file of the account's task (a deleted one stays deleted)."""
        task = await self._store.get_task(account_id, task_id)
        if task is None:
            raise UnknownTask(task_id)
        copies = await self._store.task_copies(task_id)
        if not copies:
            raise NoOutputs(task_id)
        return await self._remove(task, copies, {c.id for c in copies}, ASKED)

    async def expire(self, retention_days: float, limit: int = 100) -> int:
        """Delete up to ``limit`` copies stored more than ``retention_days`` ago; how many."""
        now = self._clock.now()
        due = await self._store.stored_copies_before(now - timedelta(days=retention_days), limit)
        by_task: dict[tuple[str, str], list[OutputCopy]] = {}
        for copy in due:
            by_task.setdefault((copy.account_id, copy.task_id), []).append(copy)
        reason = f"retention: outputs are kept {retention_days:g} days"
        for (account_id, task_id), copies in by_task.items():
            task = await self._store.get_task(account_id, task_id)
            if task is None:
                for copy in copies:
                    await self._delete_object(copy)
                continue
            await self._remove(
                task, await self._store.task_copies(task_id), {c.id for c in copies}, reason
            )
        return len(due)

    async def _remove(
        self, task: Task, copies: list[OutputCopy], which: Collection[str], reason: str
    ) -> Task:
        for copy in copies:
            if copy.id in which and copy.state is CopyState.STORED:
                await self._delete_object(copy)
        for _ in range(SAVE_TRIES):
            now = self._clock.now()
            if all(c.state is CopyState.DELETED for c in copies if c.id in which):
                return task
            change = removed(task, copies, which, now, reason, event_id, self._links.link)
            if await self._store.save_task(change, task.version):
                if change.events:
                    self._on_events()
                log.info("outputs of task %s deleted: %s", task.id, reason)
                return change.task
            again = await self._store.get_task(task.account_id, task.id)
            if again is None:
                break
            task = again
            copies = await self._store.task_copies(task.id)
            for copy in copies:  # stored meanwhile
                if copy.id in which and copy.state is CopyState.STORED:
                    await self._delete_object(copy)
        return task

    async def _delete_object(self, copy: OutputCopy) -> None:
        if copy.object_key is not None:
            await self._outputs.delete(copy.object_key)
