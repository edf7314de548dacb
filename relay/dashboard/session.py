"""Dashboard sign-in state: the session cookie, CSRF tokens and form bodies.

The session is Starlette's ``SessionMiddleware`` (an itsdangerous-signed, timestamped cookie,
HttpOnly, SameSite=Lax, Path=/dashboard). It holds the signed-in account's id and name, a
session id and a CSRF token, never the API key. Its key is resolved at the first request,
because the relay's default key lives in the database, which is only open once the app runs;
several instances on one database therefore agree on it without configuration. The cookie is
marked Secure when the request came over https (directly, or through a proxy uvicorn trusts).

A signed cookie alone cannot be taken back, so a sign-in is also a row in the database (the
store's dashboard sessions, by the SHA-256 of the session id), tied to the API key that
opened it. Every dashboard request checks that row before any page sees the session
(``_HeldSessions``): signing out deletes it, so a copy of the cookie taken before is worthless
after; revoking (or deleting) the key ends every session it opened, on every instance, from
their next request on.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from relay.api.http import Caller, services
from relay.config.sections import DashboardSettings
from relay.errors import BadRequest, CsrfRefused, PayloadTooLarge, StoreError, Unauthorized

log = logging.getLogger("relay.dashboard")

SESSION_COOKIE = "relay_dashboard"
SETTINGS_SCOPE_KEY = "relay.dashboard"
FORM_LIMIT = 16 * 1024
"""The dashboard's forms are a few short fields: anything larger is not one of them."""


def session_key(secret: str) -> str:
    """The cookie-signing key, derived so it differs from every other use of ``secret``."""
    return hmac.new(secret.encode(), b"relay dashboard session v1", hashlib.sha256).hexdigest()


class DashboardSessions:
    """ASGI middleware: ``SessionMiddleware`` built on first use with the resolved key."""

    def __init__(
        self, app: ASGIApp, settings: DashboardSettings, secret_key: str | None = None
    ) -> None:
        self.app = app
        self._settings = settings
        self._secret = settings.session_secret or secret_key
        self._lock = asyncio.Lock()
        self._plain: SessionMiddleware | None = None
        self._secure: SessionMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        plain, secure = await self._middlewares(scope)
        scope[SETTINGS_SCOPE_KEY] = self._settings
        inner = secure if scope.get("scheme") == "https" else plain
        await inner(scope, receive, send)

    async def _middlewares(self, scope: Scope) -> tuple[SessionMiddleware, SessionMiddleware]:
        async with self._lock:
            if self._plain is None or self._secure is None:
                secret = self._secret or await scope["app"].state.services.store.secret_key()
                key = session_key(secret)
                common: dict[str, Any] = {
                    "secret_key": key,
                    "session_cookie": SESSION_COOKIE,
                    "max_age": self._settings.session_max_age,
                    "path": "/dashboard",
                    "same_site": "lax",
                }
                held = _HeldSessions(self.app)
                self._plain = SessionMiddleware(held, https_only=False, **common)
                self._secure = SessionMiddleware(held, https_only=True, **common)
            return self._plain, self._secure


class _HeldSessions:
    """Between the cookie and the pages: a signed-in session whose row no longer holds (signed
    out, its key revoked, expired) is emptied before any page sees it, and the emptied session
    deletes the cookie in the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session: dict[str, Any] = scope["session"]
        if "account_id" in session:
            svc = scope["app"].state.services
            sid = session.get("sid")
            try:
                holder = (
                    await svc.store.dashboard_session_account(_digest(sid), svc.clock.now())
                    if isinstance(sid, str)
                    else None
                )
            except StoreError as exc:
                # Unchecked, the session must not be honoured, nor dropped for a blip.
                log.error("database error checking a dashboard session: %s", exc)
                unavailable = PlainTextResponse(
                    "The database is unavailable; retry shortly.",
                    status_code=503,
                    headers={"Cache-Control": "no-store", "Retry-After": "5"},
                )
                await unavailable(scope, receive, send)
                return
            if holder is None or holder != session.get("account_id"):
                session.clear()
        await self.app(scope, receive, send)


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SignedIn:
    account_id: str
    name: str


def signed_in(request: Request) -> SignedIn | None:
    """The session's account while its sign-in lasts. The cookie is re-signed on every answer
    (so its own max age only bounds idleness); the sign-in's end is kept inside it."""
    session = request.session
    account_id, name = session.get("account_id"), session.get("account_name")
    expires = session.get("expires")
    if not (
        isinstance(account_id, str) and isinstance(name, str) and isinstance(expires, int | float)
    ):
        return None
    if services(request).clock.now().timestamp() >= expires:
        session.clear()
        return None
    return SignedIn(account_id, name)


def require_account(request: Request) -> SignedIn:
    who = signed_in(request)
    if who is None:
        raise Unauthorized("sign in first")
    return who


async def sign_in(request: Request, caller: Caller) -> None:
    """A fresh session for the caller's account, recorded against the key it signed in with:
    whatever was there before (its record, its CSRF token) goes, so a token planted before
    sign-in is worthless after it."""
    settings: DashboardSettings = request.scope[SETTINGS_SCOPE_KEY]
    svc = services(request)
    now = svc.clock.now()
    expires = int(now.timestamp() + settings.session_max_age)
    await sign_out(request)
    sid = secrets.token_urlsafe(32)
    await svc.store.open_dashboard_session(
        _digest(sid), caller.key_id, now, datetime.fromtimestamp(expires, UTC)
    )
    request.session.update(
        {
            "account_id": caller.account.id,
            "account_name": caller.account.name,
            "sid": sid,
            "expires": expires,
            "csrf": secrets.token_urlsafe(32),
        }
    )


async def sign_out(request: Request) -> None:
    """End the session here and in the database: its cookie, wherever copied, no longer
    signs anyone in."""
    sid = request.session.get("sid")
    if isinstance(sid, str):
        await services(request).store.end_dashboard_session(_digest(sid))
    request.session.clear()


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, form: dict[str, str]) -> None:
    expected = request.session.get("csrf")
    given = form.get("csrf", "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), given.encode()):
        raise CsrfRefused(
            "the form's security token is missing or stale: reload the page and try again"
        )


def flash(request: Request, message: str) -> None:
    request.session["flash"] = message


def take_flash(request: Request) -> str | None:
    message = request.session.pop("flash", None)
    return message if isinstance(message, str) else None


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body of at most ``FORM_LIMIT`` bytes."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadRequest("send the dashboard's form (application/x-www-form-urlencoded)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > FORM_LIMIT:
            raise PayloadTooLarge(f"the form is over {FORM_LIMIT} bytes")
        chunks.append(chunk)
    try:
        text = b"".join(chunks).decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=32, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form is not valid") from None
    if any("\x00" in name or "\x00" in value for name, value in pairs):  # as relay.api.http
        raise BadRequest("the form holds a NUL character (\\u0000), which the relay cannot store")
    return dict(pairs)
