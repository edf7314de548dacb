"""The unified dialect on captured-style replies: every status string of DIALECTS §1 in each
shape, the raw-versus-gateway rules of §5.2, where video and error come from (§5.3, §5.4),
the id check, every gateway error body of §4, and bodies that are not answers at all.
The provider pages' own samples are in ``test_samples.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from relay.adapters.base import CancelAccepted, Created, Dialect, HttpCall, HttpReply
from relay.adapters.unified import SHOW_RAW_AND_USAGE, UnifiedDialect
from relay.adapters.unified_shapes import (
    OPENAI_VIDEO_STATUSES,
    SIMPLE_STATUSES,
    TASK_DTO_STATUSES,
    resolve_status,
)
from relay.models import ErrorCode, TaskError, TaskStatus
from relay.provider_answers import FaultKind, ProviderFault, ProviderTask

NOW = datetime(2026, 6, 6, 8, 5, 0, tzinfo=UTC)
DIALECT = UnifiedDialect()
Q, R, S, F = TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED, TaskStatus.FAILED
X, C = TaskStatus.EXPIRED, TaskStatus.CANCELLED

PUBLIC = "task_Qm4c9ZbT1xWv8rKp2LhN5sDy7uEa3fGj"
CGT = "cgt-20260606160057-6bbjd"
MODEL = "doubao-seedance-2-0-fast-260128"
UPDATED = 1780732991
"""2026-06-06T08:03:11Z."""
FINISHED = 1780732995
"""2026-06-06T08:03:15Z, the gateway's finish_time (it polls upstream every 15 s)."""
IN_24H = datetime(2026, 6, 7, 8, 3, 11, tzinfo=UTC)
TOS = (
    "https://ark-acg-cn-beijing.tos-cn-beijing.volces.com/doubao-seedance-2-0/"
    f"{CGT}/video.mp4?X-Tos-Algorithm=TOS4-HMAC-SHA256&X-Tos-Date=20260606T080311Z"
    "&X-Tos-Expires=86400&X-Tos-Signature=5e1f&X-Tos-SignedHeaders=host"
)
FRAME = "https://ark-acg-cn-beijing.tos-cn-beijing.volces.com/last_frame.png?X-Tos-Expires=86400"
PROXY = f"https://api.gateway.example/v1/videos/{PUBLIC}/content"
USAGE = {"completion_tokens": 108900, "total_tokens": 108900}
POLICY = "OutputVideoSensitiveContentDetected.PolicyViolation"
POLICY_TEXT = "The output video may contain sensitive information."
TIMEOUT_TEXT = "任务超时（1440分钟）"  # noqa: RUF001 (new-api's own full-width brackets)
JSON_HEADERS = {"content-type": "application/json"}


def reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> HttpReply:
    return HttpReply(
        status,
        {**JSON_HEADERS, **(headers or {})},
        json.dumps(payload, ensure_ascii=False).encode(),
    )


def raw(status: str | None, **extra: Any) -> dict[str, Any]:
    """The upstream's raw Ark task, as a gateway nests it."""
    body: dict[str, Any] = {
        "id": CGT,
        "model": MODEL,
        "status": status,
        "created_at": 1780732857,
        "updated_at": UPDATED,
    }
    return {**body, **extra}


def wrapped(
    status: str | None, progress: str | None = None, data: Any = None, **extra: Any
) -> dict[str, Any]:
    """new-api's ``{"code":"success","data":TaskDto}``."""
    dto: dict[str, Any] = {
        "id": 4711,
        "task_id": PUBLIC,
        "platform": "54",
        "action": "generate",
        "status": status,
        "fail_reason": "",
        "result_url": "",
        "submit_time": 1780732857,
        "finish_time": 0,
        "progress": progress,
        "data": data,
    }
    return {"code": "success", "message": "", "data": {**dto, **extra}}


def video(status: str, progress: int | None = 0, **extra: Any) -> dict[str, Any]:
    """new-api's OpenAI-video object."""
    body: dict[str, Any] = {
        "id": PUBLIC,
        "task_id": PUBLIC,
        "object": "video",
        "model": "seedance-2.0-fast",
        "status": status,
        "progress": progress,
        "created_at": 1780732857,
        "completed_at": UPDATED,
        "metadata": {"url": ""},
    }
    return {**body, **extra}


def simple(status: str, url: str = "", error: Any = None) -> dict[str, Any]:
    return {
        "code": "success",
        "message": "",
        "data": {
            "error": error,
            "format": "mp4",
            "metadata": None,
            "status": status,
            "task_id": PUBLIC,
            "url": url,
        },
    }


def t(
    status: TaskStatus | None, raw_status: str | None, task_id: str = PUBLIC, **fields: Any
) -> ProviderTask:
    return ProviderTask(task_id, status, raw_status, **fields)


def err(
    code: ErrorCode, message: str, retryable: bool = False, provider_code: str | None = None
) -> TaskError:
    return TaskError(code, message, retryable, provider_code)


def fault(
    kind: FaultKind,
    retryable: bool,
    message: str,
    status_code: int | None,
    provider_code: str | None = None,
    retry_after: float | None = None,
) -> ProviderFault:
    return ProviderFault(kind, retryable, message, status_code, provider_code, retry_after)


FAILED = "the provider reported the task failed"


@dataclass(frozen=True)
class Case:
    name: str
    reply: HttpReply
    expected: Created | ProviderTask | ProviderFault
    query_id: str | None = PUBLIC
    """The id asked for; None means the reply answers a create."""


QUERY_CASES = [
    # Wrapped TaskDto: every status string, and case variants.
    Case("NOT_START", reply(200, wrapped("NOT_START", "0%")), t(Q, "NOT_START", progress=0)),
    Case(
        "SUBMITTED",
        reply(200, wrapped("SUBMITTED", "10%", raw("queued"))),
        t(Q, "SUBMITTED", progress=10, model=MODEL),
    ),
    Case(
        "QUEUED",
        reply(200, wrapped("QUEUED", "10%", raw("queued"))),
        t(Q, "QUEUED", progress=10, model=MODEL),
    ),
    Case(
        "IN_PROGRESS",
        reply(200, wrapped("IN_PROGRESS", "50%", raw("running"))),
        t(R, "IN_PROGRESS", progress=50, model=MODEL),
    ),
    Case(
        "SUCCESS",
        reply(
            200,
            wrapped(
                "SUCCESS",
                "100%",
                raw(
                    "succeeded",
                    content={"video_url": TOS, "last_frame_url": FRAME},
                    usage=USAGE,
                    seed=97151,
                    resolution="720p",
                    ratio="16:9",
                    duration=5,
                    framespersecond=24,
                ),
                finish_time=FINISHED,
                result_url=TOS,
            ),
        ),
        t(
            S,
            "SUCCESS",
            progress=100,
            model=MODEL,
            video_url=TOS,
            video_url_expires_at=IN_24H,
            last_frame_url=FRAME,
            usage=USAGE,
            resolution="720p",
            ratio="16:9",
            duration=5,
            fps=24,
            seed=97151,
        ),
    ),
    Case(
        "FAILURE with the raw error",
        reply(
            200,
            wrapped(
                "FAILURE",
                "100%",
                raw("failed", error={"code": POLICY, "message": POLICY_TEXT}),
                fail_reason=POLICY_TEXT,
            ),
        ),
        t(
            F,
            "FAILURE",
            progress=100,
            model=MODEL,
            error=err(ErrorCode.CONTENT_POLICY, POLICY_TEXT, False, POLICY),
        ),
    ),
    Case(
        "UNKNOWN without raw is non-committal",
        reply(200, wrapped("UNKNOWN", "")),
        t(None, "UNKNOWN"),
    ),
    Case(
        "' success ' in lower case with spaces",
        reply(200, wrapped(" success ", "100%", None, result_url=PROXY)),
        t(S, " success ", progress=100, video_url=PROXY),
    ),
    Case(
        "'In_Progress' mixed case, progress '45'",
        reply(200, wrapped("In_Progress", "45")),
        t(R, "In_Progress", progress=45),
    ),
    Case(
        "unrecognized PAUSED is non-committal",
        reply(200, wrapped("PAUSED", "30%")),
        t(None, "PAUSED", progress=30),
    ),
    Case("status missing", reply(200, wrapped(None)), t(None, None)),
    # DIALECTS §5.2: the raw status against the gateway's.
    Case(
        "IN_PROGRESS, raw expired wins with its error",
        reply(
            200,
            wrapped(
                "IN_PROGRESS",
                "30%",
                raw("expired", error={"code": "TaskExpired", "message": "exceeded 48h"}),
            ),
        ),
        t(
            X,
            "expired",
            progress=30,
            model=MODEL,
            error=err(ErrorCode.EXPIRED, "exceeded 48h", True, "TaskExpired"),
        ),
    ),
    Case(
        "QUEUED, raw cancelled wins",
        reply(200, wrapped("QUEUED", "10%", raw("cancelled"))),
        t(
            C,
            "cancelled",
            progress=10,
            model=MODEL,
            error=err(ErrorCode.CANCELLED, "the task was cancelled at the provider"),
        ),
    ),
    Case(
        "IN_PROGRESS, raw succeeded wins with its video",
        reply(200, wrapped("IN_PROGRESS", "30%", raw("succeeded", content={"video_url": TOS}))),
        t(S, "succeeded", progress=30, model=MODEL, video_url=TOS, video_url_expires_at=IN_24H),
    ),
    Case(
        "IN_PROGRESS, raw failed wins with its error",
        reply(
            200,
            wrapped(
                "IN_PROGRESS",
                "30%",
                raw("failed", error={"code": "InternalServiceError", "message": "internal error"}),
            ),
        ),
        t(
            F,
            "failed",
            progress=30,
            model=MODEL,
            error=err(ErrorCode.PROVIDER_ERROR, "internal error", True, "InternalServiceError"),
        ),
    ),
    Case(
        "QUEUED over raw running: the gateway's word",
        reply(200, wrapped("QUEUED", "10%", raw("running"))),
        t(Q, "QUEUED", progress=10, model=MODEL),
    ),
    Case(
        "UNKNOWN, the raw status fills in",
        reply(200, wrapped("UNKNOWN", "", raw("running"))),
        t(R, "running", model=MODEL),
    ),
    Case(
        "FAILURE timeout over raw running",
        reply(200, wrapped("FAILURE", "100%", raw("running"), fail_reason=TIMEOUT_TEXT)),
        t(
            F,
            "FAILURE",
            progress=100,
            model=MODEL,
            error=err(ErrorCode.TIMEOUT, TIMEOUT_TEXT, True),
        ),
    ),
    Case(
        "FAILURE 'task timed out' in English",
        reply(200, wrapped("FAILURE", "100%", fail_reason="task timed out after 1440 minutes")),
        t(
            F,
            "FAILURE",
            progress=100,
            error=err(ErrorCode.TIMEOUT, "task timed out after 1440 minutes", True),
        ),
    ),
    Case(
        "SUCCESS over raw failed: the gateway's word, result_url",
        reply(
            200,
            wrapped(
                "SUCCESS",
                "100%",
                raw("failed", error={"code": "X", "message": "y"}),
                result_url=PROXY,
            ),
        ),
        t(S, "SUCCESS", progress=100, model=MODEL, video_url=PROXY),
    ),
    # DIALECTS §5.3 and §5.4: where the video and the error come from.
    Case(
        "raw TOS url preferred over a proxy result_url",
        reply(
            200,
            wrapped(
                "SUCCESS", "100%", raw("succeeded", content={"video_url": TOS}), result_url=PROXY
            ),
        ),
        t(S, "SUCCESS", progress=100, model=MODEL, video_url=TOS, video_url_expires_at=IN_24H),
    ),
    Case(
        "raw unsigned url: Ark's 24 h from raw updated_at",
        reply(
            200,
            wrapped(
                "SUCCESS",
                "100%",
                raw("succeeded", content={"video_url": "https://cdn.example/v.mp4"}),
                finish_time=FINISHED,
            ),
        ),
        t(
            S,
            "SUCCESS",
            progress=100,
            model=MODEL,
            video_url="https://cdn.example/v.mp4",
            video_url_expires_at=IN_24H,
        ),
    ),
    Case(
        "unsigned TOS result_url: 24 h from finish_time",
        reply(
            200,
            wrapped(
                "SUCCESS",
                "100%",
                result_url="https://b.tos-cn-beijing.volces.com/v.mp4",
                finish_time=FINISHED,
            ),
        ),
        t(
            S,
            "SUCCESS",
            progress=100,
            video_url="https://b.tos-cn-beijing.volces.com/v.mp4",
            video_url_expires_at=datetime(2026, 6, 7, 8, 3, 15, tzinfo=UTC),
        ),
    ),
    Case(
        "plain CDN result_url: no known expiry",
        reply(
            200,
            wrapped(
                "SUCCESS", "100%", result_url="https://cdn.example/v.mp4", finish_time=FINISHED
            ),
        ),
        t(S, "SUCCESS", progress=100, video_url="https://cdn.example/v.mp4"),
    ),
    Case(
        "signed S3 result_url: its own expiry",
        reply(
            200,
            wrapped(
                "SUCCESS",
                "100%",
                result_url="https://s3.example/v.mp4?X-Amz-Date=20260606T080000Z"
                "&X-Amz-Expires=3600",
            ),
        ),
        t(
            S,
            "SUCCESS",
            progress=100,
            video_url="https://s3.example/v.mp4?X-Amz-Date=20260606T080000Z&X-Amz-Expires=3600",
            video_url_expires_at=datetime(2026, 6, 6, 9, 0, tzinfo=UTC),
        ),
    ),
    Case(
        "legacy: url in fail_reason, trimmed",
        reply(200, wrapped("SUCCESS", "100%", fail_reason=f" {TOS} ")),
        t(S, "SUCCESS", progress=100, video_url=TOS, video_url_expires_at=IN_24H),
    ),
    Case(
        "SUCCESS: fail_reason text is never an error",
        reply(200, wrapped("SUCCESS", "100%", fail_reason="task failed")),
        t(S, "SUCCESS", progress=100),
    ),
    Case(
        "SUCCESS without any url: succeeded, no video",
        reply(200, wrapped("SUCCESS", "100%", raw("succeeded", content={"video_url": ""}))),
        t(S, "SUCCESS", progress=100, model=MODEL),
    ),
    Case(
        "running: urls are not trusted yet",
        reply(
            200,
            wrapped(
                "IN_PROGRESS", "50%", raw("running", content={"video_url": TOS}), result_url=PROXY
            ),
        ),
        t(R, "IN_PROGRESS", progress=50, model=MODEL),
    ),
    Case(
        "FAILURE: raw error over the generic 'task failed'",
        reply(
            200,
            wrapped(
                "FAILURE",
                "100%",
                raw(
                    "failed",
                    error={"code": "InvalidParameter", "message": "ratio 2:1 is not supported"},
                ),
                fail_reason="task failed",
            ),
        ),
        t(
            F,
            "FAILURE",
            progress=100,
            model=MODEL,
            error=err(
                ErrorCode.INVALID_REQUEST, "ratio 2:1 is not supported", False, "InvalidParameter"
            ),
        ),
    ),
    Case(
        "FAILURE: raw code without words takes fail_reason's",
        reply(
            200,
            wrapped(
                "FAILURE",
                "100%",
                raw("failed", error={"code": POLICY, "message": ""}),
                fail_reason=POLICY_TEXT,
            ),
        ),
        t(
            F,
            "FAILURE",
            progress=100,
            model=MODEL,
            error=err(ErrorCode.CONTENT_POLICY, POLICY_TEXT, False, POLICY),
        ),
    ),
    Case(
        "FAILURE: only 'task failed'",
        reply(200, wrapped("FAILURE", "100%", raw("failed"), fail_reason="task failed")),
        t(
            F,
            "FAILURE",
            progress=100,
            model=MODEL,
            error=err(ErrorCode.PROVIDER_ERROR, "task failed"),
        ),
    ),
    Case(
        "FAILURE: nothing said at all",
        reply(200, wrapped("FAILURE", "100%")),
        t(F, "FAILURE", progress=100, error=err(ErrorCode.PROVIDER_ERROR, FAILED)),
    ),
    # Nesting and usage.
    Case(
        "vastnum: intermediate object only, outer SUCCESS",
        reply(
            200,
            wrapped(
                "SUCCESS",
                "100%",
                {
                    "id": PUBLIC,
                    "status": "succeed",
                    "ratio": "4:3",
                    "duration": 5,
                    "resolution": "480p",
                    "model": "volcengine/x",
                },
                result_url=PROXY,
            ),
        ),
        t(
            S,
            "SUCCESS",
            progress=100,
            model="volcengine/x",
            video_url=PROXY,
            resolution="480p",
            ratio="4:3",
            duration=5,
        ),
    ),
    Case(
        "vastnum: 'succeed' alone does not beat IN_PROGRESS",
        reply(200, wrapped("IN_PROGRESS", "50%", {"id": PUBLIC, "status": "succeed"})),
        t(R, "IN_PROGRESS", progress=50),
    ),
    Case(
        "three levels: a wrapped TaskDto inside the raw",
        reply(
            200,
            wrapped(
                "SUCCESS",
                "100%",
                {
                    "code": "success",
                    "data": {
                        "task_id": "task_upstream",
                        "status": "SUCCESS",
                        "data": raw("succeeded", content={"video_url": TOS}, usage=USAGE),
                    },
                },
            ),
        ),
        t(
            S,
            "SUCCESS",
            progress=100,
            model=MODEL,
            video_url=TOS,
            video_url_expires_at=IN_24H,
            usage=USAGE,
        ),
    ),
    Case(
        "raw stored as a JSON string",
        reply(
            200,
            wrapped(
                "SUCCESS", "100%", json.dumps(raw("succeeded", content={"video_url": TOS}, seed=7))
            ),
        ),
        t(
            S,
            "SUCCESS",
            progress=100,
            model=MODEL,
            video_url=TOS,
            video_url_expires_at=IN_24H,
            seed=7,
        ),
    ),
    Case(
        "usage: completion_details alone",
        reply(
            200,
            wrapped(
                "SUCCESS",
                "100%",
                None,
                result_url=PROXY,
                usage={"completion_details": {"video_tokens": 15000}, "ratio": "16:9"},
            ),
        ),
        t(
            S,
            "SUCCESS",
            progress=100,
            video_url=PROXY,
            usage={"completion_details": {"video_tokens": 15000}},
        ),
    ),
    Case(
        "model from properties when there is no raw",
        reply(
            200,
            wrapped(
                "QUEUED",
                "10%",
                properties={"upstream_model_name": "", "origin_model_name": "sd2.0"},
            ),
        ),
        t(Q, "QUEUED", progress=10, model="sd2.0"),
    ),
    # OpenAI-video object: every status string.
    Case(
        "openai queued",
        reply(200, video("queued")),
        t(Q, "queued", progress=0, model="seedance-2.0-fast"),
    ),
    Case(
        "openai in_progress",
        reply(200, video("in_progress", 45)),
        t(R, "in_progress", progress=45, model="seedance-2.0-fast"),
    ),
    Case(
        "openai completed, signed TOS url",
        reply(200, video("completed", 100, metadata={"url": TOS})),
        t(
            S,
            "completed",
            progress=100,
            model="seedance-2.0-fast",
            video_url=TOS,
            video_url_expires_at=IN_24H,
        ),
    ),
    Case(
        "openai 'Completed', unsigned TOS url: 24 h from completed_at",
        reply(
            200,
            video("Completed", 100, metadata={"url": "https://x.tos-cn-beijing.volces.com/v.mp4"}),
        ),
        t(
            S,
            "Completed",
            progress=100,
            model="seedance-2.0-fast",
            video_url="https://x.tos-cn-beijing.volces.com/v.mp4",
            video_url_expires_at=IN_24H,
        ),
    ),
    Case(
        "openai completed, empty url",
        reply(200, video("completed", 100)),
        t(S, "completed", progress=100, model="seedance-2.0-fast"),
    ),
    Case(
        "openai in_progress ignores a url",
        reply(200, video("in_progress", 50, metadata={"url": TOS})),
        t(R, "in_progress", progress=50, model="seedance-2.0-fast"),
    ),
    Case(
        "openai failed with the Ark code",
        reply(200, video("failed", 100, error={"code": POLICY, "message": POLICY_TEXT})),
        t(
            F,
            "failed",
            progress=100,
            model="seedance-2.0-fast",
            error=err(ErrorCode.CONTENT_POLICY, POLICY_TEXT, False, POLICY),
        ),
    ),
    Case(
        "openai failed, gateway timeout",
        reply(200, video("failed", 100, error={"code": "", "message": TIMEOUT_TEXT})),
        t(
            F,
            "failed",
            progress=100,
            model="seedance-2.0-fast",
            error=err(ErrorCode.TIMEOUT, TIMEOUT_TEXT, True),
        ),
    ),
    Case(
        "openai failed without an error",
        reply(200, video("failed", 100, error=None)),
        t(
            F,
            "failed",
            progress=100,
            model="seedance-2.0-fast",
            error=err(ErrorCode.PROVIDER_ERROR, FAILED),
        ),
    ),
    Case(
        "openai unknown",
        reply(200, video("unknown")),
        t(None, "unknown", progress=0, model="seedance-2.0-fast"),
    ),
    Case(
        "openai ' IN_PROGRESS ' without object",
        reply(200, {"id": PUBLIC, "status": " IN_PROGRESS "}),
        t(R, " IN_PROGRESS "),
    ),
    Case(
        "openai cancelled is not a status it has",
        reply(200, video("cancelled")),
        t(None, "cancelled", progress=0, model="seedance-2.0-fast"),
    ),
    Case(
        "openai usage of newer builds is kept",
        reply(200, video("completed", 100, usage={"total_tokens": 5}, metadata={"url": PROXY})),
        t(
            S,
            "completed",
            progress=100,
            model="seedance-2.0-fast",
            video_url=PROXY,
            usage={"total_tokens": 5},
        ),
    ),
    # Simple realtime format: every status string.
    Case("simple queued", reply(200, simple("queued")), t(Q, "queued")),
    Case("simple processing", reply(200, simple("processing")), t(R, "processing")),
    Case(
        "simple 'Succeeded'",
        reply(200, simple("Succeeded", PROXY)),
        t(S, "Succeeded", video_url=PROXY),
    ),
    Case(
        "simple failed",
        reply(200, simple("failed", error={"message": "quota"})),
        t(F, "failed", error=err(ErrorCode.PROVIDER_ERROR, "quota")),
    ),
    Case("simple odd status", reply(200, simple("paused")), t(None, "paused")),
    # Bare Ark task (raw=true), including the third-party statuses.
    *[
        Case(f"raw=true {s}", reply(200, raw(s)), t(n, s, CGT, model=MODEL), CGT)
        for s, n in [("queued", Q), ("running", R), ("pending", Q), ("processing", R)]
    ],
    Case(
        "raw=true succeeded",
        reply(200, raw("succeeded", content={"video_url": TOS})),
        t(S, "succeeded", CGT, model=MODEL, video_url=TOS, video_url_expires_at=IN_24H),
        CGT,
    ),
    Case(
        "raw=true failed",
        reply(200, raw("failed", error={"code": POLICY, "message": POLICY_TEXT})),
        t(
            F,
            "failed",
            CGT,
            model=MODEL,
            error=err(ErrorCode.CONTENT_POLICY, POLICY_TEXT, False, POLICY),
        ),
        CGT,
    ),
    Case(
        "raw=true expired",
        reply(200, raw("expired")),
        t(
            X,
            "expired",
            CGT,
            model=MODEL,
            error=err(ErrorCode.EXPIRED, "the provider expired the task before it finished", True),
        ),
        CGT,
    ),
    Case(
        "raw=true cancelled",
        reply(200, raw("cancelled")),
        t(
            C,
            "cancelled",
            CGT,
            model=MODEL,
            error=err(ErrorCode.CANCELLED, "the task was cancelled at the provider"),
        ),
        CGT,
    ),
    Case(
        "Ark list: the matching item",
        reply(
            200,
            {"total": 2, "items": [raw("running", id="cgt-20260606160100-aaaaa"), raw("queued")]},
        ),
        t(Q, "queued", CGT, model=MODEL),
        CGT,
    ),
    Case(
        "Ark list without the task",
        reply(200, {"total": 0, "items": []}),
        fault(FaultKind.NOT_FOUND, False, f"task {CGT!r} is not in the provider's task list", 200),
        CGT,
    ),
    # Task ids: public task_… ids against upstream cgt- ids.
    Case(
        "asked by cgt id, gateway answers its public id",
        reply(200, wrapped("IN_PROGRESS", "50%", raw("running"))),
        t(R, "IN_PROGRESS", CGT, progress=50, model=MODEL),
        CGT,
    ),
    Case(
        "asked by public id, raw=true answers the cgt id",
        reply(200, raw("running")),
        t(R, "running", model=MODEL),
    ),
    Case(
        "asked by cgt id, flat answers a public id",
        reply(200, video("queued")),
        t(Q, "queued", CGT, progress=0, model="seedance-2.0-fast"),
        CGT,
    ),
    Case(
        "another public id",
        reply(200, wrapped("IN_PROGRESS", "50%", raw("running"), task_id="task_other")),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            f"provider answered with task 'task_other', {CGT!r} when asked for {PUBLIC!r}",
            200,
        ),
    ),
    Case(
        "asked by cgt id, another cgt id nested",
        reply(200, wrapped("IN_PROGRESS", "50%", raw("running", id="cgt-other"))),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            f"provider answered with task {PUBLIC!r}, 'cgt-other' when asked for {CGT!r}",
            200,
        ),
        CGT,
    ),
    Case(
        "raw=true with another cgt id",
        reply(200, raw("running", id="cgt-other")),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            f"provider answered with task 'cgt-other' when asked for {CGT!r}",
            200,
        ),
        CGT,
    ),
    Case(
        "flat with another public id",
        reply(200, video("queued", id="video_other", task_id="video_other")),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            f"provider answered with task 'video_other', 'video_other' when asked for {PUBLIC!r}",
            200,
        ),
    ),
    Case(
        "simple with another id",
        reply(
            200,
            {
                "code": "success",
                "data": {"format": "mp4", "url": "", "status": "queued", "task_id": "task_other"},
            },
        ),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            f"provider answered with task 'task_other' when asked for {PUBLIC!r}",
            200,
        ),
    ),
    Case(
        "no id at all is taken as the task asked for",
        reply(200, wrapped("QUEUED", "0%", task_id="")),
        t(Q, "QUEUED", progress=0),
    ),
    # Gateway errors (DIALECTS §4) and bodies that are no answer.
    Case(
        "400 task_not_exist",
        reply(400, {"code": "task_not_exist", "message": "task_not_exist", "data": None}),
        fault(
            FaultKind.NOT_FOUND,
            False,
            "provider answered HTTP 400 [task_not_exist]: task_not_exist",
            400,
            "task_not_exist",
        ),
    ),
    Case(
        "200 task_not_exist",
        reply(200, {"code": "task_not_exist", "message": "task_not_exist", "data": None}),
        fault(
            FaultKind.NOT_FOUND,
            False,
            "provider answered HTTP 200 with an error [task_not_exist]: task_not_exist",
            200,
            "task_not_exist",
        ),
    ),
    Case(
        "200 another gateway error code",
        reply(200, {"code": "get_task_failed", "message": "db down", "data": None}),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            "provider answered HTTP 200 with an error [get_task_failed]: db down",
            200,
            "get_task_failed",
        ),
    ),
    Case(
        "401 invalid token (Chinese)",
        reply(
            401,
            {
                "error": {
                    "message": "无效的令牌 (request id: 2026060608050012345)",
                    "type": "new_api_error",
                    "code": "",
                }
            },
        ),
        fault(
            FaultKind.UNAUTHORIZED,
            False,
            "provider answered HTTP 401: 无效的令牌 (request id: 2026060608050012345)",
            401,
        ),
    ),
    Case(
        "401 invalid token (English)",
        reply(401, {"error": {"message": "Invalid token", "type": "new_api_error", "code": ""}}),
        fault(FaultKind.UNAUTHORIZED, False, "provider answered HTTP 401: Invalid token", 401),
    ),
    Case(
        "503 model_not_found is configuration",
        reply(
            503,
            {
                "error": {
                    "message": "no available channel for this model",
                    "type": "new_api_error",
                    "code": "model_not_found",
                }
            },
        ),
        fault(
            FaultKind.UNAVAILABLE,
            False,
            "provider answered HTTP 503 [model_not_found]: no available channel for this model",
            503,
            "model_not_found",
        ),
    ),
    Case(
        "500 get_task_failed",
        reply(500, {"code": "get_task_failed", "message": "db error", "data": None}),
        fault(
            FaultKind.UNAVAILABLE,
            True,
            "provider answered HTTP 500 [get_task_failed]: db error",
            500,
            "get_task_failed",
        ),
    ),
    Case(
        "404 proxy 'Task not found' without a code: wrong path",
        reply(404, {"error": {"message": "Task not found", "type": "invalid_request_error"}}),
        fault(FaultKind.UNAVAILABLE, True, "provider answered HTTP 404: Task not found", 404),
    ),
    Case(
        "502 HTML",
        HttpReply(
            502,
            {"content-type": "text/html"},
            b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        ),
        fault(FaultKind.UNAVAILABLE, True, "provider answered HTTP 502: 502 Bad Gateway", 502),
    ),
    Case(
        "200 success with data null",
        reply(200, {"code": "success", "data": None}),
        fault(
            FaultKind.BAD_RESPONSE, True, "provider answered HTTP 200 with success but no task", 200
        ),
    ),
    Case(
        "200 error object",
        reply(200, {"error": {"message": "busy", "type": "new_api_error", "code": "busy"}}),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            "provider answered HTTP 200 with an error [busy]: busy",
            200,
            "busy",
        ),
    ),
    Case(
        "200 {}",
        reply(200, {}),
        fault(FaultKind.BAD_RESPONSE, True, "provider answered HTTP 200 without a task", 200),
    ),
    Case(
        "200 garbage",
        HttpReply(200, JSON_HEADERS, b"\x1f\x8b\x08\x00garbage"),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            "provider answered HTTP 200 with a body that is not a JSON object",
            200,
        ),
    ),
    Case(
        "200 empty body",
        HttpReply(200, JSON_HEADERS, b""),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            "provider answered HTTP 200 with a body that is not a JSON object",
            200,
        ),
    ),
    Case(
        "200 JSON array",
        reply(200, [video("queued")]),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            "provider answered HTTP 200 with a body that is not a JSON object",
            200,
        ),
    ),
    Case(
        "200 with a BOM",
        HttpReply(
            200, JSON_HEADERS, b"\xef\xbb\xbf" + json.dumps(wrapped("IN_PROGRESS", "50%")).encode()
        ),
        t(R, "IN_PROGRESS", progress=50),
    ),
]

CREATE_CASES = [
    Case(
        "OpenAI-video object",
        reply(200, video("queued", 0, id="video_1", task_id="video_1")),
        Created("video_1", t(Q, "queued", "video_1", progress=0, model="seedance-2.0-fast")),
        None,
    ),
    Case(
        "OpenAI-video object with only the deprecated task_id",
        reply(200, {"task_id": "video_1", "object": "video", "status": "queued", "progress": 0}),
        Created("video_1", t(Q, "queued", "video_1", progress=0)),
        None,
    ),
    Case("older builds: {task_id: cgt-…}", reply(200, {"task_id": CGT}), Created(CGT), None),
    Case(
        "wrapped TaskDto",
        reply(200, wrapped("SUBMITTED", "0%")),
        Created(PUBLIC, t(Q, "SUBMITTED", progress=0)),
        None,
    ),
    Case(
        "wrapped task_id only",
        reply(200, {"code": "success", "data": {"task_id": PUBLIC}}),
        Created(PUBLIC),
        None,
    ),
    Case("bare Ark id", reply(200, {"id": CGT}), Created(CGT), None),
    Case(
        "Ark-style running object",
        reply(200, raw("running")),
        Created(CGT, t(R, "running", CGT, model=MODEL)),
        None,
    ),
    Case(
        "400 prompt is required",
        reply(400, {"code": "invalid_request", "message": "prompt is required", "data": None}),
        fault(
            FaultKind.INVALID_REQUEST,
            False,
            "provider answered HTTP 400 [invalid_request]: prompt is required",
            400,
            "invalid_request",
        ),
        None,
    ),
    Case(
        "429 upstream saturated",
        reply(
            429,
            {
                "code": "fail_to_fetch_task",
                "message": "当前分组上游负载已饱和，请稍后再试",  # noqa: RUF001
                "data": None,
            },
            {"retry-after": "30"},
        ),
        fault(
            FaultKind.RATE_LIMITED,
            True,
            "provider answered HTTP 429 [fail_to_fetch_task]: 当前分组上游负载已饱和，请稍后再试",  # noqa: RUF001
            429,
            "fail_to_fetch_task",
            30.0,
        ),
        None,
    ),
    Case(
        "429 with the upstream's SetLimitExceeded embedded",
        reply(
            429,
            {
                "code": "fail_to_fetch_task",
                "data": None,
                "message": json.dumps(
                    {
                        "error": {
                            "code": "SetLimitExceeded",
                            "message": "You have reached the set inference limit.",
                            "param": "",
                            "type": "TooManyRequests",
                        }
                    }
                ),
            },
        ),
        fault(
            FaultKind.RATE_LIMITED,
            False,
            "provider answered HTTP 429 [SetLimitExceeded]: "
            "You have reached the set inference limit.",
            429,
            "SetLimitExceeded",
        ),
        None,
    ),
    Case(
        "400 with input moderation embedded",
        reply(
            400,
            {
                "code": "fail_to_fetch_task",
                "data": None,
                "message": json.dumps(
                    {
                        "error": {
                            "code": "InputImageSensitiveContentDetected.PolicyViolation",
                            "message": "The input image may contain real person.",
                            "type": "BadRequest",
                        }
                    }
                ),
            },
        ),
        fault(
            FaultKind.INVALID_REQUEST,
            False,
            "provider answered HTTP 400 "
            "[InputImageSensitiveContentDetected.PolicyViolation]: The input image may "
            "contain real person.",
            400,
            "InputImageSensitiveContentDetected.PolicyViolation",
        ),
        None,
    ),
    Case(
        "500 embedded twice (gateway behind a gateway)",
        reply(
            500,
            {
                "code": "fail_to_fetch_task",
                "data": None,
                "message": json.dumps(
                    {
                        "code": "fail_to_fetch_task",
                        "data": None,
                        "message": json.dumps(
                            {"error": {"code": "InternalServiceError", "message": "internal"}}
                        ),
                    }
                ),
            },
        ),
        fault(
            FaultKind.UNAVAILABLE,
            True,
            "provider answered HTTP 500 [InternalServiceError]: internal",
            500,
            "InternalServiceError",
        ),
        None,
    ),
    Case(
        "embedded message without a code keeps the outer code",
        reply(
            400,
            {
                "code": "fail_to_fetch_task",
                "data": None,
                "message": json.dumps({"error": {"message": "bad ratio"}}),
            },
        ),
        fault(
            FaultKind.INVALID_REQUEST,
            False,
            "provider answered HTTP 400 [fail_to_fetch_task]: bad ratio",
            400,
            "fail_to_fetch_task",
        ),
        None,
    ),
    Case(
        "message that only looks like JSON stays text",
        reply(400, {"code": "fail_to_fetch_task", "message": "{broken", "data": None}),
        fault(
            FaultKind.INVALID_REQUEST,
            False,
            "provider answered HTTP 400 [fail_to_fetch_task]: {broken",
            400,
            "fail_to_fetch_task",
        ),
        None,
    ),
    Case(
        "503 model_not_found",
        reply(
            503,
            {
                "error": {
                    "message": "no available channel for this model",
                    "type": "new_api_error",
                    "code": "model_not_found",
                }
            },
        ),
        fault(
            FaultKind.UNAVAILABLE,
            False,
            "provider answered HTTP 503 [model_not_found]: no available channel for this model",
            503,
            "model_not_found",
        ),
        None,
    ),
    Case(
        "401 invalid token",
        reply(401, {"error": {"message": "Invalid token", "type": "new_api_error", "code": ""}}),
        fault(FaultKind.UNAUTHORIZED, False, "provider answered HTTP 401: Invalid token", 401),
        None,
    ),
    Case(
        "200 task_not_exist",
        reply(200, {"code": "task_not_exist", "message": "x", "data": None}),
        fault(
            FaultKind.NOT_FOUND,
            False,
            "provider answered HTTP 200 with an error [task_not_exist]: x",
            200,
            "task_not_exist",
        ),
        None,
    ),
    Case(
        "200 without an id",
        reply(200, {"object": "video", "status": "queued", "id": ""}),
        fault(FaultKind.BAD_RESPONSE, True, "provider answered HTTP 200 without a task", 200),
        None,
    ),
    Case(
        "200 wrapped without task_id",
        reply(200, {"code": "success", "data": {"id": 5}}),
        fault(FaultKind.BAD_RESPONSE, True, "provider answered HTTP 200 without a task", 200),
        None,
    ),
    Case(
        "200 garbage",
        HttpReply(200, {}, b"<html>ok</html>"),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            "provider answered HTTP 200 with a body that is not a JSON object",
            200,
        ),
        None,
    ),
    Case(
        "201 with a BOM",
        HttpReply(201, JSON_HEADERS, b'\xef\xbb\xbf{"task_id": "cgt-1"}'),
        Created("cgt-1"),
        None,
    ),
]


@pytest.mark.parametrize(
    "case", QUERY_CASES + CREATE_CASES, ids=[c.name for c in QUERY_CASES + CREATE_CASES]
)
def test_unified_normalizes(case: Case) -> None:
    if case.query_id is None:
        assert DIALECT.parse_create(case.reply, NOW) == case.expected
    else:
        assert DIALECT.parse_query(case.reply, case.query_id, NOW) == case.expected


def test_unified_builds_calls() -> None:
    dialect: Dialect = DIALECT
    body = {"model": "sd2.0", "prompt": "a fox", "metadata": {"ratio": "16:9"}}
    assert (dialect.name, dialect.pushes, dialect.cancellable) == ("unified", False, frozenset())
    # No push target even when offered: the body goes out verbatim.
    assert dialect.build_create(body, "https://relay.example/v1/inbound/x/tok") == HttpCall(
        "POST", "/v1/video/generations", body
    )
    assert dialect.build_query("task_a/b c") == HttpCall(
        "GET", "/v1/video/generations/task_a%2Fb%20c", None, {}
    )
    assert dialect.build_cancel(PUBLIC) is None


def test_unified_query_params_go_on_every_query() -> None:
    params = dict(SHOW_RAW_AND_USAGE)
    naci = UnifiedDialect(params)
    params["raw"] = "true"  # the dialect keeps its own copy
    assert naci.build_query(CGT) == HttpCall(
        "GET", f"/v1/video/generations/{CGT}", None, {"show_raw": "true", "show_usage": "true"}
    )


def test_unified_cannot_cancel() -> None:
    answer = DIALECT.parse_cancel(reply(200, {}), PUBLIC, NOW)
    assert answer == fault(
        FaultKind.INVALID_REQUEST, False, "the unified dialect has no cancel call", 200
    )
    assert not isinstance(answer, CancelAccepted)


def test_unified_status_tables() -> None:
    assert {k: v.value for k, v in TASK_DTO_STATUSES.items()} == {
        "not_start": "queued",
        "submitted": "queued",
        "queued": "queued",
        "in_progress": "running",
        "success": "succeeded",
        "failure": "failed",
    }
    assert {k: v.value for k, v in OPENAI_VIDEO_STATUSES.items()} == {
        "queued": "queued",
        "in_progress": "running",
        "completed": "succeeded",
        "failed": "failed",
    }
    assert {k: v.value for k, v in SIMPLE_STATUSES.items()} == {
        "queued": "queued",
        "processing": "running",
        "succeeded": "succeeded",
        "failed": "failed",
    }


@pytest.mark.parametrize(
    ("outer", "raw_status", "expected"),
    [
        (R, X, (X, True)),
        (R, C, (C, True)),
        (Q, S, (S, True)),
        (R, F, (F, True)),
        (None, R, (R, True)),
        (None, None, (None, False)),
        (R, None, (R, False)),
        (Q, R, (Q, False)),
        (F, R, (F, False)),
        (S, F, (S, False)),
        (F, S, (F, False)),
        (S, X, (S, False)),
    ],
)
def test_resolve_status(
    outer: TaskStatus | None,
    raw_status: TaskStatus | None,
    expected: tuple[TaskStatus | None, bool],
) -> None:
    assert resolve_status(outer, raw_status) == expected
