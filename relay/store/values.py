"""The values the storage interface (``relay.store.interface``) takes and gives: queries,
pages, replies and snapshots. Frozen, no behaviour."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Literal, TypeVar

from relay.copies.values import CopyState
from relay.models import (
    Account,
    Attempt,
    Delivery,
    DeliveryStatus,
    EventType,
    TaskStatus,
)
from relay.submissions import Submission

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
    lease_until: datetime
    """While unanswered, its holder's lease: after it the reservation may be taken over."""


@dataclass(frozen=True, slots=True)
class KeyReserved:
    """An Idempotency-Key now held by the request that reserved it, with the latest
    submission made under the key (None: none), read in the reservation's own write."""

    latest: Submission | None


@dataclass(frozen=True, slots=True)
class KeyAnswer:
    """The answer to an Idempotency-Key's request, kept by the transaction that does what it
    answers (``create_task``), so no crash falls between the two. Kept only while ``owner``
    still holds the key, as ``finish_idempotency_key`` keeps one."""

    account_id: str
    key: str
    owner: str
    status_code: int
    body: str


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
    uncertain_submissions: int = 0
    """Creates whose provider answer was lost, not yet settled (``relay.submissions``)."""
    copies: Mapping[CopyState, int] = field(default_factory=dict)
    """Output copies by state (``relay.copies``); a state with none is absent."""
    stored_bytes: int = 0
    """The bytes the stored copies hold in the output store."""


@dataclass(frozen=True, slots=True)
class DeliveryView:
    delivery: Delivery
    attempts: list[Attempt]


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """An account as ``relay accounts list`` shows it."""

    account: Account
    active_keys: int
    """Its API keys that work at the time asked about (a rotation's grace counts)."""
