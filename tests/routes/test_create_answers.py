"""Every dialect's create answers, as the providers' pages and DIALECTS.md give them, decided
as failover needs: accepted (a task), certainly not taken (the next provider may be asked),
or uncertain (the route stops: asking another could pay twice). The captured create samples
of ``tests/adapters/samples`` are the accepted rows; the refusals are the error bodies
DIALECTS §3 quotes for each dialect."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from relay.adapters.ark import ArkDialect
from relay.adapters.base import Created, Dialect, HttpReply
from relay.adapters.seedance2ink import Seedance2InkDialect
from relay.adapters.unified import UnifiedDialect
from relay.submissions import create_was_taken

SAMPLES = Path(__file__).resolve().parents[1] / "adapters" / "samples"
NOW = datetime(2026, 6, 6, 8, 5, 0, tzinfo=UTC)
ARK, UNIFIED, INK = ArkDialect(), UnifiedDialect(), Seedance2InkDialect()

ACCEPTED, NOT_TAKEN, UNCERTAIN = "accepted", "not taken", "uncertain"


def sample(path: str) -> bytes:
    return (SAMPLES / path).read_bytes()


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


def ark_error(code: str, message: str = "refused") -> bytes:
    return body({"error": {"code": code, "message": f"{message}. Request id: 021x", "type": ""}})


NGINX_503 = b"<html><head><title>503 Service Temporarily Unavailable</title></head></html>"
ENVOY_503 = (
    b"upstream connect error or disconnect/reset before headers. "
    b"reset reason: connection termination"
)
SATURATED = (
    "\u5f53\u524d\u5206\u7ec4\u4e0a\u6e38\u8d1f\u8f7d\u5df2\u9971\u548c"
    "\uff0c\u8bf7\u7a0d\u540e\u518d\u8bd5"
)
"""new-api's "the group's upstream is saturated, try again later" (DIALECTS.md)."""

CASES: list[tuple[str, Dialect, int, bytes, str]] = [
    # --- Ark (Volcengine, apiyi, cubicspaces' Ark API) ---
    ("ark: created (apiyi page)", ARK, 200, sample("ark/apiyi_create.json"), ACCEPTED),
    ("ark: created (cubicspaces page)", ARK, 200, sample("ark/cubicspaces_create.json"), ACCEPTED),
    ("ark: 400 InvalidParameter", ARK, 400, ark_error("InvalidParameter"), NOT_TAKEN),
    (
        "ark: 400 input moderation",
        ARK,
        400,
        ark_error("InputTextSensitiveContentDetected"),
        NOT_TAKEN,
    ),
    ("ark: 401 AuthenticationError", ARK, 401, ark_error("AuthenticationError"), NOT_TAKEN),
    ("ark: 403 AccountOverdueError", ARK, 403, ark_error("AccountOverdueError"), NOT_TAKEN),
    (
        "ark: 404 InvalidEndpoint.NotFound",
        ARK,
        404,
        ark_error("InvalidEndpoint.NotFound"),
        NOT_TAKEN,
    ),
    (
        "ark: 429 RateLimitExceeded",
        ARK,
        429,
        ark_error("RateLimitExceeded.EndpointRPMExceeded"),
        NOT_TAKEN,
    ),
    ("ark: 429 SetLimitExceeded", ARK, 429, ark_error("SetLimitExceeded"), NOT_TAKEN),
    ("ark: 429 AccountQuotaExceeded", ARK, 429, ark_error("AccountQuotaExceeded"), NOT_TAKEN),
    ("ark: 500 InternalServiceError", ARK, 500, ark_error("InternalServiceError"), UNCERTAIN),
    ("ark: 502 from the proxy", ARK, 502, b"<html>502 Bad Gateway</html>", UNCERTAIN),
    ("ark: 503 page from a proxy", ARK, 503, NGINX_503, UNCERTAIN),
    ("ark: 503 Envoy reset before headers", ARK, 503, ENVOY_503, UNCERTAIN),
    ("ark: 504 from the proxy", ARK, 504, b"<html>504 Gateway Time-out</html>", UNCERTAIN),
    ("ark: 200 that is not JSON", ARK, 200, b'{"id": "cgt-2026', UNCERTAIN),
    # --- unified gateways (new-api: naci, vastnum, cubicspaces' unified API) ---
    ("unified: created (naci page)", UNIFIED, 200, sample("naci/create.json"), ACCEPTED),
    (
        "unified: created (cubicspaces)",
        UNIFIED,
        200,
        sample("cubicspaces/unified_create.json"),
        ACCEPTED,
    ),
    (
        "unified: 401 invalid token",
        UNIFIED,
        401,
        body(
            {
                "error": {
                    "message": "无效的令牌 (request id: x)",
                    "type": "new_api_error",
                    "code": "",
                }
            }
        ),
        NOT_TAKEN,
    ),
    (
        "unified: 503 model_not_found (no available channel)",
        UNIFIED,
        503,
        body(
            {"error": {"message": "no available channel for this model", "code": "model_not_found"}}
        ),
        NOT_TAKEN,
    ),
    (
        "unified: 429 upstream saturated",
        UNIFIED,
        429,
        body({"code": "fail_to_fetch_task", "message": SATURATED}),
        NOT_TAKEN,
    ),
    (
        "unified: 400 bad request",
        UNIFIED,
        400,
        body(
            {
                "error": {
                    "message": "invalid duration",
                    "type": "invalid_request_error",
                    "code": "invalid_request",
                }
            }
        ),
        NOT_TAKEN,
    ),
    (
        "unified: 500 upstream error",
        UNIFIED,
        500,
        body({"error": {"message": "upstream"}}),
        UNCERTAIN,
    ),
    ("unified: 503 page from a proxy", UNIFIED, 503, NGINX_503, UNCERTAIN),
    ("unified: 502", UNIFIED, 502, b"bad gateway", UNCERTAIN),
    # --- seedance2.ink ---
    ("seedance2ink: created (page)", INK, 200, sample("seedance2ink/create.json"), ACCEPTED),
    (
        "seedance2ink: unauthorized",
        INK,
        401,
        body({"success": False, "error": {"code": "unauthorized", "message": "bad key"}}),
        NOT_TAKEN,
    ),
    (
        "seedance2ink: 200 validation refusal",
        INK,
        200,
        body({"success": False, "error": {"code": "validation_error", "message": "prompt"}}),
        NOT_TAKEN,
    ),
    (
        "seedance2ink: 200 out of credits",
        INK,
        200,
        body({"success": False, "error": {"code": "insufficient_credits", "message": "top up"}}),
        NOT_TAKEN,
    ),
    (
        "seedance2ink: 429 rate limited",
        INK,
        429,
        body({"success": False, "error": {"code": "rate_limited", "message": "slow down"}}),
        NOT_TAKEN,
    ),
    (
        "seedance2ink: 200 with an unknown code",
        INK,
        200,
        body({"success": False, "error": {"code": "generation_error", "message": "?"}}),
        UNCERTAIN,
    ),
    ("seedance2ink: 200 success false, no error", INK, 200, body({"success": False}), UNCERTAIN),
    (
        "seedance2ink: 500 server error",
        INK,
        500,
        body({"success": False, "error": {"code": "server_error", "message": "boom"}}),
        UNCERTAIN,
    ),
]


@pytest.mark.parametrize(
    ("dialect", "status", "answer", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_create_answer_is_accepted_not_taken_or_uncertain(
    dialect: Dialect, status: int, answer: bytes, expected: str
) -> None:
    parsed = dialect.parse_create(HttpReply(status, {}, answer), NOW)
    if isinstance(parsed, Created):
        decided = ACCEPTED
    else:
        decided = NOT_TAKEN if create_was_taken(parsed) is False else UNCERTAIN
    assert decided == expected, parsed
