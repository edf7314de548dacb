"""The subscriber routes (DESIGN §7): REST-hook subscriptions, their secrets, test events,
replays, and the callback secret's rotation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relay import operator_actions as operations
from relay.api.http import (
    authenticate,
    check_destination,
    cursor_position,
    has_body,
    json_response,
    next_cursor,
    parse_time,
    read_json,
    services,
)
from relay.api.idempotency import idempotent
from relay.api.schemas import (
    CreateSubscription,
    EnableSubscription,
    ReplayRequest,
    RotateSecret,
    SubscriptionList,
    UpdateSubscription,
    parse,
)
from relay.delivery.verification import verify_endpoint
from relay.errors import (
    BadRequest,
    EndpointNotVerified,
    SubscriptionDisabled,
    UnknownSubscription,
)
from relay.ids import new_id
from relay.models import (
    Account,
    DeliveryStatus,
    Event,
    EventType,
    Subscription,
    SubscriptionStatus,
    iso,
)
from relay.net.transport import RelayTransport
from relay.services import Services
from relay.signing import generate_webhook_secret
from relay.store.values import ReplayQuery
from relay.transitions import envelope


async def create_subscription(request: Request) -> Response:
    account = await authenticate(request)
    raw = await read_json(request)

    async def answer() -> Response:
        body = parse(CreateSubscription, raw)
        await check_destination(request, "url" if body.url else "target_url", body.destination)
        svc = services(request)
        now = svc.clock.now()
        sub = body.subscription(account.id, new_id("sub"), now)
        secret = body.secret or generate_webhook_secret()
        if body.verify:
            reason = await _challenge(svc, body.destination, secret, dict(sub.headers))
            if reason is not None:
                raise EndpointNotVerified(f"{body.destination} was not verified: {reason}")
        await svc.store.create_subscription(sub, secret)
        # The secret is shown here and on rotation only.
        return json_response({**sub.to_json(), "secret": secret}, status_code=201)

    return await idempotent(request, account, raw, answer)


async def _challenge(svc: Services, url: str, secret: str, headers: dict[str, str]) -> str | None:
    """Standard Webhooks endpoint verification, through the network policy's guard."""
    transport = RelayTransport(max_connections=1, guard=svc.destinations)
    async with httpx.AsyncClient(
        transport=transport, timeout=VERIFY_TIMEOUT, follow_redirects=False, trust_env=False
    ) as client:
        return await verify_endpoint(client, url, secret, svc.clock.now(), headers)


VERIFY_TIMEOUT = 10.0


async def list_subscriptions(request: Request) -> Response:
    account = await authenticate(request)
    q = parse(SubscriptionList, dict(request.query_params))
    page = await services(request).store.list_subscriptions(
        account.id, cursor_position(request, q.cursor, "desc"), q.limit
    )
    return json_response(
        {
            "data": [s.to_json() for s in page.items],
            "next_cursor": next_cursor(request, page.next_after, "desc"),
        }
    )


async def get_subscription(request: Request) -> Response:
    account = await authenticate(request)
    return json_response((await _subscription(request, account)).to_json())


async def update_subscription(request: Request) -> Response:
    account = await authenticate(request)
    body = parse(UpdateSubscription, await read_json(request))
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    if "target_url" in changes:
        target = changes.pop("target_url")
        if "url" in changes and changes["url"] != target:
            raise BadRequest("url and target_url differ; give one")
        changes["url"] = target
    if not changes:
        raise BadRequest("nothing to change")
    if changes.get("url", "") is None:
        raise BadRequest("url: cannot be null")
    if "url" in changes:
        await check_destination(request, "url" if body.url else "target_url", changes["url"])
    if "event_types" in changes and changes["event_types"] is not None:
        changes["event_types"] = frozenset(EventType(t) for t in changes["event_types"])
    svc = services(request)
    sub_id = request.path_params["sub_id"]
    updated = await svc.store.update_subscription(account.id, sub_id, changes, svc.clock.now())
    if updated is None:
        raise UnknownSubscription(f"no subscription {sub_id}")
    return json_response(updated.to_json())


async def delete_subscription(request: Request) -> Response:
    account = await authenticate(request)
    svc = services(request)
    sub_id = request.path_params["sub_id"]
    if not await svc.store.delete_subscription(account.id, sub_id, svc.clock.now()):
        raise UnknownSubscription(f"no subscription {sub_id}")
    return json_response({"id": sub_id, "deleted": True})


async def enable_subscription(request: Request) -> Response:
    account = await authenticate(request)
    body = parse(EnableSubscription, await read_json(request) if await has_body(request) else {})
    svc = services(request)
    sub, missed_since, replayed = await operations.enable(
        svc.store,
        account.id,
        request.path_params["sub_id"],
        svc.clock.now(),
        replay_missed=body.replay,
        wake=svc.delivery.wake,
    )
    return json_response({**sub.to_json(), "replayed": replayed, "missed_since": iso(missed_since)})


async def disable_subscription(request: Request) -> Response:
    account = await authenticate(request)
    svc = services(request)
    sub = await _subscription(request, account)
    disabled = await svc.store.disable_subscription(
        account.id, sub.id, "disabled through the API", svc.clock.now()
    )
    assert disabled is not None
    return json_response(disabled.to_json())


async def rotate_subscription_secret(request: Request) -> Response:
    account = await authenticate(request)
    body = parse(RotateSecret, await read_json(request) if await has_body(request) else {})
    svc = services(request)
    sub_id = request.path_params["sub_id"]
    now = svc.clock.now()
    until = now + timedelta(seconds=_grace(request, body))
    secret = generate_webhook_secret()
    sub = await svc.store.rotate_subscription_secret(account.id, sub_id, secret, until, now)
    if sub is None:
        raise UnknownSubscription(f"no subscription {sub_id}")
    return json_response({**sub.to_json(), "secret": secret})


async def rotate_callback_secret(request: Request) -> Response:
    account = await authenticate(request)
    body = parse(RotateSecret, await read_json(request) if await has_body(request) else {})
    svc = services(request)
    until = svc.clock.now() + timedelta(seconds=_grace(request, body))
    secret = generate_webhook_secret()
    await svc.store.rotate_callback_secret(account.id, secret, until)
    return json_response({"secret": secret, "previous_secret_expires_at": iso(until)})


async def test_subscription(request: Request) -> Response:
    """Send a signed ``relay.test`` event now and answer with what the receiver said."""
    account = await authenticate(request)
    sub = await _subscription(request, account)
    if sub.status is not SubscriptionStatus.ACTIVE:
        raise SubscriptionDisabled("the subscription is disabled; enable it first")
    svc = services(request)
    now = svc.clock.now()
    event_id = new_id("evt")
    event = Event(
        id=event_id,
        account_id=account.id,
        task_id=None,
        type=EventType.RELAY_TEST,
        sequence=0,
        created_at=now,
        body=envelope(
            event_id,
            EventType.RELAY_TEST,
            0,
            now,
            {
                "subscription_id": sub.id,
                "message": "A test event from the Seedance relay: answer 2xx.",
            },
        ),
    )
    due = await svc.store.insert_test_delivery(
        event, sub.id, svc.delivery.owner, now, svc.delivery.lease_seconds
    )
    if due is None:  # deleted meanwhile
        raise UnknownSubscription(f"no subscription {sub.id}")
    if svc.hub is not None:  # the test event is in the feed: streams see it at once
        svc.hub.wake()
    record = await svc.delivery.send_now(due)
    a = record.attempt
    return json_response(
        {
            "event_id": event_id,
            "delivery_id": due.id,
            "delivered": record.status is DeliveryStatus.SUCCEEDED,
            "status_code": a.status_code,
            "latency_ms": a.latency_ms,
            "error": a.error,
            "response_snippet": a.response_snippet,
        }
    )


async def replay_subscription(request: Request) -> Response:
    account = await authenticate(request)
    body = parse(ReplayRequest, await read_json(request) if await has_body(request) else {})
    if body.everything and body.since is not None:
        raise BadRequest('give either since or "all": true, not both')
    if not body.everything and body.since is None:
        raise BadRequest(
            "a replay needs a range: give since (an ISO 8601 time, e.g. "
            '{"since": "2026-11-21T10:00:00Z"}), or {"all": true} to re-send every event '
            "the account has"
        )
    sub = await _subscription(request, account)
    if sub.status is not SubscriptionStatus.ACTIVE:
        raise SubscriptionDisabled(
            "the subscription is disabled; enable it first (which replays what it missed)"
        )
    query = ReplayQuery(
        since=parse_time("since", body.since),
        until=parse_time("until", body.until),
        only_failed=body.only_failed,
    )
    svc = services(request)
    replayed = await operations.replay(
        svc.store, account.id, sub.id, query, svc.clock.now(), svc.delivery.wake
    )
    return json_response({"subscription_id": sub.id, "replayed": replayed}, status_code=202)


async def _subscription(request: Request, account: Account) -> Subscription:
    sub_id = request.path_params["sub_id"]
    sub = await services(request).store.get_subscription(account.id, sub_id)
    if sub is None:
        raise UnknownSubscription(f"no subscription {sub_id}")
    return sub


def _grace(request: Request, body: RotateSecret) -> float:
    if body.grace_seconds is not None:
        return body.grace_seconds
    return services(request).rotation_grace


def subscription_routes() -> list[Route]:
    base = "/v1/subscriptions/{sub_id}"
    return [
        Route("/v1/subscriptions", create_subscription, methods=["POST"]),
        Route("/v1/subscriptions", list_subscriptions, methods=["GET"]),
        Route(base, get_subscription, methods=["GET"]),
        Route(base, update_subscription, methods=["PATCH"]),
        Route(base, delete_subscription, methods=["DELETE"]),
        Route(base + "/enable", enable_subscription, methods=["POST"]),
        Route(base + "/disable", disable_subscription, methods=["POST"]),
        Route(base + "/rotate-secret", rotate_subscription_secret, methods=["POST"]),
        Route(base + "/test", test_subscription, methods=["POST"]),
        Route(base + "/replay", replay_subscription, methods=["POST"]),
        Route("/v1/callback-secret/rotate", rotate_callback_secret, methods=["POST"]),
    ]
