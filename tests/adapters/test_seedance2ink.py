"""The seedance2.ink dialect on captured-style replies: every status string, the output and
error fields, refusals with and without an HTTP error status, cancel, the calls it builds
and the push body. The provider page's own samples are in ``test_samples.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from relay.adapters.base import CancelAccepted, Created, Dialect, HttpCall, HttpReply
from relay.adapters.seedance2ink import (
    SEEDANCE2INK_STATUSES,
    Seedance2InkDialect,
    classify_failure,
    parse_push,
)
from relay.models import ErrorCode, TaskError, TaskStatus
from relay.provider_answers import FaultKind, ProviderFault, ProviderTask

NOW = datetime(2026, 6, 6, 8, 5, 0, tzinfo=UTC)
DIALECT = Seedance2InkDialect()
ID = "req_1234567890"
URL = "https://pub-your-bucket.r2.dev/open-api-results/req_1234567890.mp4"
SIGNED = (
    "https://bucket.r2.cloudflarestorage.com/req_1.mp4?X-Amz-Date=20260606T080000Z"
    "&X-Amz-Expires=3600&X-Amz-Signature=ab"
)
JSON_HEADERS = {"content-type": "application/json"}
Q, R, S, F, C = (
    TaskStatus.QUEUED,
    TaskStatus.RUNNING,
    TaskStatus.SUCCEEDED,
    TaskStatus.FAILED,
    TaskStatus.CANCELLED,
)
CANCELLED = "the task was cancelled at the provider"
FAILED = "the provider reported the task failed"
UNAUTHORIZED_BODY = {
    "success": False,
    "error": {"code": "unauthorized", "message": "Invalid API key"},
}


def reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> HttpReply:
    return HttpReply(status, {**JSON_HEADERS, **(headers or {})}, json.dumps(payload).encode())


def ink(status: str | None, **extra: Any) -> dict[str, Any]:
    """A task answer as the query endpoint gives it (HTTP 200, success true)."""
    body: dict[str, Any] = {
        "success": True,
        "requestId": ID,
        "status": status,
        "model": "seedance-2.0",
        "prompt": "A river",
        "duration": 5,
        "aspectRatio": "16:9",
        "output": None,
        "error": None,
    }
    return {**body, **extra}


def t(status: TaskStatus | None, raw: str | None, **fields: Any) -> ProviderTask:
    base: dict[str, Any] = {"model": "seedance-2.0", "ratio": "16:9", "duration": 5}
    return ProviderTask(ID, status, raw, **{**base, **fields})


def failed(
    code: ErrorCode,
    message: str,
    retryable: bool,
    provider_code: str | None,
    status: TaskStatus = F,
) -> ProviderTask:
    return t(status, status.value, error=TaskError(code, message, retryable, provider_code))


def fault(
    kind: FaultKind,
    retryable: bool,
    message: str,
    status_code: int | None,
    provider_code: str | None = None,
    retry_after: float | None = None,
) -> ProviderFault:
    return ProviderFault(kind, retryable, message, status_code, provider_code, retry_after)


@dataclass(frozen=True)
class Case:
    name: str
    reply: HttpReply
    expected: Created | ProviderTask | CancelAccepted | ProviderFault
    call: str = "query"


NOT_AN_OBJECT = "provider answered HTTP 200 with a body that is not a JSON object"

QUERY_CASES = [
    # Every status string, and case variants.
    Case("queued", reply(200, ink("queued")), t(Q, "queued")),
    Case("processing", reply(200, ink("processing")), t(R, "processing")),
    Case(
        "succeeded",
        reply(200, ink("succeeded", output={"type": "video", "url": URL})),
        t(S, "succeeded", video_url=URL),
    ),
    Case(
        "failed",
        reply(
            200,
            ink("failed", error={"code": "provider_error", "message": "Video generation failed"}),
        ),
        failed(ErrorCode.PROVIDER_ERROR, "Video generation failed", False, "provider_error"),
    ),
    Case(
        "cancelled",
        reply(200, ink("cancelled")),
        failed(ErrorCode.CANCELLED, CANCELLED, False, None, C),
    ),
    Case(
        "'Succeeded' capitalized",
        reply(200, ink("Succeeded", output={"url": URL})),
        t(S, "Succeeded", video_url=URL),
    ),
    Case("' PROCESSING ' with spaces", reply(200, ink(" PROCESSING ")), t(R, " PROCESSING ")),
    Case("unknown status is non-committal", reply(200, ink("paused")), t(None, "paused")),
    Case("Ark's 'running' is not this dialect's", reply(200, ink("running")), t(None, "running")),
    Case("status missing", reply(200, ink(None)), t(None, None)),
    # Output.
    Case("succeeded without output", reply(200, ink("succeeded")), t(S, "succeeded")),
    Case(
        "succeeded with an empty url",
        reply(200, ink("succeeded", output={"type": "video", "url": ""})),
        t(S, "succeeded"),
    ),
    Case(
        "succeeded with a non-video output",
        reply(200, ink("succeeded", output={"type": "image", "url": URL})),
        t(S, "succeeded"),
    ),
    Case(
        "succeeded with a signed url",
        reply(200, ink("succeeded", output={"type": "VIDEO", "url": SIGNED})),
        t(
            S,
            "succeeded",
            video_url=SIGNED,
            video_url_expires_at=datetime(2026, 6, 6, 9, 0, tzinfo=UTC),
        ),
    ),
    Case(
        "processing: an early url is not trusted",
        reply(200, ink("processing", output={"type": "video", "url": URL})),
        t(R, "processing"),
    ),
    Case(
        "echoes: resolution kept, duration 0 dropped",
        reply(200, ink("queued", duration=0, resolution="720p", aspectRatio="")),
        t(Q, "queued", duration=None, ratio=None, resolution="720p"),
    ),
    # Task errors.
    Case(
        "failed: content policy",
        reply(200, ink("failed", error={"code": "content_policy_violation", "message": "blocked"})),
        failed(ErrorCode.CONTENT_POLICY, "blocked", False, "content_policy_violation"),
    ),
    Case(
        "failed: moderation",
        reply(200, ink("failed", error={"code": "MODERATION_BLOCKED", "message": "blocked"})),
        failed(ErrorCode.CONTENT_POLICY, "blocked", False, "MODERATION_BLOCKED"),
    ),
    Case(
        "failed: the upstream's Ark code passed through",
        reply(
            200,
            ink(
                "failed",
                error={"code": "OutputVideoSensitiveContentDetected", "message": "sensitive"},
            ),
        ),
        failed(ErrorCode.CONTENT_POLICY, "sensitive", False, "OutputVideoSensitiveContentDetected"),
    ),
    Case(
        "failed: timeout",
        reply(200, ink("failed", error={"code": "generation_timeout", "message": "took too long"})),
        failed(ErrorCode.TIMEOUT, "took too long", True, "generation_timeout"),
    ),
    Case(
        "failed: credits",
        reply(200, ink("failed", error={"code": "insufficient_credits", "message": "top up"})),
        failed(ErrorCode.QUOTA_EXCEEDED, "top up", False, "insufficient_credits"),
    ),
    Case(
        "failed: invalid input",
        reply(200, ink("failed", error={"code": "invalid_media_url", "message": "not reachable"})),
        failed(ErrorCode.INVALID_REQUEST, "not reachable", False, "invalid_media_url"),
    ),
    Case(
        "failed without an error",
        reply(200, ink("failed")),
        failed(ErrorCode.PROVIDER_ERROR, FAILED, False, None),
    ),
    Case(
        "cancelled keeps the provider's words",
        reply(
            200, ink("cancelled", error={"code": "user_cancelled", "message": "cancelled by user"})
        ),
        failed(ErrorCode.CANCELLED, "cancelled by user", False, "user_cancelled", C),
    ),
    Case(
        "succeeded ignores a leftover error",
        reply(200, ink("succeeded", output={"url": URL}, error={"code": "x"})),
        t(S, "succeeded", video_url=URL),
    ),
    # Refusals, whatever the HTTP status.
    Case(
        "401 unauthorized",
        reply(401, UNAUTHORIZED_BODY),
        fault(
            FaultKind.UNAUTHORIZED,
            False,
            "provider answered HTTP 401 [unauthorized]: Invalid API key",
            401,
            "unauthorized",
        ),
    ),
    Case(
        "200 unauthorized",
        reply(200, UNAUTHORIZED_BODY),
        fault(
            FaultKind.UNAUTHORIZED,
            False,
            "provider answered HTTP 200 [unauthorized]: Invalid API key",
            200,
            "unauthorized",
        ),
    ),
    Case(
        "400 unauthorized",
        reply(400, UNAUTHORIZED_BODY),
        fault(
            FaultKind.UNAUTHORIZED,
            False,
            "provider answered HTTP 400 [unauthorized]: Invalid API key",
            400,
            "unauthorized",
        ),
    ),
    Case(
        "404 not_found",
        reply(
            404, {"success": False, "error": {"code": "not_found", "message": "Request not found"}}
        ),
        fault(
            FaultKind.NOT_FOUND,
            False,
            "provider answered HTTP 404 [not_found]: Request not found",
            404,
            "not_found",
        ),
    ),
    Case(
        "200 task_not_found",
        reply(
            200,
            {"success": False, "error": {"code": "task_not_found", "message": "no such request"}},
        ),
        fault(
            FaultKind.NOT_FOUND,
            False,
            "provider answered HTTP 200 [task_not_found]: no such request",
            200,
            "task_not_found",
        ),
    ),
    Case(
        "404 without a body: wrong path",
        HttpReply(404, {}, b""),
        fault(FaultKind.UNAVAILABLE, True, "provider answered HTTP 404", 404),
    ),
    Case(
        "429 with Retry-After",
        reply(
            429,
            {"success": False, "error": {"code": "rate_limited", "message": "slow down"}},
            {"retry-after": "12"},
        ),
        fault(
            FaultKind.RATE_LIMITED,
            True,
            "provider answered HTTP 429 [rate_limited]: slow down",
            429,
            "rate_limited",
            12.0,
        ),
    ),
    Case(
        "200 rate_limit_exceeded",
        reply(
            200,
            {"success": False, "error": {"code": "rate_limit_exceeded", "message": "slow down"}},
        ),
        fault(
            FaultKind.RATE_LIMITED,
            True,
            "provider answered HTTP 200 [rate_limit_exceeded]: slow down",
            200,
            "rate_limit_exceeded",
        ),
    ),
    Case(
        "200 internal_error",
        reply(200, {"success": False, "error": {"code": "internal_error", "message": "oops"}}),
        fault(
            FaultKind.UNAVAILABLE,
            True,
            "provider answered HTTP 200 [internal_error]: oops",
            200,
            "internal_error",
        ),
    ),
    Case(
        "200 unknown refusal code",
        reply(200, {"success": False, "error": {"code": "mystery", "message": "no"}}),
        fault(
            FaultKind.BAD_RESPONSE,
            False,
            "provider answered HTTP 200 [mystery]: no",
            200,
            "mystery",
        ),
    ),
    Case(
        "200 success false without an error",
        reply(200, {"success": False}),
        fault(FaultKind.BAD_RESPONSE, False, 'provider answered HTTP 200: {"success": false}', 200),
    ),
    Case(
        "500 server error",
        reply(500, {"success": False, "error": {"code": "server_error", "message": "boom"}}),
        fault(
            FaultKind.UNAVAILABLE,
            True,
            "provider answered HTTP 500 [server_error]: boom",
            500,
            "server_error",
        ),
    ),
    Case(
        "502 HTML",
        HttpReply(502, {"content-type": "text/html"}, b"<html><h1>502 Bad Gateway</h1></html>"),
        fault(FaultKind.UNAVAILABLE, True, "provider answered HTTP 502: 502 Bad Gateway", 502),
    ),
    # Bodies that are no answer.
    Case(
        "another task's body",
        reply(200, ink("queued", requestId="req_other")),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            f"provider answered with task 'req_other' when asked for {ID!r}",
            200,
        ),
    ),
    Case(
        "success without a task",
        reply(200, {"success": True}),
        fault(FaultKind.BAD_RESPONSE, True, "provider answered HTTP 200 without a task", 200),
    ),
    Case(
        "garbage",
        HttpReply(200, JSON_HEADERS, b"\x00\xffgarbage"),
        fault(FaultKind.BAD_RESPONSE, True, NOT_AN_OBJECT, 200),
    ),
    Case(
        "empty body",
        HttpReply(200, JSON_HEADERS, b""),
        fault(FaultKind.BAD_RESPONSE, True, NOT_AN_OBJECT, 200),
    ),
    Case(
        "JSON array",
        reply(200, [ink("queued")]),
        fault(FaultKind.BAD_RESPONSE, True, NOT_AN_OBJECT, 200),
    ),
    Case(
        "BOM",
        HttpReply(200, JSON_HEADERS, b"\xef\xbb\xbf" + json.dumps(ink("processing")).encode()),
        t(R, "processing"),
    ),
]

CREATE_CASES = [
    Case(
        "create",
        reply(200, {"success": True, "requestId": ID, "status": "queued", "creditsCharged": 40}),
        Created(ID, ProviderTask(ID, Q, "queued", usage={"creditsCharged": 40})),
        "create",
    ),
    Case(
        "create with fractional credits",
        reply(201, {"success": True, "requestId": ID, "status": "queued", "creditsCharged": 12.5}),
        Created(ID, ProviderTask(ID, Q, "queued", usage={"creditsCharged": 12.5})),
        "create",
    ),
    Case(
        "create without status",
        reply(200, {"success": True, "requestId": ID}),
        Created(ID),
        "create",
    ),
    Case(
        "create without requestId",
        reply(200, {"success": True, "status": "queued"}),
        fault(FaultKind.BAD_RESPONSE, True, "provider answered HTTP 200 without a requestId", 200),
        "create",
    ),
    Case(
        "create: 401 unauthorized",
        reply(401, UNAUTHORIZED_BODY),
        fault(
            FaultKind.UNAUTHORIZED,
            False,
            "provider answered HTTP 401 [unauthorized]: Invalid API key",
            401,
            "unauthorized",
        ),
        "create",
    ),
    Case(
        "create: 200 unauthorized",
        reply(200, UNAUTHORIZED_BODY),
        fault(
            FaultKind.UNAUTHORIZED,
            False,
            "provider answered HTTP 200 [unauthorized]: Invalid API key",
            200,
            "unauthorized",
        ),
        "create",
    ),
    Case(
        "create: 400 invalid model",
        reply(
            400,
            {
                "success": False,
                "error": {
                    "code": "invalid_request",
                    "message": "model must be one of seedance-2.0, …",
                },
            },
        ),
        fault(
            FaultKind.INVALID_REQUEST,
            False,
            "provider answered HTTP 400 [invalid_request]: model must be one of seedance-2.0, …",
            400,
            "invalid_request",
        ),
        "create",
    ),
    Case(
        "create: 402 insufficient credits",
        reply(
            402, {"success": False, "error": {"code": "insufficient_credits", "message": "top up"}}
        ),
        fault(
            FaultKind.INVALID_REQUEST,
            False,
            "provider answered HTTP 402 [insufficient_credits]: top up",
            402,
            "insufficient_credits",
        ),
        "create",
    ),
    Case(
        "create: garbage",
        HttpReply(200, {}, b"<html>ok</html>"),
        fault(FaultKind.BAD_RESPONSE, True, NOT_AN_OBJECT, 200),
        "create",
    ),
]

CANCEL_CASES = [
    Case(
        "cancel accepted",
        reply(200, {"success": True, "requestId": ID, "status": "cancelled"}),
        CancelAccepted(
            ProviderTask(
                ID, C, "cancelled", error=TaskError(ErrorCode.CANCELLED, CANCELLED, False, None)
            )
        ),
        "cancel",
    ),
    Case(
        "cancel answered without a status",
        reply(200, {"success": True}),
        CancelAccepted(),
        "cancel",
    ),
    Case(
        "cancel answered with the finished task",
        reply(200, ink("succeeded", output={"url": URL})),
        CancelAccepted(t(S, "succeeded", video_url=URL)),
        "cancel",
    ),
    Case(
        "cancel: 409 cannot cancel a finished task",
        reply(
            409,
            {
                "success": False,
                "error": {"code": "conflict", "message": "cannot cancel a finished task"},
            },
        ),
        fault(
            FaultKind.INVALID_REQUEST,
            False,
            "provider answered HTTP 409 [conflict]: cannot cancel a finished task",
            409,
            "conflict",
        ),
        "cancel",
    ),
    Case(
        "cancel: 400 without a code",
        reply(400, {"success": False, "error": {"message": "Task cannot be cancelled"}}),
        fault(
            FaultKind.INVALID_REQUEST,
            False,
            "provider answered HTTP 400: Task cannot be cancelled",
            400,
        ),
        "cancel",
    ),
    Case(
        "cancel: 200 refusal",
        reply(
            200,
            {
                "success": False,
                "error": {"code": "task_not_cancellable", "message": "already processing"},
            },
        ),
        fault(
            FaultKind.INVALID_REQUEST,
            False,
            "provider answered HTTP 200 [task_not_cancellable]: already processing",
            200,
            "task_not_cancellable",
        ),
        "cancel",
    ),
    Case(
        "cancel: 404 not_found",
        reply(404, {"success": False, "error": {"code": "not_found", "message": "gone"}}),
        fault(
            FaultKind.NOT_FOUND,
            False,
            "provider answered HTTP 404 [not_found]: gone",
            404,
            "not_found",
        ),
        "cancel",
    ),
    Case(
        "cancel: 401",
        reply(401, UNAUTHORIZED_BODY),
        fault(
            FaultKind.UNAUTHORIZED,
            False,
            "provider answered HTTP 401 [unauthorized]: Invalid API key",
            401,
            "unauthorized",
        ),
        "cancel",
    ),
    Case(
        "cancel: another task",
        reply(200, {"success": True, "requestId": "req_other", "status": "cancelled"}),
        fault(
            FaultKind.BAD_RESPONSE,
            True,
            f"provider answered with task 'req_other' when asked for {ID!r}",
            200,
        ),
        "cancel",
    ),
    Case(
        "cancel: garbage",
        HttpReply(200, {}, b"ok"),
        fault(FaultKind.BAD_RESPONSE, True, NOT_AN_OBJECT, 200),
        "cancel",
    ),
]

ALL = QUERY_CASES + CREATE_CASES + CANCEL_CASES


@pytest.mark.parametrize("case", ALL, ids=[c.name for c in ALL])
def test_seedance2ink_normalizes(case: Case) -> None:
    result: object
    if case.call == "create":
        result = DIALECT.parse_create(case.reply, NOW)
    elif case.call == "cancel":
        result = DIALECT.parse_cancel(case.reply, ID, NOW)
    else:
        result = DIALECT.parse_query(case.reply, ID, NOW)
    assert result == case.expected


def test_seedance2ink_builds_calls() -> None:
    dialect: Dialect = DIALECT
    assert (dialect.name, dialect.pushes) == ("seedance2ink", True)
    assert dialect.cancellable == frozenset({TaskStatus.QUEUED, TaskStatus.RUNNING})
    body = {
        "model": "seedance-2.0",
        "prompt": "A river",
        "aspectRatio": "16:9",
        "webhookUrl": "https://caller.example/hook",
        "metadata": {"projectId": "p1"},
    }
    relay_hook = "https://relay.example/v1/inbound/ink/tok"
    assert dialect.build_create(body, relay_hook) == HttpCall(
        "POST", "/api/open/v1/video/generations", {**body, "webhookUrl": relay_hook}
    )
    assert body["webhookUrl"] == "https://caller.example/hook"  # the caller's body is untouched
    assert dialect.build_create(body) == HttpCall("POST", "/api/open/v1/video/generations", body)
    assert dialect.build_query("req_a/b c") == HttpCall(
        "GET", "/api/open/v1/video/generations/req_a%2Fb%20c"
    )
    assert dialect.build_cancel(ID) == HttpCall(
        "POST", f"/api/open/v1/video/generations/{ID}/cancel"
    )


def test_seedance2ink_status_table() -> None:
    assert {k: v.value for k, v in SEEDANCE2INK_STATUSES.items()} == {
        "queued": "queued",
        "processing": "running",
        "succeeded": "succeeded",
        "failed": "failed",
        "cancelled": "cancelled",
    }


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("provider_error", (ErrorCode.PROVIDER_ERROR, False)),
        (None, (ErrorCode.PROVIDER_ERROR, False)),
        ("NSFW_DETECTED", (ErrorCode.CONTENT_POLICY, False)),
        ("InternalServiceError", (ErrorCode.PROVIDER_ERROR, True)),
        ("timed_out", (ErrorCode.TIMEOUT, True)),
        ("quota_exceeded", (ErrorCode.QUOTA_EXCEEDED, False)),
        ("validation_failed", (ErrorCode.INVALID_REQUEST, False)),
    ],
)
def test_classify_failure(code: str | None, expected: tuple[ErrorCode, bool]) -> None:
    assert classify_failure(code) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (json.dumps(ink("succeeded", output={"type": "video", "url": URL})).encode(), ID),
        (b'{"event": "task.completed", "data": {"requestId": "req_9"}}', "req_9"),
        (b'\xef\xbb\xbf{"requestId": "req_9", "status": "failed"}', "req_9"),
        (b'{"requestId": "", "data": {"requestId": "req_9"}}', "req_9"),
        (b'{"requestId": 42}', None),
        (b'{"status": "succeeded"}', None),
        (b'["req_9"]', None),
        (b"requestId=req_9", None),
        (b"", None),
    ],
)
def test_parse_push(body: bytes, expected: str | None) -> None:
    assert parse_push(body) == expected
