"""The dashboard's one script, ``GET /dashboard/static/dashboard.js`` (``static/``): local
times, copy buttons and auto-refresh. Served by the relay itself, so the pages' policy allows
scripts from this origin only (``relay.dashboard.render.content_policy``), no CDN."""

from __future__ import annotations

import functools
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

SCRIPT = Path(__file__).parent / "static" / "dashboard.js"


@functools.cache
def _script() -> bytes:
    return SCRIPT.read_bytes()


async def script(request: Request) -> Response:
    """The dashboard's script: the same for everyone (no account data), so it may be cached
    for a while; not a page, so no session is needed."""
    return Response(
        _script(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )
