"""Rendering for the dashboard: the Jinja2 environment, the context every page shares, and
errors turned into pages (a browser gets HTML, never the API's JSON)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from relay.api.errors import answer_for
from relay.api.http import services
from relay.dashboard import views
from relay.dashboard.session import csrf_token, signed_in, take_flash
from relay.errors import RelayError, StoreError, Unauthorized

log = logging.getLogger("relay.dashboard")

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def local_time(value: datetime | None) -> Markup:
    """A time as a ``<time>`` element: UTC as the API writes it, which the dashboard's script
    (``static/dashboard.js``) shows in the browser's time zone, UTC on hover; ``-`` for
    none. Without the script the page shows the UTC time."""
    text = views.when(value)
    if value is None:
        return Markup(escape(text))
    return Markup('<time datetime="{0}" title="{0}">{0}</time>').format(text)


TEMPLATES.env.filters.update(
    when=views.when,
    local=local_time,
    snippet=views.snippet,
    bytes_label=views.bytes_label,
    pretty_json=views.pretty_json,
)


def content_policy(media: Sequence[str] = ()) -> str:
    """The pages' Content-Security-Policy: scripts only from the relay itself (its one small
    file, ``static/dashboard.js``; no inline script), nothing framed, forms only to the
    dashboard; images and media (a task's stored video and last frame) from this origin, and
    from the ``media`` origins a page names (``views.media_origins``: the origin of the
    relay's own output links when ``server.public_url`` is another one, and a bucket's when
    its links redirect to presigned URLs)."""
    sources = " ".join(["'self'", *media])
    return (
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
        f"img-src {sources}; media-src {sources}; form-action 'self'; "
        "frame-ancestors 'none'"
    )


NO_STORE = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": content_policy(),
}
"""Every dashboard page: never cached (it shows account data), never framed, no script but
the relay's own."""

Handler = Callable[[Request], Awaitable[Response]]


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    status_code: int = 200,
    *,
    media: Sequence[str] = (),
    refresh: int | None = None,
) -> Response:
    """``template`` rendered; ``media``: the other origins its images and media load from
    (``content_policy``); ``refresh``: seconds after which the script reloads the page (a
    list, a running task), unless the person is typing, selecting or has paused it."""
    now = services(request).clock.now()
    shared = {
        "who": signed_in(request),
        "csrf": csrf_token(request),
        "flash": take_flash(request),
        "now": now,
        "age": functools.partial(views.age, now),
        "path": _here(request),
        "refresh": refresh,
    }
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {**shared, **context},
        status_code=status_code,
        headers={**NO_STORE, "Content-Security-Policy": content_policy(media)}
        if media
        else NO_STORE,
    )


def _here(request: Request) -> str:
    """This page's dashboard path and query, for forms that come back to it."""
    path = request.url.path
    query = request.url.query
    return f"{path}?{query}" if query else path


def redirect(to: str) -> Response:
    return RedirectResponse(to, status_code=303, headers={"Cache-Control": "no-store"})


def guarded(handler: Handler) -> Handler:
    """Errors as pages: a signed-out browser goes to the sign-in form, a refused request gets
    a page saying why, with the status the API answers it with (``relay.api.errors``;
    messages never hold secrets: the API shows the same ones)."""

    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except Unauthorized:
            if request.method == "GET":
                return redirect("/dashboard/login")
            return page(
                request,
                "error.html",
                {"status": 401, "message": "Your session ended: sign in again."},
                status_code=401,
            )
        except StoreError as exc:
            log.error(
                "database error on dashboard %s %s: %s", request.method, request.url.path, exc
            )
            return page(
                request,
                "error.html",
                {"status": 503, "message": "The database is unavailable; retry shortly."},
                status_code=503,
            )
        except RelayError as exc:
            answer = answer_for(exc)
            if answer is None:  # not a refusal: a bug, answered 500 like anywhere else
                raise
            return page(
                request,
                "error.html",
                {"status": answer.status, "message": str(exc)},
                status_code=answer.status,
            )

    return run
