"""The ``/v1`` API routes (DESIGN §7) and the operations endpoints."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relay.api.http import authenticate, json_response, read_json, services
from relay.api.schemas import CreateTask, EventList, Redeliver, TaskList, parse
from relay.errors import ApiError, BadRequest, NotFound, ProviderUnavailable
from relay.models import Attempt, Delivery, Event, FaultKind, iso
from relay.store.interface import EventQuery, TaskQuery
from relay.tracker import ProviderRejected, Registration


async def me(request: Request) -> Response:
    account = await authenticate(request)
    return json_response({"id": account.id, "name": account.name,
                          "created_at": iso(account.created_at)})


async def callback_secret(request: Request) -> Response:
    account = await authenticate(request)
    secret = await services(request).store.callback_secret(account.id)
    return json_response({"secret": secret})


async def create_task(request: Request) -> Response:
    account = await authenticate(request)
    body = parse(CreateTask, await read_json(request))
    reg = Registration(
        provider=body.provider, provider_task_id=body.provider_task_id, input=body.input,
        callback_url=body.callback_url,
        callback_events=frozenset(body.callback_events) if body.callback_events else None,
        reference=body.reference, metadata=body.metadata)
    try:
        task = await services(request).tracker.register(account, reg)
    except ProviderRejected as rejected:
        raise _provider_error(rejected) from None
    return json_response(task.to_json(), status_code=201)


async def list_tasks(request: Request) -> Response:
    account = await authenticate(request)
    q = parse(TaskList, dict(request.query_params))
    svc = services(request)
    page = await svc.store.list_tasks(account.id, TaskQuery(
        status=q.status, provider=q.provider, reference=q.reference,
        after=_after(request, q.cursor, q.order), limit=q.limit, order=q.order))
    return json_response({
        "data": [t.to_json() for t in page.items],
        "next_cursor": _cursor(request, page.next_after, q.order)})


async def get_task(request: Request) -> Response:
    account = await authenticate(request)
    task_id = request.path_params["task_id"]
    task = await services(request).store.get_task(account.id, task_id)
    if task is None:
        raise NotFound(f"no task {task_id}")
    return json_response(task.to_json())


async def refresh_task(request: Request) -> Response:
    account = await authenticate(request)
    task = await services(request).tracker.refresh(account.id, request.path_params["task_id"])
    return json_response(task.to_json())


async def list_events(request: Request) -> Response:
    account = await authenticate(request)
    q = parse(EventList, dict(request.query_params))
    page = await services(request).store.list_events(account.id, EventQuery(
        type=q.type, task_id=q.task_id, since=_time("since", q.since),
        until=_time("until", q.until), after=_after(request, q.cursor, q.order),
        limit=q.limit, order=q.order))
    return json_response({
        "data": [_envelope(e) for e in page.items],
        "next_cursor": _cursor(request, page.next_after, q.order)})


async def get_event(request: Request) -> Response:
    account = await authenticate(request)
    event = await _event(request, account.id)
    return json_response(_envelope(event))


async def event_deliveries(request: Request) -> Response:
    account = await authenticate(request)
    event = await _event(request, account.id)
    views = await services(request).store.event_deliveries(account.id, event.id)
    return json_response({"data": [
        {**_delivery(v.delivery), "attempts": [_attempt(a) for a in v.attempts]}
        for v in views]})


async def redeliver_event(request: Request) -> Response:
    account = await authenticate(request)
    event = await _event(request, account.id)
    raw = await read_json(request) if await _has_body(request) else {}
    body = parse(Redeliver, raw)
    svc = services(request)
    created = await svc.store.redeliver(account.id, event.id, body.destination_id,
                                        svc.clock.now())
    if not created:
        raise NotFound(f"event {event.id} has no destination "
                       f"{body.destination_id or ''}".rstrip())
    svc.delivery.wake()
    return json_response({"data": [_delivery(d) for d in created]}, status_code=202)


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    svc = services(request)
    try:
        await svc.store.ping()
    except Exception as exc:  # readiness reports, it does not crash
        return json_response({"status": "unavailable", "error": str(exc)}, status_code=503)
    return json_response({"status": "ready",
                          "providers": [p.health().to_json() for p in svc.providers.values()],
                          "deliveries_in_flight": svc.delivery.in_flight})


async def _event(request: Request, account_id: str) -> Event:
    event_id = request.path_params["event_id"]
    event = await services(request).store.get_event(account_id, event_id)
    if event is None:
        raise NotFound(f"no event {event_id}")
    return event


async def _has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") != "0" or \
        "chunked" in request.headers.get("transfer-encoding", "")


def _envelope(event: Event) -> Any:
    return json.loads(event.body)


def _delivery(d: Delivery) -> dict[str, Any]:
    return {"id": d.id, "event_id": d.event_id, "destination_id": d.destination_id,
            "url": d.url, "status": d.status.value, "attempt_count": d.attempt_count,
            "next_attempt_at": iso(d.next_attempt_at), "created_at": iso(d.created_at),
            "updated_at": iso(d.updated_at)}


def _attempt(a: Attempt) -> dict[str, Any]:
    return {"number": a.number, "started_at": iso(a.started_at), "latency_ms": a.latency_ms,
            "outcome": a.outcome, "status_code": a.status_code, "error": a.error,
            "response_snippet": a.response_snippet}


def _after(request: Request, cursor: str | None, order: str) -> int | None:
    if cursor is None:
        return None
    value = services(request).tokens.read_cursor(cursor)
    if not (isinstance(value, list) and len(value) == 2 and value[1] == order
            and isinstance(value[0], int)):
        raise BadRequest("the cursor is not valid (or was made for another order)",
                         code="invalid_cursor")
    return value[0]


def _cursor(request: Request, after: int | None, order: str) -> str | None:
    return None if after is None else services(request).tokens.cursor([after, order])


def _time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: not an ISO 8601 time", code="invalid_request") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _provider_error(rejected: ProviderRejected) -> ApiError:
    fault = rejected.fault
    if fault.kind is FaultKind.INVALID_REQUEST:
        return BadRequest(f"the provider refused the task: {fault.message}",
                          code="provider_rejected")
    return ProviderUnavailable(f"the provider could not take the task now: {fault.message}")


def routes() -> list[Route]:
    return [
        Route("/v1/me", me),
        Route("/v1/callback-secret", callback_secret),
        Route("/v1/tasks", create_task, methods=["POST"]),
        Route("/v1/tasks", list_tasks, methods=["GET"]),
        Route("/v1/tasks/{task_id}", get_task),
        Route("/v1/tasks/{task_id}/refresh", refresh_task, methods=["POST"]),
        Route("/v1/events", list_events),
        Route("/v1/events/{event_id}", get_event),
        Route("/v1/events/{event_id}/deliveries", event_deliveries),
        Route("/v1/events/{event_id}/redeliver", redeliver_event, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
    ]
