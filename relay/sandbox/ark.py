"""The Ark video-task API over HTTP, in the three flavors that serve it.

- **ark** (``/ark/api/v3``, the built-in ``sandbox`` provider): Ark itself.
- **apiyi** (``/apiyi/seedance/api/v3``, page 001): the same bodies (create answers
  ``{"id": "cgt-…"}``); apiyi is a new-api deployment, so a missing or refused key gets the
  gateway's 401 ``new_api_error``, while everything past the key is Ark's.
- **cubicspaces** (``/cubicspaces/api/v3``, page 003): an Ark-compatible mirror with its
  own ``task_…`` ids. Create answers the task object (``status: "running"``,
  ``service_tier``, ``execution_expires_after``), a task reads ``running`` while it is
  queued (its create already said so), and a failure reads ``task_failed``; the other
  fields are Ark's. Its 401 is new-api's too.

``POST .../contents/generations/tasks`` creates, ``GET .../tasks/{id}`` reads, and
``DELETE .../tasks/{id}`` cancels a queued task, refuses a running one and forgets a
finished one (its reads and its files then answer 404), and
``GET .../tasks?page_num=&page_size=&filter.model=&filter.status=`` lists the tasks this
sandbox created, newest first (``{"total", "items"}``, DOC-L): Ark's own
behaviour, so served by ark and by apiyi (which passes its Ark path through), not by
cubicspaces' mirror, whose page documents no DELETE and whose tasks read
``running`` from the start. Errors use Ark's envelope with a ``Request id`` in the message and an
``x-request-id`` header.

A task created with ``callback_url`` (ark and apiyi) is POSTed there on each status change,
``queued``, ``running`` and its end, the body exactly the ``GET`` answer at that moment and
unsigned, as Ark documents no signature (DIALECTS §4); the end is retried (``PushScheduler``)
when the receiver does not answer 2xx, and a cancelled task is pushed at once. Every task
object of Ark itself carries ``service_tier`` and ``execution_expires_after``, which the
SDK's model declares (Ark's defaults: the sandbox keeps no per-task value); apiyi's sample
has neither.

Deliberately not emulated: input moderation, ``frames`` as an input, tasks expiring at
their ``execution_expires_after``, and real model-name checking (any string is accepted so
gateway aliases work).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse

from relay.models import JSON, TaskStatus
from relay.sandbox.ark_shapes import (
    CreateSpec,
    Invalid,
    ark_error_body,
    ark_task_body,
    invalid_error_body,
    mirror_created_body,
    parse_create,
)
from relay.sandbox.gateway_shapes import invalid_token
from relay.sandbox.ids import IdStyle
from relay.sandbox.push import PushScheduler
from relay.sandbox.simulation import new_task
from relay.sandbox.timeline import Flavor, SandboxTask, TaskView
from relay.sandbox.web import (
    Endpoint,
    NotJson,
    SandboxContext,
    api_key,
    ark_request_id,
    files_base,
    gateway_request_id,
    json_response,
    new_nonce,
    read_json,
)

ARK_PREFIX: Final = "/ark/api/v3"
"""Where the sandbox serves Ark itself: the Ark base URL is ``{sandbox}/ark/api/v3``."""
TASKS_PATH: Final = "/contents/generations/tasks"
CALLBACK_USER_AGENT: Final = "ark-callback/1.0"


@dataclass(frozen=True, slots=True)
class ArkVariant:
    """What one Ark-serving flavor changes."""

    flavor: Flavor
    prefix: str
    style: IdStyle
    gateway_auth: bool
    """A new-api gateway checks the key: its 401, not Ark's."""
    mirror: bool
    """cubicspaces' answers (see the module docstring)."""


ARK_VARIANTS: Final = (
    ArkVariant(Flavor.ARK, ARK_PREFIX, IdStyle.CGT, gateway_auth=False, mirror=False),
    ArkVariant(
        Flavor.APIYI, "/apiyi/seedance/api/v3", IdStyle.CGT, gateway_auth=True, mirror=False
    ),
    ArkVariant(
        Flavor.CUBICSPACES, "/cubicspaces/api/v3", IdStyle.TASK, gateway_auth=True, mirror=True
    ),
)


class ArkEmulation:
    """The Ark endpoints of one flavor, sharing the sandbox's task book."""

    def __init__(
        self, ctx: SandboxContext, variant: ArkVariant, pushes: PushScheduler | None = None
    ) -> None:
        """``pushes`` sends the ``callback_url`` pushes (None: none are sent)."""
        self._ctx = ctx
        self.variant = variant
        self._pushes = pushes

    @property
    def flavor(self) -> Flavor:
        return self.variant.flavor

    @property
    def _service_fields(self) -> bool:
        """Ark itself and cubicspaces' mirror report ``service_tier`` and
        ``execution_expires_after`` (as vastnum's upstream result shows); apiyi's sample
        has neither."""
        return self.flavor is not Flavor.APIYI

    def endpoints(self) -> list[Endpoint]:
        tasks = self.variant.prefix + TASKS_PATH
        found = [
            Endpoint(tasks, self.create, ("POST",)),
            Endpoint(tasks + "/{task_id}", self.get, ("GET",)),
        ]
        if not self.variant.mirror:
            found.append(Endpoint(tasks + "/{task_id}", self.delete, ("DELETE",)))
            found.append(Endpoint(tasks, self.list, ("GET",)))
        return found

    async def list(self, request: Request) -> JSONResponse:
        request_id = self._request_id()
        denied = self._authenticate(request, request_id)
        if denied is not None:
            return denied
        query = request.query_params
        try:
            page = max(1, int(query.get("page_num", "1")))
            size = min(500, max(1, int(query.get("page_size", "10"))))
        except ValueError:
            refused = Invalid("InvalidParameter", "page_size", "page numbers are integers")
            return _json(invalid_error_body(refused, request_id), 400, request_id)
        model, status = query.get("filter.model"), query.get("filter.status")
        task_ids = set(query.getlist("filter.task_ids"))
        views = [
            view
            for view in self._ctx.book.listed(self._ctx.clock.now(), self.flavor)
            if (model is None or view.task.model == model)
            and (status is None or view.status.value == status)
            and (not task_ids or view.task.id in task_ids)
        ]
        base = files_base(request)
        items = [
            ark_task_body(view, base, service_fields=self._service_fields)
            for view in views[(page - 1) * size : page * size]
        ]
        return _json({"total": len(views), "items": items}, 200, request_id)

    async def create(self, request: Request) -> JSONResponse:
        request_id = self._request_id()
        denied = self._authenticate(request, request_id)
        if denied is not None:
            return denied
        body: Any = await read_json(request)
        if isinstance(body, NotJson):
            invalid = Invalid("InvalidParameter", "", "The request body is not valid JSON.")
            return _json(invalid_error_body(invalid, request_id), 400, request_id)
        spec = parse_create(body)
        if isinstance(spec, Invalid):
            return _json(invalid_error_body(spec, request_id), 400, request_id)
        now = self._ctx.clock.now()
        task = _task(spec, self._ctx, now, self.variant)
        self._ctx.book.add(task, spec.prompt)
        if spec.callback_url is not None and self._pushes is not None and not self.variant.mirror:
            self._schedule_callbacks(task, spec.callback_url, files_base(request))
        if self.variant.mirror:
            view = self._ctx.book.lookup(task.id, now)
            assert view is not None  # just added
            return _json(mirror_created_body(view), 200, request_id)
        return _json({"id": task.id}, 200, request_id)

    async def get(self, request: Request) -> JSONResponse:
        request_id = self._request_id()
        denied = self._authenticate(request, request_id)
        if denied is not None:
            return denied
        view = self._ctx.book.lookup(
            request.path_params["task_id"],
            self._ctx.clock.now(),
            flavor=self.flavor,
            style=self.variant.style,
        )
        if view is None:
            return _not_found(request_id)
        mirror = self.variant.mirror
        files = files_base(request)
        body = ark_task_body(view, files, mirror=mirror, service_fields=self._service_fields)
        return _json(body, 200, request_id)

    async def delete(self, request: Request) -> JSONResponse:
        request_id = self._request_id()
        denied = self._authenticate(request, request_id)
        if denied is not None:
            return denied
        before = self._ctx.book.cancel(
            request.path_params["task_id"],
            self._ctx.clock.now(),
            flavor=self.flavor,
            style=self.variant.style,
        )
        if before is None:
            return _not_found(request_id)
        if before is TaskStatus.RUNNING:
            refused = Invalid(
                "InvalidParameter",
                "id",
                "The parameter `id` specified in the request is not valid: "
                "task cannot be cancelled while running.",
            )
            return _json(invalid_error_body(refused, request_id), 400, request_id)
        if before is TaskStatus.QUEUED and self._pushes is not None:
            self._pushes.push_now(request.path_params["task_id"], self._ctx.clock.now())
        return _json({}, 200, request_id)

    def _schedule_callbacks(self, task: SandboxTask, url: str, files: str) -> None:
        """A push per status change: queued now, running when it starts, its end."""
        assert self._pushes is not None
        steps = ((TaskStatus.QUEUED, task.created_at), (TaskStatus.RUNNING, task.started_at))
        for status, at in steps:
            self._pushes.schedule(
                task.id,
                url,
                at,
                partial(self._status_body, task.id, status, at, files),
                key=f"{task.id}:{status.value}",
                user_agent=CALLBACK_USER_AGENT,
            )
        self._pushes.schedule(
            task.id,
            url,
            task.finished_at,
            partial(self._final_body, task.id, task.finished_at, files),
            user_agent=CALLBACK_USER_AGENT,
        )

    def _status_body(
        self, task_id: str, status: TaskStatus, at: datetime, files: str
    ) -> JSON | None:
        """The task as of ``at``, if it was then in ``status`` (a task cancelled while
        queued never reports running)."""
        view = self._lookup(task_id, at)
        if view is None or view.status is not status:
            return None
        return ark_task_body(view, files, service_fields=self._service_fields)

    def _final_body(self, task_id: str, finished_at: datetime, files: str) -> JSON | None:
        """The task once it has ended: now, or at its planned end should the clock lag the
        event loop's timer; nothing for a task forgotten (deleted) meanwhile."""
        view = self._lookup(task_id, self._ctx.clock.now())
        if view is not None and not view.status.terminal:
            view = self._lookup(task_id, finished_at)
        if view is None or not view.status.terminal:
            return None
        return ark_task_body(view, files, service_fields=self._service_fields)

    def _lookup(self, task_id: str, at: datetime) -> TaskView | None:
        return self._ctx.book.lookup(task_id, at, flavor=self.flavor, style=self.variant.style)

    def _request_id(self) -> str:
        return ark_request_id(self._ctx.clock.now())

    def _authenticate(self, request: Request, request_id: str) -> JSONResponse | None:
        if api_key(request) is not None:
            return None
        if self.variant.gateway_auth:
            gateway_id = gateway_request_id(self._ctx.clock.now())
            return json_response(
                invalid_token(gateway_id), 401, {"x-oneapi-request-id": gateway_id}
            )
        body = ark_error_body(
            "AuthenticationError",
            "the API key or AK/SK in the request is missing or invalid.",
            "",
            "Unauthorized",
            request_id,
        )
        return _json(body, 401, request_id)


def _task(spec: CreateSpec, ctx: SandboxContext, now: datetime, variant: ArkVariant) -> SandboxTask:
    return new_task(
        now=now,
        settings=ctx.settings,
        nonce=new_nonce(),
        prompt=spec.prompt,
        model=spec.model,
        resolution=spec.resolution,
        ratio=spec.ratio,
        duration=spec.duration,
        seed=spec.seed,
        generate_audio=spec.generate_audio,
        return_last_frame=spec.return_last_frame,
        watermark=spec.watermark,
        has_images=spec.has_images,
        flavor=variant.flavor,
        style=variant.style,
    )


def _not_found(request_id: str) -> JSONResponse:
    body = ark_error_body(
        "ResourceNotFound", "The specified task was not found.", "", "NotFound", request_id
    )
    return _json(body, 404, request_id)


def _json(body: JSON, status: int, request_id: str) -> JSONResponse:
    return json_response(body, status, {"x-request-id": request_id})
