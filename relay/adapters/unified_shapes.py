"""The task shapes a new-api-style gateway answers with on ``/v1/video/generations``, each
normalized to a ``ProviderTask``; ``relay.adapters.unified`` sniffs which one a body is.

- OpenAI-video object (``object: "video"``): lowercase statuses, integer ``progress``,
  video at ``metadata.url``, ``error.{code,message}`` (DIALECTS §1, §2).
- Wrapped ``TaskDto`` (``{"code":"success","data":d}``): UPPERCASE statuses, ``"45%"``
  progress, ``fail_reason``, ``result_url``, and the upstream's raw Ark task nested in
  ``d.data``, ``d.data.data`` or ``d.data.result``. Outer and raw status are reconciled by
  ``resolve_status`` (DIALECTS §5.2); video and error come from the raw first (§5.3, §5.4).
- Simple realtime format (``data.format`` + ``data.url``), Gemini/Vertex channels only.

Expiry (DESIGN §6): a URL from the raw Ark object, or one hosted on TOS, gets Ark's 24 h
unless its signature says otherwise; any other URL (a gateway proxy
``{server}/v1/videos/{id}/content``, an unsigned CDN link) has no known expiry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from relay.adapters.ark import (
    FAILED_MESSAGE,
    URL_LIFETIME,
    classify_ark_error_code,
    normalize_ark_task,
)
from relay.adapters.common import (
    as_mapping,
    empty_to_none,
    normalize_status,
    parse_progress,
    provider_error_fields,
    signed_url_expiry,
    unix_to_datetime,
)
from relay.models import ErrorCode, TaskError, TaskStatus
from relay.provider_answers import ProviderTask

OPENAI_VIDEO_STATUSES: Final[Mapping[str, TaskStatus]] = {
    # "unknown" (new-api's NOT_START, UNKNOWN and anything else) is left out on purpose:
    # a just-created task reads "unknown", which must not commit to anything.
    "queued": TaskStatus.QUEUED,
    "in_progress": TaskStatus.RUNNING,
    "completed": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
}

TASK_DTO_STATUSES: Final[Mapping[str, TaskStatus]] = {
    # UNKNOWN is left out: it says nothing, so the nested raw status (if any) decides.
    "not_start": TaskStatus.QUEUED,
    "submitted": TaskStatus.QUEUED,
    "queued": TaskStatus.QUEUED,
    "in_progress": TaskStatus.RUNNING,
    "success": TaskStatus.SUCCEEDED,
    "failure": TaskStatus.FAILED,
}

SIMPLE_STATUSES: Final[Mapping[str, TaskStatus]] = {
    "queued": TaskStatus.QUEUED,
    "processing": TaskStatus.RUNNING,
    "succeeded": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
}

_MAX_NESTING = 4
_ARK_HOST_SUFFIXES = ("volces.com", "bytepluses.com", "byteplus.com")
# new-api's TASK_TIMEOUT_MINUTES sweep writes "任务超时" ("task timed out", then the minutes
# in full-width brackets); English builds and other gateways word it their own way.
_TIMEOUT_TEXT = re.compile(r"超时|\btime[ds]?[ -]?out\b", re.IGNORECASE)
_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _object(value: object) -> Mapping[str, Any] | None:
    """A JSON object, also when a gateway stored it as a JSON string."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    return as_mapping(value)


def _ark_hosted(url: str) -> bool:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    return "tos-" in host or any(
        host == suffix or host.endswith("." + suffix) for suffix in _ARK_HOST_SUFFIXES
    )


def url_expiry(url: str, *, issued_at: datetime, from_ark: bool) -> datetime | None:
    """When a result URL stops working, if that is knowable (see the module docstring)."""
    lifetime = URL_LIFETIME if from_ark or _ark_hosted(url) else None
    return signed_url_expiry(url, issued_at=issued_at, default_lifetime=lifetime)


def gateway_failure(code: str | None, message: str | None) -> TaskError:
    """The error of a failed task when only the gateway's words are at hand."""
    known = classify_ark_error_code(code)
    if known is not None:
        return TaskError(known[0], message or FAILED_MESSAGE, known[1], code)
    if message and _TIMEOUT_TEXT.search(message):
        # The gateway gave up waiting (and refunded); nothing says the input was at fault.
        return TaskError(ErrorCode.TIMEOUT, message, True, code)
    # An unknown failure may be a moderation refusal in disguise; resubmitting costs money.
    return TaskError(ErrorCode.PROVIDER_ERROR, message or FAILED_MESSAGE, False, code)


def normalize_openai_video(
    obj: Mapping[str, Any], provider_task_id: str, now: datetime
) -> ProviderTask:
    """new-api's OpenAI-video object (``GET /v1/videos/{id}``, and R0/R3 on generations)."""
    raw = obj.get("status")
    status = normalize_status(raw, OPENAI_VIDEO_STATUSES)
    video_url = expires_at = None
    if status is TaskStatus.SUCCEEDED:
        video_url = empty_to_none((as_mapping(obj.get("metadata")) or {}).get("url"))
        if video_url is not None:
            # completed_at is the record's last update, which for a finished task is its end.
            issued = unix_to_datetime(obj.get("completed_at")) or now
            expires_at = url_expiry(video_url, issued_at=issued, from_ark=False)
    error = None
    if status is TaskStatus.FAILED:
        error = gateway_failure(*provider_error_fields({"error": obj.get("error")}))
    usage = as_mapping(obj.get("usage"))
    return ProviderTask(
        provider_task_id=provider_task_id,
        status=status,
        raw_status=_text(raw),
        progress=parse_progress(obj.get("progress")),
        model=empty_to_none(obj.get("model")),
        video_url=video_url,
        video_url_expires_at=expires_at,
        error=error,
        usage=dict(usage) if usage is not None else None,
    )


def normalize_simple(d: Mapping[str, Any], provider_task_id: str, now: datetime) -> ProviderTask:
    """new-api's realtime format ``{"format","url","status","task_id","error"}``."""
    raw = d.get("status")
    status = normalize_status(raw, SIMPLE_STATUSES)
    video_url = expires_at = None
    if status is TaskStatus.SUCCEEDED:
        video_url = empty_to_none(d.get("url"))
        if video_url is not None:
            expires_at = url_expiry(video_url, issued_at=now, from_ark=False)
    error = None
    if status is TaskStatus.FAILED:
        error = gateway_failure(*provider_error_fields({"error": d.get("error")}))
    return ProviderTask(
        provider_task_id,
        status,
        _text(raw),
        video_url=video_url,
        video_url_expires_at=expires_at,
        error=error,
    )


def raw_chain(d: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The objects nested under ``d.data``, outermost first, following ``result`` (vastnum's
    intermediate object) before ``data`` (a gateway behind a gateway). The last one is the
    upstream's raw task: Ark task objects carry neither key."""
    chain: list[Mapping[str, Any]] = []
    node = _object(d.get("data"))
    while node is not None and len(chain) < _MAX_NESTING:
        chain.append(node)
        node = _object(node.get("result")) or _object(node.get("data"))
    return chain


def task_dto_ids(d: Mapping[str, Any]) -> list[str]:
    """Every task id a wrapped answer names: the gateway's ``task_id`` and the nested ids.
    ``d.id`` is the gateway's integer row id, not a task id."""
    found = [empty_to_none(d.get("task_id"))]
    found += [empty_to_none(node.get("id")) for node in raw_chain(d)]
    return [i for i in found if i is not None]


def resolve_status(
    outer: TaskStatus | None, raw: TaskStatus | None
) -> tuple[TaskStatus | None, bool]:
    """The task's status and whether the raw status decided it (DIALECTS §5.2).

    The gateway's word wins, with two exceptions: a terminal raw status beats a
    non-terminal gateway status (new-api's doubao adaptor files Ark ``expired`` and
    ``cancelled``, and before 2026-01-10 even ``running``, under IN_PROGRESS, and a gateway
    may lag its own upstream), and the raw status fills in when the gateway says UNKNOWN.
    A terminal gateway status always wins, so a gateway timeout (FAILURE) over a raw
    ``running`` is a failure, and the gateway never reports success the relay cannot see.
    """
    if raw is not None and (outer is None or (raw.terminal and not outer.terminal)):
        return raw, True
    return outer, False


def normalize_task_dto(d: Mapping[str, Any], provider_task_id: str, now: datetime) -> ProviderTask:
    """new-api's wrapped ``TaskDto`` (the ``data`` of ``{"code":"success","data":d}``)."""
    outer_raw = d.get("status")
    chain = raw_chain(d)
    raw_obj = chain[-1] if chain else None
    raw = None
    if raw_obj is not None:
        raw = normalize_ark_task(raw_obj, now, provider_task_id=provider_task_id)
    status, by_raw = resolve_status(
        normalize_status(outer_raw, TASK_DTO_STATUSES), raw.status if raw is not None else None
    )
    raw_status = raw.raw_status if by_raw and raw is not None else _text(outer_raw)

    video_url = expires_at = last_frame_url = None
    if status is TaskStatus.SUCCEEDED:
        video_url, expires_at, last_frame_url = _dto_video(d, raw, now)
    error = None
    if status is not None and status.terminal and status is not TaskStatus.SUCCEEDED:
        error = raw.error if by_raw and raw is not None else _dto_failure(d, raw_obj)

    properties = as_mapping(d.get("properties")) or {}
    model = (
        (raw.model if raw is not None else None)
        or empty_to_none(properties.get("upstream_model_name"))
        or empty_to_none(properties.get("origin_model_name"))
    )
    return ProviderTask(
        provider_task_id=provider_task_id,
        status=status,
        raw_status=raw_status,
        progress=parse_progress(d.get("progress")),
        model=model,
        video_url=video_url,
        video_url_expires_at=expires_at,
        last_frame_url=last_frame_url,
        error=error,
        usage=_dto_usage(d, raw),
        resolution=raw.resolution if raw is not None else None,
        ratio=raw.ratio if raw is not None else None,
        duration=raw.duration if raw is not None else None,
        fps=raw.fps if raw is not None else None,
        seed=raw.seed if raw is not None else None,
    )


def _dto_video(
    d: Mapping[str, Any], raw: ProviderTask | None, now: datetime
) -> tuple[str | None, datetime | None, str | None]:
    """Video URL, its expiry and the last frame of a successful wrapped answer (§5.3)."""
    last_frame = raw.last_frame_url if raw is not None else None
    if raw is not None and raw.video_url is not None:
        return raw.video_url, raw.video_url_expires_at, last_frame
    url = empty_to_none(d.get("result_url"))
    if url is None:
        # Builds of 2025-06-20…2026-02-22 stored the URL of a SUCCESS in fail_reason.
        reason = empty_to_none(d.get("fail_reason"))
        if reason is not None and _URL.match(reason.strip()):
            url = reason.strip()
    if url is None:
        return None, None, last_frame
    issued = unix_to_datetime(d.get("finish_time")) or unix_to_datetime(d.get("updated_at")) or now
    return url, url_expiry(url, issued_at=issued, from_ark=False), last_frame


def _dto_failure(d: Mapping[str, Any], raw_obj: Mapping[str, Any] | None) -> TaskError:
    """A failed wrapped answer's error: the raw Ark error first, since ``fail_reason`` is
    only its message (or the literal "task failed" before 2026-04-02), else ``fail_reason``."""
    reason = empty_to_none(d.get("fail_reason"))
    code = message = None
    if raw_obj is not None:
        code, message = provider_error_fields({"error": raw_obj.get("error")})
    return gateway_failure(code, message or reason)


def _dto_usage(d: Mapping[str, Any], raw: ProviderTask | None) -> dict[str, Any] | None:
    """The raw Ark usage, plus R0's ``completion_details`` (``show_usage=true``) under its
    own key. The rest of R0's ``d.usage`` echoes the request, and ``d.quota`` is the
    gateway's billing units, not usage."""
    usage = dict(raw.usage) if raw is not None and raw.usage is not None else None
    details = as_mapping((as_mapping(d.get("usage")) or {}).get("completion_details"))
    if details is not None:
        usage = {**(usage or {}), "completion_details": dict(details)}
    return usage
