"""When the tracker gives a task up (relay.tasks.verdicts): pure, so checked without I/O."""

from __future__ import annotations

from datetime import timedelta

from relay.models import ErrorCode, EventType, TaskStatus
from relay.provider_answers import FaultKind, ProviderFault
from relay.tasks.verdicts import NOT_FOUND_LIMIT, expire_if_overdue, not_found, provider_gone
from relay.transitions import Change
from tests.test_transitions import T0, at, new_task

DAY = 86400.0
GONE = ProviderFault(FaultKind.NOT_FOUND, False, "no such task", provider_code="NotFound")


def test_a_task_is_given_up_after_enough_not_found_answers() -> None:
    task = new_task(status=TaskStatus.RUNNING)
    for count in range(1, NOT_FOUND_LIMIT):
        change = not_found(task, GONE, 7 * DAY, None, at(10))
        assert change.task.status is TaskStatus.RUNNING
        assert change.task.not_found_count == count
        assert change.events == ()
        task = change.task
    change = not_found(task, GONE, 7 * DAY, None, at(10))
    assert change.task.status is TaskStatus.FAILED
    assert change.task.error is not None
    assert change.task.error.code is ErrorCode.NOT_FOUND
    assert [e.type for e in change.events] == [EventType.TASK_FAILED]


def test_a_task_older_than_the_providers_retention_expired_instead_of_failing() -> None:
    """The id's date counts when it is older than the registration: the task was made
    long before the relay was told of it."""
    task = new_task(status=TaskStatus.RUNNING)
    made = T0 - timedelta(days=8)
    change = not_found(task, GONE, 7 * DAY, made, at(10))
    assert change.task.status is TaskStatus.EXPIRED
    assert change.task.error is not None
    assert change.task.error.code is ErrorCode.PAST_RETENTION
    assert not_found(task, GONE, 7 * DAY, None, at(10)).task.status is TaskStatus.RUNNING


def test_past_its_maximum_age_a_task_expires_only_after_a_real_answer() -> None:
    task = new_task(status=TaskStatus.RUNNING)
    late = at(3 * 3600)
    unanswered = expire_if_overdue(Change(task), T0, False, 2 * 3600, late, late)
    assert unanswered.task.status is TaskStatus.RUNNING
    answered = expire_if_overdue(Change(task), T0, True, 2 * 3600, late, late)
    assert answered.task.status is TaskStatus.EXPIRED
    assert [e.type for e in answered.events] == [EventType.TASK_EXPIRED]
    # With no answer at all, twice the maximum age ends it all the same.
    much_later = at(5 * 3600)
    silent = expire_if_overdue(Change(task), T0, False, 2 * 3600, much_later, much_later)
    assert silent.task.status is TaskStatus.EXPIRED


def test_a_finished_task_is_left_as_it_is() -> None:
    done = Change(new_task(status=TaskStatus.SUCCEEDED))
    assert expire_if_overdue(done, T0, True, 60, at(3600), at(3600)) is done


def test_a_task_whose_provider_is_gone_fails_saying_so() -> None:
    change = provider_gone(new_task(status=TaskStatus.RUNNING), at(1))
    assert change.task.status is TaskStatus.FAILED
    assert change.task.error is not None
    assert "no longer configured" in change.task.error.message
