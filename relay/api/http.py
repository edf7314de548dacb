"""HTTP plumbing shared by the routes: bounded JSON bodies, API-key auth, error answers."""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay.errors import ApiError, BadRequest, PayloadTooLarge, Unauthorized
from relay.models import Account, Attempt, Delivery, iso
from relay.services import Services
from relay.signing import hash_api_key

log = logging.getLogger("relay.api")


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def json_response(data: Any, status_code: int = 200) -> Response:
    return Response(json.dumps(data, separators=(",", ":"), ensure_ascii=False),
                    status_code=status_code, media_type="application/json")


def error_response(status_code: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status_code)


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.code, exc.message)


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object, read no further than the configured limit."""
    limit = services(request).max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise BadRequest("the body is empty; send a JSON object", code="invalid_json")
    try:
        data = json.loads(raw, parse_constant=_not_json, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}"[:300], code="invalid_json") \
            from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_json")
    try:
        # "\udfff" escapes decode to lone surrogates, which no UTF-8 store or receiver
        # can take: refuse them here rather than fail later with a 500.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("the body holds an invalid \\u escape (a lone surrogate)",
                         code="invalid_json") from None
    return data


def _not_json(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON does not. Kept, they would come back out in
    # task objects and signed webhook bodies that strict parsers (JSON.parse) reject.
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


async def authenticate(request: Request) -> Account:
    header = request.headers.get("authorization", "")
    key = header[7:].strip() if header[:7].lower() == "bearer " else None
    key = key or request.headers.get("x-api-key", "").strip() or None
    if not key:
        raise Unauthorized("send your API key as 'Authorization: Bearer <key>'")
    account = await services(request).store.account_by_key_hash(hash_api_key(key))
    if account is None:
        raise Unauthorized("the API key is not valid")
    return account


# --- shared by the route modules ---


async def has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") != "0" or \
        "chunked" in request.headers.get("transfer-encoding", "")


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {"id": d.id, "event_id": d.event_id, "destination_id": d.destination_id,
            "url": d.url, "status": d.status.value, "attempt_count": d.attempt_count,
            "next_attempt_at": iso(d.next_attempt_at), "created_at": iso(d.created_at),
            "updated_at": iso(d.updated_at)}


def attempt_json(a: Attempt) -> dict[str, Any]:
    return {"number": a.number, "started_at": iso(a.started_at), "latency_ms": a.latency_ms,
            "outcome": a.outcome, "status_code": a.status_code, "error": a.error,
            "response_snippet": a.response_snippet}


def cursor_position(request: Request, cursor: str | None, order: str) -> int | None:
    if cursor is None:
        return None
    value = services(request).tokens.read_cursor(cursor)
    if not (isinstance(value, list) and len(value) == 2 and value[1] == order
            and isinstance(value[0], int)):
        raise BadRequest("the cursor is not valid (or was made for another order)",
                         code="invalid_cursor")
    return value[0]


def next_cursor(request: Request, after: int | None, order: str) -> str | None:
    return None if after is None else services(request).tokens.cursor([after, order])


def parse_time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: not an ISO 8601 time", code="invalid_request") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
