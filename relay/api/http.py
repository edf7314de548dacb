"""HTTP plumbing shared by the routes: bounded JSON bodies, API-key auth (rate-limited on
failure), destination checks.

Hostile input is bounded here before any model sees it: the body (``limits.max_body_bytes``,
413), JSON nesting (``MAX_JSON_DEPTH``) and object keys (``MAX_JSON_KEY_CHARS``); string
values are bounded per field by ``relay.api.schemas`` (and by the body limit). What no
database can store, a NUL character, is refused here too, in every string and key of a body
(``read_json``) and in every path and query string (``RefuseUnstorable``), so that SQLite
and PostgreSQL answer the same 400 before any query runs."""

from __future__ import annotations

import ipaddress
import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from relay import strict_json
from relay.api.errors import answer_error
from relay.errors import (
    BadRequest,
    DestinationNotAllowed,
    InvalidCursor,
    InvalidJson,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    UnstorableInput,
)
from relay.models import Account, Attempt, Delivery, iso
from relay.services import Services
from relay.signing import hash_api_key

log = logging.getLogger("relay.api")


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def json_response(data: Any, status_code: int = 200) -> Response:
    return Response(
        json.dumps(data, separators=(",", ":"), ensure_ascii=False),
        status_code=status_code,
        media_type="application/json",
    )


MAX_JSON_DEPTH = 32
"""Nested arrays and objects in a request body; the relay's own bodies need 6 at most."""
MAX_JSON_KEY_CHARS = 256


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object, read no further than the configured limit."""
    limit = services(request).max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidJson("the body is empty; send a JSON object")
    try:
        data = strict_json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidJson(f"the body is not valid JSON: {exc}"[:300]) from None
    if not isinstance(data, dict):
        raise InvalidJson("the body must be a JSON object")
    _check_shape(data)
    try:
        # "\udfff" escapes decode to lone surrogates, which no UTF-8 store or receiver
        # can take: refuse them here rather than fail later with a 500.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJson("the body holds an invalid \\u escape (a lone surrogate)") from None
    return data


NUL = "\x00"
_UNSTORABLE = "holds a NUL character (\\u0000), which the relay cannot store"

_Where = tuple[Any, str | int] | None
"""Where a value sits in a body: ``(parent's where, key or index)``, None for the body
itself; spelled out (``metadata.tags[2]``) only for a refusal."""


def _check_shape(data: Any) -> None:
    """Refuse nesting deeper than ``MAX_JSON_DEPTH``, keys longer than ``MAX_JSON_KEY_CHARS``
    and a NUL in any string or key, naming where (iteratively: a deep body must not exhaust
    the stack here)."""
    stack: list[tuple[Any, int, _Where]] = [(data, 1, None)]
    while stack:
        node, depth, where = stack.pop()
        if isinstance(node, str):
            if NUL in node:
                raise UnstorableInput(f"{_spell(where)}: {_UNSTORABLE}")
            continue
        if depth > MAX_JSON_DEPTH and isinstance(node, dict | list):
            raise InvalidJson(
                f"the body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"
            )
        if isinstance(node, dict):
            for key, value in node.items():
                if len(key) > MAX_JSON_KEY_CHARS:
                    raise InvalidJson(
                        f"the body has an object key of {len(key)} characters; "
                        f"the limit is {MAX_JSON_KEY_CHARS}"
                    )
                if NUL in key:
                    raise UnstorableInput(f"{_spell(where)}: an object key {_UNSTORABLE}")
                if isinstance(value, dict | list | str):
                    stack.append((value, depth + 1, (where, key)))
        elif isinstance(node, list):
            stack.extend(
                (item, depth + 1, (where, i))
                for i, item in enumerate(node)
                if isinstance(item, dict | list | str)
            )


def _spell(where: _Where) -> str:
    parts: list[str] = []
    while where is not None:
        where, step = where
        parts.append(f"[{step}]" if isinstance(step, int) else f".{step}")
    return "".join(reversed(parts)).lstrip(".") or "body"


class RefuseUnstorable:
    """ASGI middleware: a NUL character in a request's path (``%00`` decodes to one) or query
    string is answered 400 (``UnstorableInput``) before any route reads it. One check for
    every path id and query parameter of the API, the dashboard and the inbound webhooks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = _unstorable_url(scope["path"], scope.get("query_string", b""))
            if problem is not None:
                answer = await answer_error(Request(scope), UnstorableInput(problem))
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _unstorable_url(path: str, query: bytes) -> str | None:
    if NUL in path:
        return f"the path {_UNSTORABLE}"
    if b"%00" not in query and b"\x00" not in query:
        return None
    # Decoded the way Starlette decodes query_params, to name the parameter.
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if NUL in name:
            return f"the name of a query parameter {_UNSTORABLE}"
        if NUL in value:
            return f"the query parameter {name} {_UNSTORABLE}"
    return None


MAX_API_KEY_CHARS = 256


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: the account, and which of its keys (``relay.keys.key_id``)."""

    account: Account
    key_id: str


async def authenticate(request: Request) -> Account:
    """The caller's account (``caller_for_key``)."""
    return (await authenticate_caller(request)).account


async def authenticate_caller(request: Request) -> Caller:
    """The caller: the account and the key it called with.

    The key is never compared as text: its SHA-256 is looked up, so how long a lookup takes
    tells an attacker at most about a hash, which does not lead back to any key."""
    header = request.headers.get("authorization", "")
    key = header[7:].strip() if header[:7].lower() == "bearer " else None
    key = key or request.headers.get("x-api-key", "").strip() or None
    if not key:
        raise Unauthorized("send your API key as 'Authorization: Bearer <key>'")
    return await caller_for_key(request, key, cached=True)


async def caller_for_key(request: Request, key: str, *, cached: bool = False) -> Caller:
    """The caller holding ``key`` (from a header or the dashboard's sign-in form). A valid
    key always passes. A wrong one counts against the client's address, and once the address
    has sent too many it is answered ``TooManyRequests`` instead of ``Unauthorized``
    (``relay.limits``).

    ``cached`` (the API's requests): a key found active is kept a few seconds
    (``relay.keys.KeyCache``), so most requests cost no trip to the database: a key revoked
    on this instance is refused from its next request on (the revocation drops it), one
    revoked elsewhere (another instance, the CLI) within ``limits.api_key_cache_seconds``,
    and none outlives the moment it stops working. Otherwise (a sign-in) the key is looked
    up, and the cache learns the answer. Wrong keys are never kept: each is looked up and
    counted.

    Valid keys are never held back: they are 256 random bits, so a correct guess is not the
    risk, and many tenants share an address (Zapier's, Make's egress), where one tenant's
    stale key must not lock out the others."""
    svc = services(request)
    now = svc.clock.now()
    if len(key) <= MAX_API_KEY_CHARS and key.isascii() and key.isprintable():
        digest = hash_api_key(key)
        holder = svc.api_keys.get(digest, now) if cached else None
        if holder is None:
            holder = await svc.store.key_holder_by_hash(digest, now)
            if holder is not None:
                svc.api_keys.put(digest, holder, now)
            else:
                svc.api_keys.drop(digest)
        if holder is not None:
            return Caller(holder.account, holder.key.id)
    client = client_address(request)
    if client is not None:
        wait = svc.auth_failures.retry_after(client, now.timestamp())
        if wait is not None:
            raise TooManyRequests(
                "too many requests with a wrong API key from this "
                f"address; retry in {math.ceil(wait)} s",
                retry_after=math.ceil(wait),
            )
        svc.auth_failures.failed(client, now.timestamp())
    raise Unauthorized("the API key is not valid")


def client_address(request: Request) -> str | None:
    """Whom wrong keys are counted against: the client's IPv4 address, or its IPv6 /64 (one
    host holds a whole /64). None without a peer address (a Unix socket: not limited)."""
    if request.client is None:
        return None
    host = request.client.host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


async def check_destination(request: Request, field: str, url: str) -> None:
    """Refuse (400, changing nothing) a callback or subscription URL whose host resolves to
    an address the network policy forbids (loopback, private, link-local, metadata, ...)."""
    reason = await services(request).destinations.check_url(url)
    if reason is not None:
        raise DestinationNotAllowed(field, reason)


# --- shared by the route modules ---


async def has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") != "0" or "chunked" in request.headers.get(
        "transfer-encoding", ""
    )


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "event_id": d.event_id,
        "destination_id": d.destination_id,
        "url": d.url,
        "status": d.status.value,
        "attempt_count": d.attempt_count,
        "next_attempt_at": iso(d.next_attempt_at),
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
    }


def attempt_json(a: Attempt) -> dict[str, Any]:
    return {
        "number": a.number,
        "started_at": iso(a.started_at),
        "latency_ms": a.latency_ms,
        "outcome": a.outcome,
        "status_code": a.status_code,
        "error": a.error,
        "response_snippet": a.response_snippet,
    }


def cursor_position(request: Request, cursor: str | None, order: str) -> int | None:
    if cursor is None:
        return None
    value = services(request).tokens.read_cursor(cursor)
    if not (
        isinstance(value, list)
        and len(value) == 2
        and value[1] == order
        and isinstance(value[0], int)
    ):
        raise InvalidCursor("the cursor is not valid (or was made for another order)")
    return value[0]


def next_cursor(request: Request, after: int | None, order: str) -> str | None:
    return None if after is None else services(request).tokens.cursor([after, order])


def parse_time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
