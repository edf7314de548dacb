"""The storage interface: a narrow, domain-named contract that SQLite and PostgreSQL both
implement, and that one contract test suite (``tests/store``) checks for both.

Every read takes the caller's ``account_id``: another account's object does not exist.
Every write that changes a task writes its events and their deliveries in the same
transaction (a transactional outbox), so no event is ever lost between two writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Literal, Protocol, TypeVar

from relay.models import (
    Account,
    Attempt,
    Delivery,
    DeliveryStatus,
    Destination,
    DueDelivery,
    Event,
    EventType,
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
    after: int | None = None
    limit: int = 50
    order: Order = "desc"


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One finished attempt and what it decides for its delivery."""

    delivery_pk: int
    attempt: Attempt
    status: DeliveryStatus
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryView:
    delivery: Delivery
    attempts: list[Attempt]


class DuplicateTask(Exception):
    """This provider task is already tracked: by the same account (``existing_id`` names its
    task) or by another one (``existing_id`` is None: nothing of theirs is revealed)."""

    def __init__(self, existing_id: str | None) -> None:
        super().__init__(existing_id)
        self.existing_id = existing_id


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
        self, now: datetime, limit: int, lease_seconds: float
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
        self, now: datetime, limit: int, lease_seconds: float, owner: str, *,
        in_flight: Mapping[str, int] | None = None, per_destination: int | None = None,
    ) -> list[DueDelivery]:
        """Lease up to ``limit`` due deliveries, the longest due first, taking no more for a
        destination key than ``per_destination`` minus its ``in_flight`` count allows."""
        ...

    async def record_attempts(self, records: Sequence[AttemptRecord], owner: str) -> None: ...

    async def next_delivery_at(self, after: datetime) -> datetime | None:
        """The earliest attempt scheduled later than ``after`` (due ones are for the claim)."""
        ...

    async def release_leases(self) -> None:
        """Forget every lease: for a single-instance store starting after a crash."""
        ...
