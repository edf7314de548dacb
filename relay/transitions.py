"""Pure rules for how a task changes and which events that emits (DESIGN §3).

- A status never goes backwards, and a terminal status is final: when push and poll race,
  the first terminal answer wins.
- Every status change emits ``task.<status>``; ``task.progress`` only when progress moves
  up without a status change.
- ``sequence`` counts the task's events, so receivers can drop stale ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from relay.copies.values import OutputCopy
from relay.models import (
    DEFAULT_EVENT_TYPES,
    SUBSCRIPTION,
    Destination,
    Event,
    EventType,
    Task,
    TaskError,
    TaskStatus,
    iso,
)
from relay.pricing import PriceTable, cost_of
from relay.provider_answers import ProviderTask

IdFactory = Callable[[], str]


@dataclass(frozen=True, slots=True)
class Change:
    """A task's new state and the events it emits, written together in one transaction."""

    task: Task
    events: tuple[Event, ...] = ()
    copies: tuple[OutputCopy, ...] = ()
    """Output copies to insert or update with the task (``relay.copies``)."""


def envelope(
    event_id: str,
    type_: EventType,
    sequence: int,
    at: datetime,
    data: object,
    notice: Mapping[str, str] | None = None,
) -> str:
    """The event body exactly as delivered, listed and replayed; ``notice``: a
    ``relay_notice`` (``{"code", "message"}``) about what the relay did to the data."""
    body: dict[str, object] = {
        "id": event_id,
        "type": type_.value,
        "timestamp": iso(at),
        "sequence": sequence,
        "data": data,
    }
    if notice is not None:
        body["relay_notice"] = dict(notice)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def wants(filter_: frozenset[EventType] | None, type_: EventType) -> bool:
    """Whether a destination with this filter receives this type (no filter: the defaults)."""
    return type_ in (DEFAULT_EVENT_TYPES if filter_ is None else filter_)


def fan_out(
    events: Sequence[Event], destinations: Sequence[Destination]
) -> list[tuple[Event, Destination]]:
    """Which destination receives which event: one delivery each.

    A task's callback receives that task's events; a subscription receives the events of its
    own account. Either only of the types it asked for. An account's operational event (no
    task) goes to subscriptions alone, and only to those whose filter names its type (the
    defaults never hold one). Backends may pass a superset of candidates (every callback and
    subscription that could match); the choice is made here.
    """
    return [
        (e, d)
        for e in events
        for d in destinations
        if wants(d.event_types, e.type)
        and (
            (e.task_id is not None and d.task_id == e.task_id)
            or (d.kind == SUBSCRIPTION and d.account_id == e.account_id)
        )
    ]


def emit(
    task: Task,
    type_: EventType,
    now: datetime,
    new_id: IdFactory,
    notice: Mapping[str, str] | None = None,
) -> Change:
    """Append one event to ``task``: bump its sequence and snapshot it into the event."""
    task = replace(task, sequence=task.sequence + 1)
    event_id = new_id()
    event = Event(
        id=event_id,
        account_id=task.account_id,
        task_id=task.id,
        type=type_,
        sequence=task.sequence,
        created_at=now,
        body=envelope(event_id, type_, task.sequence, now, task.to_json(), notice),
        url_expires_at=task.video_url_expires_at if type_ is EventType.TASK_SUCCEEDED else None,
    )
    return Change(task, (event,))


def registered(task: Task, now: datetime, new_id: IdFactory) -> Change:
    """A newly registered task announces its first known status."""
    return emit(task, EventType.for_status(task.status), now, new_id)


def apply_answer(
    task: Task,
    answer: ProviderTask,
    now: datetime,
    new_id: IdFactory,
    prices: PriceTable | None = None,
) -> Change:
    """Fold one provider answer into the task; ``prices``: the provider's, to price a
    success with (``relay.pricing``)."""
    if task.status.terminal:
        return Change(task)
    status = answer.status
    if status is TaskStatus.SUCCEEDED and answer.video_url is None:
        # Succeeded without a video is a provider anomaly (DIALECTS §5.7): never announce a
        # completion the receiver cannot use; keep polling until the URL appears.
        status = TaskStatus.RUNNING
    merged = _merge_fields(task, answer)
    if status is not None and status.rank > task.status.rank:
        return _move(merged, status, answer, now, new_id, prices)
    if (
        answer.progress is not None
        and (task.progress is None or answer.progress > task.progress)
        and answer.progress < 100
    ):
        return emit(
            replace(merged, progress=answer.progress, updated_at=now),
            EventType.TASK_PROGRESS,
            now,
            new_id,
        )
    if merged != task:
        return Change(replace(merged, updated_at=now))
    return Change(task)


def terminate(
    task: Task, status: TaskStatus, error: TaskError | None, now: datetime, new_id: IdFactory
) -> Change:
    """End a task for a reason of the relay's own (past its maximum age, unknown upstream)."""
    if task.status.terminal:
        return Change(task)
    ended = replace(
        task, status=status, error=error, updated_at=now, completed_at=now, next_poll_at=None
    )
    return emit(ended, EventType.for_status(status), now, new_id)


def _move(
    task: Task,
    status: TaskStatus,
    answer: ProviderTask,
    now: datetime,
    new_id: IdFactory,
    prices: PriceTable | None = None,
) -> Change:
    progress = task.progress
    if status is TaskStatus.SUCCEEDED:
        progress = 100
    elif (
        answer.progress is not None
        and answer.progress < 100
        and (progress is None or answer.progress > progress)
    ):
        # 100 is reserved for a success the relay has accepted (with a video).
        progress = answer.progress
    moved = replace(
        task,
        status=status,
        progress=progress,
        updated_at=now,
        error=answer.error if status.terminal and status is not TaskStatus.SUCCEEDED else None,
        video_url=answer.video_url if status is TaskStatus.SUCCEEDED else None,
        video_url_expires_at=(
            answer.video_url_expires_at if status is TaskStatus.SUCCEEDED else None
        ),
        last_frame_url=answer.last_frame_url if status is TaskStatus.SUCCEEDED else None,
        provider_video_url=answer.video_url if status is TaskStatus.SUCCEEDED else None,
        provider_video_url_expires_at=(
            answer.video_url_expires_at if status is TaskStatus.SUCCEEDED else None
        ),
        provider_last_frame_url=(answer.last_frame_url if status is TaskStatus.SUCCEEDED else None),
        completed_at=now if status.terminal else None,
        next_poll_at=None if status.terminal else task.next_poll_at,
    )
    if status is TaskStatus.SUCCEEDED:
        moved = replace(moved, cost=cost_of(prices, moved.model, moved.usage, moved.duration))
    return emit(moved, EventType.for_status(status), now, new_id)


def _merge_fields(task: Task, answer: ProviderTask) -> Task:
    """Descriptive fields the provider reported; what it did not report stays as known."""
    return replace(
        task,
        provider_task_id=task.provider_task_id or answer.provider_task_id,
        model=answer.model or task.model,
        usage=answer.usage if answer.usage is not None else task.usage,
        resolution=answer.resolution or task.resolution,
        ratio=answer.ratio or task.ratio,
        duration=answer.duration if answer.duration is not None else task.duration,
        fps=answer.fps if answer.fps is not None else task.fps,
        seed=answer.seed if answer.seed is not None else task.seed,
    )
