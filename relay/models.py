"""Frozen domain values: the normalized task, events, deliveries and subscriptions (what
providers answer is in ``relay.provider_answers``).

Nothing here does I/O. Times are timezone-aware UTC ``datetime`` values throughout.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from relay.copies.values import TaskOutput
from relay.pricing import Cost
from relay.routing import SubmissionStep

JSON = dict[str, Any]


class TaskStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self not in (TaskStatus.QUEUED, TaskStatus.RUNNING)

    @property
    def rank(self) -> int:
        """Statuses only move forward in rank: queued < running < any terminal."""
        if self is TaskStatus.QUEUED:
            return 0
        if self is TaskStatus.RUNNING:
            return 1
        return 2


class EventType(enum.StrEnum):
    TASK_QUEUED = "task.queued"
    TASK_RUNNING = "task.running"
    TASK_PROGRESS = "task.progress"
    TASK_SUCCEEDED = "task.succeeded"
    TASK_FAILED = "task.failed"
    TASK_EXPIRED = "task.expired"
    TASK_CANCELLED = "task.cancelled"
    TASK_OUTPUT_STORED = "task.output_stored"
    """The task's files were stored after its ``task.succeeded`` went out without them."""
    TASK_RESUBMITTED = "task.resubmitted"
    """The provider that had the task failed it, and the relay submitted it again on the
    next provider of its route (the same task id, ``relay.tasks.resubmitting``)."""
    RELAY_TEST = "relay.test"
    # Operational events (``relay.operational``): about the account's relay, not one task,
    # so ``task_id`` is null; only a subscription that names them in its filter gets them.
    SUBSCRIPTION_DISABLED = "subscription.disabled"
    SUBSCRIPTION_FAILING = "subscription.failing"
    DELIVERY_EXHAUSTED = "delivery.exhausted"
    PROVIDER_UNHEALTHY = "provider.unhealthy"
    PROVIDER_RECOVERED = "provider.recovered"
    BUDGET_EXCEEDED = "budget.exceeded"

    @classmethod
    def for_status(cls, status: TaskStatus) -> EventType:
        return cls("task." + status.value)


TERMINAL_EVENT_TYPES: frozenset[EventType] = frozenset(
    {
        EventType.TASK_SUCCEEDED,
        EventType.TASK_FAILED,
        EventType.TASK_EXPIRED,
        EventType.TASK_CANCELLED,
    }
)
DEFAULT_EVENT_TYPES: frozenset[EventType] = TERMINAL_EVENT_TYPES | {EventType.TASK_OUTPUT_STORED}
"""What a destination with no explicit filter receives (DESIGN §3): the outcome, and the
durable link of a video stored after the outcome went out (``relay.copies.rules``)."""
OPERATIONAL_EVENT_TYPES: frozenset[EventType] = frozenset(
    {
        EventType.SUBSCRIPTION_DISABLED,
        EventType.SUBSCRIPTION_FAILING,
        EventType.DELIVERY_EXHAUSTED,
        EventType.PROVIDER_UNHEALTHY,
        EventType.PROVIDER_RECOVERED,
        EventType.BUDGET_EXCEEDED,
    }
)
"""The relay's own trouble, told to an account: never in the defaults, never to a task's
callback; a subscription receives them only when its ``event_types`` names them."""


class ErrorCode(enum.StrEnum):
    """The small normalized error-code set of a task's ``error`` (DESIGN §3)."""

    CONTENT_POLICY = "content_policy"
    INVALID_REQUEST = "invalid_request"
    QUOTA_EXCEEDED = "quota_exceeded"
    PROVIDER_ERROR = "provider_error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    NOT_FOUND = "task_not_found"
    PAST_RETENTION = "past_provider_retention"
    """The provider no longer keeps the task (Ark: 7 days after creation)."""


@dataclass(frozen=True, slots=True)
class TaskError:
    code: ErrorCode
    message: str
    retryable: bool = False
    provider_code: str | None = None
    """The provider's own code, kept verbatim so nothing is lost in translation."""

    def to_json(self) -> JSON:
        return {
            "code": self.code.value,
            "message": self.message,
            "retryable": self.retryable,
            "provider_code": self.provider_code,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskError:
        return cls(
            code=ErrorCode(data["code"]),
            message=str(data["message"]),
            retryable=bool(data.get("retryable", False)),
            provider_code=data.get("provider_code"),
        )


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str
    created_at: datetime


LOOKS_KEPT = 10
"""How many of a task's latest looks (``Task.looks``) are kept with it."""


@dataclass(frozen=True, slots=True)
class Look:
    """One query the relay made about a task (for its timeline): when, why (``poll`` on its
    schedule, ``push`` to confirm a provider's push, ``refresh`` asked through the API),
    and what came of it: ``answered`` with the provider's status and progress, or the
    fault's kind (``not_found``, ``rate_limited``, ``timeout``, ...)."""

    at: datetime
    via: str
    outcome: str
    status: str | None = None
    progress: int | None = None

    def to_json(self) -> JSON:
        return {
            "at": self.at.timestamp(),
            "via": self.via,
            "outcome": self.outcome,
            "status": self.status,
            "progress": self.progress,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Look:
        return cls(
            at=datetime.fromtimestamp(data["at"], UTC),
            via=data["via"],
            outcome=data["outcome"],
            status=data.get("status"),
            progress=data.get("progress"),
        )


@dataclass(frozen=True, slots=True)
class Task:
    """The normalized task, as stored and as delivered in an event's ``data``."""

    id: str
    account_id: str
    provider: str
    provider_task_id: str | None
    status: TaskStatus
    created_at: datetime
    updated_at: datetime
    sequence: int = 0
    """The ``sequence`` of the last event emitted for this task."""
    version: int = 0
    """Bumped on every write; saves are conditional on it (optimistic concurrency)."""
    model: str | None = None
    progress: int | None = None
    video_url: str | None = None
    video_url_expires_at: datetime | None = None
    last_frame_url: str | None = None
    provider_video_url: str | None = None
    """The provider's own link; ``video_url`` is the stored copy's once there is one."""
    provider_video_url_expires_at: datetime | None = None
    provider_last_frame_url: str | None = None
    output: TaskOutput | None = None
    """What the relay keeps of the task's files; None: not copied (outputs are off)."""
    error: TaskError | None = None
    usage: JSON | None = None
    resolution: str | None = None
    ratio: str | None = None
    duration: int | None = None
    fps: int | None = None
    seed: int | None = None
    cost: Cost | None = None
    """What the task cost by the configured price table (``relay.pricing``), once it
    succeeded; None without a price or the usage it needs."""
    route: str | None = None
    """The route the task was submitted through (``relay.routing``), if any."""
    submissions: tuple[SubmissionStep, ...] = ()
    """Each provider asked to create it (or skipped), in order: the last one took it."""
    estimate: Cost | None = None
    """What the task likely costs at its provider, as estimated when it was submitted
    (``relay.tasks.budgets``): a budget counts it until the task finishes. Never shown."""
    resubmit_lease: datetime | None = None
    """While one look asks a provider to take the task again (``relay.tasks.resubmitting``):
    until when that look holds the resubmission; no other look asks anyone before then."""
    kept_input: JSON | None = None
    """The caller's input and its format (``{"input": ..., "format": ...}``), kept only
    through a route that resubmits (``relay.tasks.resubmitting``); never shown."""
    reference: str | None = None
    metadata: JSON = field(default_factory=dict)
    callback_url: str | None = None
    callback_events: frozenset[EventType] | None = None
    completed_at: datetime | None = None
    next_poll_at: datetime | None = None
    poll_count: int = 0
    not_found_count: int = 0
    looks: tuple[Look, ...] = ()
    """The latest queries about this task, oldest first, at most ``LOOKS_KEPT`` (kept for
    the dashboard's timeline; not part of the public task)."""

    def looked(self, look: Look) -> Task:
        """This task with ``look`` added to its latest looks."""
        return replace(self, looks=(*self.looks, look)[-LOOKS_KEPT:])

    def to_json(self) -> JSON:
        """The public shape (DESIGN §3): every field present, ``null`` when unknown."""
        return {
            "id": self.id,
            "provider": self.provider,
            "provider_task_id": self.provider_task_id,
            "model": self.model,
            "status": self.status.value,
            "progress": self.progress,
            "video_url": self.video_url,
            "video_url_expires_at": iso(self.video_url_expires_at),
            "last_frame_url": self.last_frame_url,
            "provider_video_url": self.provider_video_url,
            "provider_video_url_expires_at": iso(self.provider_video_url_expires_at),
            "output": self.output.to_json() if self.output else None,
            "cost": self.cost.to_json() if self.cost else None,
            "route": self.route,
            "submissions": [step.to_json() for step in self.submissions],
            "error": self.error.to_json() if self.error else None,
            "usage": self.usage,
            "resolution": self.resolution,
            "ratio": self.ratio,
            "duration": self.duration,
            "fps": self.fps,
            "seed": self.seed,
            "reference": self.reference,
            "metadata": self.metadata,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "completed_at": iso(self.completed_at),
        }


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    account_id: str
    task_id: str | None
    type: EventType
    sequence: int
    created_at: datetime
    body: str
    """The envelope exactly as delivered: serialized once, signed and sent as these bytes."""
    url_expires_at: datetime | None = None
    """For a ``task.succeeded`` event: when its ``video_url`` stops working."""


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    """Gave up after the whole schedule; stays replayable."""
    STOPPED = "stopped"
    """The receiver said 410 Gone, or the destination was removed."""


@dataclass(frozen=True, slots=True)
class Destination:
    """Where events go: a task's callback URL or a subscription."""

    id: str
    account_id: str
    kind: str
    url: str
    key: str
    """What per-destination concurrency is counted on (a callback URL's origin, a
    subscription's id)."""
    event_types: frozenset[EventType] | None
    task_id: str | None = None
    secret: str | None = None
    """``None``: deliveries are signed with the account's callback secret."""
    body_format: str = "standard"
    """How a delivery's body is shaped: ``standard`` (the event envelope, DESIGN §3), or
    a front door's own shape (``ark``: the Ark task object, as Ark sends its callbacks)."""


CALLBACK = "callback"
SUBSCRIPTION = "subscription"


class SubscriptionStatus(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class Subscription:
    """An account-wide REST hook: every event of the account its filter wants."""

    id: str
    account_id: str
    url: str
    event_types: frozenset[EventType] | None
    status: SubscriptionStatus
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    """Static headers sent with every delivery (a receiver's own auth token)."""
    rate_limit: float | None = None
    """Requests per second at most; None: only the concurrency cap."""
    disabled_reason: str | None = None
    disabled_at: datetime | None = None
    failing_since: datetime | None = None
    last_success_at: datetime | None = None
    previous_secret_until: datetime | None = None

    def to_json(self) -> JSON:
        """The public shape: header values are secrets of the receiver's, so only names."""
        return {
            "id": self.id,
            "url": self.url,
            "event_types": sorted(t.value for t in self.event_types)
            if self.event_types is not None
            else None,
            "description": self.description,
            "headers": sorted(name for name, _ in self.headers),
            "rate_limit": self.rate_limit,
            "status": self.status.value,
            "disabled_reason": self.disabled_reason,
            "disabled_at": iso(self.disabled_at),
            "failing_since": iso(self.failing_since),
            "last_success_at": iso(self.last_success_at),
            "previous_secret_expires_at": iso(self.previous_secret_until),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    account_id: str
    event_id: str
    destination_id: str
    url: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    delivery_id: str
    number: int
    started_at: datetime
    latency_ms: float
    outcome: str
    status_code: int | None = None
    error: str | None = None
    response_snippet: str | None = None


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed delivery with everything needed to send it, and nothing more."""

    pk: int
    id: str
    event_id: str
    destination_key: str
    url: str
    body: str
    secrets: tuple[str, ...]
    attempt_count: int
    account_id: str = ""
    task_id: str | None = None
    url_expires_at: datetime | None = None
    """When the event's video URL stops working; a send after it asks for a fresh one."""
    headers: tuple[tuple[str, str], ...] = ()
    """The destination's static headers."""
    rate_limit: float | None = None
    body_format: str = "standard"
    """The destination's ``body_format``: how the stored envelope is shaped when sent."""


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
