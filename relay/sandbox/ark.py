"""The Ark video-task API, as apiyi and cubicspaces mirror it, emulated over HTTP.

Bodies follow the provider pages to the field: ``POST .../contents/generations/tasks``
answers ``{"id": "cgt-…"}``; ``GET .../tasks/{id}`` answers the task in the shape of
apiyi's real succeeded sample (``content`` and ``usage`` only once succeeded, ``error`` only
when failed; an expired or cancelled task carries no error object, as Ark documents none);
``DELETE .../tasks/{id}`` cancels a queued task, refuses a running one and forgets a
finished one. Errors use Ark's envelope
``{"error": {"code", "message", "param", "type"}}`` with a ``Request id`` in the message and
an ``x-request-id`` header.

Deliberately not emulated: the task list endpoint, ``callback_url`` pushes, input
moderation, ``frames``/``execution_expires_after``, and real model-name checking (any
string is accepted so gateway aliases work).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from relay.clock import Clock
from relay.models import JSON, TaskStatus
from relay.sandbox.simulation import (
    FAILURE_CODE,
    FAILURE_MESSAGE,
    MAX_DURATION,
    MIN_DURATION,
    RATIOS,
    RESOLUTIONS,
    SandboxSettings,
    TaskBook,
    TaskView,
    new_task,
    signed_file_url,
)

ARK_PREFIX = "/ark/api/v3"
"""Where the sandbox app serves the Ark API: the Ark base URL is ``{sandbox}/ark/api/v3``."""
TASKS_PATH = "/contents/generations/tasks"

_MAX_SEED = 2**32 - 1


@dataclass(frozen=True, slots=True)
class CreateSpec:
    """A valid create body, with Ark's defaults applied."""

    model: str
    prompt: str
    resolution: str = "720p"
    ratio: str = "16:9"
    duration: int = 5
    seed: int | None = None
    """``None`` when the caller asked for a random seed (-1 or nothing)."""
    generate_audio: bool = True
    return_last_frame: bool = False


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a create body is refused: an Ark 400."""

    code: str
    param: str
    message: str


def parse_create(body: object) -> CreateSpec | Invalid:
    """Check a decoded create body the way Ark does, field by field."""
    if not isinstance(body, dict):
        return Invalid("InvalidParameter", "", "The request body must be a JSON object.")
    model = body.get("model")
    if model is None:
        return _missing("model")
    if not isinstance(model, str) or not model:
        return _invalid("model", "must be a non-empty string")
    prompt = _prompt(body.get("content"))
    if isinstance(prompt, Invalid):
        return prompt
    options = {key: value for key, value in body.items() if value is not None}
    resolution = options.get("resolution", "720p")
    if resolution not in RESOLUTIONS:
        return _invalid("resolution", f"must be one of {', '.join(RESOLUTIONS)}")
    if resolution == "1080p" and "fast" in model.lower():
        return _invalid("resolution", f"1080p is not supported by model {model}")
    ratio = options.get("ratio", "adaptive")
    if ratio != "adaptive" and ratio not in RATIOS:
        return _invalid("ratio", f"must be one of {', '.join(RATIOS)}, adaptive")
    duration = options.get("duration", 5)
    if not _is_int(duration) or not (duration == -1 or MIN_DURATION <= duration <= MAX_DURATION):
        return _invalid("duration", f"must be an integer in [{MIN_DURATION}, {MAX_DURATION}] or -1")
    seed = options.get("seed", -1)
    if not _is_int(seed) or not -1 <= seed <= _MAX_SEED:
        return _invalid("seed", f"must be an integer in [-1, {_MAX_SEED}]")
    generate_audio = options.get("generate_audio", True)
    return_last_frame = options.get("return_last_frame", False)
    for name, value in (("generate_audio", generate_audio),
                        ("return_last_frame", return_last_frame)):
        if not isinstance(value, bool):
            return _invalid(name, "must be a boolean")
    return CreateSpec(
        model=model,
        prompt=prompt,
        resolution=resolution,
        # With no input image to fit, "adaptive" and "the model chooses" land on the defaults.
        ratio="16:9" if ratio == "adaptive" else ratio,
        duration=5 if duration == -1 else duration,
        seed=None if seed == -1 else seed,
        generate_audio=generate_audio,
        return_last_frame=return_last_frame,
    )


def _prompt(content: object) -> str | Invalid:
    if content is None or content == []:
        return _missing("content")
    if not isinstance(content, list):
        return _invalid("content", "must be an array of content items")
    texts: list[str] = []
    for item in content:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            return _invalid("content", "every item must be an object with a type")
        if item["type"] == "text":
            text = item.get("text")
            if not isinstance(text, str) or not text:
                return _invalid("content.text", "must be a non-empty string")
            texts.append(text)
    if not texts:
        return _invalid("content", "must hold at least one text item")
    return "\n".join(texts)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _missing(param: str) -> Invalid:
    return Invalid(
        "MissingParameter",
        param,
        f"The request failed because it is missing one or multiple required parameters: "
        f"`{param}`.",
    )


def _invalid(param: str, detail: str) -> Invalid:
    return Invalid(
        "InvalidParameter",
        param,
        f"The parameter `{param}` specified in the request is not valid: {detail}.",
    )


def ark_task_body(view: TaskView, files_base: str) -> JSON:
    """The Ark task object of ``view``; file URLs are built under ``files_base``."""
    task = view.task
    body: JSON = {"id": task.id, "model": task.model, "status": view.status.value}
    if view.status is TaskStatus.SUCCEEDED:
        content = {"video_url": signed_file_url(files_base, f"{task.id}.mp4", view.updated_at)}
        if task.return_last_frame:
            content["last_frame_url"] = signed_file_url(
                files_base, f"{task.id}.png", view.updated_at
            )
        tokens = task.usage_tokens
        body["content"] = content
        body["usage"] = {"completion_tokens": tokens, "total_tokens": tokens}
    elif view.status is TaskStatus.FAILED:
        body["error"] = {"code": FAILURE_CODE, "message": FAILURE_MESSAGE}
    body.update(
        {
            "created_at": int(task.created_at.timestamp()),
            "updated_at": int(view.updated_at.timestamp()),
            "seed": task.seed,
            "resolution": task.resolution,
            "ratio": task.ratio,
            "duration": task.duration,
            "framespersecond": task.fps,
            "generate_audio": task.generate_audio,
            "draft": task.draft,
        }
    )
    return body


class ArkEmulation:
    """The Ark endpoints of one sandbox instance, sharing its :class:`TaskBook`."""

    def __init__(
        self, book: TaskBook, settings: SandboxSettings, clock: Clock, *, files_path: str
    ) -> None:
        self._book = book
        self._settings = settings
        self._clock = clock
        self._files_path = files_path

    def routes(self, prefix: str = ARK_PREFIX) -> list[BaseRoute]:
        # Flat routes, not a Mount: a Mount would move ``root_path``, which locates the files.
        tasks = prefix + TASKS_PATH
        return [
            Route(tasks, self.create, methods=["POST"]),
            Route(tasks + "/{task_id}", self.get, methods=["GET"]),
            Route(tasks + "/{task_id}", self.delete, methods=["DELETE"]),
        ]

    async def create(self, request: Request) -> JSONResponse:
        request_id = self._request_id()
        denied = _authenticate(request, request_id)
        if denied is not None:
            return denied
        try:
            body: Any = json.loads(await request.body())
        except ValueError:
            invalid = Invalid("InvalidParameter", "", "The request body is not valid JSON.")
            return _bad_request(invalid, request_id)
        spec = parse_create(body)
        if isinstance(spec, Invalid):
            return _bad_request(spec, request_id)
        task = new_task(
            now=self._clock.now(),
            settings=self._settings,
            nonce=secrets.randbits(24),
            prompt=spec.prompt,
            model=spec.model,
            resolution=spec.resolution,
            ratio=spec.ratio,
            duration=spec.duration,
            seed=spec.seed,
            generate_audio=spec.generate_audio,
            return_last_frame=spec.return_last_frame,
        )
        self._book.add(task)
        return _json({"id": task.id}, 200, request_id)

    async def get(self, request: Request) -> JSONResponse:
        request_id = self._request_id()
        denied = _authenticate(request, request_id)
        if denied is not None:
            return denied
        view = self._book.lookup(request.path_params["task_id"], self._clock.now())
        if view is None:
            return _not_found(request_id)
        return _json(ark_task_body(view, self._files_base(request)), 200, request_id)

    async def delete(self, request: Request) -> JSONResponse:
        request_id = self._request_id()
        denied = _authenticate(request, request_id)
        if denied is not None:
            return denied
        before = self._book.cancel(request.path_params["task_id"], self._clock.now())
        if before is None:
            return _not_found(request_id)
        if before is TaskStatus.RUNNING:
            refused = _invalid("id", "task cannot be cancelled while running")
            return _bad_request(refused, request_id)
        return _json({}, 200, request_id)

    def _files_base(self, request: Request) -> str:
        # root_path is wherever the sandbox is mounted (``/sandbox`` in the relay, plus any
        # proxy prefix), so the URL stays valid however the relay is deployed.
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return f"{request.url.scheme}://{request.url.netloc}{root}{self._files_path}"

    def _request_id(self) -> str:
        # Ark's request ids: "021", the time in ms, then random hex.
        millis = int(self._clock.now().timestamp() * 1000)
        return f"021{millis:013d}{secrets.token_hex(16)}"


def _authenticate(request: Request, request_id: str) -> JSONResponse | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return None
    return _error(
        401,
        "AuthenticationError",
        "the API key or AK/SK in the request is missing or invalid.",
        "",
        "Unauthorized",
        request_id,
    )


def _not_found(request_id: str) -> JSONResponse:
    return _error(
        404, "ResourceNotFound", "The specified task was not found.", "", "NotFound", request_id
    )


def _bad_request(invalid: Invalid, request_id: str) -> JSONResponse:
    return _error(400, invalid.code, invalid.message, invalid.param, "BadRequest", request_id)


def _error(
    status: int, code: str, message: str, param: str, kind: str, request_id: str
) -> JSONResponse:
    error = {
        "code": code,
        "message": f"{message} Request id: {request_id}",
        "param": param,
        "type": kind,
    }
    return _json({"error": error}, status, request_id)


def _json(body: Mapping[str, Any], status: int, request_id: str) -> JSONResponse:
    return JSONResponse(dict(body), status_code=status, headers={"x-request-id": request_id})
