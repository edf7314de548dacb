"""The Ark dialect on the provider pages' samples and on captured-style replies, plus the
shared helpers of ``relay.adapters.common``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from relay.adapters.ark import ARK_STATUSES, ArkDialect, ark_id_created_at
from relay.adapters.base import Created, Dialect, HttpCall, HttpReply
from relay.adapters.common import (
    decode_json,
    http_fault,
    normalize_status,
    parse_progress,
    signed_url_expiry,
    unix_to_datetime,
)
from relay.backoff import parse_retry_after
from relay.models import ErrorCode, TaskError, TaskStatus
from relay.provider_answers import FaultKind, ProviderFault, ProviderTask

SAMPLES = Path(__file__).parent / "samples" / "ark"
NOW = datetime(2026, 6, 6, 8, 5, 0, tzinfo=UTC)
DIALECT = ArkDialect()

ID = "cgt-20260606160057-6bbjd"
MODEL = "doubao-seedance-2-0-fast-260128"
UPDATED = 1780732991
"""2026-06-06T08:03:11Z, the apiyi sample's ``updated_at``."""
TOS_URL = (
    "https://ark-acg-cn-beijing.tos-cn-beijing.volces.com/doubao-seedance-2-0/"
    f"{ID}/video.mp4?X-Tos-Algorithm=TOS4-HMAC-SHA256&X-Tos-Credential=AKLT%2F20260606"
    "%2Fcn-beijing%2Ftos%2Frequest&X-Tos-Date=20260606T080311Z&X-Tos-Expires=86400"
    "&X-Tos-Signature=5e1f&X-Tos-SignedHeaders=host"
)
FRAME_URL = (
    "https://ark-acg-cn-beijing.tos-cn-beijing.volces.com/last_frame.png?X-Tos-Expires=86400"
)
NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
JSON_HEADERS = {"content-type": "application/json"}


def file_reply(name: str) -> HttpReply:
    return HttpReply(200, JSON_HEADERS, (SAMPLES / name).read_bytes())


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> HttpReply:
    return HttpReply(status, {**JSON_HEADERS, **(headers or {})}, json.dumps(payload).encode())


def ark(status: str | None, **extra: Any) -> dict[str, Any]:
    """A captured-style Ark task body (GET, list item and callback bodies are identical)."""
    body: dict[str, Any] = {
        "id": ID,
        "model": MODEL,
        "status": status,
        "created_at": 1780732857,
        "updated_at": UPDATED,
    }
    if status is None:
        del body["status"]
    return {**body, **extra}


def ark_error(code: str, message: str, type_: str, param: str = "") -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": f"{message} Request id: 0217807329915",
            "param": param,
            "type": type_,
        }
    }


def fault(
    kind: FaultKind,
    retryable: bool,
    message: str,
    status_code: int | None,
    provider_code: str | None = None,
    retry_after: float | None = None,
) -> ProviderFault:
    return ProviderFault(kind, retryable, message, status_code, provider_code, retry_after)


def failed(
    code: ErrorCode,
    message: str,
    retryable: bool,
    provider_code: str | None,
    status: TaskStatus = TaskStatus.FAILED,
) -> ProviderTask:
    return ProviderTask(
        ID,
        status,
        status.value,
        model=MODEL,
        error=TaskError(code, message, retryable, provider_code),
    )


@dataclass(frozen=True)
class Case:
    name: str
    reply: HttpReply
    expected: Created | ProviderTask | ProviderFault
    query_id: str | None = None
    """The id asked for; None means the reply answers a create."""


CUBIC = "task_xxx"
CUBIC_MODEL = "doubao-seedance-2.0"
USAGE = {"completion_tokens": 108900, "total_tokens": 108900}
POLICY_TEXT = "The request failed because the output video may be related to policy restrictions."

CASES = [
    # The provider pages' own samples.
    Case("apiyi create", file_reply("apiyi_create.json"), Created(ID)),
    Case(
        "apiyi create example",
        file_reply("apiyi_create_example.json"),
        Created("cgt-2026xxxx-xxxxx"),
    ),
    Case(
        "apiyi succeeded",
        file_reply("apiyi_succeeded.json"),
        ProviderTask(
            ID,
            TaskStatus.SUCCEEDED,
            "succeeded",
            model=MODEL,
            video_url="https://ark-acg-cn-beijing.tos-cn-beijing.volces.com/....mp4"
            "?X-Tos-Expires=86400&...",
            video_url_expires_at=datetime(2026, 6, 7, 8, 3, 11, tzinfo=UTC),
            usage=USAGE,
            resolution="720p",
            ratio="16:9",
            duration=5,
            fps=24,
            seed=97151,
        ),
        query_id=ID,
    ),
    Case(
        "cubicspaces create returns a running task",
        file_reply("cubicspaces_create.json"),
        Created(CUBIC, ProviderTask(CUBIC, TaskStatus.RUNNING, "running", model=CUBIC_MODEL)),
    ),
    Case(
        "cubicspaces running",
        file_reply("cubicspaces_running.json"),
        ProviderTask(CUBIC, TaskStatus.RUNNING, "running", model=CUBIC_MODEL),
        query_id=CUBIC,
    ),
    Case(
        "cubicspaces succeeded, unsigned url",
        file_reply("cubicspaces_succeeded.json"),
        ProviderTask(
            CUBIC,
            TaskStatus.SUCCEEDED,
            "succeeded",
            model=CUBIC_MODEL,
            video_url="https://example.com/generated-video.mp4",
            video_url_expires_at=datetime(2026, 2, 3, 2, 50, tzinfo=UTC),
        ),
        query_id=CUBIC,
    ),
    Case(
        "cubicspaces failed",
        file_reply("cubicspaces_failed.json"),
        ProviderTask(
            CUBIC,
            TaskStatus.FAILED,
            "failed",
            model=CUBIC_MODEL,
            # A generic code, but Ark's moderation wording: content_policy.
            error=TaskError(ErrorCode.CONTENT_POLICY, POLICY_TEXT, False, "task_failed"),
        ),
        query_id=CUBIC,
    ),
    Case(
        "naci raw=true body",
        file_reply("naci_raw_succeeded.json"),
        ProviderTask(
            "cgt-20260330164007-wnc8k",
            TaskStatus.SUCCEEDED,
            "succeeded",
            model="doubao-seedance-2-0-260128",
            video_url="https://example.com/generated-video.mp4",
            video_url_expires_at=datetime(2026, 3, 31, 8, 41, 28, tzinfo=UTC),
            last_frame_url="https://example.com/last-frame.png",
            usage={"completion_tokens": 13987, "total_tokens": 15000},
            resolution="720p",
            ratio="16:9",
            duration=11,
            fps=30,
            seed=1345,
        ),
        query_id="cgt-20260330164007-wnc8k",
    ),
    # Every Ark status string, and the third-party ones.
    Case(
        "queued",
        json_reply(200, ark("queued")),
        ProviderTask(ID, TaskStatus.QUEUED, "queued", model=MODEL),
        query_id=ID,
    ),
    Case(
        "running",
        json_reply(200, ark("running")),
        ProviderTask(ID, TaskStatus.RUNNING, "running", model=MODEL),
        query_id=ID,
    ),
    Case(
        "succeeded with X-Tos-Date and last frame",
        json_reply(
            200,
            ark(
                "succeeded",
                content={"video_url": TOS_URL, "last_frame_url": FRAME_URL},
                usage=USAGE,
                seed=97151,
                resolution="720p",
                ratio="16:9",
                duration=5,
                framespersecond=24,
                service_tier="default",
                execution_expires_after=172800,
                generate_audio=True,
                draft=False,
            ),
        ),
        ProviderTask(
            ID,
            TaskStatus.SUCCEEDED,
            "succeeded",
            model=MODEL,
            video_url=TOS_URL,
            video_url_expires_at=datetime(2026, 6, 7, 8, 3, 11, tzinfo=UTC),
            last_frame_url=FRAME_URL,
            usage=USAGE,
            resolution="720p",
            ratio="16:9",
            duration=5,
            fps=24,
            seed=97151,
        ),
        query_id=ID,
    ),
    Case(
        "SUCCEEDED in capitals, no updated_at: url lifetime counts from now",
        json_reply(
            200,
            {
                "id": ID,
                "status": "SUCCEEDED",
                "content": {"video_url": "https://cdn.example/v.mp4?x-tos-expires=3600"},
            },
        ),
        ProviderTask(
            ID,
            TaskStatus.SUCCEEDED,
            "SUCCEEDED",
            video_url="https://cdn.example/v.mp4?x-tos-expires=3600",
            video_url_expires_at=datetime(2026, 6, 6, 9, 5, tzinfo=UTC),
        ),
        query_id=ID,
    ),
    Case(
        "' Running ' with spaces",
        json_reply(200, ark(" Running ")),
        ProviderTask(ID, TaskStatus.RUNNING, " Running ", model=MODEL),
        query_id=ID,
    ),
    Case(
        "pending (CTyun) is queued",
        json_reply(200, ark("pending")),
        ProviderTask(ID, TaskStatus.QUEUED, "pending", model=MODEL),
        query_id=ID,
    ),
    Case(
        "processing is running",
        json_reply(200, ark("processing")),
        ProviderTask(ID, TaskStatus.RUNNING, "processing", model=MODEL),
        query_id=ID,
    ),
    Case(
        "unknown status is non-committal",
        json_reply(200, ark("paused", error=None)),
        ProviderTask(ID, None, "paused", model=MODEL),
        query_id=ID,
    ),
    Case(
        "missing status is non-committal",
        json_reply(200, ark(None)),
        ProviderTask(ID, None, None, model=MODEL),
        query_id=ID,
    ),
    Case(
        "succeeded with an empty video_url",
        json_reply(200, ark("succeeded", content={"video_url": "", "last_frame_url": ""})),
        ProviderTask(ID, TaskStatus.SUCCEEDED, "succeeded", model=MODEL),
        query_id=ID,
    ),
    Case(
        "running: a content url is not trusted yet",
        json_reply(200, ark("running", content={"video_url": TOS_URL})),
        ProviderTask(ID, TaskStatus.RUNNING, "running", model=MODEL),
        query_id=ID,
    ),
    Case(
        "duration -1 and frames only give no duration",
        json_reply(200, ark("queued", duration=-1, frames=121, seed="42")),
        ProviderTask(ID, TaskStatus.QUEUED, "queued", model=MODEL, seed=42),
        query_id=ID,
    ),
    Case(
        "failed: output moderation",
        json_reply(
            200,
            ark(
                "failed",
                error={
                    "code": "OutputVideoSensitiveContentDetected.PolicyViolation",
                    "message": "The output video may contain sensitive information.",
                },
            ),
        ),
        failed(
            ErrorCode.CONTENT_POLICY,
            "The output video may contain sensitive information.",
            False,
            "OutputVideoSensitiveContentDetected.PolicyViolation",
        ),
        query_id=ID,
    ),
    Case(
        "failed: internal error is retryable",
        json_reply(
            200,
            ark(
                "failed",
                error={
                    "code": "InternalServiceError",
                    "message": "The service encountered an unexpected internal error.",
                },
            ),
        ),
        failed(
            ErrorCode.PROVIDER_ERROR,
            "The service encountered an unexpected internal error.",
            True,
            "InternalServiceError",
        ),
        query_id=ID,
    ),
    Case(
        "failed: invalid parameter",
        json_reply(
            200,
            ark(
                "failed",
                error={
                    "code": "InvalidParameter.UnsupportedRatio",
                    "message": "ratio 2:1 is not supported",
                },
            ),
        ),
        failed(
            ErrorCode.INVALID_REQUEST,
            "ratio 2:1 is not supported",
            False,
            "InvalidParameter.UnsupportedRatio",
        ),
        query_id=ID,
    ),
    Case(
        "failed: account quota",
        json_reply(
            200, ark("failed", error={"code": "AccountQuotaExceeded", "message": "quota used up"})
        ),
        failed(ErrorCode.QUOTA_EXCEEDED, "quota used up", False, "AccountQuotaExceeded"),
        query_id=ID,
    ),
    Case(
        "failed without an error object",
        json_reply(200, ark("FAILED")),
        ProviderTask(
            ID,
            TaskStatus.FAILED,
            "FAILED",
            model=MODEL,
            error=TaskError(
                ErrorCode.PROVIDER_ERROR, "the provider reported the task failed", False, None
            ),
        ),
        query_id=ID,
    ),
    Case(
        "failed: a leftover content url is dropped",
        json_reply(
            200, ark("failed", content={"video_url": TOS_URL}, error={"code": "", "message": ""})
        ),
        failed(ErrorCode.PROVIDER_ERROR, "the provider reported the task failed", False, None),
        query_id=ID,
    ),
    Case(
        "expired",
        json_reply(200, ark("expired", error=None)),
        failed(
            ErrorCode.EXPIRED,
            "the provider expired the task before it finished",
            True,
            None,
            TaskStatus.EXPIRED,
        ),
        query_id=ID,
    ),
    Case(
        "expired keeps the provider's words",
        json_reply(
            200,
            ark(
                "expired",
                error={"code": "TaskExpired", "message": "task exceeded execution_expires_after"},
            ),
        ),
        failed(
            ErrorCode.EXPIRED,
            "task exceeded execution_expires_after",
            True,
            "TaskExpired",
            TaskStatus.EXPIRED,
        ),
        query_id=ID,
    ),
    Case(
        "cancelled",
        json_reply(200, ark("cancelled")),
        failed(
            ErrorCode.CANCELLED,
            "the task was cancelled at the provider",
            False,
            None,
            TaskStatus.CANCELLED,
        ),
        query_id=ID,
    ),
    # Shapes around the task.
    Case(
        "list shape picks the matching item",
        json_reply(
            200,
            {"total": 2, "items": [ark("running", id="cgt-20260606160100-aaaaa"), ark("queued")]},
        ),
        ProviderTask(ID, TaskStatus.QUEUED, "queued", model=MODEL),
        query_id=ID,
    ),
    Case(
        "list shape without the task",
        json_reply(
            200, {"total": 1, "items": [ark("running", id="cgt-20260606160100-aaaaa"), "junk"]}
        ),
        fault(FaultKind.NOT_FOUND, False, f"task {ID!r} is not in the provider's task list", 200),
        query_id=ID,
    ),
    Case(
        "another task's body",
        json_reply(200, ark("running", id="cgt-other")),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            f"provider answered with task 'cgt-other' when asked for {ID!r}",
            200,
        ),
        query_id=ID,
    ),
    Case(
        "200 with garbage (query)",
        HttpReply(200, JSON_HEADERS, b"\x1f\x8b\x08\x00garbage"),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            "provider answered HTTP 200 with a body that is not a JSON object",
            200,
        ),
        query_id=ID,
    ),
    Case(
        "200 with a JSON array (query)",
        json_reply(200, [ark("running")]),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            "provider answered HTTP 200 with a body that is not a JSON object",
            200,
        ),
        query_id=ID,
    ),
    Case(
        "200 with garbage (create)",
        HttpReply(200, {}, b"<html>ok</html>"),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            "provider answered HTTP 200 with a body that is not a JSON object",
            200,
        ),
    ),
    Case(
        "200 without an id (create)",
        json_reply(201, {"id": "", "status": "queued"}),
        fault(FaultKind.BAD_RESPONSE, True, "provider answered HTTP 201 without a task id", 201),
    ),
    Case(
        "200 wrapping an error (create)",
        json_reply(
            200,
            ark_error(
                "InvalidParameter", "the parameter `ratio` is invalid.", "BadRequest", "ratio"
            ),
        ),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            "provider answered HTTP 200 with an error "
            "[InvalidParameter]: the parameter `ratio` is invalid. Request id: 0217807329915",
            200,
            "InvalidParameter",
        ),
    ),
    # Error replies.
    Case(
        "401 AuthenticationError",
        json_reply(
            401,
            ark_error(
                "AuthenticationError",
                "The API key in the request is missing or invalid.",
                "Unauthorized",
            ),
        ),
        fault(
            FaultKind.UNAUTHORIZED,
            False,
            "provider answered HTTP 401 [AuthenticationError]: "
            "The API key in the request is missing or invalid. Request id: 0217807329915",
            401,
            "AuthenticationError",
        ),
        query_id=ID,
    ),
    Case(
        "403 AccountOverdueError",
        json_reply(
            403,
            ark_error("AccountOverdueError", "Your account has an overdue balance.", "Forbidden"),
        ),
        fault(
            FaultKind.UNAUTHORIZED,
            False,
            "provider answered HTTP 403 [AccountOverdueError]: "
            "Your account has an overdue balance. Request id: 0217807329915",
            403,
            "AccountOverdueError",
        ),
    ),
    Case(
        "404 ResourceNotFound",
        json_reply(
            404, ark_error("ResourceNotFound", "The specified task is not found.", "NotFound")
        ),
        fault(
            FaultKind.NOT_FOUND,
            False,
            "provider answered HTTP 404 [ResourceNotFound]: "
            "The specified task is not found. Request id: 0217807329915",
            404,
            "ResourceNotFound",
        ),
        query_id=ID,
    ),
    Case(
        "400 task_not_exist from a new-api mirror",
        json_reply(400, {"code": "task_not_exist", "message": "task_not_exist", "data": None}),
        fault(
            FaultKind.NOT_FOUND,
            False,
            "provider answered HTTP 400 [task_not_exist]: task_not_exist",
            400,
            "task_not_exist",
        ),
        query_id=ID,
    ),
    Case(
        "400 input image moderation",
        json_reply(
            400,
            ark_error(
                "InputImageSensitiveContentDetected.PolicyViolation",
                "The request failed because the input image may contain real person.",
                "BadRequest",
            ),
        ),
        fault(
            FaultKind.INVALID_REQUEST,
            False,
            "provider answered HTTP 400 "
            "[InputImageSensitiveContentDetected.PolicyViolation]: The request failed because "
            "the input image may contain real person. Request id: 0217807329915",
            400,
            "InputImageSensitiveContentDetected.PolicyViolation",
        ),
    ),
    Case(
        "400 input text moderation",
        json_reply(
            400,
            ark_error(
                "InputTextSensitiveContentDetected",
                "The input text may contain sensitive information.",
                "BadRequest",
            ),
        ),
        fault(
            FaultKind.INVALID_REQUEST,
            False,
            "provider answered HTTP 400 "
            "[InputTextSensitiveContentDetected]: The input text may contain sensitive "
            "information. Request id: 0217807329915",
            400,
            "InputTextSensitiveContentDetected",
        ),
    ),
    Case(
        "408 is a timeout",
        HttpReply(408, {}, b""),
        fault(FaultKind.TIMEOUT, True, "provider answered HTTP 408", 408),
        query_id=ID,
    ),
    Case(
        "429 RPM with Retry-After",
        json_reply(
            429,
            ark_error(
                "RateLimitExceeded.EndpointRPMExceeded", "Too many requests.", "TooManyRequests"
            ),
            {"retry-after": "7"},
        ),
        fault(
            FaultKind.RATE_LIMITED,
            True,
            "provider answered HTTP 429 "
            "[RateLimitExceeded.EndpointRPMExceeded]: Too many requests. Request id: "
            "0217807329915",
            429,
            "RateLimitExceeded.EndpointRPMExceeded",
            7.0,
        ),
    ),
    Case(
        "429 SetLimitExceeded is an account refusal",
        json_reply(
            429,
            ark_error(
                "SetLimitExceeded", "You have reached the set inference limit.", "TooManyRequests"
            ),
        ),
        fault(
            FaultKind.RATE_LIMITED,
            False,
            "provider answered HTTP 429 [SetLimitExceeded]: "
            "You have reached the set inference limit. Request id: 0217807329915",
            429,
            "SetLimitExceeded",
        ),
    ),
    Case(
        "500 InternalServiceError",
        json_reply(
            500,
            ark_error(
                "InternalServiceError",
                "The service encountered an unexpected internal error.",
                "InternalServerError",
            ),
        ),
        fault(
            FaultKind.UNAVAILABLE,
            True,
            "provider answered HTTP 500 [InternalServiceError]: "
            "The service encountered an unexpected internal error. Request id: 0217807329915",
            500,
            "InternalServiceError",
        ),
        query_id=ID,
    ),
    Case(
        "502 with an HTML body",
        HttpReply(502, {"content-type": "text/html"}, NGINX_502),
        fault(
            FaultKind.UNAVAILABLE,
            True,
            "provider answered HTTP 502: 502 Bad Gateway 502 Bad Gateway nginx",
            502,
        ),
        query_id=ID,
    ),
    Case(
        "503 model_not_found is configuration",
        json_reply(
            503,
            {
                "error": {
                    "code": "model_not_found",
                    "message": "no available channel for this model",
                    "type": "new_api_error",
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
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_ark_normalizes(case: Case) -> None:
    if case.query_id is None:
        assert DIALECT.parse_create(case.reply, NOW) == case.expected
    else:
        assert DIALECT.parse_query(case.reply, case.query_id, NOW) == case.expected


def test_ark_builds_calls() -> None:
    dialect: Dialect = DIALECT
    body = {"model": MODEL, "content": [{"type": "text", "text": "Drone shot"}], "duration": 5}
    assert dialect.name == "ark"
    assert dialect.build_create(body) == HttpCall("POST", "/contents/generations/tasks", body)
    assert dialect.build_query("cgt-1/2 x") == HttpCall(
        "GET", "/contents/generations/tasks/cgt-1%2F2%20x"
    )


def test_ark_status_table_is_lowercase_and_complete() -> None:
    assert {k: v.value for k, v in ARK_STATUSES.items()} == {
        "queued": "queued",
        "running": "running",
        "succeeded": "succeeded",
        "failed": "failed",
        "expired": "expired",
        "cancelled": "cancelled",
        "pending": "queued",
        "processing": "running",
    }


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": " 2.5 "}, 2.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "Sat, 06 Jun 2026 08:05:30 GMT"}, 30.0),
        ({"retry-after": "Sat, 06 Jun 2026 08:00:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": ""}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("45%", 45),
        ("45", 45),
        (45, 45),
        (45.0, 45),
        (" 99.9 % ", 99),
        ("100%", 100),
        (150, 100),
        (-5, 0),
        ("0%", 0),
        ("", None),
        ("%", None),
        ("half", None),
        (None, None),
        (True, None),
        (float("nan"), None),
        ([45], None),
    ],
)
def test_parse_progress(value: object, expected: int | None) -> None:
    assert parse_progress(value) == expected


ISSUED = datetime(2026, 6, 6, 8, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


@pytest.mark.parametrize(
    ("url", "issued_at", "lifetime", "expected"),
    [
        (TOS_URL, ISSUED, DAY, datetime(2026, 6, 7, 8, 3, 11, tzinfo=UTC)),
        (
            "https://x/v.mp4?x-tos-date=20260606T070000Z&X-TOS-EXPIRES=600",
            None,
            None,
            datetime(2026, 6, 6, 7, 10, tzinfo=UTC),
        ),
        (
            "https://x/v.mp4?X-Amz-Date=20260606T070000Z&X-Amz-Expires=3600",
            None,
            None,
            datetime(2026, 6, 6, 8, 0, tzinfo=UTC),
        ),
        (
            "https://x/v.mp4?X-Tos-Expires=86400",
            ISSUED,
            None,
            datetime(2026, 6, 7, 8, 0, tzinfo=UTC),
        ),
        (
            "https://x/v.mp4?X-Tos-Expires=86400&X-Tos-Date=junk",
            ISSUED,
            None,
            datetime(2026, 6, 7, 8, 0, tzinfo=UTC),
        ),
        ("https://x/v.mp4?X-Tos-Expires=86400", None, DAY, None),
        ("https://x/v.mp4?X-Tos-Expires=soon", ISSUED, DAY, datetime(2026, 6, 7, 8, 0, tzinfo=UTC)),
        ("https://x/v.mp4", ISSUED, timedelta(hours=1), datetime(2026, 6, 6, 9, 0, tzinfo=UTC)),
        ("https://x/v.mp4", ISSUED, None, None),
        (None, ISSUED, DAY, datetime(2026, 6, 7, 8, 0, tzinfo=UTC)),
    ],
)
def test_signed_url_expiry(
    url: str | None,
    issued_at: datetime | None,
    lifetime: timedelta | None,
    expected: datetime | None,
) -> None:
    assert signed_url_expiry(url, issued_at=issued_at, default_lifetime=lifetime) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1780732991, datetime(2026, 6, 6, 8, 3, 11, tzinfo=UTC)),
        (1780732991.5, datetime(2026, 6, 6, 8, 3, 11, 500000, tzinfo=UTC)),
        ("1780732991", datetime(2026, 6, 6, 8, 3, 11, tzinfo=UTC)),
        (1780732991000, datetime(2026, 6, 6, 8, 3, 11, tzinfo=UTC)),
        ("2026-06-06T08:03:11Z", datetime(2026, 6, 6, 8, 3, 11, tzinfo=UTC)),
        (0, None),
        (-1, None),
        ("", None),
        ("later", None),
        (True, None),
        (None, None),
    ],
)
def test_unix_to_datetime(value: object, expected: datetime | None) -> None:
    assert unix_to_datetime(value) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"id": "cgt-1"}', {"id": "cgt-1"}),
        (b'\xef\xbb\xbf{"id": "cgt-1"}', {"id": "cgt-1"}),
        (b"[1, 2]", [1, 2]),
        (b"", None),
        (b"<html></html>", None),
        (b"\xff\xfe", None),
        (b'{"a": NaN}', None),
    ],
)
def test_decode_json(body: bytes, expected: object) -> None:
    assert decode_json(body) == expected


def test_normalize_status_ignores_case_space_and_junk() -> None:
    table = {"Succeeded": TaskStatus.SUCCEEDED, "queued": TaskStatus.QUEUED}
    assert normalize_status("  QUEUED\n", table) is TaskStatus.QUEUED
    assert normalize_status("succeeded", table) is TaskStatus.SUCCEEDED
    assert normalize_status("done", table) is None
    assert normalize_status(" ", table) is None
    assert normalize_status(3, table) is None


def test_http_fault_on_a_redirect_and_a_dated_retry() -> None:
    reply = HttpReply(302, {"location": "https://elsewhere"}, b"")
    assert http_fault(reply, NOW, code=None, message=None) == fault(
        FaultKind.BAD_RESPONSE, True, "provider answered HTTP 302", 302
    )
    busy = HttpReply(503, {"retry-after": "Sat, 06 Jun 2026 08:06:00 GMT"}, b"")
    assert http_fault(busy, NOW, code="ServerOverloaded", message="busy") == fault(
        FaultKind.UNAVAILABLE,
        True,
        "provider answered HTTP 503 [ServerOverloaded]: busy",
        503,
        "ServerOverloaded",
        60.0,
    )


@pytest.mark.parametrize(
    ("task_id", "created"),
    [
        # Ark stamps ids with Beijing time (UTC+8).
        ("cgt-20260606160057-6bbjd", datetime(2026, 6, 6, 8, 0, 57, tzinfo=UTC)),
        ("cgt-20260101050000-x", datetime(2025, 12, 31, 21, 0, 0, tzinfo=UTC)),
        ("cgt-20261399000000-x", None),
        ("task_abc", None),
        ("req_1234567890", None),
    ],
)
def test_ark_ids_say_when_the_task_was_created(task_id: str, created: datetime | None) -> None:
    assert ark_id_created_at(task_id) == created
