"""seedance2.ink's open API bodies (page 004), pure: create validation, the task object,
the models list, and its ``{"success": false, "error": {code, message}}`` refusals.

What the page leaves open, and what the sandbox answers:

- Validation failures are HTTP 400 with code ``invalid_request`` and a message naming the
  field; a malformed body is the same with ``Invalid JSON body``.
- ``mediaUrls``: 1 to 5 public ``https://`` URLs; an empty list counts as absent.
  ``webhookUrl`` must be an ``http(s)://`` URL (plain http so local receivers work).
- Ark ``expired`` has no word here: such a task reads ``failed`` with
  ``{"code": "provider_error", "message": "Video generation timed out upstream"}``;
  ``[fail]`` reads the page's own ``provider_error`` sample. A cancelled task has
  ``error: null``.
- The GET body echoes ``prompt``; an id cannot carry free text, so after a restart the
  sandbox echoes ``""``.
- ``creditsCharged``: 8 credits a second at 720p (the page's 5 s sample costs 40), 4 at
  480p, 16 at 1080p; half that for ``seedance-2.0-fast`` and ``seedance-1.5-pro``.
- The models list (``GET /api/open/v1/models``) is not shown on the page; the sandbox
  answers ``{"success": true, "data": [{id, name, durations, aspectRatios,
  resolutions}]}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from relay.models import JSON, TaskStatus
from relay.sandbox.simulation import TaskView, public_file_url
from relay.sandbox.timeline import SandboxTask

INK_MODELS: Final = ("seedance-2.0", "seedance-2.0-fast", "seedance-1.5-pro")
INK_RATIOS: Final = ("16:9", "9:16", "1:1")
INK_RESOLUTIONS: Final = ("480p", "720p", "1080p")
PRO_DURATIONS: Final = (5, 10)
MAX_MEDIA: Final = 5
_MODEL_NAMES: Final = {
    "seedance-2.0": "Seedance 2.0",
    "seedance-2.0-fast": "Seedance 2.0 Fast",
    "seedance-1.5-pro": "Seedance 1.5 Pro",
}
_CREDITS_PER_SECOND: Final = {"480p": 4, "720p": 8, "1080p": 16}
_STATUS: Final = {
    TaskStatus.QUEUED: "queued",
    TaskStatus.RUNNING: "processing",
    TaskStatus.SUCCEEDED: "succeeded",
    TaskStatus.FAILED: "failed",
    TaskStatus.EXPIRED: "failed",
    TaskStatus.CANCELLED: "cancelled",
}
FAILED_ERROR: Final = {"code": "provider_error", "message": "Video generation failed upstream"}
EXPIRED_ERROR: Final = {"code": "provider_error", "message": "Video generation timed out upstream"}


@dataclass(frozen=True, slots=True)
class InkSpec:
    model: str
    prompt: str
    aspect_ratio: str = "16:9"
    duration: int = 5
    resolution: str = "720p"
    media_urls: tuple[str, ...] = ()
    webhook_url: str | None = None


def refusal(code: str, message: str) -> JSON:
    return {"success": False, "error": {"code": code, "message": message}}


UNAUTHORIZED: Final = refusal("unauthorized", "Invalid API key")
NOT_FOUND: Final = refusal("not_found", "Task not found")
INVALID_JSON: Final = refusal("invalid_request", "Invalid JSON body")


def parse_ink_create(body: object) -> InkSpec | JSON:
    """A valid create body, or the 400 body refusing it."""
    if not isinstance(body, dict):
        return refusal("invalid_request", "Request body must be a JSON object")
    model = body.get("model")
    if model not in INK_MODELS:
        return _invalid(f"model must be one of {', '.join(INK_MODELS)}")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return _invalid("prompt is required")
    ratio = _optional(body, "aspectRatio", "16:9")
    if ratio not in INK_RATIOS:
        return _invalid(f"aspectRatio must be one of {', '.join(INK_RATIOS)}")
    duration = _optional(body, "duration", 5)
    if model == "seedance-1.5-pro":
        if not _is_int(duration) or duration not in PRO_DURATIONS:
            return _invalid("duration must be 5 or 10 for seedance-1.5-pro")
    elif not _is_int(duration) or not 4 <= duration <= 15:
        return _invalid(f"duration must be an integer between 4 and 15 for {model}")
    resolution = _optional(body, "resolution", "720p")
    if resolution not in INK_RESOLUTIONS:
        return _invalid(f"resolution must be one of {', '.join(INK_RESOLUTIONS)}")
    media = _optional(body, "mediaUrls", [])
    if not isinstance(media, list) or len(media) > MAX_MEDIA:
        return _invalid(f"mediaUrls must be an array of 1 to {MAX_MEDIA} URLs")
    for url in media:
        if (
            not isinstance(url, str)
            or not url.lower().startswith("https://")
            or len(url) <= len("https://")
        ):
            return _invalid("mediaUrls must contain public https URLs")
    webhook = _optional(body, "webhookUrl", None)
    if webhook is not None and (
        not isinstance(webhook, str) or not webhook.lower().startswith(("http://", "https://"))
    ):
        return _invalid("webhookUrl must be an http(s) URL")
    metadata = _optional(body, "metadata", {})
    if not isinstance(metadata, dict):
        return _invalid("metadata must be an object")
    return InkSpec(
        model=model,
        prompt=prompt,
        aspect_ratio=ratio,
        duration=duration,
        resolution=resolution,
        media_urls=tuple(media),
        webhook_url=webhook,
    )


def _optional(body: JSON, name: str, default: Any) -> Any:
    value = body.get(name)
    return default if value is None else value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _invalid(message: str) -> JSON:
    return refusal("invalid_request", message)


def credits_for(task: SandboxTask) -> int:
    rate = _CREDITS_PER_SECOND[task.resolution]
    if task.model != "seedance-2.0":
        rate //= 2
    return task.duration * rate


def created_body(task: SandboxTask) -> JSON:
    return {
        "success": True,
        "requestId": task.id,
        "status": "queued",
        "creditsCharged": credits_for(task),
    }


def ink_status(view: TaskView) -> str:
    return _STATUS[view.status]


def ink_task_body(view: TaskView, bucket_base: str) -> JSON:
    """The GET answer (and the webhook body): HTTP 200 ``success: true`` in every state."""
    task = view.task
    output = None
    error = None
    if view.status is TaskStatus.SUCCEEDED:
        output = {"type": "video", "url": public_file_url(bucket_base, task.id)}
    elif view.status is TaskStatus.FAILED:
        error = dict(FAILED_ERROR)
    elif view.status is TaskStatus.EXPIRED:
        error = dict(EXPIRED_ERROR)
    return {
        "success": True,
        "requestId": task.id,
        "status": ink_status(view),
        "model": task.model,
        "prompt": view.prompt,
        "duration": task.duration,
        "aspectRatio": task.ratio,
        "output": output,
        "error": error,
    }


def cancelled_body(task_id: str) -> JSON:
    return {"success": True, "requestId": task_id, "status": "cancelled"}


def not_cancellable(status: str) -> JSON:
    return refusal("invalid_status", f"Task is already {status} and can no longer be cancelled")


def models_body() -> JSON:
    data = []
    for model in INK_MODELS:
        durations = list(PRO_DURATIONS) if model == "seedance-1.5-pro" else list(range(4, 16))
        data.append(
            {
                "id": model,
                "name": _MODEL_NAMES[model],
                "durations": durations,
                "aspectRatios": list(INK_RATIOS),
                "resolutions": list(INK_RESOLUTIONS),
            }
        )
    return {"success": True, "data": data}
