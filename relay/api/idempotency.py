"""``Idempotency-Key`` on the POSTs that create things (tasks, subscriptions), the way Stripe
and the IETF draft do it: the same key with the same body gets the first answer again (with
``Idempotent-Replayed: true``), with another body a 409, and while the first request is
still being answered a 409 too (with ``Retry-After``). Keys are per account and kept
``idempotency.ttl`` (24 h).

Answers below 500 are kept (a 400 for a body stays a 400 for that body); a 5xx or a crash
forgets the key, so the client's retry runs again. The request answering holds the key under
a short lease it renews while it runs: when its process dies, a retry takes the key over
within ``LEASE`` seconds instead of meeting ``idempotency_key_in_use`` for a day. A retry of
a create is then still safe: the submission record (``relay.submissions``) answers it with
the task, or with ``submission_uncertain``, never with a second create.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.api.errors import answer_for
from relay.api.http import services
from relay.errors import (
    BudgetExceeded,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    SubmissionInFlight,
    SubmissionUncertain,
)
from relay.heartbeat import renewing
from relay.ids import new_id
from relay.models import Account

HEADER = "idempotency-key"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

_NOT_KEPT = (SubmissionUncertain, SubmissionInFlight, BudgetExceeded)
"""Answers about a state that will change (the provider's answer is not known yet, the
operator may raise the budget): a retry must ask again."""

LEASE = 15.0
"""Seconds a reservation outlives its holder: renewed every third of it while it runs."""


def idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key, checked; None without one."""
    key = request.headers.get(HEADER)
    if key is not None and not _KEY.match(key):
        raise InvalidIdempotencyKey("Idempotency-Key must be 1 to 255 printable ASCII characters")
    return key


def _path(request: Request) -> str:
    """``request.url.path`` without building the URL: the same text for a plain path (the
    create routes' are), which is hashed into every stored key."""
    path: str = request.scope["path"]
    plain = path.isascii() and path.isprintable() and not any(c in path for c in " ?#\\")
    if plain and path.startswith("/") and not path.startswith("//"):
        return path
    return request.url.path


def request_hash(request: Request, body: Any) -> str:
    canonical = json.dumps(
        [request.method, _path(request), body],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def idempotent(
    request: Request,
    account: Account,
    body: Any,
    answer: Callable[[], Awaitable[Response]],
) -> Response:
    """``answer()``, or what it gave the first time this key was used with this body."""
    key = idempotency_key(request)
    if key is None:
        return await answer()
    svc = services(request)
    store = svc.store
    digest = request_hash(request, body)
    owner = new_id("req")
    now = svc.clock.now()
    earlier = await store.reserve_idempotency_key(
        account.id, key, digest, owner, now, now + timedelta(seconds=LEASE)
    )
    if earlier is not None:
        if earlier.request_hash != digest:
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different request")
        if earlier.status_code is None or earlier.body is None:
            wait = (earlier.lease_until - now).total_seconds()
            raise IdempotencyKeyInUse(
                "a request with this Idempotency-Key is still being answered",
                retry_after=max(1, math.ceil(wait)),
            )
        return Response(
            earlier.body,
            status_code=earlier.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )

    def renew() -> Awaitable[bool]:
        until = svc.clock.now() + timedelta(seconds=LEASE)
        return store.renew_idempotency_key(account.id, key, owner, until)

    async with renewing(renew, LEASE / 3, f"Idempotency-Key {key!r}"):
        try:
            response = await answer()
        except BaseException as exc:
            refused = answer_for(exc)
            if refused is None or refused.status >= 500 or isinstance(exc, _NOT_KEPT):
                await store.forget_idempotency_key(account.id, key, owner)
                raise
            body_text = json.dumps({"error": {"code": refused.code, "message": str(exc)}})
            await store.finish_idempotency_key(account.id, key, owner, refused.status, body_text)
            raise
    if response.status_code >= 500:
        await store.forget_idempotency_key(account.id, key, owner)
    else:
        await store.finish_idempotency_key(
            account.id, key, owner, response.status_code, bytes(response.body).decode()
        )
    return response
