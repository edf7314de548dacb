"""Find anything: ``GET /dashboard/search?q=…`` looks the text up as a task id, a provider's
task id (at each configured provider), a reference, an event id, a subscription id and a
submission id, each one indexed probe. One match goes straight to its page; several are
listed."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from relay.api.http import services
from relay.dashboard.render import guarded, page, redirect
from relay.dashboard.session import require_account
from relay.errors import BadRequest
from relay.models import Task
from relay.services import Services
from relay.store.values import TaskQuery

MAX_QUERY = 256
REFERENCE_HITS = 50
"""Tasks listed for one reference; past it the page links to the task list filtered by it."""


@dataclass(frozen=True, slots=True)
class Hit:
    kind: str
    id: str
    href: str
    detail: str


async def find(svc: Services, account_id: str, q: str) -> tuple[list[Hit], bool]:
    """What ``q`` names in the account, and whether more tasks have it as their reference
    than are listed."""
    store = svc.store
    hits: list[Hit] = []
    task = await store.get_task(account_id, q)
    if task is not None:
        hits.append(Hit("task", task.id, f"/dashboard/tasks/{task.id}", _task_line(task)))
    for task_id in await store.tasks_with_provider_task_id(account_id, q, sorted(svc.providers)):
        found = await store.get_task(account_id, task_id)
        if found is not None:
            hits.append(
                Hit("provider task", found.id, f"/dashboard/tasks/{found.id}", _task_line(found))
            )
    referenced = await store.list_tasks(account_id, TaskQuery(reference=q, limit=REFERENCE_HITS))
    for t in referenced.items:
        hits.append(Hit("reference", t.id, f"/dashboard/tasks/{t.id}", _task_line(t)))
    event = await store.get_event(account_id, q)
    if event is not None:
        hits.append(Hit("event", event.id, f"/dashboard/events/{event.id}", f"{event.type.value}"))
    sub = await store.get_subscription(account_id, q)
    if sub is not None:
        hits.append(Hit("subscription", sub.id, f"/dashboard/subscriptions/{sub.id}/edit", sub.url))
    submission = await store.get_submission(account_id, q)
    if submission is not None:
        hits.append(
            Hit(
                "submission",
                submission.id,
                f"/dashboard/submissions/{submission.id}",
                submission.state.value,
            )
        )
    unique = list({h.href: h for h in hits}.values())
    return unique, referenced.next_after is not None


def _task_line(task: Task) -> str:
    line = f"{task.status.value} at {task.provider}"
    return f"{line}, reference {task.reference}" if task.reference else line


@guarded
async def search(request: Request) -> Response:
    who = require_account(request)
    q = (request.query_params.get("q") or "").strip()
    if len(q) > MAX_QUERY:
        raise BadRequest(f"q: at most {MAX_QUERY} characters")
    hits, more = await find(services(request), who.account_id, q) if q else ([], False)
    if len(hits) == 1 and not more:
        return redirect(hits[0].href)
    return page(request, "search.html", {"q": q, "hits": hits, "more": more})
