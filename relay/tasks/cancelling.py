"""Cancelling a task at its provider, where the dialect can, and emitting ``task.cancelled``.

The task is looked at first: Ark's DELETE on a task that has finished meanwhile deletes it
(and its video) instead of cancelling it, so only a task still cancellable is sent one. A task
its provider failed, which the relay is submitting elsewhere (``relay.tasks.resubmitting``),
has nothing to cancel at a provider: it is cancelled at once (a resubmission that a provider
takes meanwhile is settled as untracked and logged).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

from relay.clock import Clock
from relay.errors import (
    CancelRefused,
    NotCancellable,
    ProviderUnavailable,
    TaskFinished,
    UnknownTask,
)
from relay.models import ErrorCode, Task, TaskError, TaskStatus
from relay.pricing import PriceTable
from relay.provider_answers import FaultKind, ProviderFault, ProviderTask
from relay.routing import resubmitting
from relay.store.interface import TaskStore
from relay.tasks import verdicts
from relay.tasks.registration import ProviderPlan
from relay.transitions import Change, apply_answer, terminate


async def cancel_task(
    account_id: str,
    task_id: str,
    *,
    store: TaskStore,
    providers: Mapping[str, ProviderPlan],
    clock: Clock,
    look: Callable[[Task], Awaitable[Task]],
    saved: Callable[[Change], None],
    hold: Callable[[Change], Change] = lambda change: change,
) -> Task:
    """``look(task)`` polls the task now (the tracker's poll); ``saved(change)`` is told of
    the write that cancelled it; ``hold`` is the tracker's (a success the provider reports
    instead of the cancellation waits for its copies)."""
    task = await store.get_task(account_id, task_id)
    if task is None:
        raise UnknownTask(task_id)
    if resubmitting(task.submissions) is not None:
        return await _save_cancelled(store, clock, task, None, saved, hold, None)
    plan = providers.get(task.provider)
    if plan is None or not plan.client.dialect.cancellable:
        raise NotCancellable(f"provider {task.provider!r} offers no way to cancel a task")
    task = await look(task)
    if task.status.terminal:
        raise TaskFinished(task.status.value)
    if resubmitting(task.submissions) is not None:
        return await _save_cancelled(store, clock, task, None, saved, hold, None)
    plan = providers.get(task.provider) or plan  # the look may have found it moved
    client = plan.client
    if task.status not in client.dialect.cancellable:
        raise NotCancellable(f"provider {task.provider!r} cannot cancel a {task.status.value} task")
    assert task.provider_task_id is not None  # only tracked tasks are ever polled
    answer = await client.cancel(task.provider_task_id)
    if answer is None:  # pragma: no cover - cancellable said it could
        raise NotCancellable("this provider cannot cancel tasks")
    if isinstance(answer, ProviderFault):
        if answer.kind in (FaultKind.INVALID_REQUEST, FaultKind.NOT_FOUND):
            raise CancelRefused(f"the provider refused to cancel: {answer.message}")
        raise ProviderUnavailable(f"the provider could not cancel now: {answer.message}")
    return await _save_cancelled(store, clock, task, answer.task, saved, hold, plan.prices)


async def _save_cancelled(
    store: TaskStore,
    clock: Clock,
    task: Task,
    said: ProviderTask | None,
    saved: Callable[[Change], None],
    hold: Callable[[Change], Change],
    prices: PriceTable | None,
) -> Task:
    for _ in range(3):
        now = clock.now()
        change = Change(task)
        if said is not None:
            change = apply_answer(task, said, now, verdicts.event_id, prices)
        change = verdicts.chain(
            change,
            terminate(
                change.task,
                TaskStatus.CANCELLED,
                TaskError(
                    ErrorCode.CANCELLED, "cancelled through the relay at the caller's request"
                ),
                now,
                verdicts.event_id,
            ),
        )
        change = hold(change)
        if await store.save_task(change, task.version):
            saved(change)
            return replace(change.task, version=task.version + 1)
        again = await store.get_task(task.account_id, task.id)
        if again is None:
            break
        task = again
    return task
