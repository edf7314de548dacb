"""What the sandbox tests share: the clock's start, a mounted sandbox, an HTTP client over
it, and the signed-URL recipe recomputed independently of the code under test."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from relay.clock import Clock
from relay.sandbox.app import Sandbox
from relay.sandbox.simulation import SandboxSettings

T0 = datetime(2026, 6, 6, 8, 0, 57, tzinfo=UTC)  # apiyi's sample task: created_at 1780732857
T0_UNIX = 1780732857
BASE = "http://relay.test"
AUTH = {"Authorization": "Bearer sk-sandbox"}
STANDARD = "doubao-seedance-2-0-260128"
FAST = "doubao-seedance-2-0-fast-260128"
POLICY = "The request failed because the output video may be related to policy restrictions."


@asynccontextmanager
async def served(
    clock: Clock,
    settings: SandboxSettings | None = None,
    *,
    push_transport: httpx.AsyncBaseTransport | None = None,
    push_retry_delays: Sequence[float] = (1.0, 5.0),
) -> AsyncIterator[tuple[Sandbox, httpx.AsyncClient]]:
    """A sandbox mounted at ``/sandbox`` as the relay mounts it, and a client for it."""
    sandbox = Sandbox(
        settings or SandboxSettings(),
        clock,
        push_transport=push_transport,
        push_retry_delays=push_retry_delays,
    )
    app = Starlette(routes=[Mount("/sandbox", app=sandbox.app)])
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
            yield sandbox, http
    finally:
        await sandbox.aclose()


def signed(name: str, date: str) -> str:
    """The sandbox's TOS-style URL for ``name`` signed at ``date`` (``YYYYMMDDTHHMMSSZ``)."""
    message = f"{name}\n{date}\n86400".encode()
    signature = hmac.new(b"seedance-relay-sandbox", message, hashlib.sha256).hexdigest()
    return (
        f"{BASE}/sandbox/files/{name}?X-Tos-Algorithm=TOS4-HMAC-SHA256&X-Tos-Date={date}"
        f"&X-Tos-Expires=86400&X-Tos-Signature={signature}"
    )


def json_of(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()
