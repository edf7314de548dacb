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
from dataclasses import replace
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
from relay.models import Account, Task
from relay.store.values import KeyAnswer, KeyReserved
from relay.tasks.registration import Registration

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
    *,
    submits: bool = False,
) -> Response:
    """``answer()``, or what it gave the first time this key was used with this body.

    ``submits``: the request submits a task (``registering`` and ``created`` in its
    ``answer``): the key's latest submission is read with the reservation, and the answer is
    kept by the transaction that writes the task, not by a write of its own after."""
    key = idempotency_key(request)
    if key is None:
        return await answer()
    svc = services(request)
    store = svc.store
    digest = request_hash(request, body)
    owner = new_id("req")
    now = svc.clock.now()
    lease_until = now + timedelta(seconds=LEASE)
    hold: _Hold | None = None
    if submits:
        reserved = await store.reserve_idempotency_key_to_submit(
            account.id, key, digest, owner, now, lease_until
        )
        if isinstance(reserved, KeyReserved):
            hold = _Hold(account.id, key, owner, reserved)
            request.scope[_HOLD] = hold
            earlier = None
        else:
            earlier = reserved
    else:
        earlier = await store.reserve_idempotency_key(
            account.id, key, digest, owner, now, lease_until
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
                # Forgets only an unanswered key: one kept with its task stays (the task is).
                await store.forget_idempotency_key(account.id, key, owner)
                raise
            body_text = json.dumps({"error": {"code": refused.code, "message": str(exc)}})
            await store.finish_idempotency_key(account.id, key, owner, refused.status, body_text)
            raise
    if hold is not None and hold.sent_as_kept(response):
        return response  # kept with the task it answers, in the transaction that wrote it
    if response.status_code >= 500:
        await store.forget_idempotency_key(account.id, key, owner)
    else:
        await store.finish_idempotency_key(
            account.id, key, owner, response.status_code, bytes(response.body).decode()
        )
    return response


_HOLD = "relay.idempotency_hold"
"""Where ``idempotent(..., submits=True)`` leaves the request's ``_Hold`` (its scope)."""


class _Hold:
    """A request's hold on its Idempotency-Key while it submits a task: what the
    reservation read, and the answer kept with the task it creates (``AnswerWithTask``)."""

    __slots__ = ("account_id", "kept_body", "key", "owner", "render", "reserved", "status_code")

    def __init__(self, account_id: str, key: str, owner: str, reserved: KeyReserved) -> None:
        self.account_id = account_id
        self.key = key
        self.owner = owner
        self.reserved = reserved
        self.status_code = 201
        self.render: Callable[[Task], str] | None = None
        self.kept_body: str | None = None
        """The body written with the task, once its transaction committed."""

    def answer(self, task: Task) -> KeyAnswer:
        assert self.render is not None
        body = self.render(task)
        return KeyAnswer(self.account_id, self.key, self.owner, self.status_code, body)

    def kept(self, answer: KeyAnswer) -> None:
        self.kept_body = answer.body

    def sent_as_kept(self, response: Response) -> bool:
        """Whether ``response`` is byte for byte the answer kept with the task (else the
        key gets ``response``, as without a task)."""
        return (
            self.kept_body is not None
            and response.status_code == self.status_code
            and bytes(response.body) == self.kept_body.encode()
        )


def registering(
    request: Request, reg: Registration, status_code: int, render: Callable[[Task], str]
) -> Registration:
    """``reg`` with what the request's Idempotency-Key knows (``idempotent(...,
    submits=True)``): the key's latest submission, read with the reservation, and the
    answer to keep with the task it creates: ``status_code`` with ``render(task)``."""
    hold: _Hold | None = request.scope.get(_HOLD)
    if hold is None:
        return reg
    hold.status_code, hold.render = status_code, render
    return replace(reg, key_latest=hold.reserved, key_answer=hold)


def created(
    request: Request, task: Task, status_code: int, render: Callable[[Task], str]
) -> Response:
    """The answer with ``task``: the very body kept with it when its creation kept one."""
    hold: _Hold | None = request.scope.get(_HOLD)
    kept = None if hold is None else hold.kept_body
    body = render(task) if kept is None else kept
    return Response(body, status_code=status_code, media_type="application/json")
