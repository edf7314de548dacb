"""The ``/v1`` API routes (DESIGN §7) and the operations endpoints."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relay.api.errors import STORE_RETRY_AFTER
from relay.api.http import (
    attempt_json,
    authenticate,
    check_destination,
    cursor_position,
    delivery_json,
    has_body,
    json_response,
    next_cursor,
    parse_time,
    read_json,
    services,
)
from relay.api.idempotency import created, idempotency_key, idempotent, registering
from relay.api.keys import key_routes
from relay.api.openapi import openapi_routes
from relay.api.outputs import output_routes
from relay.api.schemas import CreateTask, EventList, Redeliver, TaskList, parse
from relay.api.stream import stream_routes
from relay.api.submissions import submission_routes
from relay.api.subscriptions import subscription_routes
from relay.api.usage import usage_routes
from relay.errors import (
    ModerationRefused,
    NoSuchResource,
    PayloadTooLarge,
    ProviderCannot,
    ProviderUnavailable,
    UnknownDestination,
    UnknownEvent,
    UnknownTask,
)
from relay.models import Account, Event, Task, iso
from relay.provider_answers import ProviderFault
from relay.store.values import EventQuery, TaskQuery
from relay.tasks.providers import ProviderClient
from relay.tasks.registration import Registration


async def me(request: Request) -> Response:
    account = await authenticate(request)
    return json_response(
        {"id": account.id, "name": account.name, "created_at": iso(account.created_at)}
    )


async def callback_secret(request: Request) -> Response:
    account = await authenticate(request)
    secret = await services(request).store.callback_secret(account.id)
    return json_response({"secret": secret})


async def create_task(request: Request) -> Response:
    account = await authenticate(request)
    raw = await read_json(request)
    return await idempotent(
        request, account, raw, lambda: _create_task(request, account, raw), submits=True
    )


async def _create_task(request: Request, account: Account, raw: dict[str, Any]) -> Response:
    body = parse(CreateTask, raw)
    if body.callback_url is not None:
        await check_destination(request, "callback_url", body.callback_url)
    reg = Registration(
        provider=body.provider,
        provider_task_id=body.provider_task_id,
        input=body.input,
        callback_url=body.callback_url,
        callback_events=frozenset(body.callback_events) if body.callback_events else None,
        reference=body.reference,
        metadata=body.metadata,
        input_format=body.input_format,
        idempotency_key=idempotency_key(request),
    )
    reg = registering(request, reg, 201, _task_body)
    task = await services(request).tracker.register(account, reg)
    return created(request, task, 201, _task_body)


def _task_body(task: Task) -> str:
    return json.dumps(task.to_json(), separators=(",", ":"), ensure_ascii=False)


async def list_tasks(request: Request) -> Response:
    account = await authenticate(request)
    q = parse(TaskList, dict(request.query_params))
    svc = services(request)
    page = await svc.store.list_tasks(
        account.id,
        TaskQuery(
            status=q.status,
            provider=q.provider,
            reference=q.reference,
            after=cursor_position(request, q.cursor, q.order),
            limit=q.limit,
            order=q.order,
        ),
    )
    return json_response(
        {
            "data": [t.to_json() for t in page.items],
            "next_cursor": next_cursor(request, page.next_after, q.order),
        }
    )


async def get_task(request: Request) -> Response:
    account = await authenticate(request)
    task_id = request.path_params["task_id"]
    task = await services(request).store.get_task(account.id, task_id)
    if task is None:
        raise UnknownTask(task_id)
    return json_response(task.to_json())


async def refresh_task(request: Request) -> Response:
    account = await authenticate(request)
    task = await services(request).tracker.refresh(account.id, request.path_params["task_id"])
    return json_response(task.to_json())


async def cancel_task(request: Request) -> Response:
    account = await authenticate(request)
    task = await services(request).tracker.cancel(account.id, request.path_params["task_id"])
    return json_response(task.to_json())


INBOUND_BODY_LIMIT = 64 * 1024
"""A push is only a hint, read for the log: more than this is not a webhook we expect."""


async def inbound(request: Request) -> Response:
    """A push provider's webhook: the token in the path is the credential and names the
    task. Anything wrong with it (expired included) is a 404 that changes nothing and asks
    the provider nothing."""
    svc = services(request)
    provider = request.path_params["provider"]
    named = svc.tokens.read_inbound(provider, request.path_params["token"], svc.clock.now())
    if named is None:
        raise NoSuchResource("no such inbound webhook")
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > INBOUND_BODY_LIMIT:
        raise PayloadTooLarge(f"the body is over {INBOUND_BODY_LIMIT} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > INBOUND_BODY_LIMIT:
            raise PayloadTooLarge(f"the body is over {INBOUND_BODY_LIMIT} bytes")
    client = svc.providers.get(provider)
    if client is not None and not client.dialect.push_worth_a_look(bytes(body)):
        # A push that cannot be an end (Ark pushes every status change): no query, and no
        # confirmation window that would make the end's own push wait for the next poll.
        return json_response({"received": True}, status_code=202)
    if not await svc.tracker.pushed(
        named.account_id, named.task_id, created_after=named.created_after
    ):
        raise NoSuchResource("no such inbound webhook")
    return json_response({"received": True}, status_code=202)


async def list_providers(request: Request) -> Response:
    await authenticate(request)
    svc = services(request)
    return json_response({"data": [_provider(p) for p in svc.providers.values()]})


_NOT_THE_CALLERS = frozenset({401, 403, 407, 429})
"""Provider 4xx answers about the operator's key, proxy or quota, not the caller's request: a
401 passed on would read as "your relay key is wrong"."""


async def moderate(request: Request) -> Response:
    """The provider's image moderation, passed through so callers keep one API. Nothing of
    the operator's leaves with it: a JSON 2xx comes back with the provider's status and body,
    the provider key and configured header values cut out (``ProviderClient.moderate``); a
    refusal of the request (4xx) is a 400 ``provider_rejected`` quoting the provider's
    status and words (redacted the same way); anything else (5xx, the operator's key or
    quota refused, an answer that is not JSON, no answer) is a 502 ``provider_unavailable``
    that says nothing of the provider's body or address."""
    await authenticate(request)
    svc = services(request)
    name = request.path_params["provider"]
    client = svc.providers.get(name)
    if client is None:
        raise NoSuchResource(f"no provider {name}")
    if client.moderation_path is None:
        raise ProviderCannot(f"provider {name!r} offers no image moderation")
    answer = await client.moderate(await read_json(request))
    if isinstance(answer, ProviderFault):
        # Its message may name the provider's address: only the kind goes out.
        raise ProviderUnavailable(f"the provider could not moderate now ({answer.kind.value})")
    status = answer.status_code
    if 200 <= status < 300 and answer.is_json:
        return json_response(answer.body, status_code=status)
    if 400 <= status < 500 and status not in _NOT_THE_CALLERS:
        said = answer.refusal()
        raise ModerationRefused(
            f"the provider refused the moderation request (HTTP {status})"
            + (f": {said}" if said else "")
        )
    raise ProviderUnavailable(
        f"the provider answered HTTP {status}"
        + ("" if answer.is_json or status >= 300 else " with a body that is not JSON")
    )


def _provider(client: ProviderClient) -> dict[str, Any]:
    health = client.health().to_json()
    return {
        **health,
        "can_cancel": bool(client.dialect.cancellable),
        "pushes": client.dialect.pushes,
        "moderation": client.moderation_path is not None,
    }


async def list_events(request: Request) -> Response:
    account = await authenticate(request)
    q = parse(EventList, dict(request.query_params))
    page = await services(request).store.list_events(
        account.id,
        EventQuery(
            type=q.type,
            task_id=q.task_id,
            delivery_status=q.delivery_status,
            since=parse_time("since", q.since),
            until=parse_time("until", q.until),
            after=cursor_position(request, q.cursor, q.order),
            limit=q.limit,
            order=q.order,
        ),
    )
    return json_response(
        {
            "data": [_envelope(e) for e in page.items],
            "next_cursor": next_cursor(request, page.next_after, q.order),
        }
    )


async def get_event(request: Request) -> Response:
    account = await authenticate(request)
    event = await _event(request, account.id)
    return json_response(_envelope(event))


async def event_deliveries(request: Request) -> Response:
    account = await authenticate(request)
    event = await _event(request, account.id)
    views = await services(request).store.event_deliveries(account.id, event.id)
    return json_response(
        {
            "data": [
                {**delivery_json(v.delivery), "attempts": [attempt_json(a) for a in v.attempts]}
                for v in views
            ]
        }
    )


async def redeliver_event(request: Request) -> Response:
    account = await authenticate(request)
    event = await _event(request, account.id)
    raw = await read_json(request) if await has_body(request) else {}
    body = parse(Redeliver, raw)
    svc = services(request)
    created = await svc.store.redeliver(account.id, event.id, body.destination_id, svc.clock.now())
    if not created:
        raise UnknownDestination(
            f"event {event.id} has no destination {body.destination_id or ''}".rstrip()
        )
    svc.delivery.wake()
    return json_response({"data": [delivery_json(d) for d in created]}, status_code=202)


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    svc = services(request)
    try:
        # A write, committed: a database on a full disk still answers reads, yet can take
        # nothing the relay has to record.
        await svc.store.probe_write(svc.clock.now())
    except Exception as exc:  # readiness reports, it does not crash
        response = json_response({"status": "unavailable", "error": str(exc)}, status_code=503)
        response.headers["Retry-After"] = str(STORE_RETRY_AFTER)
        return response
    return json_response(
        {
            "status": "ready",
            "providers": [p.health().to_json() for p in svc.providers.values()],
            "deliveries_in_flight": svc.delivery.in_flight,
        }
    )


async def _event(request: Request, account_id: str) -> Event:
    event_id = request.path_params["event_id"]
    event = await services(request).store.get_event(account_id, event_id)
    if event is None:
        raise UnknownEvent(f"no event {event_id}")
    return event


def _envelope(event: Event) -> Any:
    return json.loads(event.body)


def routes() -> list[Route]:
    return [
        *subscription_routes(),
        *key_routes(),
        *submission_routes(),
        *output_routes(),
        *usage_routes(),
        Route("/v1/me", me),
        Route("/v1/callback-secret", callback_secret),
        Route("/v1/tasks", create_task, methods=["POST"]),
        Route("/v1/tasks", list_tasks, methods=["GET"]),
        Route("/v1/tasks/{task_id}", get_task),
        Route("/v1/tasks/{task_id}/refresh", refresh_task, methods=["POST"]),
        Route("/v1/tasks/{task_id}/cancel", cancel_task, methods=["POST"]),
        Route("/v1/providers", list_providers),
        Route("/v1/providers/{provider}/moderations", moderate, methods=["POST"]),
        Route("/v1/inbound/{provider}/{token}", inbound, methods=["POST"]),
        Route("/v1/events", list_events),
        *stream_routes(),  # before /v1/events/{event_id}, which would take "stream"
        Route("/v1/events/{event_id}", get_event),
        Route("/v1/events/{event_id}/deliveries", event_deliveries),
        Route("/v1/events/{event_id}/redeliver", redeliver_event, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *openapi_routes(),  # /openapi.json and /docs
    ]
