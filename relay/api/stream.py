"""``GET /v1/events/stream``: the account's events live, as Server-Sent Events.

Each event is the delivered envelope, exactly (``data``), with its id (``id``) and type
(``event``); comments keep idle connections open. A client that reconnects with
``Last-Event-ID`` (browsers' EventSource does it by itself) first gets every event it missed,
in order, from the feed, then the live ones, none twice. The live events come from one tail of
the store per instance (``relay.streams.hub``), so the stream works across instances and
restarts; a reader that falls too far behind is dropped with a last ``error`` event saying to
resume, never allowed to grow memory.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relay.api.http import authenticate, services
from relay.api.schemas import StreamQuery, parse
from relay.errors import BadRequest
from relay.models import EventType
from relay.store.values import EventQuery
from relay.streams.hub import StreamFilter, frame

CATCH_UP_PAGE = 200
BATCH = 256
"""Queued events sent together in one chunk at most."""
REMEMBERED = 5_000
"""Ids of caught-up events kept to drop their live copies (only the newest can have one)."""


async def stream_events(request: Request) -> Response:
    account = await authenticate(request)
    q = parse(StreamQuery, dict(request.query_params))
    types = _types(q.type)
    svc = services(request)
    if svc.hub is None:  # pragma: no cover - every role that serves the API has one
        raise BadRequest("this instance serves no event stream")
    last = request.headers.get("last-event-id") or q.last_event_id
    resume = None
    if last:
        resume = await svc.store.event_position(account.id, last)
        if resume is None:
            raise BadRequest(f"Last-Event-ID {last!r} names no event of this account")
    wants = StreamFilter(account.id, types, q.task_id)
    if request.method == "HEAD":  # no body will be read: no stream to hold a place for
        return Response(headers={"content-type": "text/event-stream", "cache-control": "no-store"})
    listener = svc.hub.open(wants)  # TooManyStreams past the account's limit
    hub = svc.hub

    async def frames() -> AsyncIterator[bytes | ServerSentEvent]:
        sent: OrderedDict[str, None] = OrderedDict()
        try:
            if resume is not None:
                one_type = next(iter(types)) if types is not None and len(types) == 1 else None
                after: int | None = resume
                while after is not None:
                    page = await svc.store.list_events(
                        account.id,
                        EventQuery(
                            type=one_type,
                            task_id=q.task_id,
                            after=after,
                            order="asc",
                            limit=CATCH_UP_PAGE,
                        ),
                    )
                    for event in page.items:
                        if wants.wants(event):
                            yield frame(event)
                            sent[event.id] = None
                            if len(sent) > REMEMBERED:
                                sent.popitem(last=False)
                    after = page.next_after
            while True:
                first = await listener.next()
                if first is not None:
                    # What queued meanwhile goes in the same chunk: one send, not one each.
                    chunk = b"".join(
                        encoded
                        for position, live, encoded in (first, *listener.drain(BATCH))
                        # At or before the resume point the client has it; a copy of what
                        # the catch-up sent is dropped by id (an event committed late, past
                        # the catch-up's read, is neither, and goes out).
                        if (resume is None or position > resume) and live.id not in sent
                    )
                    if chunk:
                        yield chunk
                if first is None or listener.overflowed:
                    yield ServerSentEvent(
                        event="error",
                        data=json.dumps(
                            {
                                "code": "stream_overflow",
                                "message": "this reader fell too far behind: reconnect with "
                                "Last-Event-ID to resume where it stopped",
                            }
                        ),
                    )
                    return
        finally:
            hub.close(listener)

    return EventSourceResponse(
        frames(),
        ping=svc.stream_heartbeat,
        send_timeout=svc.stream_heartbeat * 2,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _types(raw: str | None) -> frozenset[EventType] | None:
    if raw is None or not raw.strip():
        return None
    found = set()
    for name in raw.split(","):
        try:
            found.add(EventType(name.strip()))
        except ValueError:
            known = ", ".join(t.value for t in EventType)
            raise BadRequest(
                f"type: unknown event type {name.strip()!r} (known: {known})"
            ) from None
    return frozenset(found)


def stream_routes() -> list[Route]:
    return [Route("/v1/events/stream", stream_events, methods=["GET"])]
