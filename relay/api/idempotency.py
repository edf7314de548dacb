"""``Idempotency-Key`` on the POSTs that create things (tasks, subscriptions), the way Stripe
and the IETF draft do it: the same key with the same body gets the first answer again (with
``Idempotent-Replayed: true``), with another body a 409, and while the first request is
still being answered a 409 too. Keys are per account and kept ``idempotency.ttl`` (24 h).

Answers below 500 are kept (a 400 for a body stays a 400 for that body); a 5xx or a crash
forgets the key, so the client's retry runs again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.api.errors import answer_for
from relay.api.http import services
from relay.errors import IdempotencyKeyInUse, IdempotencyKeyReused, InvalidIdempotencyKey
from relay.models import Account

HEADER = "idempotency-key"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def request_hash(request: Request, body: Any) -> str:
    canonical = json.dumps(
        [request.method, request.url.path, body],
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
    key = request.headers.get(HEADER)
    if key is None:
        return await answer()
    if not _KEY.match(key):
        raise InvalidIdempotencyKey("Idempotency-Key must be 1 to 255 printable ASCII characters")
    svc = services(request)
    digest = request_hash(request, body)
    earlier = await svc.store.reserve_idempotency_key(account.id, key, digest, svc.clock.now())
    if earlier is not None:
        if earlier.request_hash != digest:
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different request")
        if earlier.status_code is None or earlier.body is None:
            raise IdempotencyKeyInUse("a request with this Idempotency-Key is still being answered")
        return Response(
            earlier.body,
            status_code=earlier.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    try:
        response = await answer()
    except BaseException as exc:
        refused = answer_for(exc)
        if refused is None or refused.status >= 500:
            await svc.store.forget_idempotency_key(account.id, key)
            raise
        body_text = json.dumps({"error": {"code": refused.code, "message": str(exc)}})
        await svc.store.finish_idempotency_key(account.id, key, refused.status, body_text)
        raise
    if response.status_code >= 500:
        await svc.store.forget_idempotency_key(account.id, key)
    else:
        await svc.store.finish_idempotency_key(
            account.id, key, response.status_code, bytes(response.body).decode()
        )
    return response
