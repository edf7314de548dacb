"""The seedance2.ink dialect: its own open API under ``/api/open/v1/video/generations``
(provider page 004; DIALECTS §1, §2, §4).

- Tasks are ``requestId`` (``req_…``); statuses ``queued/processing/succeeded/failed/
  cancelled``; the video at ``output.url`` (only when succeeded); failures at
  ``error.{code,message}``. It reports no progress, and task answers are HTTP 200 with
  ``success: true`` even for failed tasks.
- Refusals are ``{"success": false, "error": {"code", "message"}}``, possibly with HTTP
  200; the only documented code is ``unauthorized``. ``_refusal`` says how the others are
  classified.
- It pushes the final result to the ``webhookUrl`` given at creation. The push is neither
  documented nor signed, so the relay reads only the ``requestId`` from it
  (``parse_push``) and confirms with a query.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

from relay.adapters.ark import CANCELLED_MESSAGE, FAILED_MESSAGE, classify_ark_error_code
from relay.adapters.base import CancelAccepted, Created, HttpCall, HttpReply
from relay.adapters.common import (
    as_int,
    as_mapping,
    bad_response,
    decode_json,
    empty_to_none,
    http_fault,
    normalize_status,
    provider_error_fields,
    signed_url_expiry,
)
from relay.models import ErrorCode, TaskError, TaskStatus
from relay.provider_answers import FaultKind, ProviderFault, ProviderTask
from relay.submissions import Candidate

GENERATIONS_PATH: Final = "/api/open/v1/video/generations"

SEEDANCE2INK_STATUSES: Final[Mapping[str, TaskStatus]] = {
    "queued": TaskStatus.QUEUED,
    "processing": TaskStatus.RUNNING,
    "succeeded": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
    "cancelled": TaskStatus.CANCELLED,
}

# Refusal codes beyond the documented "unauthorized" are guesses at likely spellings, matched
# as substrings; an unmatched code falls back to the HTTP status (see _refusal).
_UNAUTHORIZED_CODES = ("unauthorized", "unauthenticated", "forbidden", "api_key")
_NOT_FOUND_CODES = ("not_found", "notfound", "not_exist")
_RATE_LIMIT_CODES = ("rate_limit", "too_many", "throttl")
_UNAVAILABLE_CODES = ("internal", "unavailable", "overloaded", "server_error")
# Task failure codes: only provider_error is documented.
_CONTENT_POLICY_CODES = (
    "content_policy",
    "moderation",
    "nsfw",
    "sensitive",
    "safety",
    "policy_violation",
)
_TIMEOUT_CODES = ("timeout", "timed_out")
_QUOTA_CODES = ("insufficient_credit", "credits", "quota")
_INVALID_CODES = ("invalid", "validation", "bad_request", "not_cancellable", "cannot_cancel")


def _mentions(code: str | None, markers: Iterable[str]) -> bool:
    if not code:
        return False
    lowered = code.strip().lower()
    return any(marker in lowered for marker in markers)


def classify_failure(code: str | None) -> tuple[ErrorCode, bool]:
    """The normalized code of a failed task and whether resubmitting may succeed."""
    known = classify_ark_error_code(code)  # the upstream's Ark code, if passed through
    if known is not None:
        return known
    if _mentions(code, _CONTENT_POLICY_CODES):
        return ErrorCode.CONTENT_POLICY, False
    if _mentions(code, _TIMEOUT_CODES):
        return ErrorCode.TIMEOUT, True
    if _mentions(code, _QUOTA_CODES):
        return ErrorCode.QUOTA_EXCEEDED, False
    if _mentions(code, _INVALID_CODES):
        return ErrorCode.INVALID_REQUEST, False
    # provider_error ("Video generation failed upstream") says nothing about why: it may be
    # moderation, and resubmitting is charged again, so it is not called retryable.
    return ErrorCode.PROVIDER_ERROR, False


def _task_error(status: TaskStatus | None, error: object) -> TaskError | None:
    if status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
        return None
    code, message = provider_error_fields({"error": error})
    if status is TaskStatus.CANCELLED:
        return TaskError(ErrorCode.CANCELLED, message or CANCELLED_MESSAGE, False, code)
    error_code, retryable = classify_failure(code)
    return TaskError(error_code, message or FAILED_MESSAGE, retryable, code)


def normalize_seedance2ink_task(
    obj: Mapping[str, Any], provider_task_id: str, now: datetime
) -> ProviderTask:
    """A task answer (query, create or cancel body) about ``provider_task_id``."""
    raw = obj.get("status")
    status = normalize_status(raw, SEEDANCE2INK_STATUSES)
    video_url = expires_at = None
    if status is TaskStatus.SUCCEEDED:
        output = as_mapping(obj.get("output")) or {}
        kind = output.get("type")
        if kind is None or (isinstance(kind, str) and kind.strip().lower() == "video"):
            video_url = empty_to_none(output.get("url"))
        if video_url is not None:
            # A public bucket URL does not expire; only an explicitly signed one does.
            expires_at = signed_url_expiry(video_url, issued_at=now, default_lifetime=None)
    duration = as_int(obj.get("duration"))
    credits = obj.get("creditsCharged")
    usage = None
    if isinstance(credits, int | float) and not isinstance(credits, bool):
        # Only the create answer says what was charged; the relay keeps it as the usage.
        usage = {"creditsCharged": credits}
    return ProviderTask(
        provider_task_id=provider_task_id,
        status=status,
        raw_status=None if raw is None else str(raw),
        model=empty_to_none(obj.get("model")),
        video_url=video_url,
        video_url_expires_at=expires_at,
        error=_task_error(status, obj.get("error")),
        usage=usage,
        resolution=empty_to_none(obj.get("resolution")),
        ratio=empty_to_none(obj.get("aspectRatio")),
        duration=duration if duration is not None and duration > 0 else None,
    )


def parse_push(body: bytes) -> str | None:
    """The ``requestId`` a webhook push names, or None. For logging and for checking the
    push against the task its inbound URL names, never for its content (DIALECTS §4)."""
    obj = as_mapping(decode_json(body))
    if obj is None:
        return None
    request_id = empty_to_none(obj.get("requestId"))
    if request_id is None:
        request_id = empty_to_none((as_mapping(obj.get("data")) or {}).get("requestId"))
    return request_id


def _is_refusal(obj: Mapping[str, Any]) -> bool:
    return obj.get("success") is False or (
        "requestId" not in obj and "status" not in obj and "error" in obj
    )


def _refusal(reply: HttpReply, obj: object, now: datetime) -> ProviderFault:
    """Classify a refusal, whatever its HTTP status.

    A known code decides (``unauthorized`` → UNAUTHORIZED even on a 200 or 400); otherwise
    an HTTP error status does, as for every provider. A 2xx refusal names the caller's
    request (INVALID_REQUEST) only when its code says so (invalid, validation, bad request,
    no credits); any other is an answer the relay cannot read (BAD_RESPONSE, not retried): a
    create that met one may have been taken, so it is neither sent again nor to another
    provider (``relay.submissions.create_was_taken``).
    """
    code, message = provider_error_fields(obj)
    fault = http_fault(reply, now, code=code, message=message)
    if _mentions(code, _UNAUTHORIZED_CODES):
        return replace(fault, kind=FaultKind.UNAUTHORIZED, retryable=False)
    if _mentions(code, _NOT_FOUND_CODES):
        return replace(fault, kind=FaultKind.NOT_FOUND, retryable=False)
    if _mentions(code, _RATE_LIMIT_CODES):
        return replace(fault, kind=FaultKind.RATE_LIMITED, retryable=True)
    if _mentions(code, _UNAVAILABLE_CODES):
        return replace(fault, kind=FaultKind.UNAVAILABLE, retryable=True)
    if 200 <= reply.status_code < 300:
        if _mentions(code, _INVALID_CODES + _QUOTA_CODES):
            return replace(fault, kind=FaultKind.INVALID_REQUEST, retryable=False)
        return replace(fault, kind=FaultKind.BAD_RESPONSE, retryable=False)
    return fault


def _read(reply: HttpReply, now: datetime) -> Mapping[str, Any] | ProviderFault:
    """The answer's object, or the fault it amounts to."""
    body = decode_json(reply.body)
    obj = as_mapping(body)
    if not 200 <= reply.status_code < 300 or (obj is not None and _is_refusal(obj)):
        return _refusal(reply, body, now)
    if obj is None:
        return bad_response(
            f"provider answered HTTP {reply.status_code} with a body that is not a JSON object",
            status_code=reply.status_code,
        )
    return obj


def _other_task(reply: HttpReply, obj: Mapping[str, Any], asked: str) -> ProviderFault | None:
    named = empty_to_none(obj.get("requestId"))
    if named is None or named == asked:
        return None
    return bad_response(
        f"provider answered with task {named!r} when asked for {asked!r}",
        status_code=reply.status_code,
    )


class Seedance2InkDialect:
    """``/api/open/v1/video/generations``: create, query and cancel by ``requestId``."""

    name: str = "seedance2ink"
    pushes: bool
    # Cancel takes queued and processing tasks (S2I docs).
    cancellable: frozenset[TaskStatus] = frozenset({TaskStatus.QUEUED, TaskStatus.RUNNING})

    def __init__(self, pushes: bool = True) -> None:
        """``pushes``: hand the provider the relay's inbound URL as ``webhookUrl`` (off: the
        relay learns of results only by polling, for a relay the provider cannot reach)."""
        self.pushes = pushes

    def build_create(self, body: Mapping[str, Any], webhook_url: str | None = None) -> HttpCall:
        if webhook_url is None or not self.pushes:
            return HttpCall(method="POST", path=GENERATIONS_PATH, json=body)
        # The relay's own inbound URL replaces any caller value: the relay must own the push
        # target to learn of the result, and a caller who wants pushes gets the relay's
        # signed webhooks instead of the provider's unsigned ones.
        return HttpCall(
            method="POST", path=GENERATIONS_PATH, json={**body, "webhookUrl": webhook_url}
        )

    def push_worth_a_look(self, body: bytes) -> bool:
        return True  # it pushes the final result only

    def parse_create(self, reply: HttpReply, now: datetime) -> Created | ProviderFault:
        obj = _read(reply, now)
        if isinstance(obj, ProviderFault):
            return obj
        request_id = empty_to_none(obj.get("requestId"))
        if request_id is None:
            return bad_response(
                f"provider answered HTTP {reply.status_code} without a requestId",
                status_code=reply.status_code,
            )
        task = None
        if obj.get("status") is not None:
            task = normalize_seedance2ink_task(obj, request_id, now)
        return Created(request_id, task)

    def build_query(self, provider_task_id: str) -> HttpCall:
        return HttpCall(method="GET", path=_task_path(provider_task_id))

    def build_list(self, model: str | None) -> HttpCall | None:
        return None  # no task list in this dialect: an uncertain create waits for a person

    def parse_list(self, reply: HttpReply, now: datetime) -> list[Candidate] | ProviderFault:
        return []

    def created_at_from_id(self, provider_task_id: str) -> datetime | None:
        return None  # its requestIds carry no time the relay can read

    def parse_query(
        self, reply: HttpReply, provider_task_id: str, now: datetime
    ) -> ProviderTask | ProviderFault:
        obj = _read(reply, now)
        if isinstance(obj, ProviderFault):
            return obj
        if obj.get("status") is None and obj.get("requestId") is None:
            return bad_response(
                f"provider answered HTTP {reply.status_code} without a task",
                status_code=reply.status_code,
            )
        return _other_task(reply, obj, provider_task_id) or normalize_seedance2ink_task(
            obj, provider_task_id, now
        )

    def build_cancel(self, provider_task_id: str) -> HttpCall | None:
        return HttpCall(method="POST", path=_task_path(provider_task_id) + "/cancel")

    def parse_cancel(
        self, reply: HttpReply, provider_task_id: str, now: datetime
    ) -> CancelAccepted | ProviderFault:
        # A refusal such as "cannot cancel a finished task" is a 4xx: INVALID_REQUEST.
        obj = _read(reply, now)
        if isinstance(obj, ProviderFault):
            return obj
        other = _other_task(reply, obj, provider_task_id)
        if other is not None:
            return other
        if obj.get("status") is None:
            return CancelAccepted()
        return CancelAccepted(normalize_seedance2ink_task(obj, provider_task_id, now))


def _task_path(provider_task_id: str) -> str:
    return f"{GENERATIONS_PATH}/{quote(provider_task_id, safe='')}"
