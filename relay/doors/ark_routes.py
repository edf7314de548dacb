"""The Ark-compatible door: the Ark video-task API on the relay, so the official Volcengine Ark
SDK (``Ark(base_url="https://relay…/ark/api/v3", api_key=<relay key>)``) works unchanged.

    POST   /ark/api/v3/contents/generations/tasks         create: {"id": "task_…"}
    GET    /ark/api/v3/contents/generations/tasks         list: {"total", "items"}
    GET    /ark/api/v3/contents/generations/tasks/{id}    the Ark task object
    DELETE /ark/api/v3/contents/generations/tasks/{id}    cancel a queued task; {}

The bearer token is a relay API key. Tasks are submitted to the configured provider or route
(``front_doors.ark.provider``) through the relay's own registration, so they are ordinary relay
tasks: in ``/v1/tasks``, the event feed and the dashboard, replayable, with stored outputs.
The Ark create body becomes the relay's provider-neutral input, which any provider takes;
options only Ark understands (``camera_fixed``, ``frames``, ``draft``, …) are sent natively
when the target is an Ark provider, and refused for any other. A ``callback_url`` becomes the
task's callback: it receives the Ark task object on each status change (and again when the
video is stored, with the stored link), signed with Standard Webhooks headers and retried by
the relay.

Errors are Ark's envelope with Ark's status codes, so the SDK raises its typed errors
(``ArkAuthenticationError``, ``ArkNotFoundError``, ``ArkBadRequestError``, …).

Deliberate differences from Ark: the relay keeps every task it tracked, so deleting a
finished task answers ``{}`` as Ark does but the task stays readable (here and in
``/v1/tasks``); a list without ``filter.task_ids`` looks back 7 days, Ark's own window, and
``service_tier``/``execution_expires_after`` report Ark's defaults.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relay.api.errors import answer_for
from relay.api.http import authenticate, check_destination, json_response, read_json, services
from relay.api.idempotency import idempotency_key, idempotent
from relay.api.schemas import HttpUrl
from relay.doors.ark_shapes import (
    SERVICE_TIER,
    ArkCreate,
    ArkListQuery,
    Refusal,
    ark_error,
    ark_status,
    ark_task,
    invalid,
    read_create,
    read_list,
)
from relay.errors import RelayError, StoreError, SubmissionUncertain, UnknownTask
from relay.models import Account, EventType, Task, TaskStatus
from relay.services import Services
from relay.store.values import TaskQuery
from relay.tasks.registration import Registration

BASE: Final = "/ark/api/v3"
TASKS: Final = BASE + "/contents/generations/tasks"
LOOK_BACK: Final = timedelta(days=7)
"""How far back a list looks: Ark answers for the last 7 days only."""
MAX_SCANNED: Final = 10_000
"""Tasks a list reads at most, newest first, to count and page what its filters keep."""
_PAGE: Final = 200
ARK_CALLBACK_EVENTS: Final = frozenset(
    {
        EventType.TASK_QUEUED,
        EventType.TASK_RUNNING,
        EventType.TASK_SUCCEEDED,
        EventType.TASK_FAILED,
        EventType.TASK_EXPIRED,
        EventType.TASK_CANCELLED,
        EventType.TASK_OUTPUT_STORED,
    }
)
"""Ark calls back on each status change; the relay adds the stored video's link."""
_URL: Final = TypeAdapter(HttpUrl)

Handler = Callable[[Request], Awaitable[Response]]


def ark_answer(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    response = json_response(body, status)
    response.headers.update(headers or {})
    return response


def refused(refusal: Refusal) -> Response:
    return ark_answer(400, ark_error(refusal.code, refusal.message, refusal.param))


def in_ark_terms(handler: Handler) -> Handler:
    """Answer the relay's errors in Ark's envelope and status codes. A database outage is
    left to the relay's own 503 (a 5xx the SDK retries either way)."""

    @functools.wraps(handler)
    async def answered(request: Request) -> Response:
        try:
            return await handler(request)
        except StoreError:
            raise
        except RelayError as exc:
            answer = answer_for(exc)
            if answer is None:
                raise
            status, code, kind = ark_status(answer.status)
            param = str(getattr(exc, "field", "") or "").removeprefix("input.")
            headers: dict[str, str] = {}
            retry_after = getattr(exc, "retry_after", None)
            if isinstance(retry_after, int):
                headers["Retry-After"] = str(retry_after)
            if isinstance(exc, SubmissionUncertain):
                # The provider may have taken it: the SDK retries a 500, which would submit
                # the task a second time.
                headers["x-should-retry"] = "false"
            return ark_answer(status, ark_error(code, str(exc), param, kind), headers)

    return answered


class ArkDoor:
    def __init__(self, target: str) -> None:
        """``target``: the provider or route the door's tasks are submitted to."""
        self._target = target

    async def create(self, request: Request) -> Response:
        """A create with an ``Idempotency-Key`` is answered once and replayed after, as
        ``POST /v1/tasks`` is (``relay.api.idempotency``)."""
        account = await authenticate(request)
        raw = await read_json(request)
        return await idempotent(request, account, raw, lambda: self._create(request, account, raw))

    async def _create(self, request: Request, account: Account, raw: dict[str, Any]) -> Response:
        spec = read_create(raw)
        if isinstance(spec, Refusal):
            return refused(spec)
        if spec.callback_url is not None:
            try:
                _URL.validate_python(spec.callback_url)
            except ValidationError:
                return refused(invalid("callback_url", "must be an http(s) URL"))
            await check_destination(request, "callback_url", spec.callback_url)
        registration = self._registration(services(request), spec, request)
        if isinstance(registration, Refusal):
            return refused(registration)
        task = await services(request).tracker.register(account, registration)
        return ark_answer(200, {"id": task.id})

    def _registration(
        self, svc: Services, spec: ArkCreate, request: Request
    ) -> Registration | Refusal:
        client = svc.providers.get(self._target)
        native = client is not None and client.dialect.name == "ark" and bool(spec.ark_only)
        if spec.ark_only and not native:
            return invalid(spec.ark_only[0], "is not supported by the provider behind this API")
        return Registration(
            provider=self._target,
            input=spec.native if native else spec.neutral,
            input_format="native" if native else "unified",
            callback_url=spec.callback_url,
            callback_events=ARK_CALLBACK_EVENTS if spec.callback_url else None,
            callback_format="ark",
            idempotency_key=idempotency_key(request),
        )

    async def get(self, request: Request) -> Response:
        account = await authenticate(request)
        task = await _task(request, account)
        return ark_answer(200, ark_task(task.to_json()))

    async def delete(self, request: Request) -> Response:
        """Ark's semantics: a queued task is cancelled, a running one cannot be, a finished
        one is forgotten by Ark (the relay keeps it)."""
        account = await authenticate(request)
        task = await _task(request, account)
        if task.status is TaskStatus.QUEUED:
            await services(request).tracker.cancel(account.id, task.id)
        elif task.status is TaskStatus.RUNNING:
            return refused(invalid("id", "task cannot be cancelled while running"))
        return ark_answer(200, {})

    async def list(self, request: Request) -> Response:
        account = await authenticate(request)
        query = read_list(request.query_params)
        if isinstance(query, Refusal):
            return refused(query)
        found = await _listed(services(request), account.id, query)
        start = (query.page_num - 1) * query.page_size
        items = [ark_task(t.to_json()) for t in found[start : start + query.page_size]]
        return ark_answer(200, {"total": len(found), "items": items})


async def _task(request: Request, account: Account) -> Task:
    task_id = request.path_params["task_id"]
    task = await services(request).store.get_task(account.id, task_id)
    if task is None:
        raise UnknownTask(task_id)
    return task


async def _listed(svc: Services, account_id: str, query: ArkListQuery) -> list[Task]:
    """Every task the query's filters keep, newest first."""
    status = TaskStatus(query.status) if query.status else None
    if query.task_ids:
        tasks = [
            task
            for task_id in query.task_ids
            if (task := await svc.store.get_task(account_id, task_id)) is not None
        ]
        tasks.sort(key=lambda t: t.created_at, reverse=True)
    else:
        tasks = await _recent(svc, account_id, status)
    return [
        t
        for t in tasks
        if (status is None or t.status is status)
        and (query.model is None or t.model == query.model)
        and (query.service_tier is None or query.service_tier == SERVICE_TIER)
    ]


async def _recent(svc: Services, account_id: str, status: TaskStatus | None) -> list[Task]:
    since = svc.clock.now() - LOOK_BACK
    found: list[Task] = []
    after = None
    while len(found) < MAX_SCANNED:
        page = await svc.store.list_tasks(
            account_id, TaskQuery(status=status, after=after, limit=_PAGE, order="desc")
        )
        for task in page.items:
            if task.created_at < since:
                return found
            found.append(task)
        if page.next_after is None:
            break
        after = page.next_after
    return found


def ark_routes(target: str) -> list[Route]:
    door = ArkDoor(target)
    return [
        Route(TASKS, in_ark_terms(door.create), methods=["POST"]),
        Route(TASKS, in_ark_terms(door.list), methods=["GET"]),
        Route(TASKS + "/{task_id}", in_ark_terms(door.get), methods=["GET"]),
        Route(TASKS + "/{task_id}", in_ark_terms(door.delete), methods=["DELETE"]),
    ]
