"""The OpenAI-compatible door: the OpenAI video API on the relay, as new-api gateways serve it,
so the official OpenAI SDK (``OpenAI(base_url="https://relay…/openai/v1", api_key=<relay
key>)``) works unchanged.

    POST   /openai/v1/videos                 create (JSON, or multipart as the SDK sends it)
    GET    /openai/v1/videos                 list: after, limit, order
    GET    /openai/v1/videos/{id}            the video object
    DELETE /openai/v1/videos/{id}            cancel a video in progress; {"deleted": true}
    GET    /openai/v1/videos/{id}/content    the video's bytes (variant=thumbnail: last frame)

Videos are ordinary relay tasks submitted to ``front_doors.openai.provider`` (a provider or
a route) through the relay's registration, with the provider-neutral input; a multipart
``input_reference`` file becomes the first frame, sent as a ``data:`` URL (which Ark-based
providers take). ``/content`` redirects to the relay's stored copy (``/v1/outputs/…``,
streamed with ranges) once outputs are stored, and otherwise streams the provider's link
through the relay: a signed storage link refuses a request that carries the SDK's key too
(TOS: "one auth mechanism"), which a redirect on the same origin would send.

Errors are OpenAI's envelope (``{"error": {"message", "type", "param", "code"}}``) with
OpenAI's status codes, so the SDK raises ``AuthenticationError``, ``NotFoundError``,
``BadRequestError``, … . As with the Ark door, deleting a finished video answers as OpenAI
does but the relay keeps the task.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from relay.api.errors import answer_for
from relay.api.http import authenticate, json_response, read_json, services
from relay.api.idempotency import idempotency_key, idempotent
from relay.copies.values import CopyState
from relay.doors.downloads import relayed
from relay.doors.openai_shapes import (
    JSON,
    Refusal,
    deleted,
    neutral_input,
    openai_error,
    openai_video,
    reference_url,
)
from relay.errors import (
    OutputNotAvailable,
    PayloadTooLarge,
    RelayError,
    StoreError,
    SubmissionUncertain,
    UnknownObject,
    UnknownTask,
)
from relay.models import Account, Task, TaskStatus
from relay.services import Services
from relay.store.values import Order, TaskQuery
from relay.tasks.registration import Registration

BASE: Final = "/openai/v1"
VIDEOS: Final = BASE + "/videos"
MAX_SCANNED: Final = 10_000
"""Tasks a list reads at most to find the one its ``after`` names."""
IMAGE_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/webp"})
_KINDS: Final = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}

Handler = Callable[[Request], Awaitable[Response]]


def refused(refusal: Refusal) -> Response:
    return json_response(openai_error(refusal.message, "invalid_request_error", refusal.param), 400)


def in_openai_terms(handler: Handler) -> Handler:
    """Answer the relay's errors in OpenAI's envelope; a database outage keeps the relay's
    own 503."""

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
            status = answer.status
            if status in (402, 409, 413, 416):
                status = 400  # OpenAI answers a request it cannot do with a 400
            kind = _KINDS.get(status, "server_error" if status >= 500 else "invalid_request_error")
            param = getattr(exc, "field", None)
            response = json_response(
                openai_error(str(exc), kind, str(param) if param else None, answer.code), status
            )
            retry_after = getattr(exc, "retry_after", None)
            if isinstance(retry_after, int):
                response.headers["Retry-After"] = str(retry_after)
            if isinstance(exc, SubmissionUncertain):
                # The provider may have taken it: a retry by the SDK would submit it again.
                response.headers["x-should-retry"] = "false"
            return response

    return answered


class OpenAIDoor:
    def __init__(self, target: str, default_model: str) -> None:
        self._target = target
        self._model = default_model

    async def create(self, request: Request) -> Response:
        account = await authenticate(request)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            read = await _multipart(request)
        else:
            body = await read_json(request)
            image = reference_url(body.get("input_reference"))
            if isinstance(image, Refusal):
                return refused(image)
            fields = {k: v for k, v in body.items() if k != "input_reference"}
            read = fields, image
        if isinstance(read, Refusal):
            return refused(read)
        fields, image = read
        neutral = neutral_input(fields, self._model, image)
        if isinstance(neutral, Refusal):
            return refused(neutral)
        # With an Idempotency-Key: answered once, replayed after (relay.api.idempotency).
        return await idempotent(
            request, account, neutral, lambda: self._register(request, account, neutral)
        )

    async def _register(self, request: Request, account: Account, neutral: JSON) -> Response:
        task = await services(request).tracker.register(
            account,
            Registration(
                provider=self._target,
                input=neutral,
                input_format="unified",
                idempotency_key=idempotency_key(request),
            ),
        )
        return json_response(openai_video(task.to_json(), neutral))

    async def retrieve(self, request: Request) -> Response:
        account = await authenticate(request)
        task = await _task(request, account)
        return json_response(openai_video(task.to_json()))

    async def delete(self, request: Request) -> Response:
        account = await authenticate(request)
        task = await _task(request, account)
        if not task.status.terminal:
            await services(request).tracker.cancel(account.id, task.id)
        return json_response(deleted(task.id))

    async def content(self, request: Request) -> Response:
        account = await authenticate(request)
        task = await _task(request, account)
        variant = request.query_params.get("variant", "video")
        if variant not in ("video", "thumbnail"):
            return refused(Refusal("variant", "variant must be video or thumbnail"))
        if task.status is not TaskStatus.SUCCEEDED:
            raise UnknownObject(f"video {task.id} is not completed (it is {task.status.value})")
        video = variant == "video"
        if _stored(task):
            # The relay's own stable link, which streams the stored file with ranges.
            url = task.video_url if video else task.last_frame_url
            if url is not None:
                return RedirectResponse(url, 307, headers={"Cache-Control": "no-store"})
        url = task.provider_video_url if video else task.provider_last_frame_url
        if url is None:
            raise UnknownObject(f"video {task.id} has no {variant}")
        expires = task.provider_video_url_expires_at
        if expires is not None and expires <= services(request).clock.now():
            raise OutputNotAvailable(f"the provider's link to video {task.id} has expired")
        return await relayed(url, services(request).destinations)

    async def list(self, request: Request) -> Response:
        account = await authenticate(request)
        q = request.query_params
        order = q.get("order", "desc")
        if order not in ("asc", "desc"):
            return refused(Refusal("order", "order must be asc or desc"))
        raw_limit = q.get("limit", "20")
        if not (raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= 100):
            return refused(Refusal("limit", "limit must be from 1 to 100"))
        tasks, more = await _page(
            services(request),
            account.id,
            q.get("after") or None,
            int(raw_limit),
            "asc" if order == "asc" else "desc",
        )
        data = [openai_video(t.to_json()) for t in tasks]
        return json_response(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": more,
            }
        )


def _stored(task: Task) -> bool:
    return (
        task.output is not None
        and task.output.status is CopyState.STORED
        and task.video_url_expires_at is None
    )


async def _multipart(request: Request) -> tuple[dict[str, Any], str | None] | Refusal:
    """The text fields of a multipart create and its ``input_reference`` file as a data URL."""
    limit = services(request).max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is over {limit} bytes")
    try:
        async with request.form(max_files=1, max_fields=16, max_part_size=64 * 1024) as form:
            fields: dict[str, Any] = {}
            image = None
            for name, value in form.multi_items():
                if not isinstance(value, UploadFile):
                    fields[name] = value
                    continue
                if name != "input_reference":
                    return Refusal(name, f"{name} is not a file field")
                data = await value.read(limit + 1)
                if len(data) > limit:
                    raise PayloadTooLarge(f"the file is over {limit} bytes")
                kind = (value.content_type or "").split(";")[0].strip().lower()
                if kind not in IMAGE_TYPES:
                    return Refusal(name, "input_reference must be a PNG, JPEG or WebP image")
                image = f"data:{kind};base64,{base64.b64encode(data).decode()}"
    except (MultiPartException, HTTPException) as exc:
        return Refusal("body", f"the multipart body is malformed: {exc}")
    return fields, image


async def _task(request: Request, account: Account) -> Task:
    video_id = request.path_params["video_id"]
    task = await services(request).store.get_task(account.id, video_id)
    if task is None:
        raise UnknownTask(video_id)
    return task


async def _page(
    svc: Services, account_id: str, after: str | None, limit: int, order: Order
) -> tuple[list[Task], bool]:
    """``limit`` tasks in ``order`` after the one named ``after``, and whether more follow."""
    found: list[Task] = []
    seen = after is None
    scanned = 0
    position = None
    while scanned < MAX_SCANNED:
        page = await svc.store.list_tasks(
            account_id, TaskQuery(after=position, limit=200, order=order)
        )
        for task in page.items:
            scanned += 1
            if not seen:
                seen = task.id == after
                continue
            if len(found) == limit:
                return found, True
            found.append(task)
        if page.next_after is None:
            break
        position = page.next_after
    if not seen:
        raise UnknownTask(f"{after} (named by after)")
    return found, False


def openai_routes(target: str, default_model: str) -> list[Route]:
    door = OpenAIDoor(target, default_model)
    return [
        Route(VIDEOS, in_openai_terms(door.create), methods=["POST"]),
        Route(VIDEOS, in_openai_terms(door.list), methods=["GET"]),
        Route(VIDEOS + "/{video_id}", in_openai_terms(door.retrieve), methods=["GET"]),
        Route(VIDEOS + "/{video_id}", in_openai_terms(door.delete), methods=["DELETE"]),
        Route(VIDEOS + "/{video_id}/content", in_openai_terms(door.content), methods=["GET"]),
    ]
