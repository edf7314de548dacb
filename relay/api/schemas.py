"""Request bodies and query strings, validated by pydantic: the one definition the API checks
input with (and, later, documents in OpenAPI)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from relay.errors import BadRequest
from relay.models import EventType, TaskStatus

M = TypeVar("M", bound=BaseModel)
METADATA_MAX_BYTES = 16 * 1024
TASK_EVENT_TYPES = frozenset(t for t in EventType if t.value.startswith("task."))


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
    if url.userinfo:
        raise ValueError("must not carry credentials (use a static header later, or HMAC)")
    return value


HttpUrl = Annotated[str, Field(min_length=10, max_length=2048), AfterValidator(_http_url)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class CreateTask(_Strict):
    provider: Annotated[str, Field(min_length=1, max_length=64)]
    provider_task_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    input: dict[str, Any] | None = None
    callback_url: HttpUrl | None = None
    callback_events: list[EventType] | None = None
    reference: Annotated[str, Field(max_length=256)] | None = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CreateTask:
        if (self.provider_task_id is None) == (self.input is None):
            raise ValueError("give exactly one of provider_task_id (track a task you created) "
                             "or input (the relay creates it)")
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
        if value is not None and len(json.dumps(value)) > METADATA_MAX_BYTES:
            raise ValueError(f"must be at most {METADATA_MAX_BYTES} bytes as JSON")
        return value


class TaskList(_Strict):
    status: TaskStatus | None = None
    provider: str | None = None
    reference: str | None = None
    cursor: str | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    order: Literal["asc", "desc"] = "desc"


class EventList(_Strict):
    type: EventType | None = None
    task_id: str | None = None
    since: Annotated[str, Field(max_length=40)] | None = None
    until: Annotated[str, Field(max_length=40)] | None = None
    cursor: str | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    order: Literal["asc", "desc"] = "desc"


class Redeliver(_Strict):
    destination_id: str | None = None


def parse(model: type[M], data: Any) -> M:
    """Validate, turning pydantic's errors into one 400 that names each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "body"
            problems.append(f"{where}: {err['msg']}")
        raise BadRequest("; ".join(problems), code="invalid_request") from None
