"""Request bodies and query strings, validated by pydantic: the one definition the API checks
input with (and, later, documents in OpenAPI)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from relay.adapters.video_input import NeutralForm
from relay.delivery.fairness import MIN_RATE_LIMIT
from relay.errors import BadRequest
from relay.models import (
    OPERATIONAL_EVENT_TYPES,
    DeliveryStatus,
    EventType,
    Subscription,
    SubscriptionStatus,
    TaskStatus,
)
from relay.net.addresses import host_name_problem
from relay.submissions import SubmissionState

M = TypeVar("M", bound=BaseModel)
METADATA_MAX_BYTES = 16 * 1024
TASK_EVENT_TYPES = frozenset(t for t in EventType if t.value.startswith("task."))
SUBSCRIBABLE_EVENT_TYPES = TASK_EVENT_TYPES | OPERATIONAL_EVENT_TYPES
"""What a subscription may ask for: its account's task events and the relay's operational
events about the account (``relay.operational``); a task's callback, task events only."""


def _http_url(value: str) -> str:
    lowered = value.lower()
    if not lowered.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    if any(c.isspace() for c in value):
        raise ValueError("must not contain spaces")
    # Parsed the way the relay will send to it, so what is accepted can be delivered to.
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if not url.host:
        raise ValueError("must be an absolute URL with a host")
    if b"%" in url.raw_host:
        raise ValueError("must have a plain host name or IP address (no '%' in the host)")
    # Checked here so a name no resolver takes is refused now, not failed on every attempt.
    problem = host_name_problem(url.raw_host.decode("ascii"))
    if problem is not None:
        raise ValueError(problem)
    if url.userinfo:
        raise ValueError("must not carry credentials (use a static header later, or HMAC)")
    return value


HttpUrl = Annotated[str, Field(min_length=10, max_length=2048), AfterValidator(_http_url)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


@dataclass(frozen=True)
class _NeutralOrNative:
    """Documents ``input`` as what it is, the neutral form or a provider's own body, while
    validation keeps it a plain object: which reading applies is decided later
    (``input_format``, else ``is_neutral``), and a neutral body's problems are refused there
    with the field named."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        neutral = handler(NeutralForm.__pydantic_core_schema__)
        native = {
            "type": "object",
            "title": "NativeInput",
            "additionalProperties": True,
            "description": "The provider's own create body, sent as it is "
            '(input_format "native").',
        }
        return {
            "anyOf": [neutral, native],
            "description": "What the relay submits: the provider-neutral form, which it "
            'translates for each provider (input_format "unified"), or the provider\'s own '
            "body. Without input_format, a body whose every key is a neutral one is neutral.",
        }


TaskInput = Annotated[dict[str, Any], _NeutralOrNative()]


class CreateTask(_Strict):
    provider: Annotated[str, Field(min_length=1, max_length=64)]
    provider_task_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    input: TaskInput | None = None
    input_format: Literal["native", "unified"] | None = None
    """How to read ``input``: the provider's own body, or the provider-neutral form the relay
    translates. Omitted: neutral when every key is a neutral key (see the README)."""
    callback_url: HttpUrl | None = None
    callback_events: list[EventType] | None = None
    reference: Annotated[str, Field(max_length=256)] | None = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CreateTask:
        if (self.provider_task_id is None) == (self.input is None):
            raise ValueError(
                "give exactly one of provider_task_id (track a task you created) "
                "or input (the relay creates it)"
            )
        return self

    @model_validator(mode="after")
    def _format_needs_input(self) -> CreateTask:
        if self.input_format is not None and self.input is None:
            raise ValueError("input_format describes input, which is missing")
        return self

    @field_validator("callback_events")
    @classmethod
    def _task_events(cls, value: list[EventType] | None) -> list[EventType] | None:
        if value is not None:
            wrong = [t.value for t in value if t not in TASK_EVENT_TYPES]
            if wrong:
                raise ValueError(f"not task event types: {', '.join(wrong)}")
            if not value:
                raise ValueError("must name at least one event type (omit it for the default)")
        return value

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # Measured as it is stored and sent: compact JSON in UTF-8.
        if (
            value is not None
            and len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
            > METADATA_MAX_BYTES
        ):
            raise ValueError(f"must be at most {METADATA_MAX_BYTES} bytes as JSON")
        return value


Cursor = Annotated[str, Field(max_length=512)]
Id = Annotated[str, Field(max_length=128)]


class TaskList(_Strict):
    status: TaskStatus | None = None
    provider: Annotated[str, Field(max_length=64)] | None = None
    reference: Annotated[str, Field(max_length=256)] | None = None
    cursor: Cursor | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    order: Literal["asc", "desc"] = "desc"


class EventList(_Strict):
    type: EventType | None = None
    task_id: Id | None = None
    since: Annotated[str, Field(max_length=40)] | None = None
    until: Annotated[str, Field(max_length=40)] | None = None
    delivery_status: DeliveryStatus | None = None
    cursor: Cursor | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    order: Literal["asc", "desc"] = "desc"


class StreamQuery(_Strict):
    type: Annotated[str, Field(max_length=1000)] | None = None
    """Comma-separated event types (default: every type)."""
    task_id: Id | None = None
    last_event_id: Id | None = None
    """As the ``Last-Event-ID`` header, for clients that cannot set it."""


RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "user-agent",
        "host",
        "connection",
        "transfer-encoding",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "expect",
        "te",
        "upgrade",
        "keep-alive",
        "proxy-authorization",
        "trailer",
    }
)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
_VALUE = re.compile(r"^[\x20-\x7e]{0,1024}$")


def _static_headers(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > 10:
        raise ValueError("at most 10 headers")
    for name, text in value.items():
        if not _TOKEN.match(name):
            raise ValueError(f"{name!r} is not a valid header name")
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"{name} is set by the relay itself")
        if not _VALUE.match(text):
            raise ValueError(
                f"the value of {name} must be printable ASCII, at most 1024 characters"
            )
    return value


def _subscribable_event_types(value: list[EventType]) -> list[EventType]:
    wrong = [t.value for t in value if t not in SUBSCRIBABLE_EVENT_TYPES]
    if wrong:
        # relay.test goes to the subscription tested, whatever its filter.
        raise ValueError(f"not task or operational event types: {', '.join(wrong)}")
    return value


EventTypes = Annotated[
    list[EventType],
    Field(min_length=1, max_length=len(EventType)),
    AfterValidator(_subscribable_event_types),
]


WEBHOOK_SECRET = r"^whsec_[A-Za-z0-9+/]{32,86}={0,2}$"
"""``whsec_`` and the base64 of 24 to 64 bytes (Standard Webhooks' secret format)."""


def _secret_bytes(value: str) -> str:
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise ValueError("not base64 after whsec_") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(f"{len(key)} bytes after whsec_: give 24 to 64 random bytes")
    return value


class CreateSubscription(_Strict):
    # Either name will do (Zapier's REST hooks send target_url), and the schema says so: no
    # url, then target_url. As if/then rather than a top-level anyOf, which generators
    # (openapi-python-client) take for a union of unknown shapes and type the body as Any.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"not": {"required": ["url"]}},
            "then": {"required": ["target_url"]},
            "description": "Give url, or target_url (Zapier's name for it); both only if "
            "they are the same.",
        }
    )

    url: HttpUrl | None = None
    target_url: HttpUrl | None = None
    """Zapier's name for ``url``."""
    event_types: EventTypes | None = None
    description: Annotated[str, Field(max_length=500)] | None = None
    headers: Annotated[dict[str, str] | None, AfterValidator(_static_headers)] = None
    rate_limit: Annotated[float, Field(ge=MIN_RATE_LIMIT, le=10_000, strict=True)] | None = None
    secret: Annotated[str, Field(pattern=WEBHOOK_SECRET), AfterValidator(_secret_bytes)] | None = (
        None
    )
    """Your own signing secret (``whsec_`` and the base64 of 24 to 64 random bytes); without
    it the relay makes one."""
    verify: StrictBool = False
    """Create it only once the URL answers a Standard Webhooks endpoint-verification challenge
    (``relay.delivery.verification``); needs ``secret``, which the receiver must hold."""

    @model_validator(mode="after")
    def _one_url(self) -> CreateSubscription:
        if self.verify and self.secret is None:
            raise ValueError(
                "verify needs secret: the receiver proves it holds the secret, so give one "
                "(whsec_ and the base64 of 24 to 64 random bytes)"
            )
        if self.url is None and self.target_url is None:
            raise ValueError("give url (or target_url, as Zapier calls it)")
        if self.url is not None and self.target_url is not None and self.url != self.target_url:
            raise ValueError("url and target_url differ; give one")
        return self

    @property
    def destination(self) -> str:
        found = self.url or self.target_url
        assert found is not None
        return found

    def subscription(self, account_id: str, subscription_id: str, now: datetime) -> Subscription:
        """The active subscription this body asks for (the API's and the dashboard's)."""
        return Subscription(
            id=subscription_id,
            account_id=account_id,
            url=self.destination,
            event_types=frozenset(self.event_types) if self.event_types else None,
            status=SubscriptionStatus.ACTIVE,
            created_at=now,
            updated_at=now,
            description=self.description,
            headers=tuple(sorted((self.headers or {}).items())),
            rate_limit=self.rate_limit,
        )


class UpdateSubscription(_Strict):
    url: HttpUrl | None = None
    target_url: HttpUrl | None = None
    event_types: EventTypes | None = None
    description: Annotated[str, Field(max_length=500)] | None = None
    headers: Annotated[dict[str, str] | None, AfterValidator(_static_headers)] = None
    rate_limit: Annotated[float, Field(ge=MIN_RATE_LIMIT, le=10_000, strict=True)] | None = None


class EnableSubscription(_Strict):
    replay: StrictBool = True
    """Re-send what the subscription missed while it was disabled."""


class RotateSecret(_Strict):
    grace_seconds: Annotated[float, Field(ge=0, le=7 * 86400, strict=True)] | None = None


class ReplayRequest(_Strict):
    since: Annotated[str, Field(max_length=40)] | None = None
    until: Annotated[str, Field(max_length=40)] | None = None
    only_failed: StrictBool = False
    everything: StrictBool = Field(
        default=False,
        alias="all",
        description='Replay from the account\'s first event. A replay needs either "since" or '
        '"all": true; an empty body is refused, so that no whole history goes by accident.',
    )


class SubscriptionList(_Strict):
    cursor: Cursor | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class UsageQuery(_Strict):
    since: Annotated[str, Field(max_length=40)] | None = None
    until: Annotated[str, Field(max_length=40)] | None = None
    group_by: Literal["day", "provider", "model", "route"] | None = None


class SubmissionList(_Strict):
    state: SubmissionState | None = None
    cursor: Cursor | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class ResolveSubmission(_Strict):
    """Settle an uncertain submission: the task found at the provider, or nothing was made."""

    provider_task_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    abandon: Literal[True] | None = Field(
        default=None, description="true: nothing was created at the provider (only true)."
    )

    @model_validator(mode="after")
    def _one(self) -> ResolveSubmission:
        if (self.provider_task_id is None) == (self.abandon is None):
            raise ValueError('give either "provider_task_id" or "abandon": true')
        return self


class Redeliver(_Strict):
    destination_id: Id | None = None


def parse(model: type[M], data: Any) -> M:
    """Validate, turning pydantic's errors into one 400 that names each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "body"
            problems.append(f"{where}: {err['msg']}")
        raise BadRequest("; ".join(problems)) from None
