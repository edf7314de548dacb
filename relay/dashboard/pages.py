"""The dashboard's pages: what the JSON API's read endpoints return, as HTML.

Every list is one indexed, cursor-paginated store query (the same as ``GET /v1/tasks`` and
``GET /v1/events``, with the same signed cursors), so a page costs the same with 100 tasks or
100,000; the task list's route and time filters, which no index serves, read at most
``task_filter.SCAN_LIMIT`` tasks a page. A task's page reads its events (one indexed query)
and each event's deliveries. The first page of a list, and a running task's page, reload
themselves now and then (``render.page``'s ``refresh``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from relay.api.http import cursor_position, next_cursor, services
from relay.copies.values import CopyState, OutputCopy, OutputKind
from relay.dashboard import task_filter, usage_views, views
from relay.dashboard.render import Handler, guarded, page
from relay.dashboard.session import require_account
from relay.errors import (
    BadRequest,
    OutputStorageUnavailable,
    UnknownEvent,
    UnknownSubmission,
    UnknownTask,
)
from relay.models import LOOKS_KEPT, DeliveryStatus, EventType, Task, TaskStatus
from relay.services import Services
from relay.store.values import EventQuery, TaskQuery
from relay.submissions import SubmissionState

log = logging.getLogger("relay.dashboard")

PAGE_SIZE = 50
TASK_EVENTS = 200
"""Events shown on a task's page (a task has a handful; progress steps can add more)."""
LIST_REFRESH = 30
"""Seconds between reloads of a list's first page (a later page stays put)."""
RUNNING_REFRESH = 10
"""Seconds between reloads of a task's page while it runs."""
UNCERTAIN_COUNTED = 50
"""Uncertain submissions counted for the navigation; more show as ``50+``."""


def _choice(request: Request, name: str, allowed: type[Any]) -> Any:
    value = request.query_params.get(name) or None
    if value is None:
        return None
    try:
        return allowed(value)
    except ValueError:
        raise BadRequest(
            f"{name}: {value[:40]!r} is not one of {', '.join(v.value for v in allowed)}"
        ) from None


def _query(**filters: str | None) -> str:
    """The page's filters as a query string, for the next page's link."""
    return urlencode({k: v for k, v in filters.items() if v})


async def uncertain_count(request: Request, account_id: str) -> str | None:
    """How many of the account's submissions are uncertain (each may be a paid task the relay
    does not track), for the navigation; None when none is. Read on the landing pages (the
    overview and the task list) and the submissions page, not on every page: it is one more
    query."""
    found = await services(request).store.list_submissions(
        account_id, SubmissionState.UNCERTAIN, None, UNCERTAIN_COUNTED
    )
    if not found.items:
        return None
    return views.count_label(len(found.items), found.next_after is not None)


@guarded
async def tasks(request: Request) -> Response:
    """The account's tasks, newest first: by status, provider and reference (an index each),
    and by route and creation time (``task_filter``: a bounded scan)."""
    who = require_account(request)
    svc = services(request)
    params = request.query_params
    status = _choice(request, "status", TaskStatus)
    provider = params.get("provider") or None
    reference = params.get("reference") or None
    route = params.get("route") or None
    within = params.get("within") or None
    since, until = params.get("from") or None, params.get("to") or None
    window = task_filter.time_range(svc.clock.now(), within, since, until)
    query = TaskQuery(
        status=status,
        provider=provider,
        reference=reference,
        after=cursor_position(request, params.get("cursor"), "desc"),
        limit=PAGE_SIZE,
    )
    if route is None and not window.given:
        found = await svc.store.list_tasks(who.account_id, query)
        listed = task_filter.Filtered(found.items, found.next_after, len(found.items), False)
    else:
        listed = await task_filter.filtered_tasks(
            svc.store, who.account_id, query, route, window, PAGE_SIZE
        )
    return page(
        request,
        "tasks.html",
        {
            "tasks": listed.items,
            "cut": listed.cut,
            "scanned": listed.scanned,
            "statuses": [s.value for s in TaskStatus],
            "providers": sorted(svc.providers),
            "withins": list(task_filter.WITHIN),
            "status": status.value if status else "",
            "provider": provider or "",
            "reference": reference or "",
            "route": route or "",
            "within": within or "",
            "since": since or "",
            "until": until or "",
            "filtered": bool(status or provider or reference or route or window.given),
            "query": _query(
                status=status.value if status else None,
                provider=provider,
                reference=reference,
                route=route,
                within=within,
                **{"from": since, "to": until},
            ),
            "next_cursor": next_cursor(request, listed.next_after, "desc"),
            "uncertain": await uncertain_count(request, who.account_id),
        },
        refresh=None if params.get("cursor") else LIST_REFRESH,
    )


@guarded
async def task(request: Request) -> Response:
    who = require_account(request)
    svc = services(request)
    task_id = request.path_params["task_id"]
    found = await svc.store.get_task(who.account_id, task_id)
    if found is None:
        raise UnknownTask(task_id)
    events = await svc.store.list_events(
        who.account_id, EventQuery(task_id=task_id, order="asc", limit=TASK_EVENTS)
    )
    deliveries = {
        e.id: await svc.store.event_deliveries(who.account_id, e.id) for e in events.items
    }
    # The task is the account's (read above); its copies are read by the task alone.
    copies = await svc.store.task_copies(task_id) if found.output is not None else []
    return page(
        request,
        "task.html",
        {
            "task": found,
            "events": events.items,
            "deliveries": deliveries,
            "more_events": events.next_after is not None,
            "timeline": views.timeline(found, events.items, deliveries, copies),
            "looks_kept": LOOKS_KEPT,
            "event_line": views.event_line,
            "output_state": views.output_state_line(found.output) if found.output else "",
        },
        media=await _media(svc, found, copies),
        refresh=None if found.status.terminal else RUNNING_REFRESH,
    )


async def _media(svc: Services, task: Task, copies: Sequence[OutputCopy]) -> tuple[str, ...]:
    """The origins the page's ``<video>`` and ``<img>`` load the stored files from: their
    links' (the relay's public URL), and a bucket's, where those links redirect to a
    presigned URL. That origin is learnt from a URL signed here for the stored object (and
    thrown away: following the link signs its own), so it is exactly the one the browser
    is sent to, whatever the endpoint, region or addressing style of the bucket."""
    stored = {c.kind: c for c in copies if c.state is CopyState.STORED and c.object_key}
    if not stored:
        return ()
    urls = [
        task.video_url if OutputKind.VIDEO in stored else None,
        task.last_frame_url if OutputKind.LAST_FRAME in stored else None,
    ]
    key = next(iter(stored.values())).object_key
    if svc.outputs is not None and key is not None:
        try:
            urls.append(await svc.outputs.store.link(key, 60))
        except OutputStorageUnavailable as exc:  # the page still shows; the player may not
            log.warning("no presigned URL for the task page of %s: %s", task.id, exc)
    return views.media_origins(urls)


@guarded
async def events(request: Request) -> Response:
    who = require_account(request)
    svc = services(request)
    type_ = _choice(request, "type", EventType)
    delivery_status = _choice(request, "delivery_status", DeliveryStatus)
    task_id = request.query_params.get("task_id") or None
    since, until = request.query_params.get("from") or None, request.query_params.get("to") or None
    window = task_filter.time_range(svc.clock.now(), None, since, until)
    page_ = await svc.store.list_events(
        who.account_id,
        EventQuery(
            type=type_,
            task_id=task_id,
            since=window.since,
            until=window.until,
            delivery_status=delivery_status,
            after=cursor_position(request, request.query_params.get("cursor"), "desc"),
            limit=PAGE_SIZE,
        ),
    )
    return page(
        request,
        "events.html",
        {
            "events": page_.items,
            "types": [t.value for t in EventType],
            "delivery_statuses": [s.value for s in DeliveryStatus],
            "type": type_.value if type_ else "",
            "delivery_status": delivery_status.value if delivery_status else "",
            "task_id": task_id or "",
            "since": since or "",
            "until": until or "",
            "event_line": views.event_line,
            "query": _query(
                type=type_.value if type_ else None,
                task_id=task_id,
                delivery_status=delivery_status.value if delivery_status else None,
                **{"from": since, "to": until},
            ),
            "next_cursor": next_cursor(request, page_.next_after, "desc"),
        },
        refresh=None if request.query_params.get("cursor") else LIST_REFRESH,
    )


@guarded
async def event(request: Request) -> Response:
    who = require_account(request)
    svc = services(request)
    event_id = request.path_params["event_id"]
    found = await svc.store.get_event(who.account_id, event_id)
    if found is None:
        raise UnknownEvent(f"no event {event_id}")
    deliveries = await svc.store.event_deliveries(who.account_id, event_id)
    return page(
        request,
        "event.html",
        {"event": found, "deliveries": deliveries, "event_line": views.event_line},
    )


@guarded
async def subscriptions(request: Request) -> Response:
    who = require_account(request)
    svc = services(request)
    page_ = await svc.store.list_subscriptions(
        who.account_id,
        cursor_position(request, request.query_params.get("cursor"), "desc"),
        PAGE_SIZE,
    )
    now = svc.clock.now()
    return page(
        request,
        "subscriptions.html",
        {
            "subscriptions": [(s, views.subscription_health(s, now)) for s in page_.items],
            "query": "",
            "next_cursor": next_cursor(request, page_.next_after, "desc"),
        },
    )


@guarded
async def submissions(request: Request) -> Response:
    who = require_account(request)
    svc = services(request)
    state = _choice(request, "state", SubmissionState)
    page_ = await svc.store.list_submissions(
        who.account_id,
        state,
        cursor_position(request, request.query_params.get("cursor"), "desc"),
        PAGE_SIZE,
    )
    now = svc.clock.now()
    return page(
        request,
        "submissions.html",
        {
            "submissions": [(s, views.settleable(s, now)) for s in page_.items],
            "states": [s.value for s in SubmissionState],
            "state": state.value if state else "",
            "query": _query(state=state.value if state else None),
            "next_cursor": next_cursor(request, page_.next_after, "desc"),
            "uncertain": await uncertain_count(request, who.account_id),
        },
    )


@guarded
async def submission(request: Request) -> Response:
    who = require_account(request)
    svc = services(request)
    submission_id = request.path_params["submission_id"]
    found = await svc.store.get_submission(who.account_id, submission_id)
    if found is None:
        raise UnknownSubmission(submission_id)
    return page(
        request,
        "submission.html",
        {"s": found, "settleable": views.settleable(found, svc.clock.now())},
    )


@guarded
async def providers(request: Request) -> Response:
    require_account(request)
    clients = services(request).providers.values()
    return page(
        request,
        "providers.html",
        {
            "providers": [
                (
                    c.health(),
                    bool(c.dialect.cancellable),
                    c.dialect.pushes,
                    c.moderation_path is not None,
                )
                for c in clients
            ]
        },
    )


def usage(prices: Mapping[str, str]) -> Handler:
    """``GET /dashboard/usage?days=7|30|90``: what the account's tasks cost over the last
    days (UTC, today included), read as ``GET /v1/usage`` reads it (one indexed query);
    ``prices``: the configured price tables' currencies by provider."""

    @guarded
    async def show(request: Request) -> Response:
        who = require_account(request)
        svc = services(request)
        raw = request.query_params.get("days") or str(usage_views.DEFAULT_DAYS)
        if raw not in {str(d) for d in usage_views.WINDOWS}:
            allowed = ", ".join(str(d) for d in usage_views.WINDOWS)
            raise BadRequest(f"days: {raw[:40]!r} is not one of {allowed}")
        window = usage_views.usage_window(svc.clock.now(), int(raw))
        spent = await svc.store.task_costs(who.account_id, window.since, window.until)
        return page(
            request,
            "usage.html",
            {
                "usage": usage_views.usage_page(spent, window, prices),
                "windows": usage_views.WINDOWS,
            },
        )

    return show
