"""The store roles of the delivery engine: claim due deliveries, record their attempts, hand
back what a stopping engine will not send (``DeliveryStore``); and operational events written
on their own (``OperationalEventStore``). Part of ``relay.store.interface.Store``, whose
docstring has the leases and fencing every backend keeps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from relay.delivery.fairness import ClaimLimits
from relay.models import DueDelivery, Event, EventType
from relay.store.values import AttemptRecord


class DeliveryStore(Protocol):
    """What the delivery engine needs: claim due deliveries, record their attempts."""

    async def claim_due_deliveries(
        self,
        now: datetime,
        limit: int,
        lease_seconds: float,
        owner: str,
        *,
        limits: ClaimLimits | None = None,
    ) -> list[DueDelivery]:
        """Lease up to ``limit`` due deliveries to ``owner``, no more for a destination key
        or an account than ``limits`` leaves room for (``ClaimLimits``: a rate-limited
        destination without a gate at its current rate takes one; deliveries to its
        ``uncounted`` keys do not count against their account's share, only against its
        total). The accounts take turns: each one's longest-due
        delivery first, then each one's second, and so on; within a turn, the longest due
        first. A replayed (ordered) delivery waits for the task's earlier ordered deliveries
        to the same destination."""
        ...

    async def record_attempts(self, records: Sequence[AttemptRecord], owner: str) -> None:
        """Apply finished attempts in one transaction: each record adds its attempt, sets its
        delivery's status and next attempt and releases the lease, only where ``owner``
        still holds it and the attempt number is the next one (see the module docstring);
        and updates the health (last success, failing since) of the subscriptions sent to.
        A subscription that answered 410 is disabled, and its ``subscription.disabled``
        written, in that transaction."""
        ...

    async def record_and_claim(
        self,
        records: Sequence[AttemptRecord],
        owner: str,
        now: datetime,
        limit: int,
        lease_seconds: float,
        *,
        limits: ClaimLimits | None = None,
    ) -> list[DueDelivery]:
        """The delivery loop's cycle in one transaction: ``record_attempts(records, owner)``,
        then ``claim_due_deliveries(now, limit, lease_seconds, owner, limits=limits)``, which
        sees what the records changed (leases released, retries scheduled). Either both
        happen or neither does. No records or a ``limit`` of 0: that half is left out."""
        ...

    async def next_delivery_at(self, after: datetime) -> datetime | None:
        """The earliest attempt scheduled later than ``after`` (due ones are for the claim)."""
        ...

    async def release_deliveries(self, pks: Sequence[int], owner: str) -> None:
        """Claimed deliveries ``owner`` will not send (it is stopping): those of ``pks``
        still leased to it are due again at once (at their next attempt, which is past)."""
        ...


class OperationalEventStore(Protocol):
    """Operational events (``relay.operational``) written on their own; those a store
    change causes (a subscription disabled) are written in that change's transaction."""

    async def write_account_events(self, events: Sequence[Event]) -> None:
        """Write operational events (``relay.operational``) and their deliveries to the
        subscriptions that asked for them, in one transaction."""
        ...

    async def accounts_wanting(self, type_: EventType) -> list[str]:
        """The accounts with an active subscription whose filter names ``type_``."""
        ...
