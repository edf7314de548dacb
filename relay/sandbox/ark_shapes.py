"""The Ark video-task API's bodies, pure: create-request validation, the task object, the
error envelope. ``relay.sandbox.ark`` serves them; the gateway emulations nest the same
task object as their upstream's raw answer.

The task object follows apiyi's real succeeded sample to the field: ``content`` and
``usage`` only once succeeded, ``error`` only when failed; an expired or cancelled task
carries no error object, as Ark documents none. Errors use Ark's envelope
``{"error": {"code", "message", "param", "type"}}`` with a ``Request id`` in the message.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.models import JSON, TaskStatus
from relay.sandbox.simulation import (
    FAILURE_CODE,
    FAILURE_MESSAGE,
    MAX_DURATION,
    MIN_DURATION,
    RATIOS,
    RESOLUTIONS,
    TaskView,
    signed_file_url,
)
from relay.sandbox.timeline import EXECUTION_EXPIRES_AFTER, unix

MAX_SEED = 2**32 - 1
MAX_CALLBACK_URL = 2048
SERVICE_TIER = "default"
"""The one tier Seedance 2.0 runs in (``flex`` is not offered for it)."""
MIN_EXPIRES_AFTER, MAX_EXPIRES_AFTER = 3_600, 259_200
MIRROR_FAILURE_CODE = "task_failed"
"""cubicspaces' Ark mirror words every task failure with this code (its page)."""

_MEDIA_ROLES = {
    "image_url": (None, "first_frame", "last_frame", "reference_image"),
    "video_url": (None, "reference_video"),
    "audio_url": (None, "reference_audio"),
}


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
    watermark: bool = False
    has_images: bool = False
    callback_url: str | None = None
    """Where Ark POSTs the task on each status change (``relay.sandbox.ark``)."""


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a create body is refused: an Ark 400."""

    code: str
    param: str
    message: str


def parse_create(body: object) -> CreateSpec | Invalid:
    """Check a decoded create body the way Ark does, field by field.

    Any model string is accepted, so gateway aliases work; media URLs are not fetched.
    """
    if not isinstance(body, dict):
        return Invalid("InvalidParameter", "", "The request body must be a JSON object.")
    model = body.get("model")
    if model is None:
        return _missing("model")
    if not isinstance(model, str) or not model:
        return _invalid("model", "must be a non-empty string")
    content = _content(body.get("content"))
    if isinstance(content, Invalid):
        return content
    prompt, has_images = content
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
    if not _is_int(seed) or not -1 <= seed <= MAX_SEED:
        return _invalid("seed", f"must be an integer in [-1, {MAX_SEED}]")
    callback_url = options.get("callback_url")
    if callback_url is not None and not (
        isinstance(callback_url, str)
        and callback_url.startswith(("http://", "https://"))
        and len(callback_url) <= MAX_CALLBACK_URL
    ):
        return _invalid("callback_url", "must be an http(s) URL")
    if options.get("service_tier", SERVICE_TIER) != SERVICE_TIER:
        return _invalid("service_tier", f"only {SERVICE_TIER} is supported by model {model}")
    expires = options.get("execution_expires_after", EXECUTION_EXPIRES_AFTER)
    if not _is_int(expires) or not MIN_EXPIRES_AFTER <= expires <= MAX_EXPIRES_AFTER:
        return _invalid(
            "execution_expires_after",
            f"must be an integer in [{MIN_EXPIRES_AFTER}, {MAX_EXPIRES_AFTER}]",
        )
    flags = {"generate_audio": True, "return_last_frame": False, "watermark": False}
    for name, default in flags.items():
        flags[name] = options.get(name, default)
        if not isinstance(flags[name], bool):
            return _invalid(name, "must be a boolean")
    return CreateSpec(
        model=model,
        prompt=prompt,
        resolution=resolution,
        # With no input image to fit, "adaptive" and "the model chooses" land on the defaults.
        ratio="16:9" if ratio == "adaptive" else ratio,
        duration=5 if duration == -1 else duration,
        seed=None if seed == -1 else seed,
        generate_audio=flags["generate_audio"],
        return_last_frame=flags["return_last_frame"],
        watermark=flags["watermark"],
        has_images=has_images,
        callback_url=callback_url,
    )


def _content(content: object) -> tuple[str, bool] | Invalid:
    """The prompt (text items joined) and whether any image came, or why not.

    Text is optional only where Ark makes it so: a first-frame image (role ``first_frame``
    or none) is a complete request on its own; references are not.
    """
    if content is None or content == []:
        return _missing("content")
    if not isinstance(content, list):
        return _invalid("content", "must be an array of content items")
    texts: list[str] = []
    first_frame = has_images = False
    for item in content:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            return _invalid("content", "every item must be an object with a type")
        kind = item["type"]
        if kind == "text":
            text = item.get("text")
            if not isinstance(text, str) or not text:
                return _invalid("content.text", "must be a non-empty string")
            texts.append(text)
            continue
        roles = _MEDIA_ROLES.get(kind)
        if roles is None:
            return _invalid("content.type", "must be one of text, image_url, video_url, audio_url")
        media = item.get(kind)
        if not isinstance(media, dict) or not isinstance(media.get("url"), str) or not media["url"]:
            return _invalid(f"content.{kind}.url", "must be a non-empty string")
        role = item.get("role")
        if role not in roles:
            return _invalid("content.role", f"must be one of {', '.join(map(str, roles[1:]))}")
        if kind == "image_url":
            has_images = True
            first_frame = first_frame or role in (None, "first_frame")
    if not texts and not first_frame:
        return _invalid("content", "must hold a text prompt or a first-frame image")
    return "\n".join(texts), has_images


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _missing(param: str) -> Invalid:
    return Invalid(
        "MissingParameter",
        param,
        f"The request failed because it is missing one or multiple required parameters: `{param}`.",
    )


def _invalid(param: str, detail: str) -> Invalid:
    return Invalid(
        "InvalidParameter",
        param,
        f"The parameter `{param}` specified in the request is not valid: {detail}.",
    )


def ark_task_body(
    view: TaskView,
    files_base: str,
    *,
    task_id: str | None = None,
    mirror: bool = False,
    service_fields: bool = False,
) -> JSON:
    """The Ark task object of ``view``; file URLs are built under ``files_base``.

    ``task_id``: the id to report (a gateway's upstream id) instead of the task's own.
    ``mirror``: cubicspaces' wording (``running`` while queued, its ``task_failed`` code).
    ``service_fields``: add ``service_tier`` and ``execution_expires_after``, as
    cubicspaces and vastnum's upstream report them.
    """
    task = view.task
    name = task_id or task.id
    status = view.status
    if mirror and status is TaskStatus.QUEUED:
        status = TaskStatus.RUNNING
    body: JSON = {"id": name, "model": task.model, "status": status.value}
    if status is TaskStatus.SUCCEEDED:
        content = {"video_url": signed_file_url(files_base, f"{name}.mp4", view.signed_at)}
        if task.return_last_frame:
            content["last_frame_url"] = signed_file_url(files_base, f"{name}.png", view.signed_at)
        tokens = task.usage_tokens
        body["content"] = content
        body["usage"] = {"completion_tokens": tokens, "total_tokens": tokens}
    elif status is TaskStatus.FAILED:
        code = MIRROR_FAILURE_CODE if mirror else FAILURE_CODE
        body["error"] = {"code": code, "message": FAILURE_MESSAGE}
    body.update(
        {
            "created_at": unix(task.created_at),
            "updated_at": unix(view.updated_at),
            "seed": task.seed,
            "resolution": task.resolution,
            "ratio": task.ratio,
            "duration": task.duration,
            "framespersecond": task.fps,
            "generate_audio": task.generate_audio,
            "draft": task.draft,
        }
    )
    if service_fields:
        body["service_tier"] = SERVICE_TIER
        body["execution_expires_after"] = EXECUTION_EXPIRES_AFTER
    return body


def mirror_created_body(view: TaskView) -> JSON:
    """cubicspaces' answer to a create: the task object as its page shows it."""
    task = view.task
    return {
        "id": task.id,
        "model": task.model,
        "status": TaskStatus.RUNNING.value,
        "created_at": unix(task.created_at),
        "updated_at": unix(view.updated_at),
        "service_tier": "default",
        "execution_expires_after": EXECUTION_EXPIRES_AFTER,
    }


def ark_error_body(code: str, message: str, param: str, kind: str, request_id: str) -> JSON:
    return {
        "error": {
            "code": code,
            "message": f"{message} Request id: {request_id}",
            "param": param,
            "type": kind,
        }
    }


def invalid_error_body(invalid: Invalid, request_id: str) -> JSON:
    return ark_error_body(invalid.code, invalid.message, invalid.param, "BadRequest", request_id)


def internal_error_body(request_id: str) -> JSON:
    return ark_error_body(
        "InternalServiceError",
        "The service encountered an unexpected internal error.",
        "",
        "InternalServerError",
        request_id,
    )


def rate_limit_error_body(request_id: str) -> JSON:
    return ark_error_body(
        "RateLimitExceeded.EndpointRPMExceeded",
        "The request has exceeded the RPM (requests per minute) rate limit "
        "set for the endpoint. Please try again later.",
        "",
        "TooManyRequests",
        request_id,
    )
