"""What one provider query said about a task (``Asked``) and the change it makes
(``apply_asked``): the poll counted, the look kept for the task's timeline, the status change
(``relay.transitions``, ``relay.tasks.verdicts``) and when to poll next. No I/O: the tracker
asks the provider and writes the change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from relay.models import Look, Task
from relay.polling.pacer import Pacer
from relay.provider_answers import FaultKind, ProviderFault, ProviderTask
from relay.tasks import verdicts
from relay.tasks.registration import ProviderPlan
from relay.transitions import Change, apply_answer


@dataclass(frozen=True, slots=True)
class Asked:
    """What one provider query said, and when (``answer`` None: not asked, backed off
    until ``at``)."""

    answer: ProviderTask | ProviderFault | None
    at: datetime


def apply_asked(
    task: Task, plan: ProviderPlan, asked: Asked, via: str, pacer: Pacer
) -> tuple[Change, bool]:
    """The change an answer makes to ``task``, and whether the provider answered about
    the task (it is not asked while backed off, and a fault is no answer). The query is
    kept among the task's latest looks."""
    answer, now = asked.answer, asked.at
    if answer is None:
        return Change(replace(task, next_poll_at=now)), False
    outcome = "answered" if isinstance(answer, ProviderTask) else answer.kind.value
    task = replace(task, poll_count=task.poll_count + 1).looked(
        Look(
            now,
            via,
            outcome,
            answer.status.value if answer.status else answer.raw_status,
            answer.progress,
        )
        if isinstance(answer, ProviderTask)
        else Look(now, via, outcome)
    )
    if isinstance(answer, ProviderTask):
        change = apply_answer(
            replace(task, not_found_count=0), answer, now, verdicts.event_id, plan.prices
        )
    elif answer.kind is FaultKind.NOT_FOUND:
        # A task registered long after it was made: its id may say when that was.
        pid = task.provider_task_id
        dated = plan.client.dialect.created_at_from_id(pid) if pid is not None else None
        change = verdicts.not_found(task, answer, plan.retention, dated, now)
    else:
        change = Change(task)
    ended = change.task.status.terminal
    later = (
        None
        if ended
        else now + timedelta(seconds=pacer.delay(change.task, plan.poll, plan.learn, now))
    )
    if not ended and plan.client.backoff_until() is not None:
        later = max(later or now, plan.client.backoff_until() or now)
    # Only an answer about the task counts as a look at it; a provider fault says nothing.
    answered = isinstance(answer, ProviderTask) or answer.kind is FaultKind.NOT_FOUND
    return Change(replace(change.task, next_poll_at=later), change.events), answered
