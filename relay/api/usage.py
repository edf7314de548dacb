"""``GET /v1/usage``: what the caller's tasks cost (``relay.pricing``).

    GET /v1/usage?since=&until=&group_by=day|provider|model|route

Totals per currency over the tasks that succeeded in ``[since, until)`` (default: the last 30
days), with the number of tasks; with ``group_by``, the same per day (UTC), provider, model or
route. Amounts are decimal strings summed exactly, so they equal the sum of the tasks' own
``cost.amount``.
"""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relay.api.http import authenticate, json_response, parse_time, services
from relay.api.schemas import UsageQuery, parse
from relay.errors import InvalidTimeRange
from relay.models import iso
from relay.pricing import usage_totals

DEFAULT_WINDOW = timedelta(days=30)
MAX_WINDOW = timedelta(days=400)


async def usage(request: Request) -> Response:
    account = await authenticate(request)
    q = parse(UsageQuery, dict(request.query_params))
    svc = services(request)
    until = parse_time("until", q.until) or svc.clock.now()
    since = parse_time("since", q.since) or until - DEFAULT_WINDOW
    if since >= until:
        raise InvalidTimeRange("since must be before until")
    if until - since > MAX_WINDOW:
        raise InvalidTimeRange(f"a window is at most {MAX_WINDOW.days} days")
    spent = await svc.store.task_costs(account.id, since, until)
    return json_response(
        {
            "since": iso(since),
            "until": iso(until),
            "group_by": q.group_by,
            **usage_totals(spent, q.group_by),
        }
    )


def usage_routes() -> list[Route]:
    return [Route("/v1/usage", usage, methods=["GET"])]
