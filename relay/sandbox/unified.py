"""The unified ``/v1/video/generations`` API of four new-api-style gateways, over HTTP.

Each flavor answers in its own provider's shapes (the pages in ``shared/providers``):

- **naci** (page 000): create answers the flat OpenAI-video object with the upstream
  ``cgt-`` id; ``GET`` answers the flat object, the wrapped TaskDto (``data.data`` the raw
  Ark task, ``data.usage`` once succeeded) with ``show_raw=true``/``show_usage=true``, and
  the bare Ark task with ``raw=true``.
- **vastnum** (page 002): create answers ``{"task_id": "task_…"}``; ``GET`` answers the
  wrapped TaskDto whose ``data.data`` is an intermediate object (status ``succeed``, ISO
  times) holding the raw Ark task at ``data.data.result``.
- **cubicspaces** (page 003): create and ``GET`` answer the flat object, ids ``video_…``.
- **newapi**: a plain upstream new-api whose upstream is itself a new-api: ``GET`` answers
  the full TaskDto (integer ``id``, ``result_url``) whose ``data`` is the upstream gateway's
  TaskDto, raw Ark at ``data.data.data``; ``GET /v1/videos/{id}`` answers new-api's generic
  OpenAI-video object (``metadata.url`` is ``result_url``, or ``fail_reason`` when there is
  none: new-api's ``GetResultURL`` fallback).

Status words and progress follow :mod:`relay.sandbox.gateway_shapes`. An unknown task is
new-api's HTTP 400 ``task_not_exist``; a missing or refused key its 401 ``new_api_error``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from relay.models import JSON, TaskStatus
from relay.sandbox.ark_shapes import ark_task_body
from relay.sandbox.gateway_shapes import (
    TASK_NOT_EXIST,
    GatewayState,
    action,
    created_video,
    derived_task_id,
    gateway_state,
    invalid_token,
    openai_video,
    success,
    task_dto,
    task_error,
    video_url,
)
from relay.sandbox.ids import IdStyle, encode_task_id
from relay.sandbox.media import video_chunks
from relay.sandbox.simulation import new_task
from relay.sandbox.timeline import Flavor, TaskView, unix
from relay.sandbox.unified_create import Refusal, parse_unified_create
from relay.sandbox.web import (
    Endpoint,
    NotJson,
    SandboxContext,
    api_key,
    files_base,
    flag,
    gateway_request_id,
    iso_seconds,
    json_response,
    new_nonce,
    read_form,
    read_json,
)

UNIFIED_FLAVORS: Final = (Flavor.NACI, Flavor.VASTNUM, Flavor.CUBICSPACES, Flavor.NEWAPI)
_STYLES: Final = {
    Flavor.NACI: IdStyle.CGT,
    Flavor.VASTNUM: IdStyle.TASK,
    Flavor.CUBICSPACES: IdStyle.VIDEO,
    Flavor.NEWAPI: IdStyle.TASK,
}
_VASTNUM_STATUS: Final = {
    TaskStatus.QUEUED: "submitted",
    TaskStatus.RUNNING: "processing",
    TaskStatus.SUCCEEDED: "succeed",
    TaskStatus.FAILED: "failed",
    TaskStatus.EXPIRED: "expired",
    TaskStatus.CANCELLED: "cancelled",
}
"""vastnum's intermediate layer: ``succeed`` is on its page, the rest is the same
Kling-style vocabulary (an assumption: the page shows only a finished task)."""


# -- bodies (pure) ---------------------------------------------------------------------------


def naci_wrapped(
    view: TaskView, state: GatewayState, files: str, *, show_raw: bool, show_usage: bool
) -> JSON:
    task = view.task
    data: JSON = {
        "task_id": task.id,
        "action": "generate",  # naci's page says so even for text-to-video
        "status": state.status,
        "fail_reason": state.fail_reason,
        "submit_time": state_submit(view),
        "start_time": state.start_time,
        "finish_time": state.finish_time,
        "progress": state.progress,
    }
    if show_raw:
        data["data"] = ark_task_body(view, files) if state.polled else None
    if show_usage and state.status == "SUCCESS":
        data["usage"] = {
            "completion_details": {
                "video_durations": task.duration,
                "video_tokens": task.usage_tokens,
            },
            "ratio": task.ratio,
            "watermark": task.watermark,
            "generate_audio": task.generate_audio,
        }
    return success(data, message=False)


def vastnum_wrapped(view: TaskView, state: GatewayState, files: str) -> JSON:
    task = view.task
    upstream_id = encode_task_id(task, IdStyle.CGT)
    intermediate: JSON = {
        "id": task.id,
        "draft": task.draft,
        "model": f"volcengine/{task.model}",
        "ratio": task.ratio,
        "frames": 0,
        "result": ark_task_body(view, files, task_id=upstream_id, service_fields=True),
        "status": _VASTNUM_STATUS[view.status],
        "duration": task.duration,
        "created_at": iso_seconds(task.created_at),
        "resolution": task.resolution,
        "updated_at": iso_seconds(view.updated_at),
    }
    data: JSON = {
        "task_id": task.id,
        "action": action(task),
        "status": state.status,
        "fail_reason": state.fail_reason,
        "submit_time": state_submit(view),
        "start_time": state.start_time,
        "finish_time": state.finish_time,
        "progress": state.progress,
        "data": intermediate if state.polled else None,
    }
    return success(data)


def newapi_wrapped(view: TaskView, state: GatewayState, files: str) -> JSON:
    upstream_id = encode_task_id(view.task, IdStyle.CGT)
    url = video_url(view, files, upstream_id)
    raw = ark_task_body(view, files, task_id=upstream_id)
    inner = task_dto(view, state, public_id=derived_task_id(view.task.id), data=raw, result_url=url)
    return success(task_dto(view, state, public_id=view.task.id, data=inner, result_url=url))


def newapi_video(view: TaskView, state: GatewayState, files: str) -> JSON:
    upstream_id = encode_task_id(view.task, IdStyle.CGT)
    url = video_url(view, files, upstream_id) if state.status == "SUCCESS" else ""
    return openai_video(
        view,
        state,
        public_id=view.task.id,
        url=url or state.fail_reason,
        with_error=False,
        with_task_id=False,
    )


def flat_video(view: TaskView, state: GatewayState, files: str) -> JSON:
    upstream_id = encode_task_id(view.task, IdStyle.CGT)
    url = video_url(view, files, upstream_id) if state.polled else ""
    return openai_video(view, state, public_id=view.task.id, url=url)


def state_submit(view: TaskView) -> int:
    return unix(view.task.created_at)


# -- handlers --------------------------------------------------------------------------------


class UnifiedEmulation:
    """The ``/v1`` routes of one gateway flavor, sharing the sandbox's task book."""

    def __init__(self, ctx: SandboxContext, flavor: Flavor) -> None:
        if flavor not in _STYLES:
            raise ValueError(f"{flavor} is not a unified gateway")
        self._ctx = ctx
        self.flavor = flavor
        self._style = _STYLES[flavor]

    def endpoints(self) -> list[Endpoint]:
        tasks = f"/{self.flavor.value}/v1/video/generations"
        found = [
            Endpoint(tasks, self.create, ("POST",)),
            Endpoint(tasks + "/{task_id}", self.get, ("GET",)),
        ]
        # new-api's OpenAI-compatible video routes (router/video-router.go), which the
        # OpenAI SDK's ``client.videos`` calls: every new-api deployment serves them.
        videos = f"/{self.flavor.value}/v1/videos"
        found += [
            Endpoint(videos, self.create_video, ("POST",)),
            Endpoint(videos + "/{task_id}", self.video, ("GET",)),
            Endpoint(videos + "/{task_id}/content", self.content, ("GET",)),
        ]
        return found

    async def create(self, request: Request) -> JSONResponse:
        now = self._ctx.clock.now()
        request_id = gateway_request_id(now)
        if api_key(request) is None:
            return _answer(invalid_token(request_id), 401, request_id)
        body = await read_json(request)
        if isinstance(body, NotJson):
            return _answer(task_error("invalid_request", body.reason), 400, request_id)
        return self._created(body, now, request_id, openai=False)

    async def create_video(self, request: Request) -> JSONResponse:
        """``POST /v1/videos``: the same task, from JSON or from the multipart form the
        OpenAI SDK sends (text fields, ``input_reference`` as a file); always answered
        with the OpenAI video object."""
        now = self._ctx.clock.now()
        request_id = gateway_request_id(now)
        if api_key(request) is None:
            return _answer(invalid_token(request_id), 401, request_id)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body: object
        if kind == "multipart/form-data":
            body = await read_form(request)
        else:
            body = await read_json(request)
        if isinstance(body, NotJson):
            return _answer(task_error("invalid_request", body.reason), 400, request_id)
        return self._created(body, now, request_id, openai=True)

    def _created(
        self, body: object, now: datetime, request_id: str, *, openai: bool
    ) -> JSONResponse:
        spec = parse_unified_create(body, self.flavor, request_id, now)
        if isinstance(spec, Refusal):
            return _answer(spec.body, spec.status, request_id)
        task = new_task(
            now=now,
            settings=self._ctx.settings,
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
            flavor=self.flavor,
            style=self._style,
        )
        self._ctx.book.add(task, spec.prompt)
        if self.flavor is Flavor.VASTNUM and not openai:
            return _answer({"task_id": task.id}, 200, request_id)
        return _answer(created_video(task, task.id), 200, request_id)

    async def get(self, request: Request) -> JSONResponse:
        now = self._ctx.clock.now()
        request_id = gateway_request_id(now)
        if api_key(request) is None:
            return _answer(invalid_token(request_id), 401, request_id)
        view = self._ctx.book.lookup(
            request.path_params["task_id"], now, flavor=self.flavor, style=self._style
        )
        if view is None:
            return _answer(TASK_NOT_EXIST, 400, request_id)
        state = gateway_state(view, now)
        files = files_base(request)
        body: JSON
        if self.flavor is Flavor.NACI:
            show_raw, show_usage = flag(request, "show_raw"), flag(request, "show_usage")
            if flag(request, "raw"):
                body = ark_task_body(view, files)
            elif show_raw or show_usage:
                body = naci_wrapped(view, state, files, show_raw=show_raw, show_usage=show_usage)
            else:
                body = flat_video(view, state, files)
        elif self.flavor is Flavor.VASTNUM:
            body = vastnum_wrapped(view, state, files)
        elif self.flavor is Flavor.NEWAPI:
            body = newapi_wrapped(view, state, files)
        else:
            body = flat_video(view, state, files)
        return _answer(body, 200, request_id)

    async def video(self, request: Request) -> JSONResponse:
        now = self._ctx.clock.now()
        request_id = gateway_request_id(now)
        if api_key(request) is None:
            return _answer(invalid_token(request_id), 401, request_id)
        view = self._ctx.book.lookup(
            request.path_params["task_id"], now, flavor=self.flavor, style=self._style
        )
        if view is None:
            return _answer(TASK_NOT_EXIST, 400, request_id)
        return _answer(
            newapi_video(view, gateway_state(view, now), files_base(request)), 200, request_id
        )

    async def content(self, request: Request) -> Response:
        """new-api's video proxy (controller/video_proxy.go): the finished video's bytes,
        fetched from upstream and passed on (the client never sees the signed link)."""
        now = self._ctx.clock.now()
        request_id = gateway_request_id(now)
        if api_key(request) is None:
            return _answer(invalid_token(request_id), 401, request_id)
        view = self._ctx.book.lookup(
            request.path_params["task_id"], now, flavor=self.flavor, style=self._style
        )
        if view is None:
            return _answer(proxy_error("Task not found"), 404, request_id)
        if view.status is not TaskStatus.SUCCEEDED:
            return _answer(proxy_error("Task is not completed yet"), 400, request_id)
        upstream_id = encode_task_id(view.task, IdStyle.CGT)
        size = self._ctx.settings.video_bytes
        return StreamingResponse(
            video_chunks(upstream_id, size),
            200,
            headers={"content-length": str(size), "x-oneapi-request-id": request_id},
            media_type="video/mp4",
        )


def proxy_error(message: str) -> JSON:
    return {"error": {"message": message, "type": "invalid_request_error"}}


def _answer(body: JSON, status: int, request_id: str) -> JSONResponse:
    return json_response(body, status, {"x-oneapi-request-id": request_id})
