"""``GET /v1/usage``: what the caller's tasks cost (``relay.pricing``).

    GET /v1/usage?since=&until=&group_by=day|provider|model|route

Totals per currency over the tasks that succeeded in ``[since, until)`` (default: the last 30
days), with the number of tasks; with ``group_by``, the same per day (UTC), provider, model or
route. Amounts are decimal strings summed exactly, so they equal the sum of the tasks' own
``cost.amount``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


async def usage(request: Request) -> Response:
    account = await authenticate(request)
    q = parse(UsageQuery, dict(request.query_params))
    svc = services(request)
    until = _bounded("until", q.until) or svc.clock.now()
    since = _bounded("since", q.since) or until - DEFAULT_WINDOW
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


def _bounded(name: str, value: str | None) -> datetime | None:
    """A time of the query, refused outside 2000 to 9000 (where window arithmetic and
    timestamps stay well defined)."""
    parsed = parse_time(name, value)
    if parsed is not None and not EARLIEST <= parsed <= LATEST:
        raise InvalidTimeRange(f"{name} must fall between the years 2000 and 9000")
    return parsed


def usage_routes() -> list[Route]:
    return [Route("/v1/usage", usage, methods=["GET"])]
