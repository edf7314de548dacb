"""The pure rules of ``relay.transitions``: how provider answers move a task and which events
that emits (DESIGN §3, DIALECTS §5.7). Fixed times and a counting id factory throughout."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relay.models import Destination, ErrorCode, Event, EventType, Task, TaskError, TaskStatus
from relay.provider_answers import ProviderTask
from relay.transitions import (
    Change,
    apply_answer,
    envelope,
    fan_out,
    registered,
    terminate,
    wants,
)

T0 = datetime(2026, 6, 6, 16, 0, 0, tzinfo=UTC)
PTID = "cgt-20260607000000-abc"
VIDEO = "https://cdn.example.com/v.mp4?X-Tos-Expires=86400"
MODEL = "doubao-seedance-2-0-fast-260128"
USAGE = {"completion_tokens": 108900, "total_tokens": 108900}
POLICY_ERROR = TaskError(
    ErrorCode.CONTENT_POLICY,
    "the output video may break policy",
    False,
    "OutputVideoSensitiveContentDetected.PolicyViolation",
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ids() -> Callable[[], str]:
    """evt_1, evt_2, … : deterministic and readable in a failure."""
    counter = itertools.count(1)
    return lambda: f"evt_{next(counter)}"


def new_task(**fields: Any) -> Task:
    base: dict[str, Any] = {
        "id": "task_1",
        "account_id": "acc_1",
        "provider": "sandbox",
        "provider_task_id": PTID,
        "status": TaskStatus.QUEUED,
        "created_at": T0,
        "updated_at": T0,
        "next_poll_at": at(5),
        "reference": "order-1234",
        "metadata": {"projectId": "p1"},
    }
    return Task(**{**base, **fields})


def answer(status: TaskStatus | None, **fields: Any) -> ProviderTask:
    return ProviderTask(provider_task_id=PTID, status=status, **fields)


def body(event: Event) -> Any:
    return json.loads(event.body)


def only(change: Change) -> Event:
    assert len(change.events) == 1, change.events
    return change.events[0]


def expected_event(event_id: str, type_: EventType, task: Task, when: datetime) -> Event:
    """The event ``emit`` must produce for ``task`` (already carrying its new sequence)."""
    return Event(
        id=event_id,
        account_id=task.account_id,
        task_id=task.id,
        type=type_,
        sequence=task.sequence,
        created_at=when,
        body=envelope(event_id, type_, task.sequence, when, task.to_json()),
        # Only a success event's URL can expire under a later redelivery.
        url_expires_at=task.video_url_expires_at if type_ is EventType.TASK_SUCCEEDED else None,
    )


@pytest.fixture
def queued() -> Task:
    """A task right after registration: sequence 1, its task.queued already emitted."""
    return registered(new_task(), T0, ids()).task


# --- registration and the envelope ----------------------------------------------------------


def test_registered_emits_task_queued_with_sequence_one() -> None:
    task = new_task()
    change = registered(task, T0, ids())
    assert change.task == replace(task, sequence=1)
    event = only(change)
    assert event == expected_event("evt_1", EventType.TASK_QUEUED, change.task, T0)
    assert body(event) == {
        "id": "evt_1",
        "type": "task.queued",
        "timestamp": "2026-06-06T16:00:00Z",
        "sequence": 1,
        "data": change.task.to_json(),
    }


def test_envelope_data_is_the_full_public_task() -> None:
    change = registered(new_task(), T0, ids())
    assert body(only(change))["data"] == {
        "id": "task_1",
        "provider": "sandbox",
        "provider_task_id": PTID,
        "model": None,
        "status": "queued",
        "progress": None,
        "video_url": None,
        "video_url_expires_at": None,
        "last_frame_url": None,
        "provider_video_url": None,
        "provider_video_url_expires_at": None,
        "output": None,
        "cost": None,
        "route": None,
        "submissions": [],
        "error": None,
        "usage": None,
        "resolution": None,
        "ratio": None,
        "duration": None,
        "fps": None,
        "seed": None,
        "reference": "order-1234",
        "metadata": {"projectId": "p1"},
        "created_at": "2026-06-06T16:00:00Z",
        "updated_at": "2026-06-06T16:00:00Z",
        "completed_at": None,
    }


def test_envelope_is_compact_json_in_a_fixed_key_order() -> None:
    text = envelope("evt_9", EventType.TASK_FAILED, 4, at(0.5), {"a": "é"})
    assert text == (
        '{"id":"evt_9","type":"task.failed","timestamp":"2026-06-06T16:00:00Z",'
        '"sequence":4,"data":{"a":"é"}}'
    )


def test_registered_announces_the_status_the_task_starts_with() -> None:
    task = new_task(status=TaskStatus.RUNNING)
    assert only(registered(task, T0, ids())).type is EventType.TASK_RUNNING


# --- status moves -----------------------------------------------------------------------------


def test_queued_to_running_emits_task_running(queued: Task) -> None:
    change = apply_answer(queued, answer(TaskStatus.RUNNING), at(10), ids())
    moved = replace(queued, status=TaskStatus.RUNNING, updated_at=at(10), sequence=2)
    assert change.task == moved
    assert change.events == (expected_event("evt_1", EventType.TASK_RUNNING, moved, at(10)),)
    assert body(change.events[0])["data"]["status"] == "running"


def test_queued_to_succeeded_directly_emits_only_task_succeeded(queued: Task) -> None:
    expires = at(86400)
    change = apply_answer(
        queued,
        answer(
            TaskStatus.SUCCEEDED,
            video_url=VIDEO,
            video_url_expires_at=expires,
            last_frame_url="https://cdn.example.com/f.png",
            model=MODEL,
            usage=USAGE,
        ),
        at(60),
        ids(),
    )
    done = replace(
        queued,
        status=TaskStatus.SUCCEEDED,
        progress=100,
        video_url=VIDEO,
        video_url_expires_at=expires,
        last_frame_url="https://cdn.example.com/f.png",
        provider_video_url=VIDEO,
        provider_video_url_expires_at=expires,
        provider_last_frame_url="https://cdn.example.com/f.png",
        model=MODEL,
        usage=USAGE,
        updated_at=at(60),
        completed_at=at(60),
        next_poll_at=None,
        sequence=2,
    )
    assert change.task == done
    assert change.events == (expected_event("evt_1", EventType.TASK_SUCCEEDED, done, at(60)),)
    assert change.events[0].url_expires_at == expires
    data = body(change.events[0])["data"]
    assert (
        data["status"],
        data["progress"],
        data["video_url"],
        data["completed_at"],
        data["video_url_expires_at"],
    ) == ("succeeded", 100, VIDEO, "2026-06-06T16:01:00Z", "2026-06-07T16:00:00Z")


def test_running_with_progress_sets_it_without_a_progress_event(queued: Task) -> None:
    change = apply_answer(queued, answer(TaskStatus.RUNNING, progress=10), at(5), ids())
    assert [e.type for e in change.events] == [EventType.TASK_RUNNING]
    assert change.task.progress == 10


@pytest.mark.parametrize("late", [TaskStatus.RUNNING, TaskStatus.QUEUED])
def test_a_lower_rank_answer_after_success_changes_nothing(queued: Task, late: TaskStatus) -> None:
    done = apply_answer(queued, answer(TaskStatus.SUCCEEDED, video_url=VIDEO), at(60), ids()).task
    change = apply_answer(done, answer(late, progress=50, model="other"), at(70), ids())
    assert change == Change(done)


def test_queued_after_running_changes_nothing(queued: Task) -> None:
    running = apply_answer(queued, answer(TaskStatus.RUNNING), at(10), ids()).task
    change = apply_answer(running, answer(TaskStatus.QUEUED), at(20), ids())
    assert change == Change(running)
    assert change.task.status is TaskStatus.RUNNING


@pytest.mark.parametrize(
    "late",
    [
        answer(TaskStatus.FAILED, error=POLICY_ERROR),
        answer(TaskStatus.EXPIRED, error=TaskError(ErrorCode.EXPIRED, "late")),
        answer(TaskStatus.CANCELLED),
        answer(TaskStatus.SUCCEEDED, video_url="https://cdn.example.com/other.mp4", seed=5),
        answer(None, raw_status="unknown"),
    ],
)
def test_first_terminal_answer_wins(queued: Task, late: ProviderTask) -> None:
    done = apply_answer(queued, answer(TaskStatus.SUCCEEDED, video_url=VIDEO), at(60), ids()).task
    assert apply_answer(done, late, at(61), ids()) == Change(done)


def test_a_failed_task_stays_failed_when_success_arrives_later(queued: Task) -> None:
    failed = apply_answer(queued, answer(TaskStatus.FAILED, error=POLICY_ERROR), at(30), ids()).task
    assert apply_answer(
        failed, answer(TaskStatus.SUCCEEDED, video_url=VIDEO), at(40), ids()
    ) == Change(failed)
    assert failed.video_url is None


# --- non-committal answers --------------------------------------------------------------------


@pytest.mark.parametrize("status", [TaskStatus.QUEUED, TaskStatus.RUNNING])
def test_unknown_status_keeps_the_task_as_it_was(queued: Task, status: TaskStatus) -> None:
    task = replace(queued, status=status)
    change = apply_answer(
        task, answer(None, raw_status="unknown", video_url=VIDEO, error=POLICY_ERROR), at(10), ids()
    )
    assert change == Change(task)


def test_unknown_status_never_emits_anything_terminal(queued: Task) -> None:
    change = apply_answer(queued, answer(None, raw_status="weird", progress=40), at(10), ids())
    assert change.task.status is TaskStatus.QUEUED
    assert change.task.completed_at is None
    assert all(e.type in (EventType.TASK_PROGRESS,) for e in change.events)


# --- progress ---------------------------------------------------------------------------------


def test_progress_moving_up_emits_task_progress(queued: Task) -> None:
    running = apply_answer(queued, answer(TaskStatus.RUNNING), at(10), ids()).task
    change = apply_answer(running, answer(TaskStatus.RUNNING, progress=40), at(20), ids())
    moved = replace(running, progress=40, updated_at=at(20), sequence=3)
    assert change.task == moved
    assert change.events == (expected_event("evt_1", EventType.TASK_PROGRESS, moved, at(20)),)
    assert body(change.events[0])["data"]["progress"] == 40


@pytest.mark.parametrize("progress", [40, 39, 0, None])
def test_equal_or_lower_progress_emits_nothing(queued: Task, progress: int | None) -> None:
    running = replace(queued, status=TaskStatus.RUNNING, progress=40, sequence=3)
    change = apply_answer(running, answer(TaskStatus.RUNNING, progress=progress), at(30), ids())
    assert change == Change(running)


@pytest.mark.parametrize("status", [TaskStatus.RUNNING, TaskStatus.SUCCEEDED])
def test_progress_never_reads_100_before_success(queued: Task, status: TaskStatus) -> None:
    """100 % is what a completion reports; a running task (including the succeeded-without-URL
    anomaly, which stays running) must not claim it, whether or not its status moves."""
    change = apply_answer(queued, answer(status, progress=100), at(30), ids())
    assert change.task.status is TaskStatus.RUNNING
    assert [e.type for e in change.events] == [EventType.TASK_RUNNING]
    assert change.task.progress is None

    running = replace(queued, status=TaskStatus.RUNNING, progress=40)
    assert apply_answer(running, answer(status, progress=100), at(40), ids()) == Change(running)


# --- succeeded without a video (DIALECTS §5.7) ------------------------------------------------


def test_succeeded_without_a_video_url_is_not_a_completion(queued: Task) -> None:
    change = apply_answer(queued, answer(TaskStatus.SUCCEEDED, usage=USAGE), at(30), ids())
    assert [e.type for e in change.events] == [EventType.TASK_RUNNING]
    assert change.task.status is TaskStatus.RUNNING
    assert (change.task.progress, change.task.completed_at, change.task.video_url) == (
        None,
        None,
        None,
    )
    assert change.task.next_poll_at == queued.next_poll_at

    again = apply_answer(change.task, answer(TaskStatus.SUCCEEDED), at(40), ids())
    assert again == Change(change.task)

    done = apply_answer(change.task, answer(TaskStatus.SUCCEEDED, video_url=VIDEO), at(50), ids())
    assert [(e.type, e.sequence) for e in done.events] == [(EventType.TASK_SUCCEEDED, 3)]
    assert done.task.usage == USAGE


# --- failure, expiry, termination -------------------------------------------------------------


def test_failed_carries_the_error(queued: Task) -> None:
    running = replace(queued, status=TaskStatus.RUNNING, progress=30)
    change = apply_answer(running, answer(TaskStatus.FAILED, error=POLICY_ERROR), at(90), ids())
    failed = replace(
        running,
        status=TaskStatus.FAILED,
        error=POLICY_ERROR,
        updated_at=at(90),
        completed_at=at(90),
        next_poll_at=None,
        sequence=2,
    )
    assert change.task == failed
    assert change.events == (expected_event("evt_1", EventType.TASK_FAILED, failed, at(90)),)
    assert body(change.events[0])["data"]["error"] == {
        "code": "content_policy",
        "message": "the output video may break policy",
        "retryable": False,
        "provider_code": "OutputVideoSensitiveContentDetected.PolicyViolation",
    }


@pytest.mark.parametrize(
    ("status", "type_"),
    [
        (TaskStatus.EXPIRED, EventType.TASK_EXPIRED),
        (TaskStatus.CANCELLED, EventType.TASK_CANCELLED),
    ],
)
def test_provider_expiry_and_cancellation(
    queued: Task, status: TaskStatus, type_: EventType
) -> None:
    error = TaskError(ErrorCode(status.value), "gone")
    change = apply_answer(queued, answer(status, error=error), at(90), ids())
    assert [(e.type, e.sequence) for e in change.events] == [(type_, 2)]
    assert (
        change.task.status,
        change.task.error,
        change.task.completed_at,
        change.task.next_poll_at,
    ) == (status, error, at(90), None)


def test_terminate_expires_a_task(queued: Task) -> None:
    error = TaskError(ErrorCode.EXPIRED, "the task did not finish within 172800 s")
    change = terminate(queued, TaskStatus.EXPIRED, error, at(172801), ids())
    expired = replace(
        queued,
        status=TaskStatus.EXPIRED,
        error=error,
        updated_at=at(172801),
        completed_at=at(172801),
        next_poll_at=None,
        sequence=2,
    )
    assert change.task == expired
    assert change.events == (expected_event("evt_1", EventType.TASK_EXPIRED, expired, at(172801)),)
    assert body(change.events[0])["data"]["error"]["code"] == "expired"


def test_terminate_leaves_a_terminal_task_alone(queued: Task) -> None:
    done = apply_answer(queued, answer(TaskStatus.SUCCEEDED, video_url=VIDEO), at(60), ids()).task
    assert terminate(done, TaskStatus.EXPIRED, None, at(99), ids()) == Change(done)


# --- descriptive fields -----------------------------------------------------------------------


def test_descriptive_fields_merge_and_survive_answers_without_them(queued: Task) -> None:
    described = answer(
        TaskStatus.RUNNING,
        model=MODEL,
        usage=USAGE,
        resolution="720p",
        ratio="16:9",
        duration=5,
        fps=24,
        seed=97151,
    )
    running = apply_answer(queued, described, at(10), ids()).task
    fields: dict[str, Any] = {
        "model": MODEL,
        "usage": USAGE,
        "resolution": "720p",
        "ratio": "16:9",
        "duration": 5,
        "fps": 24,
        "seed": 97151,
    }
    assert running == replace(
        queued, status=TaskStatus.RUNNING, updated_at=at(10), sequence=2, **fields
    )

    done = apply_answer(running, answer(TaskStatus.SUCCEEDED, video_url=VIDEO), at(60), ids()).task
    assert {k: getattr(done, k) for k in fields} == fields


def test_new_fields_without_a_status_change_update_the_task_silently(queued: Task) -> None:
    change = apply_answer(queued, answer(TaskStatus.QUEUED, model=MODEL, seed=7), at(3), ids())
    assert change == Change(replace(queued, model=MODEL, seed=7, updated_at=at(3)))


def test_a_known_provider_task_id_is_kept(queued: Task) -> None:
    other = ProviderTask(provider_task_id="cgt-other", status=TaskStatus.RUNNING)
    assert apply_answer(queued, other, at(10), ids()).task.provider_task_id == PTID
    unnamed = replace(queued, provider_task_id=None)
    assert apply_answer(unnamed, other, at(10), ids()).task.provider_task_id == "cgt-other"


# --- sequence ---------------------------------------------------------------------------------


def test_sequence_increases_by_exactly_one_per_event() -> None:
    new_id = ids()
    change = registered(new_task(), T0, new_id)
    task, events = change.task, list(change.events)
    for when, step in [
        (10, answer(TaskStatus.RUNNING)),
        (20, answer(TaskStatus.RUNNING, progress=40)),
        (25, answer(TaskStatus.RUNNING, progress=40)),  # no move: no event
        (30, answer(TaskStatus.RUNNING, progress=70)),
        (40, answer(None)),
        (60, answer(TaskStatus.SUCCEEDED, video_url=VIDEO)),
        (70, answer(TaskStatus.FAILED, error=POLICY_ERROR)),
    ]:
        change = apply_answer(task, step, at(when), new_id)
        task = change.task
        events.extend(change.events)
    assert [(e.id, e.type, e.sequence) for e in events] == [
        ("evt_1", EventType.TASK_QUEUED, 1),
        ("evt_2", EventType.TASK_RUNNING, 2),
        ("evt_3", EventType.TASK_PROGRESS, 3),
        ("evt_4", EventType.TASK_PROGRESS, 4),
        ("evt_5", EventType.TASK_SUCCEEDED, 5),
    ]
    assert task.sequence == 5
    assert [body(e)["sequence"] for e in events] == [1, 2, 3, 4, 5]
    assert [body(e)["data"]["progress"] for e in events] == [None, None, 40, 70, 100]


# --- destinations -----------------------------------------------------------------------------


TERMINAL = {
    EventType.TASK_SUCCEEDED,
    EventType.TASK_FAILED,
    EventType.TASK_EXPIRED,
    EventType.TASK_CANCELLED,
}


@pytest.mark.parametrize("type_", list(EventType))
def test_no_filter_means_the_four_terminal_types_and_a_late_stored_output(
    type_: EventType,
) -> None:
    assert wants(None, type_) is (type_ in TERMINAL | {EventType.TASK_OUTPUT_STORED})


def test_an_explicit_filter_is_exact() -> None:
    chosen = frozenset({EventType.TASK_QUEUED, EventType.TASK_PROGRESS})
    assert [t for t in EventType if wants(chosen, t)] == [
        EventType.TASK_QUEUED,
        EventType.TASK_PROGRESS,
    ]
    assert not any(wants(frozenset(), t) for t in EventType)


def destination(id_: str, types: set[EventType] | None) -> Destination:
    return Destination(
        id=id_,
        account_id="acc_1",
        kind="callback",
        url=f"https://hooks.example.com/{id_}",
        key="https://hooks.example.com",
        event_types=None if types is None else frozenset(types),
        task_id="task_1",
    )


def test_fan_out_pairs_each_event_with_the_destinations_that_want_it() -> None:
    new_id = ids()
    first = registered(new_task(), T0, new_id)
    done = apply_answer(first.task, answer(TaskStatus.SUCCEEDED, video_url=VIDEO), at(60), new_id)
    queued_event, succeeded_event = first.events[0], done.events[0]
    default = destination("d_default", None)
    everything = destination("d_all", {EventType.TASK_QUEUED, EventType.TASK_SUCCEEDED})
    early = destination("d_queued", {EventType.TASK_QUEUED})
    progress_only = destination("d_progress", {EventType.TASK_PROGRESS})
    pairs = fan_out([queued_event, succeeded_event], [default, everything, early, progress_only])
    assert [(e.id, d.id) for e, d in pairs] == [
        (queued_event.id, "d_all"),
        (queued_event.id, "d_queued"),
        (succeeded_event.id, "d_default"),
        (succeeded_event.id, "d_all"),
    ]
    assert fan_out([], [default]) == []
    assert fan_out([succeeded_event], []) == []
