"""The Ark dialect: the Volcengine/BytePlus content-generation task API, as mirrored by
apiyi, cubicspaces and others (DIALECTS §1, §2, §4, §5). Where the provider keeps Ark's
``callback_url`` (``providers.NAME.pushes``), the relay passes its own inbound URL in it.

``normalize_ark_task`` is public because gateways nest a raw Ark task inside their own
answers, and the unified dialect normalizes that nested object with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final
from urllib.parse import quote

from relay.adapters.base import CancelAccepted, Created, HttpCall, HttpReply
from relay.adapters.common import (
    as_int,
    as_mapping,
    bad_response,
    code_matches,
    decode_json,
    empty_to_none,
    http_fault,
    is_success,
    normalize_status,
    not_an_object,
    provider_error_fields,
    signed_url_expiry,
    unix_to_datetime,
)
from relay.models import ErrorCode, TaskError, TaskStatus
from relay.provider_answers import FaultKind, ProviderFault, ProviderTask
from relay.submissions import MATCHED_PARAMS, Candidate

TASKS_PATH: Final = "/contents/generations/tasks"

URL_LIFETIME: Final = timedelta(hours=24)
"""Ark deletes video and last-frame files 24 h after the task finishes (DOC-Q, apiyi)."""

ARK_STATUSES: Final[Mapping[str, TaskStatus]] = {
    "queued": TaskStatus.QUEUED,
    "running": TaskStatus.RUNNING,
    "succeeded": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
    "expired": TaskStatus.EXPIRED,
    "cancelled": TaskStatus.CANCELLED,
    # Ark-compatible third parties: CTyun says pending; new-api's doubao adaptor accepts both.
    "pending": TaskStatus.QUEUED,
    "processing": TaskStatus.RUNNING,
}

EXPIRED_MESSAGE: Final = "the provider expired the task before it finished"
CANCELLED_MESSAGE: Final = "the task was cancelled at the provider"
FAILED_MESSAGE: Final = "the provider reported the task failed"

_CONTENT_POLICY_MARKERS = ("sensitivecontent", "policyviolation")
_POLICY_WORDING = re.compile(r"policy restriction|sensitive content|content policy", re.I)
_TRANSIENT_CODES = ("InternalServiceError", "InternalServerError", "ServerOverloaded")
_QUOTA_CODES = ("QuotaExceeded", "AccountQuotaExceeded", "SetLimitExceeded", "AccountOverdueError")
_INVALID_CODES = ("InvalidParameter", "MissingParameter")


_ID_STAMP = re.compile(r"cgt-(\d{14})-")
_BEIJING = timezone(timedelta(hours=8))


def ark_id_created_at(provider_task_id: str) -> datetime | None:
    """When an Ark task was created, from its id (``cgt-YYYYMMDDHHMMSS-…``, Beijing time),
    for a task registered long after it was made; None for other ids."""
    match = _ID_STAMP.match(provider_task_id)
    if match is None:
        return None
    try:
        local = datetime.strptime(match.group(1), "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return local.replace(tzinfo=_BEIJING).astimezone(UTC)


def classify_ark_error_code(code: str | None) -> tuple[ErrorCode, bool] | None:
    """The normalized code and whether resubmitting may succeed, for a known Ark code."""
    if not code:
        return None
    lowered = code.lower()
    # Moderation codes come in many shapes (Input/Output, Text/Image/Video/Audio, .Suffix).
    if any(marker in lowered for marker in _CONTENT_POLICY_MARKERS):
        return ErrorCode.CONTENT_POLICY, False
    if code_matches(code, _TRANSIENT_CODES):
        return ErrorCode.PROVIDER_ERROR, True
    if code_matches(code, _QUOTA_CODES):
        return ErrorCode.QUOTA_EXCEEDED, False
    if code_matches(code, _INVALID_CODES):
        return ErrorCode.INVALID_REQUEST, False
    return None


def ark_task_error(status: TaskStatus | None, error: object) -> TaskError | None:
    """The task's error for a failed, expired or cancelled Ark task; None otherwise.

    The status decides for expired and cancelled (their error object is undocumented, so
    it only lends its code and text); for failed, the provider code does.
    """
    if status not in (TaskStatus.FAILED, TaskStatus.EXPIRED, TaskStatus.CANCELLED):
        return None
    code, message = provider_error_fields({"error": error})
    if status is TaskStatus.EXPIRED:
        # Expiry is the provider's backlog, not the request: the same input may well pass.
        return TaskError(ErrorCode.EXPIRED, message or EXPIRED_MESSAGE, True, code)
    if status is TaskStatus.CANCELLED:
        return TaskError(ErrorCode.CANCELLED, message or CANCELLED_MESSAGE, False, code)
    known = classify_ark_error_code(code)
    if known is None and message is not None and _POLICY_WORDING.search(message):
        # Mirrors with generic codes (cubicspaces' task_failed) keep Ark's moderation
        # wording: "... may be related to policy restrictions."
        known = (ErrorCode.CONTENT_POLICY, False)
    # An unknown failure may be a moderation refusal in disguise; resubmitting costs money.
    error_code, retryable = known or (ErrorCode.PROVIDER_ERROR, False)
    return TaskError(error_code, message or FAILED_MESSAGE, retryable, code)


def _url(value: object) -> str | None:
    # Responses carry plain strings; request-style {"url": …} objects are accepted too.
    nested = as_mapping(value)
    if nested is not None:
        value = nested.get("url")
    return empty_to_none(value)


def normalize_ark_task(
    obj: Mapping[str, Any], now: datetime, *, provider_task_id: str | None = None
) -> ProviderTask:
    """A raw Ark task object (GET body, list item, callback body or a gateway's nested raw).

    ``provider_task_id`` is used only when the object has no ``id`` of its own.
    """
    task_id = empty_to_none(obj.get("id")) or provider_task_id or ""
    raw = obj.get("status")
    status = normalize_status(raw, ARK_STATUSES)
    video_url = last_frame_url = expires_at = None
    if status is TaskStatus.SUCCEEDED:
        content = as_mapping(obj.get("content")) or {}
        video_url = _url(content.get("video_url"))
        last_frame_url = _url(content.get("last_frame_url"))
        if video_url is not None:
            expires_at = signed_url_expiry(
                video_url,
                issued_at=unix_to_datetime(obj.get("updated_at")) or now,
                default_lifetime=URL_LIFETIME,
            )
    usage = as_mapping(obj.get("usage"))
    duration = as_int(obj.get("duration"))
    return ProviderTask(
        provider_task_id=task_id,
        status=status,
        raw_status=None if raw is None else str(raw),
        progress=None,
        model=empty_to_none(obj.get("model")),
        video_url=video_url,
        video_url_expires_at=expires_at,
        last_frame_url=last_frame_url,
        error=ark_task_error(status, obj.get("error")),
        usage=dict(usage) if usage is not None else None,
        resolution=empty_to_none(obj.get("resolution")),
        ratio=empty_to_none(obj.get("ratio")),
        # -1 is the request's "let the model choose", not a length.
        duration=duration if duration is not None and duration > 0 else None,
        fps=as_int(obj.get("framespersecond")),
        seed=as_int(obj.get("seed")),
    )


def _reply_error(reply: HttpReply, now: datetime) -> ProviderFault:
    code, message = provider_error_fields(decode_json(reply.body))
    return http_fault(reply, now, code=code, message=message)


def _error_in_success(reply: HttpReply, obj: Mapping[str, Any]) -> ProviderFault | None:
    # Some mirrors wrap refusals in a 2xx; keep their words rather than "no id".
    code, message = provider_error_fields(obj)
    if "error" not in obj or (code is None and message is None):
        return None
    text = f"provider answered HTTP {reply.status_code} with an error"
    if code:
        text += f" [{code}]"
    if message:
        text += f": {message}"
    return bad_response(text, status_code=reply.status_code, provider_code=code)


class ArkDialect:
    """``POST``/``GET …/contents/generations/tasks``, relative to the provider's Ark prefix."""

    name: str = "ark"
    pushes: bool
    # DELETE cancels a queued task; on a finished one it deletes the record (and its
    # video), so the relay never sends it for anything but a queued task.
    cancellable: frozenset[TaskStatus] = frozenset({TaskStatus.QUEUED})

    def __init__(self, pushes: bool = False) -> None:
        """``pushes``: hand the provider the relay's inbound URL as ``callback_url``. Ark
        POSTs the task there on each status change, unsigned (DIALECTS §4), so a push is
        only a hint that a query confirms; it makes a finished task seen at once instead
        of at the next poll. Off unless the provider is known to keep the field: a mirror
        may drop it (then nothing is lost but the push) or refuse it."""
        self.pushes = pushes

    def build_create(self, body: Mapping[str, Any], webhook_url: str | None = None) -> HttpCall:
        if webhook_url is None or not self.pushes:
            return HttpCall(method="POST", path=TASKS_PATH, json=body)
        # The relay's own inbound URL replaces any caller value, as for seedance2.ink: the
        # relay must own the push target to learn of the result, and a caller who wants
        # callbacks gets the relay's signed webhooks instead of Ark's unsigned ones.
        return HttpCall(method="POST", path=TASKS_PATH, json={**body, "callback_url": webhook_url})

    def push_worth_a_look(self, body: bytes) -> bool:
        # Ark's callback body is the task as GET answers it, sent on every status change
        # (DIALECTS §4): only an end is news the relay cannot wait for.
        status = normalize_status((as_mapping(decode_json(body)) or {}).get("status"), ARK_STATUSES)
        return status is None or status.terminal

    def parse_create(self, reply: HttpReply, now: datetime) -> Created | ProviderFault:
        if not is_success(reply):
            return _reply_error(reply, now)
        obj = as_mapping(decode_json(reply.body))
        if obj is None:
            return not_an_object(reply)
        task_id = empty_to_none(obj.get("id"))
        if task_id is None:
            return _error_in_success(reply, obj) or bad_response(
                f"provider answered HTTP {reply.status_code} without a task id",
                status_code=reply.status_code,
            )
        # Official Ark answers {"id"} only; the cubicspaces mirror sends the whole task.
        task = normalize_ark_task(obj, now) if obj.get("status") is not None else None
        return Created(provider_task_id=task_id, task=task)

    def build_query(self, provider_task_id: str) -> HttpCall:
        return HttpCall(method="GET", path=_task_path(provider_task_id))

    def build_cancel(self, provider_task_id: str) -> HttpCall | None:
        return HttpCall(method="DELETE", path=_task_path(provider_task_id))

    def build_list(self, model: str | None) -> HttpCall | None:
        # DOC-L: newest first; one page of the latest is what a lost create can be in.
        params = {"page_num": "1", "page_size": str(LIST_PAGE)}
        if model:
            params["filter.model"] = model
        return HttpCall(method="GET", path=TASKS_PATH, params=params)

    def parse_list(self, reply: HttpReply, now: datetime) -> list[Candidate] | ProviderFault:
        if reply.status_code in (404, 405):
            # A mirror that serves no list (cubicspaces' page documents none): not a fault
            # of the provider's, and nothing to back it off for.
            return ProviderFault(
                FaultKind.NOT_FOUND, False, "the provider serves no task list", reply.status_code
            )
        if not is_success(reply):
            return _reply_error(reply, now)
        obj = as_mapping(decode_json(reply.body))
        items = None if obj is None else obj.get("items")
        if not isinstance(items, list):
            return bad_response(
                f"provider answered HTTP {reply.status_code} without a task list",
                status_code=reply.status_code,
            )
        return [c for c in map(_candidate, items) if c is not None]

    def created_at_from_id(self, provider_task_id: str) -> datetime | None:
        return ark_id_created_at(provider_task_id)

    def parse_cancel(
        self, reply: HttpReply, provider_task_id: str, now: datetime
    ) -> CancelAccepted | ProviderFault:
        if not is_success(reply):
            return _reply_error(reply, now)
        # Ark answers {} (some mirrors 204); a mirror that echoes the task is read too.
        obj = as_mapping(decode_json(reply.body))
        if (
            obj is not None
            and empty_to_none(obj.get("id")) == provider_task_id
            and obj.get("status") is not None
        ):
            return CancelAccepted(normalize_ark_task(obj, now))
        return CancelAccepted()

    def parse_query(
        self, reply: HttpReply, provider_task_id: str, now: datetime
    ) -> ProviderTask | ProviderFault:
        if not is_success(reply):
            return _reply_error(reply, now)
        obj = as_mapping(decode_json(reply.body))
        if obj is None:
            return not_an_object(reply)
        items = obj.get("items")
        if "id" not in obj and isinstance(items, list):
            return _pick_from_list(reply, items, provider_task_id, now)
        task_id = empty_to_none(obj.get("id"))
        if task_id is None:
            return _error_in_success(reply, obj) or bad_response(
                f"provider answered HTTP {reply.status_code} without a task id",
                status_code=reply.status_code,
            )
        if task_id != provider_task_id:
            return bad_response(
                f"provider answered with task {task_id!r} when asked for {provider_task_id!r}",
                status_code=reply.status_code,
            )
        return normalize_ark_task(obj, now)


LIST_PAGE: Final = 100


def _candidate(item: object) -> Candidate | None:
    entry = as_mapping(item)
    if entry is None:
        return None
    task_id = empty_to_none(entry.get("id"))
    created = unix_to_datetime(entry.get("created_at"))
    if task_id is None or created is None:
        return None
    params = {name: entry.get(name) for name in MATCHED_PARAMS if entry.get(name) is not None}
    return Candidate(str(task_id), created, empty_to_none(entry.get("model")), params)


def _task_path(provider_task_id: str) -> str:
    return f"{TASKS_PATH}/{quote(provider_task_id, safe='')}"


def _pick_from_list(
    reply: HttpReply, items: list[Any], provider_task_id: str, now: datetime
) -> ProviderTask | ProviderFault:
    for item in items:
        entry = as_mapping(item)
        if entry is not None and entry.get("id") == provider_task_id:
            return normalize_ark_task(entry, now)
    return ProviderFault(
        kind=FaultKind.NOT_FOUND,
        retryable=False,
        message=f"task {provider_task_id!r} is not in the provider's task list",
        status_code=reply.status_code,
    )
