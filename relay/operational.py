"""Operational events: the relay telling an account about its own trouble (a subscription
disabled or failing, a delivery that used up its retries, a provider down or back), in the
same feed as task events. Pure builders; the stores and workers write them.

They carry no task (``task_id`` null, ``sequence`` 0) and go only to the account's
subscriptions whose ``event_types`` names them (``relay.transitions.fan_out``): never to a
task's callback, never to a subscription left on the default filter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relay.ids import new_id
from relay.models import Event, EventType, Subscription, iso
from relay.provider_answers import ProviderHealth
from relay.transitions import envelope

IdFactory = Callable[[], str]


def new_event_id() -> str:
    return new_id("evt")


def account_event(
    account_id: str,
    type_: EventType,
    data: Mapping[str, Any],
    now: datetime,
    new_id: IdFactory,
) -> Event:
    """One operational event of ``account_id``, its body the envelope delivered and listed."""
    event_id = new_id()
    return Event(
        id=event_id,
        account_id=account_id,
        task_id=None,
        type=type_,
        sequence=0,
        created_at=now,
        body=envelope(event_id, type_, 0, now, dict(data)),
    )


def subscription_disabled(
    subscription: Subscription, cause: str, now: datetime, new_id: IdFactory
) -> Event:
    """``cause``: ``gone`` (the receiver answered 410) or ``failing`` (no success for the
    configured days); the subscription as it now is says why in ``disabled_reason``."""
    return account_event(
        subscription.account_id,
        EventType.SUBSCRIPTION_DISABLED,
        {
            "subscription_id": subscription.id,
            "cause": cause,
            "reason": subscription.disabled_reason,
            "subscription": subscription.to_json(),
        },
        now,
        new_id,
    )


@dataclass(frozen=True, slots=True)
class Exhausted:
    """A delivery that used up its retries, as its engine saw it."""

    account_id: str
    delivery_id: str
    event_id: str
    task_id: str | None
    destination: str
    """The subscription's id, or the callback URL's origin (``DueDelivery.destination_key``)."""
    url: str
    attempts: int
    status_code: int | None
    error: str | None


def delivery_exhausted(x: Exhausted, now: datetime, new_id: IdFactory) -> Event:
    return account_event(
        x.account_id,
        EventType.DELIVERY_EXHAUSTED,
        {
            "delivery_id": x.delivery_id,
            "event_id": x.event_id,
            "task_id": x.task_id,
            "destination": x.destination,
            "url": x.url,
            "attempts": x.attempts,
            "last_status_code": x.status_code,
            "last_error": x.error,
        },
        now,
        new_id,
    )


def subscription_failing(
    account_id: str,
    subscription_id: str,
    url: str,
    failures: int,
    last_error: str | None,
    now: datetime,
    new_id: IdFactory,
) -> Event:
    return account_event(
        account_id,
        EventType.SUBSCRIPTION_FAILING,
        {
            "subscription_id": subscription_id,
            "url": url,
            "consecutive_failures": failures,
            "last_error": last_error,
        },
        now,
        new_id,
    )


def provider_event(
    account_id: str, type_: EventType, health: ProviderHealth, now: datetime, new_id: IdFactory
) -> Event:
    """``provider.unhealthy`` or ``provider.recovered`` (``health_turn``), with the
    provider's health as this instance sees it."""
    return account_event(
        account_id,
        type_,
        {
            "provider": health.name,
            "dialect": health.dialect,
            "consecutive_faults": health.consecutive_faults,
            "last_fault": health.last_fault,
            "last_fault_at": iso(health.last_fault_at),
            "backoff_until": iso(health.backoff_until),
        },
        now,
        new_id,
    )


def health_turn(
    was_unhealthy: bool, health: ProviderHealth, unhealthy_after: int
) -> EventType | None:
    """Whether a provider's health just turned: unhealthy once its run of faults reaches
    ``unhealthy_after``, recovered once it answers again (the run back to 0). A run that
    never reached the threshold and ended is no news."""
    if not was_unhealthy and health.consecutive_faults >= unhealthy_after:
        return EventType.PROVIDER_UNHEALTHY
    if was_unhealthy and health.consecutive_faults == 0:
        return EventType.PROVIDER_RECOVERED
    return None


@dataclass(slots=True)
class FailureRun:
    """Consecutive failed attempts per subscription, to say ``subscription.failing`` once
    per failing period: when a run reaches ``after``; a success ends the period."""

    after: int
    runs: dict[str, int]

    def failed(self, subscription_id: str) -> int | None:
        """The run's new length when it has just reached the threshold, else None."""
        n = self.runs.get(subscription_id, 0) + 1
        self.runs[subscription_id] = n
        return n if n == self.after else None

    def succeeded(self, subscription_id: str) -> None:
        self.runs.pop(subscription_id, None)
