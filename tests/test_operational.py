"""The pure rules of operational events (``relay.operational``,
``relay.delivery.announcements``): who receives them, when a provider's health turns, and
which attempts call for ``delivery.exhausted`` and ``subscription.failing``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from relay.delivery.announcements import Announcements
from relay.models import (
    CALLBACK,
    OPERATIONAL_EVENT_TYPES,
    SUBSCRIPTION,
    DeliveryStatus,
    Destination,
    DueDelivery,
    Event,
    EventType,
)
from relay.operational import FailureRun, account_event, health_turn
from relay.provider_answers import ProviderHealth
from relay.transitions import fan_out

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
_ids = iter(range(10_000))


def new_id() -> str:
    return f"evt_{next(_ids)}"


def destination(
    kind: str,
    account: str = "acct_a",
    types: frozenset[EventType] | None = None,
    task_id: str | None = None,
) -> Destination:
    return Destination(
        id=f"dst_{next(_ids)}",
        account_id=account,
        kind=kind,
        url="https://example.com/hook",
        key="k",
        event_types=types,
        task_id=task_id,
    )


@pytest.mark.parametrize("type_", sorted(OPERATIONAL_EVENT_TYPES))
def test_an_operational_event_goes_only_to_subscriptions_that_named_it(type_: EventType) -> None:
    event = account_event("acct_a", type_, {"x": 1}, NOW, new_id)
    asked = destination(SUBSCRIPTION, types=frozenset({type_}))
    default = destination(SUBSCRIPTION)
    tasks_only = destination(SUBSCRIPTION, types=frozenset({EventType.TASK_SUCCEEDED}))
    callback_all = destination(CALLBACK, types=frozenset(EventType), task_id="task_1")
    # A callback never matches an event with no task, even through a missing task id.
    callback_none = destination(CALLBACK, types=frozenset(EventType))
    stranger = destination(SUBSCRIPTION, account="acct_b", types=frozenset({type_}))
    pairs = fan_out([event], [asked, default, tasks_only, callback_all, callback_none, stranger])
    assert [d.id for _, d in pairs] == [asked.id]


def test_the_envelope_is_the_feed_s_shape_with_no_task() -> None:
    event = account_event("acct_a", EventType.PROVIDER_UNHEALTHY, {"provider": "p"}, NOW, new_id)
    assert event.task_id is None
    assert event.sequence == 0
    assert json.loads(event.body) == {
        "id": event.id,
        "type": "provider.unhealthy",
        "timestamp": "2026-12-07T12:00:00Z",
        "sequence": 0,
        "data": {"provider": "p"},
    }


def health(faults: int) -> ProviderHealth:
    return ProviderHealth("p", "ark", faults, "unavailable: 500" if faults else None, None, None, 0)


def test_health_turns_once_each_way() -> None:
    assert health_turn(False, health(0), 3) is None
    assert health_turn(False, health(2), 3) is None
    assert health_turn(False, health(3), 3) is EventType.PROVIDER_UNHEALTHY
    assert health_turn(True, health(7), 3) is None
    assert health_turn(True, health(0), 3) is EventType.PROVIDER_RECOVERED
    # A short run that ended before the threshold is no news either way.
    assert health_turn(False, health(0), 1) is None


def test_a_failure_run_is_told_once_per_failing_period() -> None:
    run = FailureRun(3, {})
    assert [run.failed("sub_1") for _ in range(5)] == [None, None, 3, None, None]
    run.succeeded("sub_1")
    assert [run.failed("sub_1") for _ in range(3)] == [None, None, 3]
    assert run.failed("sub_2") is None


def due(key: str, task_id: str | None = "task_1", pk: int = 1) -> DueDelivery:
    return DueDelivery(
        pk=pk,
        id=f"dlv_{pk}",
        event_id="evt_x",
        destination_key=key,
        url="https://example.com/hook",
        body="{}",
        secrets=(),
        attempt_count=0,
        account_id="acct_a",
        task_id=task_id,
    )


def types(events: list[Event]) -> list[str]:
    return [e.type.value for e in events]


def test_attempts_announce_exhaustion_and_failing_after_their_record() -> None:
    a = Announcements(failing_after=2)
    d = due("sub_1")
    a.attempted(d, DeliveryStatus.PENDING, 1, 500, "HTTP 500", NOW)
    assert a.recorded([d.pk]) == []
    a.attempted(d, DeliveryStatus.PENDING, 2, 500, "HTTP 500", NOW)
    [failing] = a.recorded([d.pk])
    assert failing.type is EventType.SUBSCRIPTION_FAILING
    assert json.loads(failing.body)["data"]["consecutive_failures"] == 2
    a.attempted(d, DeliveryStatus.FAILED, 3, 500, "HTTP 500", NOW)
    # Held until the attempt is recorded, then handed out once.
    assert a.recorded([99]) == []
    [exhausted] = a.recorded([d.pk])
    assert exhausted.type is EventType.DELIVERY_EXHAUSTED
    data = json.loads(exhausted.body)["data"]
    assert (data["event_id"], data["destination"], data["attempts"]) == ("evt_x", "sub_1", 3)
    assert (data["last_status_code"], data["last_error"]) == (500, "HTTP 500")
    assert a.recorded([d.pk]) == []


def test_no_announcement_about_deliveries_of_events_without_a_task() -> None:
    a = Announcements(failing_after=1)
    d = due("sub_1", task_id=None)
    a.attempted(d, DeliveryStatus.FAILED, 9, 500, "HTTP 500", NOW)
    assert a.recorded([d.pk]) == []


def test_a_callback_exhausted_is_announced_but_never_failing() -> None:
    a = Announcements(failing_after=1)
    d = due("https://example.com")
    a.attempted(d, DeliveryStatus.PENDING, 1, None, "refused", NOW)
    assert a.recorded([d.pk]) == []
    a.attempted(d, DeliveryStatus.FAILED, 2, None, "refused", NOW)
    assert types(a.recorded([d.pk])) == ["delivery.exhausted"]


def test_a_410_or_a_success_is_not_a_failure_to_count() -> None:
    a = Announcements(failing_after=2)
    d = due("sub_1")
    a.attempted(d, DeliveryStatus.PENDING, 1, 500, "HTTP 500", NOW)
    a.attempted(d, DeliveryStatus.SUCCEEDED, 2, 200, None, NOW)
    a.attempted(d, DeliveryStatus.PENDING, 1, 500, "HTTP 500", NOW)
    a.attempted(d, DeliveryStatus.STOPPED, 2, 410, "HTTP 410 Gone", NOW)
    assert a.recorded([d.pk]) == []
