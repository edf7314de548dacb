"""What the dashboard's pages say, decided by pure functions of domain values."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from relay.dashboard.session import session_key
from relay.dashboard.views import (
    age,
    back_target,
    count_label,
    event_line,
    settleable,
    snippet,
    subscription_health,
    timeline,
)
from relay.models import (
    Attempt,
    Delivery,
    DeliveryStatus,
    Event,
    EventType,
    Look,
    Subscription,
    SubscriptionStatus,
    Task,
    TaskStatus,
)
from relay.store.values import DeliveryView
from relay.submissions import Submission, SubmissionState
from relay.transitions import envelope
from tests.store.factories import NOW, at


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (59, "59s"),
        (61, "1m 1s"),
        (3_600 * 2 + 600, "2h 10m"),
        (86_400 * 3 + 3_600 * 4 + 5, "3d 4h"),
        (-90, "in 1m 30s"),
    ],
)
def test_age(seconds: int, shown: str) -> None:
    assert age(NOW, NOW - timedelta(seconds=seconds)) == shown
    assert age(NOW, None) == "-"


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ("/dashboard/tasks/t_1?x=1", "/dashboard/tasks/t_1?x=1"),
        ("https://evil.test/dashboard", "/fallback"),
        ("//evil.test/dashboard", "/fallback"),
        ("/dashboard\\@evil.test", "/fallback"),
        ("/dashboard/x\r\nSet-Cookie: a=b", "/fallback"),
        ("/v1/tasks", "/fallback"),
        ("", "/fallback"),
        (None, "/fallback"),
    ],
)
def test_forms_only_return_to_the_dashboard(value: str | None, where: str) -> None:
    assert back_target(value, "/fallback") == where


def test_snippets_are_cut() -> None:
    assert snippet(None) == ""
    assert snippet("ok") == "ok"
    long = snippet("x" * 1000)
    assert len(long) == 301
    assert long.endswith("…")


def test_session_keys_differ_from_the_secret_they_come_from() -> None:
    key = session_key("a-relay-secret-key")
    assert "a-relay-secret-key" not in key
    assert key == session_key("a-relay-secret-key")
    assert key != session_key("another-secret-key")


def _event(task: Task, type_: EventType, seq: int, seconds: float, **data: object) -> Event:
    when = at(seconds=seconds)
    return Event(
        id=f"evt_{seq}",
        account_id=task.account_id,
        task_id=task.id,
        type=type_,
        sequence=seq,
        created_at=when,
        body=envelope(f"evt_{seq}", type_, seq, when, {"id": task.id, **data}),
    )


def test_a_timeline_tells_the_task_in_order() -> None:
    task = Task(
        id="task_1",
        account_id="acct",
        provider="ark",
        provider_task_id="cgt-1",
        status=TaskStatus.SUCCEEDED,
        created_at=NOW,
        updated_at=at(seconds=9),
        completed_at=at(seconds=9),
        looks=(
            Look(at(seconds=4), "poll", "answered", "running", 40),
            Look(at(seconds=6), "poll", "rate_limited"),
            Look(at(seconds=9), "push", "answered", "succeeded"),
        ),
    )
    queued = _event(task, EventType.TASK_QUEUED, 1, 0, status="queued")
    done = _event(task, EventType.TASK_SUCCEEDED, 2, 9, status="succeeded", progress=100)
    delivery = Delivery(
        id="dlv_1",
        account_id="acct",
        event_id=done.id,
        destination_id="dst",
        url="https://hooks.example.com/x",
        status=DeliveryStatus.SUCCEEDED,
        attempt_count=2,
        next_attempt_at=None,
        created_at=at(seconds=9),
        updated_at=at(seconds=12),
    )
    failed = Attempt("dlv_1", 1, at(seconds=9.1), 30.0, "retry", 503, None, "busy")
    ok = Attempt("dlv_1", 2, at(seconds=11), 12.0, "delivered", 200, None, "thanks")
    steps = timeline(task, [done, queued][::-1], {done.id: [DeliveryView(delivery, [failed, ok])]})
    assert [(s.kind, s.title) for s in steps] == [
        ("task", "registered"),
        ("event", "task.queued"),
        ("poll", "poll: answered"),
        ("poll", "poll: rate limited"),
        ("push", "push confirmed by a query: answered"),
        ("event", "task.succeeded"),
        ("task", "finished: succeeded"),
        ("delivery", "delivery to https://hooks.example.com/x"),
        ("attempt", "attempt 1: HTTP 503 in 30 ms (retry)"),
        ("attempt", "attempt 2: HTTP 200 in 12 ms (delivered)"),
    ]
    assert [s.ok for s in steps[-3:]] == [True, False, True]
    assert steps[-2].detail == "busy"
    assert [s.detail for s in steps if s.kind in ("poll", "push")] == [
        "provider says running, 40%",
        "no answer about the task",
        "provider says succeeded",
    ]
    assert [s.ok for s in steps if s.kind in ("poll", "push")] == [None, False, None]
    assert event_line(done) == "status succeeded, progress 100%"
    assert steps == sorted(steps, key=lambda s: s.at)

    running = replace(task, status=TaskStatus.RUNNING, completed_at=None, looks=())
    assert [s.title for s in timeline(running, [queued], {})] == ["registered", "task.queued"]


def test_subscription_health() -> None:
    sub = Subscription(
        id="sub_1",
        account_id="acct",
        url="https://x.example.com",
        event_types=None,
        status=SubscriptionStatus.ACTIVE,
        created_at=NOW,
        updated_at=NOW,
    )
    assert subscription_health(sub, NOW).state == "new"
    good = replace(sub, last_success_at=at(seconds=-30))
    assert subscription_health(good, NOW).detail == "last success 30s ago"
    failing = replace(good, failing_since=at(minutes=-5))
    assert subscription_health(failing, NOW).state == "failing"
    assert subscription_health(failing, NOW).detail == "failing for 5m 0s"
    off = replace(failing, status=SubscriptionStatus.DISABLED, disabled_reason="failing for 5 days")
    assert subscription_health(off, NOW).state == "disabled"
    assert subscription_health(off, NOW).detail == "failing for 5 days"


@pytest.mark.parametrize(
    ("state", "lease_left", "shown"),
    [
        (SubmissionState.UNCERTAIN, 60, True),
        (SubmissionState.PENDING, 60, False),  # its create is still under way
        (SubmissionState.PENDING, 0, True),  # its holder let the lease run out
        (SubmissionState.PENDING, -5, True),
        (SubmissionState.ACCEPTED, -5, False),
        (SubmissionState.NOT_ACCEPTED, -5, False),
        (SubmissionState.ABANDONED, -5, False),
    ],
)
def test_settle_buttons_show_when_the_submitter_would_settle(
    state: SubmissionState, lease_left: float, shown: bool
) -> None:
    sub = Submission(
        id="smb_1",
        account_id="acct_1",
        task_id="tsk_1",
        provider="sandbox",
        state=state,
        body_hash="0" * 64,
        registration={},
        created_at=at(minutes=-1),
        updated_at=at(minutes=-1),
        lease_until=at(seconds=lease_left),
    )
    assert settleable(sub, NOW) is shown


def test_counts_read_with_a_bound_say_so() -> None:
    assert count_label(3, more=False) == "3"
    assert count_label(50, more=True) == "50+"
