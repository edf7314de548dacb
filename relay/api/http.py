"""HTTP plumbing shared by the routes: bounded JSON bodies, API-key auth, error answers."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay.errors import ApiError, BadRequest, PayloadTooLarge, Unauthorized
from relay.models import Account
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
