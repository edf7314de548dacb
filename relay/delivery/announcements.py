"""Which operational events the delivery engine's attempts call for (``relay.operational``):
``delivery.exhausted`` when a delivery of a task event used up its retries, and
``subscription.failing`` when a subscription's attempts have failed ``failing_after`` times
in a row (once per failing period: a delivered attempt ends it). Pure bookkeeping; the
engine writes the events once the attempts that caused them are recorded.

Deliveries of operational events never cause more of them: a subscription that fails to
take its ``delivery.exhausted`` must not be sent a ``delivery.exhausted`` about that, and
so on for ever. Test events (``relay.test``) carry no task and are left out the same way.

The failing run is counted in the engine's memory, per instance: a restart starts it
again, so a subscription still failing then is announced once more, which is the safe side.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from relay.models import DeliveryStatus, DueDelivery, Event
from relay.operational import (
    Exhausted,
    FailureRun,
    delivery_exhausted,
    new_event_id,
    subscription_failing,
)

SUBSCRIPTION_KEY = "sub_"
"""A subscription's destination key is its id (a callback's is its URL's origin)."""

MAX_HELD = 10_000
"""Events held for records the database never took (an outage): dropped past this."""


class Announcements:
    def __init__(self, failing_after: int) -> None:
        self._runs = FailureRun(failing_after, {})
        self._held: dict[int, list[Event]] = {}

    def attempted(
        self,
        d: DueDelivery,
        status: DeliveryStatus,
        number: int,
        status_code: int | None,
        error: str | None,
        now: datetime,
    ) -> None:
        """One finished attempt of ``d``, about to be recorded with ``status``."""
        if d.task_id is None:
            return
        events: list[Event] = []
        subscription = d.destination_key if d.destination_key.startswith(SUBSCRIPTION_KEY) else None
        if status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.STOPPED):
            # Delivered, or a 410 that disables the subscription (``subscription.disabled``
            # says so): either way its failing period, if any, is over.
            if subscription is not None:
                self._runs.succeeded(subscription)
            return
        if subscription is not None:
            run = self._runs.failed(subscription)
            if run is not None:
                events.append(
                    subscription_failing(
                        d.account_id, subscription, d.url, run, error, now, new_event_id
                    )
                )
        if status is DeliveryStatus.FAILED:
            exhausted = Exhausted(
                account_id=d.account_id,
                delivery_id=d.id,
                event_id=d.event_id,
                task_id=d.task_id,
                destination=d.destination_key,
                url=d.url,
                attempts=number,
                status_code=status_code,
                error=error,
            )
            events.append(delivery_exhausted(exhausted, now, new_event_id))
        if events:
            if len(self._held) >= MAX_HELD:
                self._held.clear()
            self._held[d.pk] = events

    def recorded(self, delivery_pks: Iterable[int]) -> list[Event]:
        """The events of attempts now recorded, to write."""
        return [e for pk in delivery_pks for e in self._held.pop(pk, ())]
