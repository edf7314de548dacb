"""What the API answers, as pydantic models: the response half of the OpenAPI document.

The handlers build their answers as dicts (``Task.to_json``, ``delivery_json``, …); these
models describe those dicts exactly, field for field, and nothing else: every model forbids
extra fields and requires every field (a value the relay does not know is ``null``, never
missing, DESIGN §3). ``relay.api.openapi`` publishes their JSON schemas, and the tests
validate real answers against them, so a handler that drifts from its documented shape
fails a test instead of surprising a client.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from relay.models import DeliveryStatus, ErrorCode, EventType, SubscriptionStatus, TaskStatus

Time = str
"""An RFC 3339 UTC time with second precision, ``2026-06-06T16:03:11Z``."""

_TIME: JsonDict = {"format": "date-time", "examples": ["2026-06-06T16:03:11Z"]}


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def time_field(description: str | None = None) -> Any:
    return Field(description=description, json_schema_extra=_TIME)


class ErrorDetail(Out):
    code: str = Field(description="A stable, machine-readable code, e.g. invalid_request.")
    message: str = Field(description="What was wrong, for a human.")


class Error(Out):
    """Every 4xx and 5xx the relay itself answers."""

    error: ErrorDetail


class Me(Out):
    id: str
    name: str
    created_at: Time = time_field()


class CallbackSecret(Out):
    secret: str = Field(description="whsec_…: signs the deliveries to task callback URLs.")


class RotatedCallbackSecret(Out):
    secret: str
    previous_secret_expires_at: Time | None = time_field(
        "Until then deliveries carry a signature with the old secret too."
    )


class TaskError(Out):
    code: ErrorCode
    message: str
    retryable: bool
    provider_code: str | None = Field(description="The provider's own code, verbatim.")


class StoredFile(Out):
    size: int = Field(description="Bytes.")
    sha256: str = Field(description="Hex SHA-256 of the stored bytes.")
    content_type: str


class TaskOutput(Out):
    """What the relay keeps of the task's files (outputs.store); null when not copied."""

    status: Literal["pending", "stored", "failed", "deleted"]
    video: StoredFile | None
    last_frame: StoredFile | None
    stored_at: Time | None = time_field()
    error: str | None = Field(description="Why the last try of a copy failed.")
    deleted_at: Time | None = time_field()
    deleted_reason: str | None


class SubmissionStep(Out):
    provider: str
    at: Time = time_field()
    outcome: Literal["skipped", "not_accepted", "uncertain", "accepted"]
    error: str | None = Field(description="Why it was skipped or not accepted.")


class Cost(Out):
    amount: str = Field(description="A decimal string (never a float), e.g. 0.1525.")
    currency: str = Field(description="ISO 4217, from the provider's price table.")
    basis: str = Field(
        description="How it was computed, e.g. 108900 tokens x 1.40 USD per million."
    )


class Task(Out):
    """The normalized task (DESIGN §3): every field present, ``null`` when unknown."""

    id: str
    provider: str
    provider_task_id: str | None
    model: str | None
    status: TaskStatus
    progress: int | None
    video_url: str | None = Field(
        description="The stored copy's stable link once the video is stored "
        "(outputs.store), else the provider's link."
    )
    video_url_expires_at: Time | None = time_field("null for a stored copy's link.")
    last_frame_url: str | None
    provider_video_url: str | None = Field(description="The provider's own link.")
    provider_video_url_expires_at: Time | None = time_field()
    output: TaskOutput | None
    cost: Cost | None = Field(
        description="Once succeeded, by the provider's configured prices; null without them."
    )
    route: str | None = Field(description="The route it was submitted through, if any.")
    submissions: list[SubmissionStep] = Field(
        description="Each provider asked to create it (or skipped), in order; the last took it. "
        "Empty for a task registered by its provider task id."
    )
    error: TaskError | None
    usage: dict[str, Any] | None
    resolution: str | None
    ratio: str | None
    duration: int | None
    fps: int | None
    seed: int | None
    reference: str | None
    metadata: dict[str, Any]
    created_at: Time = time_field()
    updated_at: Time = time_field()
    completed_at: Time | None = time_field()


class TaskPage(Out):
    data: list[Task]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null on the last one."
    )


class RelayTestData(Out):
    subscription_id: str
    message: str


class RelayNotice(Out):
    code: str = Field(description="e.g. video_url_refreshed, video_url_expired.")
    message: str


class Event(Out):
    """The event envelope: the delivered body, the feed's item and the Zapier sample."""

    id: str = Field(description="Also the webhook-id header; the same on every retry and replay.")
    type: EventType
    timestamp: Time = time_field()
    sequence: int = Field(description="Increases per task; drop an event older than one you have.")
    data: Task | RelayTestData | dict[str, Any] = Field(
        union_mode="left_to_right",  # else a task would be taken as the plain object
        description="The task as it was at the event; for relay.test, the subscription "
        "tested; for an operational event (no task), what it is about.",
    )
    relay_notice: RelayNotice | None = Field(
        default=None,
        description="Only when the relay changed or held back part of the data, and why "
        "(left out otherwise).",
    )

    @model_validator(mode="after")
    def _data_fits_type(self) -> Event:
        # The union alone would take a task that drifted from ``Task`` as the generic
        # object: the type says which branch the data must be.
        if self.type.value.startswith("task."):
            wanted: type[Any] = Task
        elif self.type is EventType.RELAY_TEST:
            wanted = RelayTestData
        else:
            wanted = dict
        if not isinstance(self.data, wanted):
            raise ValueError(f"the data of a {self.type.value} event is not a {wanted.__name__}")
        return self


class EventPage(Out):
    data: list[Event]
    next_cursor: str | None


class Delivery(Out):
    id: str
    event_id: str
    destination_id: str = Field(description="A subscription's id, or a task callback's.")
    url: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: Time | None = time_field()
    created_at: Time = time_field()
    updated_at: Time = time_field()


class Attempt(Out):
    number: int
    started_at: Time = time_field()
    latency_ms: float
    outcome: str
    status_code: int | None
    error: str | None
    response_snippet: str | None = Field(description="The first bytes of the answer.")


class DeliveryWithAttempts(Delivery):
    attempts: list[Attempt]


class EventDeliveries(Out):
    data: list[DeliveryWithAttempts]


class Redelivered(Out):
    data: list[Delivery] = Field(description="The new deliveries, one per destination.")


class Subscription(Out):
    id: str
    url: str
    event_types: list[EventType] | None = Field(description="null: the four terminal task events.")
    description: str | None
    headers: list[str] = Field(
        description="The names of the static headers (values are never shown)."
    )
    rate_limit: float | None
    status: SubscriptionStatus
    disabled_reason: str | None
    disabled_at: Time | None = time_field()
    failing_since: Time | None = time_field()
    last_success_at: Time | None = time_field()
    previous_secret_expires_at: Time | None = time_field()
    created_at: Time = time_field()
    updated_at: Time = time_field()


class SubscriptionWithSecret(Subscription):
    secret: str = Field(description="whsec_…: shown here and on rotation only.")


class EnabledSubscription(Subscription):
    replayed: int = Field(description="Events re-sent that it missed while disabled.")
    missed_since: Time | None = time_field()


class SubscriptionPage(Out):
    data: list[Subscription]
    next_cursor: str | None


class Submission(Out):
    """A create the relay sent to a provider for the account (DESIGN §11)."""

    id: str
    task_id: str | None = Field(description="The task it created, once accepted.")
    provider: str
    state: Literal["pending", "accepted", "not_accepted", "uncertain", "abandoned"] = Field(
        description="uncertain: the provider's answer was lost; the relay never sends it "
        "again, tracks the task if it finds it, or waits to be told (resolve)."
    )
    provider_task_id: str | None
    idempotency_key: str | None
    detail: str | None = Field(description="What happened, in words.")
    reference: str | None
    model: str | None
    created_at: Time = time_field()
    updated_at: Time = time_field()


class SubmissionPage(Out):
    data: list[Submission]
    next_cursor: str | None


class Deleted(Out):
    id: str
    deleted: Literal[True] = Field(description="Always true.")


class SentTest(Out):
    event_id: str
    delivery_id: str
    delivered: bool = Field(description="Whether the receiver answered 2xx.")
    status_code: int | None
    latency_ms: float
    error: str | None
    response_snippet: str | None


class ReplayAccepted(Out):
    subscription_id: str
    replayed: int


class ProviderHealth(Out):
    name: str
    dialect: str
    healthy: bool
    consecutive_faults: int
    last_fault: str | None
    last_fault_at: Time | None = time_field()
    backoff_until: Time | None = time_field()
    in_flight: int


class Provider(ProviderHealth):
    can_cancel: bool
    pushes: bool
    moderation: bool = Field(description="Whether /moderations passes through to it.")


class ProviderList(Out):
    data: list[Provider]


class Received(Out):
    received: Literal[True] = Field(description="Always true.")


class Healthy(Out):
    status: Literal["ok"]


class Ready(Out):
    status: Literal["ready"]
    providers: list[ProviderHealth]
    deliveries_in_flight: int


class NotReady(Out):
    status: Literal["unavailable"]
    error: str


class UsageRow(Out):
    currency: str
    amount: str = Field(description="A decimal string: the exact sum of the tasks' costs.")
    tasks: int


class UsageGroup(UsageRow):
    key: str | None = Field(description="The day (YYYY-MM-DD, UTC), provider, model or route.")


class Usage(Out):
    since: Time = time_field()
    until: Time = time_field()
    group_by: Literal["day", "provider", "model", "route"] | None
    totals: list[UsageRow] = Field(description="One row per currency.")
    groups: list[UsageGroup] = Field(description="With group_by: one row per group and currency.")
