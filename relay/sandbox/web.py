"""Plumbing every emulated provider shares: what a handler is given, API keys, JSON bodies,
where the sandbox is served, and the sandbox's own randomness.

Every route of the sandbox is a flat ``Route`` of one Starlette app, never a nested
``Mount``: a ``Mount`` would move ``root_path``, which is how URLs handed out (signed video
links, seedance2.ink's bucket) point back at wherever the sandbox is really served.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay.clock import Clock
from relay.sandbox.simulation import SandboxSettings, TaskBook

FILES_PATH: Final = "/files"
"""Where the signed TOS-style files (video, last frame) are served."""
BUCKET_PATH: Final = "/pub-bucket"
"""Where seedance2.ink's public-bucket results are served."""
REFUSED_KEY_PREFIX: Final = "invalid"
"""Any non-empty bearer key is accepted, except one starting with this, so tests can send a
present-but-wrong key and get each provider's 401."""


@dataclass(frozen=True, slots=True)
class SandboxContext:
    """What every emulation of one sandbox instance shares."""

    book: TaskBook
    settings: SandboxSettings
    clock: Clock


class NotJson:
    """A request body that is not JSON (``read_json``'s answer)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def api_key(request: Request) -> str | None:
    """The caller's bearer key, or ``None`` when it is missing, empty or refused."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or token.startswith(REFUSED_KEY_PREFIX):
        return None
    return token


BODY_LIMIT = 1_048_576
"""The most a sandbox request body may be: it is served on the relay's port to anyone."""


async def read_json(request: Request) -> Any:
    """The decoded body, or a :class:`NotJson` (also for one over ``BODY_LIMIT``)."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > BODY_LIMIT:
            return NotJson(f"the body is over {BODY_LIMIT} bytes")
    try:
        return json.loads(raw)
    except ValueError as exc:
        return NotJson(str(exc))


async def read_form(request: Request) -> dict[str, Any] | NotJson:
    """A multipart body's fields (the OpenAI SDK's video create): text as is, a file as a
    ``data:`` URL; a :class:`NotJson` when it is not one (or over ``BODY_LIMIT``)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > BODY_LIMIT:
        return NotJson(f"the body is over {BODY_LIMIT} bytes")
    fields: dict[str, Any] = {}
    try:
        async with request.form(max_files=4, max_fields=32, max_part_size=BODY_LIMIT) as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    data = await value.read(BODY_LIMIT + 1)
                    if len(data) > BODY_LIMIT:
                        return NotJson(f"the file is over {BODY_LIMIT} bytes")
                    kind = value.content_type or "application/octet-stream"
                    fields[name] = f"data:{kind};base64,{base64.b64encode(data).decode()}"
                else:
                    fields[name] = value
    except (MultiPartException, HTTPException) as exc:
        return NotJson(f"the multipart body is malformed: {exc}")
    return fields


def base_url(request: Request) -> str:
    """Where this sandbox is served: ``root_path`` is wherever it is mounted (``/sandbox``
    in the relay, plus any proxy prefix), so URLs stay valid however it is deployed."""
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}{root}"


def files_base(request: Request) -> str:
    return base_url(request) + FILES_PATH


def bucket_base(request: Request) -> str:
    return base_url(request) + BUCKET_PATH


def flag(request: Request, name: str) -> bool:
    """A boolean query parameter the way Go's ``strconv.ParseBool`` reads one."""
    return request.query_params.get(name, "").lower() in ("1", "t", "true")


def iso_ms(moment: datetime) -> str:
    """``2026-06-06T08:00:57.123Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_seconds(moment: datetime) -> str:
    """``2026-06-06T08:00:57Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_nonce() -> int:
    return secrets.randbits(24)


def ark_request_id(now: datetime) -> str:
    """Ark's request ids: ``021``, the time in ms, then random hex."""
    return f"021{int(now.timestamp() * 1000):013d}{secrets.token_hex(16)}"


def gateway_request_id(now: datetime) -> str:
    """new-api's request ids: the local time to the second, nanoseconds, 8 random chars."""
    stamp = now.strftime("%Y%m%d%H%M%S")
    return f"{stamp}{now.microsecond * 1000}{secrets.token_hex(4)}"


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One provider API route, before the sandbox wraps it with faults and the request log."""

    path: str
    handler: Handler
    methods: tuple[str, ...]


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)
