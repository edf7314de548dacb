"""What a provider's answer, or its silence, finally means for a task: pure decisions the
tracker applies (no I/O, no clock: ``now`` is a parameter). Status changes themselves follow
``relay.transitions``; these decide when a task is given up, and why."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from relay.ids import new_id
from relay.models import ErrorCode, Task, TaskError, TaskStatus
from relay.polling.schedule import is_past_max_age
from relay.provider_answers import ProviderFault
from relay.transitions import Change, terminate

NOT_FOUND_LIMIT = 3
"""Consecutive "no such task" answers before a task is given up (a just-created task can
briefly be unknown to a gateway's replica)."""


def event_id() -> str:
    return new_id("evt")


def chain(first: Change, then: Change) -> Change:
    """Two changes of one task in a row, as one write: the later task, every event."""
    return Change(then.task, first.events + then.events, first.copies + then.copies)


def provider_gone(task: Task, now: datetime) -> Change:
    """The task's provider was removed from the configuration: nothing can ask about it."""
    return terminate(
        task,
        TaskStatus.FAILED,
        TaskError(ErrorCode.INVALID_REQUEST, f"provider {task.provider!r} is no longer configured"),
        now,
        event_id,
    )


def expire_if_overdue(
    change: Change,
    created_at: datetime,
    answered: bool,
    max_age: float,
    asked_at: datetime,
    now: datetime,
) -> Change:
    """Past its maximum age a task gets one last real look (it may have finished while the
    provider was backed off) before the relay gives up on it. A provider that keeps failing
    for this task gets as long again: then the task expires without an answer rather than
    being polled forever. ``asked_at``: when the provider was asked; ``now``: after."""
    if change.task.status.terminal:
        return change
    if (answered and is_past_max_age(created_at, asked_at, max_age)) or is_past_max_age(
        created_at, asked_at, 2 * max_age
    ):
        return chain(
            change,
            terminate(
                change.task,
                TaskStatus.EXPIRED,
                TaskError(ErrorCode.EXPIRED, f"the task did not finish within {max_age:g} s"),
                now,
                event_id,
            ),
        )
    return change


def not_found(
    task: Task,
    fault: ProviderFault,
    retention: float,
    dated: datetime | None,
    now: datetime,
) -> Change:
    """The provider says it does not know the task. ``dated``: when the task's id says it
    was made (a task registered long after it was made), if it says."""
    count = task.not_found_count + 1
    task = replace(task, not_found_count=count)
    created = min(task.created_at, dated or task.created_at)
    if is_past_max_age(created, now, retention):
        # Forgotten, as the provider forgets every task after its window: the task did not
        # fail, it is gone, and nothing more will ever be known of it.
        return terminate(
            task,
            TaskStatus.EXPIRED,
            TaskError(
                ErrorCode.PAST_RETENTION,
                f"the provider no longer keeps this task (it keeps "
                f"tasks {retention / 86400:g} days): {fault.message}",
                provider_code=fault.provider_code,
            ),
            now,
            event_id,
        )
    if count < NOT_FOUND_LIMIT:
        return Change(task)
    return terminate(
        task,
        TaskStatus.FAILED,
        TaskError(
            ErrorCode.NOT_FOUND,
            f"the provider does not know this task: {fault.message}",
            provider_code=fault.provider_code,
        ),
        now,
        event_id,
    )
