"""seedance2.ink's open API over HTTP (page 004), with its webhook push.

Routes under ``/seedance2ink/api/open/v1``: ``POST /video/generations`` (create; answers
``{"success": true, "requestId": "req_…", "status": "queued", "creditsCharged"}``),
``GET /video/generations/{requestId}``, ``POST /video/generations/{requestId}/cancel``
(allowed while queued or processing; a finished task is refused with a 400
``invalid_status``) and ``GET /models``. Every route wants ``Authorization: Bearer <key>``:
without one it is the page's 401 ``unauthorized``. An unknown id is a 404 ``not_found``.
Bodies are in :mod:`relay.sandbox.seedance2ink_shapes`.

A task created with ``webhookUrl`` is pushed there when it ends (:mod:`relay.sandbox.push`):
at its finish time, or at once when it is cancelled.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse

from relay.models import JSON
from relay.sandbox.ids import IdStyle
from relay.sandbox.push import PushScheduler
from relay.sandbox.seedance2ink_shapes import (
    INVALID_JSON,
    NOT_FOUND,
    UNAUTHORIZED,
    InkSpec,
    cancelled_body,
    created_body,
    ink_status,
    ink_task_body,
    models_body,
    not_cancellable,
    parse_ink_create,
)
from relay.sandbox.simulation import new_task
from relay.sandbox.timeline import Flavor, TaskView
from relay.sandbox.web import (
    Endpoint,
    NotJson,
    SandboxContext,
    api_key,
    bucket_base,
    json_response,
    new_nonce,
    read_json,
)

INK_PREFIX: Final = "/seedance2ink/api/open/v1"
_FLAVOR: Final = Flavor.SEEDANCE2INK
_STYLE: Final = IdStyle.REQ


class InkEmulation:
    flavor: Final = _FLAVOR

    def __init__(self, ctx: SandboxContext, pushes: PushScheduler) -> None:
        self._ctx = ctx
        self._pushes = pushes

    def endpoints(self) -> list[Endpoint]:
        tasks = INK_PREFIX + "/video/generations"
        return [
            Endpoint(tasks, self.create, ("POST",)),
            Endpoint(tasks + "/{request_id}", self.get, ("GET",)),
            Endpoint(tasks + "/{request_id}/cancel", self.cancel, ("POST",)),
            Endpoint(INK_PREFIX + "/models", self.models, ("GET",)),
        ]

    def lookup(self, request_id: str) -> TaskView | None:
        return self._ctx.book.lookup(
            request_id, self._ctx.clock.now(), flavor=_FLAVOR, style=_STYLE
        )

    async def create(self, request: Request) -> JSONResponse:
        if api_key(request) is None:
            return json_response(UNAUTHORIZED, 401)
        body = await read_json(request)
        if isinstance(body, NotJson):
            return json_response(INVALID_JSON, 400)
        spec = parse_ink_create(body)
        if not isinstance(spec, InkSpec):
            return json_response(spec, 400)
        task = new_task(
            now=self._ctx.clock.now(),
            settings=self._ctx.settings,
            nonce=new_nonce(),
            prompt=spec.prompt,
            model=spec.model,
            resolution=spec.resolution,
            ratio=spec.aspect_ratio,
            duration=spec.duration,
            has_images=bool(spec.media_urls),
            flavor=_FLAVOR,
            style=_STYLE,
        )
        self._ctx.book.add(task, spec.prompt)
        if spec.webhook_url is not None:
            bucket = bucket_base(request)
            self._pushes.schedule(
                task.id,
                spec.webhook_url,
                task.finished_at,
                lambda: self._final_body(task.id, bucket),
            )
        return json_response(created_body(task))

    async def get(self, request: Request) -> JSONResponse:
        if api_key(request) is None:
            return json_response(UNAUTHORIZED, 401)
        view = self.lookup(request.path_params["request_id"])
        if view is None:
            return json_response(NOT_FOUND, 404)
        return json_response(ink_task_body(view, bucket_base(request)))

    async def cancel(self, request: Request) -> JSONResponse:
        if api_key(request) is None:
            return json_response(UNAUTHORIZED, 401)
        request_id = request.path_params["request_id"]
        view = self.lookup(request_id)
        if view is None:
            return json_response(NOT_FOUND, 404)
        if view.status.terminal:
            return json_response(not_cancellable(ink_status(view)), 400)
        now = self._ctx.clock.now()
        self._ctx.book.cancel_active(request_id, now, flavor=_FLAVOR, style=_STYLE)
        self._pushes.push_now(request_id, now)
        return json_response(cancelled_body(request_id))

    async def models(self, request: Request) -> JSONResponse:
        if api_key(request) is None:
            return json_response(UNAUTHORIZED, 401)
        return json_response(models_body())

    def _final_body(self, request_id: str, bucket: str) -> JSON | None:
        """What the push carries: the GET answer once the task has ended. Should the clock
        lag the event loop's timer, the task is read at its own finish time instead."""
        view = self.lookup(request_id)
        if view is not None and not view.status.terminal:
            view = self._ctx.book.lookup(
                request_id, view.task.finished_at, flavor=_FLAVOR, style=_STYLE
            )
        return None if view is None else ink_task_body(view, bucket)
