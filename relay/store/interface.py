"""The storage interface: a narrow, domain-named contract that SQLite and PostgreSQL both
implement, and that one contract test suite (``tests/store``) checks for both.

Every read takes the caller's ``account_id``: another account's object does not exist.
Every write that changes a task writes its events and their deliveries in the same
transaction (a transactional outbox), so no event is ever lost between two writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

from relay.models import (
    Account,
    Attempt,
    Delivery,
    DeliveryStatus,
    Destination,
    DueDelivery,
    Event,
    EventType,
    Subscription,
    Task,
    TaskStatus,
)
from relay.transitions import Change

T = TypeVar("T")
Order = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_after: int | None
    """The position to continue from (an opaque pk; the API signs it into a cursor)."""


@dataclass(frozen=True, slots=True)
class TaskQuery:
    status: TaskStatus | None = None
    provider: str | None = None
    reference: str | None = None
    after: int | None = None
    limit: int = 50
    order: Order = "desc"


@dataclass(frozen=True, slots=True)
class EventQuery:
    type: EventType | None = None
    task_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    delivery_status: DeliveryStatus | None = None
    """Only events with at least one delivery in this status (``failed``: what was missed)."""
    after: int | None = None
    limit: int = 50
    order: Order = "desc"


@dataclass(frozen=True, slots=True)
class ReplayQuery:
    since: datetime | None = None
    until: datetime | None = None
    only_failed: bool = False
    """Only events whose deliveries to the destination failed (and none succeeded)."""


@dataclass(frozen=True, slots=True)
class IdempotentReply:
    """What a request with this Idempotency-Key was answered (status None: still running)."""

    request_hash: str
    status_code: int | None
    body: str | None


SUBSCRIPTION_FIELDS = frozenset({"url", "event_types", "description", "headers", "rate_limit"})
"""What ``update_subscription`` may change."""


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One finished attempt and what it decides for its delivery."""

    delivery_pk: int
    attempt: Attempt
    status: DeliveryStatus
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """What the database holds, for ``/metrics`` (read at scrape time, not counted)."""

    tasks: Mapping[TaskStatus, int]
    """Tasks by status; a status with none is absent."""
    due_deliveries: int
    """Deliveries due now and not leased to a sender: the backlog."""
    oldest_due_at: datetime | None
    """When the longest-waiting of those came due."""


@dataclass(frozen=True, slots=True)
class DeliveryView:
    delivery: Delivery
    attempts: list[Attempt]


class Store(Protocol):
    async def migrate(self) -> list[int]:
        """Apply pending migrations; the versions applied."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``StoreError`` when the database does not answer."""
        ...

    async def secret_key(self) -> str:
        """The instance secret for signed tokens, generated once and kept."""
        ...

    async def listen(self, on_work: Callable[[str], None]) -> None:
        """Call ``on_work("deliveries")`` or ``on_work("polls")`` when another instance wrote
        work that is due; returns once listening, and keeps listening (through database
        restarts) until ``close``. SQLite: nothing to do, a single instance wakes itself."""
        ...

    # accounts
    async def create_account(
        self, account: Account, key_hash: str, callback_secret: str
    ) -> None: ...

    async def account_by_key_hash(self, key_hash: str) -> Account | None: ...

    async def callback_secret(self, account_id: str) -> str | None: ...

    # tasks
    async def create_task(self, change: Change, callback: Destination | None) -> None:
        """Insert a task with its first events; raise ``DuplicateTask``."""
        ...

    async def save_task(self, change: Change, expected_version: int) -> bool:
        """Write ``change`` if the stored task is still at ``expected_version``; False if not.
        Also releases the task's poll lease."""
        ...

    async def get_task(self, account_id: str, task_id: str) -> Task | None: ...

    async def list_tasks(self, account_id: str, query: TaskQuery) -> Page[Task]: ...

    async def claim_due_polls(
        self, now: datetime, limit: int, lease_seconds: float, owner: str
    ) -> list[Task]: ...

    async def next_poll_at(self, after: datetime) -> datetime | None:
        """The earliest poll scheduled later than ``after`` (due ones are for the claim)."""
        ...

    # events
    async def get_event(self, account_id: str, event_id: str) -> Event | None: ...

    async def list_events(self, account_id: str, query: EventQuery) -> Page[Event]: ...

    async def event_deliveries(self, account_id: str, event_id: str) -> list[DeliveryView]: ...

    async def redeliver(
        self, account_id: str, event_id: str, destination_id: str | None, now: datetime
    ) -> list[Delivery]:
        """New deliveries of a stored event to all its destinations, or to one."""
        ...

    # deliveries
    async def claim_due_deliveries(
        self,
        now: datetime,
        limit: int,
        lease_seconds: float,
        owner: str,
        *,
        in_flight: Mapping[str, int] | None = None,
        per_destination: int | None = None,
    ) -> list[DueDelivery]:
        """Lease up to ``limit`` due deliveries, the longest due first, taking no more for a
        destination key than ``per_destination`` minus its ``in_flight`` count allows."""
        ...

    async def record_attempts(self, records: Sequence[AttemptRecord], owner: str) -> None: ...

    async def next_delivery_at(self, after: datetime) -> datetime | None:
        """The earliest attempt scheduled later than ``after`` (due ones are for the claim)."""
        ...

    async def metrics_snapshot(self, now: datetime) -> MetricsSnapshot:
        """Tasks by status and the backlog of due, unleased deliveries at ``now``."""
        ...

    async def release_leases(self) -> None:
        """Forget the leases that are this store's to reclaim, for an instance starting
        after a crash. SQLite (one instance): every lease. PostgreSQL (several): only those
        taken through this store object, never another live instance's; a crashed
        instance's leases expire."""
        ...

    # subscriptions

    async def create_subscription(self, subscription: Subscription, secret: str) -> None: ...

    async def get_subscription(self, account_id: str, sub_id: str) -> Subscription | None: ...

    async def list_subscriptions(
        self, account_id: str, after: int | None, limit: int
    ) -> Page[Subscription]: ...

    async def update_subscription(
        self, account_id: str, sub_id: str, changes: Mapping[str, Any], now: datetime
    ) -> Subscription | None:
        """Change the ``SUBSCRIPTION_FIELDS`` named in ``changes``."""
        ...

    async def delete_subscription(self, account_id: str, sub_id: str, now: datetime) -> bool:
        """Remove it and stop every pending delivery to it."""
        ...

    async def disable_subscription(
        self, account_id: str, sub_id: str, reason: str, now: datetime
    ) -> Subscription | None:
        """Stop sending to it (its pending deliveries stop) and remember since when it
        misses events, for ``enable_subscription`` to replay."""
        ...

    async def enable_subscription(
        self, account_id: str, sub_id: str, now: datetime
    ) -> tuple[Subscription, datetime | None] | None:
        """Send to it again; also returns since when it missed events (None: it did not)."""
        ...

    async def rotate_subscription_secret(
        self, account_id: str, sub_id: str, secret: str, grace_until: datetime, now: datetime
    ) -> Subscription | None:
        """A new secret; the old one keeps signing (as well) until ``grace_until``."""
        ...

    async def rotate_callback_secret(
        self, account_id: str, secret: str, grace_until: datetime
    ) -> None: ...

    async def disable_failing_subscriptions(self, now: datetime, failing_for: float) -> list[str]:
        """Disable subscriptions whose deliveries have failed for ``failing_for`` seconds
        without a success; their ids."""
        ...

    async def replay(
        self,
        account_id: str,
        destination_id: str,
        query: ReplayQuery,
        now: datetime,
        *,
        after: int | None,
        limit: int,
    ) -> tuple[int, int | None]:
        """New ordered deliveries to one destination for up to ``limit`` matching events
        after position ``after``, oldest first: (how many, where to continue or None)."""
        ...

    async def count_replay(
        self, account_id: str, destination_id: str, query: ReplayQuery
    ) -> int: ...

    async def insert_test_delivery(
        self,
        event: Event,
        destination_id: str,
        owner: str,
        now: datetime,
        lease_seconds: float,
    ) -> DueDelivery | None:
        """Write a ``relay.test`` event and one delivery of it to the subscription, already
        leased to ``owner`` so the caller sends it at once; None: no such subscription."""
        ...

    # idempotency

    async def reserve_idempotency_key(
        self, account_id: str, key: str, request_hash: str, now: datetime
    ) -> IdempotentReply | None:
        """None: the key is now this request's; else what the first request with it got."""
        ...

    async def finish_idempotency_key(
        self, account_id: str, key: str, status_code: int, body: str
    ) -> None: ...

    async def forget_idempotency_key(self, account_id: str, key: str) -> None: ...

    async def prune_idempotency_keys(self, before: datetime) -> int: ...

    # retention

    async def prune_history(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` events created before ``before`` with their deliveries and
        attempts, in one short transaction; never an event with a pending delivery. How many
        events went (0: nothing left to prune)."""
        ...
