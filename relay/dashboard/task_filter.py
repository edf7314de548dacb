"""The task list's filters that no index serves: the route a task went through and the time
it was created. The list is read newest first in chunks of the indexed query (status,
provider, reference) and filtered here, stopping at a full page, at the first task older
than the range (tasks are listed in the order they were created), or after ``SCAN_LIMIT``
tasks; the page then offers to continue from where the scan stopped. So a page load reads at
most ``SCAN_LIMIT`` tasks, however long the history."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from relay.errors import BadRequest
from relay.models import Task
from relay.operator_actions import parse_time
from relay.store.interface import Store
from relay.store.values import TaskQuery

SCAN_LIMIT = 1000
CHUNK = 100
WITHIN = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
"""The "created within" choices."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    since: datetime | None
    until: datetime | None

    @property
    def given(self) -> bool:
        return self.since is not None or self.until is not None


def time_range(
    now: datetime, within: str | None, since: str | None, until: str | None
) -> TimeRange:
    """``[since, until)`` from the form: "created within" the last hour, day or week, or
    explicit ISO 8601 times (no offset: UTC). A clear 400 for anything else."""
    if within:
        if within not in WITHIN:
            raise BadRequest(f"within: {within[:20]!r} is not one of {', '.join(WITHIN)}")
        return TimeRange(now - WITHIN[within], None)
    start, end = _time("from", since), _time("to", until)
    if start is not None and end is not None and start >= end:
        raise BadRequest("from: must be earlier than to")
    return TimeRange(start, end)


def _time(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_time(value[:40])
    except ValueError:
        raise BadRequest(
            f"{name}: not an ISO 8601 time (e.g. 2026-11-21T10:00:00Z or 2026-11-21 10:00)"
        ) from None


@dataclass(frozen=True, slots=True)
class Filtered:
    items: list[Task]
    next_after: int | None
    """Where to continue (None: nothing more matches)."""
    scanned: int
    cut: bool
    """The scan stopped at ``SCAN_LIMIT`` before the page was full."""


async def filtered_tasks(
    store: Store,
    account_id: str,
    query: TaskQuery,
    route: str | None,
    window: TimeRange,
    want: int,
) -> Filtered:
    after, scanned = query.after, 0
    items: list[Task] = []
    while True:
        page = await store.list_tasks(account_id, replace(query, after=after, limit=CHUNK))
        for task in page.items:
            scanned += 1
            if window.since is not None and task.created_at < window.since:
                return Filtered(items, None, scanned, False)
            if window.until is not None and task.created_at >= window.until:
                continue
            if route is not None and task.route != route:
                continue
            items.append(task)
        after = page.next_after
        if after is None:
            return Filtered(items, None, scanned, False)
        if len(items) >= want or scanned >= SCAN_LIMIT:
            return Filtered(items, after, scanned, len(items) < want)
