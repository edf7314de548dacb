"""What resubmitting a task does to it (pure: ``now`` is a parameter).

A route with ``resubmit_on`` submits a task that failed at its provider (for a reason that
is the provider's, ``relay.routing.wants_resubmission``) again on the next provider of the
route, under the same relay task id. Meanwhile the task stays open at the status it had
(statuses never go back), with the failure kept as a ``failed`` step of its
``submissions``: that step is the durable mark of a resubmission under way, so any instance,
after any restart, carries it on (``relay.tasks.resubmitting``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from relay.models import ErrorCode, EventType, Task, TaskError, TaskStatus
from relay.routing import StepOutcome, SubmissionStep, resubmitting
from relay.tasks.verdicts import event_id
from relay.transitions import Change, emit, terminate


def held(task: Task, failure: TaskError, now: datetime, next_look: datetime) -> Change:
    """``task``, whose provider just failed it, kept open for a resubmission: its status as
    it was, the failure as a ``failed`` step, looked at again by ``next_look`` at the latest
    (an instance that dies mid-resubmission leaves it to the next)."""
    step = SubmissionStep(
        task.provider,
        now,
        StepOutcome.FAILED,
        f"{failure.code.value}: {failure.message}",
        code=failure.code.value,
    )
    return Change(
        replace(
            task,
            submissions=(*task.submissions, step),
            updated_at=now,
            next_poll_at=next_look,
            resubmit_lease=next_look,
        )
    )


def claimed(task: Task, steps: Sequence[SubmissionStep], now: datetime, until: datetime) -> Change:
    """One look holds ``task``'s resubmission until ``until``: written (fenced by version)
    before it asks a provider, so that no other look asks anyone meanwhile, and with the
    steps so far, so that a provider skipped or refused stays so after a crash."""
    return Change(
        replace(
            task,
            submissions=tuple(steps),
            updated_at=now,
            next_poll_at=until,
            resubmit_lease=until,
        )
    )


def moved(
    task: Task,
    provider: str,
    provider_task_id: str | None,
    steps: Sequence[SubmissionStep],
    now: datetime,
    next_poll_at: datetime,
) -> Change:
    """The task taken by ``provider``: it lives there from now on (``task.resubmitted``).
    What the failed provider reported of its own run (usage, its model name, "not found"
    answers) goes; the status and progress stay, as statuses never go back."""
    task = replace(
        task,
        provider=provider,
        provider_task_id=provider_task_id,
        submissions=tuple(steps),
        error=None,
        usage=None,
        model=None,
        not_found_count=0,
        updated_at=now,
        next_poll_at=next_poll_at,
        resubmit_lease=None,
    )
    return emit(task, EventType.TASK_RESUBMITTED, now, event_id)


def merged_steps(
    stored: Sequence[SubmissionStep], asked: Sequence[SubmissionStep]
) -> tuple[SubmissionStep, ...]:
    """The steps of a task taken by a resubmission: ``asked`` (the steps its submission
    knew, ending with the one that took it) when they carry on from what the task has;
    else what the task has plus that last step (steps written since, such as waiting on an
    uncertain answer, stay in the history)."""
    if tuple(asked[: len(stored)]) == tuple(stored):
        return tuple(asked)
    return (*stored, asked[-1])


def waiting(
    task: Task, steps: Sequence[SubmissionStep], now: datetime, next_look: datetime
) -> Change:
    """A resubmission whose answer is not known yet (another instance is asking, or the
    answer was lost and the reconciler looks for it): look again at ``next_look``."""
    return Change(
        replace(
            task,
            submissions=tuple(steps),
            updated_at=now,
            next_poll_at=next_look,
            resubmit_lease=None,
        )
    )


def given_up(task: Task, steps: Sequence[SubmissionStep], why: str, now: datetime) -> Change:
    """No other provider took the task: it fails as its provider failed it, saying why it
    was not resubmitted."""
    failure = resubmitting(steps)
    code = ErrorCode(failure.code) if failure and failure.code else ErrorCode.PROVIDER_ERROR
    said = "the provider failed the task"
    if failure is not None and failure.error:
        said = failure.error.removeprefix(f"{failure.code}: ")
    error = TaskError(code, f"{said}; not resubmitted: {why}")
    ended = replace(task, submissions=tuple(steps), resubmit_lease=None)
    return terminate(ended, TaskStatus.FAILED, error, now, event_id)
