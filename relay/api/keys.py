"""``/v1/keys``: an account's own API keys. List them (never the secrets), issue another (its
secret shown once, in that answer), revoke one at once.

Any active key of the account may do all three: the keys of one account are one tenant's. The
account keeps at least one active key (revoking the last is refused: only the operator's
``relay accounts rotate-key`` could let it in again), and at most ``MAX_ACTIVE_KEYS``. Issuing
takes no Idempotency-Key: its answer holds a secret, which the relay keeps nowhere, and a
replay of it would have to."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relay.api.http import authenticate_caller, json_response, services
from relay.api.responses import Out, Time, time_field
from relay.errors import UnknownKey
from relay.keys import ApiKey as StoredKey
from relay.keys import issue_key
from relay.models import iso

MAX_ACTIVE_KEYS = 10
"""Enough for a key per integration and a rotation in progress."""

NO_STORE = {"Cache-Control": "no-store"}


class ApiKey(Out):
    id: str = Field(description="key_…: names the key in the API, the CLI and the logs.")
    prefix: str | None = Field(
        description="The key's first characters (rk_ and 8 more), to tell keys apart; null "
        "for keys issued before prefixes were kept."
    )
    active: bool = Field(description="Whether the key opens the account now.")
    current: bool = Field(description="Whether this request was made with this key.")
    created_at: Time = time_field()
    revoked_at: Time | None = time_field(
        "When it stops (or stopped) working; in the future while a rotation's grace runs."
    )


class ApiKeyList(Out):
    data: list[ApiKey] = Field(description="Every key of the account, revoked ones too.")


class IssuedApiKey(ApiKey):
    key: str = Field(description="rk_…: the new key, shown this once; the relay keeps a hash.")


def key_json(key: StoredKey, now: datetime, current_id: str) -> dict[str, object]:
    return {
        "id": key.id,
        "prefix": key.prefix,
        "active": key.active(now),
        "current": key.id == current_id,
        "created_at": iso(key.created_at),
        "revoked_at": iso(key.revoked_at) if key.revoked_at else None,
    }


async def list_keys(request: Request) -> Response:
    caller = await authenticate_caller(request)
    svc = services(request)
    keys = await svc.store.list_api_keys(caller.account.id)
    now = svc.clock.now()
    return json_response({"data": [key_json(k, now, caller.key_id) for k in keys]})


async def create_key(request: Request) -> Response:
    caller = await authenticate_caller(request)
    svc = services(request)
    now = svc.clock.now()
    issued = issue_key(caller.account.id, now)
    await svc.store.add_api_key(issued.key, issued.hash, max_active=MAX_ACTIVE_KEYS)
    response = json_response(
        {**key_json(issued.key, now, caller.key_id), "key": issued.secret}, status_code=201
    )
    response.headers.update(NO_STORE)
    return response


async def revoke_key(request: Request) -> Response:
    caller = await authenticate_caller(request)
    svc = services(request)
    now = svc.clock.now()
    key_id = request.path_params["key_id"]
    key = await svc.store.revoke_api_key(caller.account.id, key_id, now, keep_last=True)
    svc.api_keys.forget_key(key_id)  # refused here from the next request on
    if key is None:
        raise UnknownKey(f"no API key {key_id}")
    return json_response(key_json(key, now, caller.key_id))


def key_routes() -> list[Route]:
    return [
        Route("/v1/keys", list_keys, methods=["GET"]),
        Route("/v1/keys", create_key, methods=["POST"]),
        Route("/v1/keys/{key_id}", revoke_key, methods=["DELETE"]),
    ]
