"""The OpenAI video API's bodies, as the relay's OpenAI door answers them, pure.

The door (``relay.doors.openai_routes``) answers ``/openai/v1/videos`` the way new-api
gateways do (DIALECTS.md §2, "new-api OpenAI-video"), with one fix the SDK needs: a task
that has not started is ``queued``, never ``unknown``, so ``client.videos.poll()`` waits for
it. Statuses map as

    queued → queued, running → in_progress, succeeded → completed,
    failed | expired | cancelled → failed (with ``error.code`` saying which)

Sizes are ``{width}x{height}``; the relay's tasks speak ratio and resolution, so a size is
read as the nearest of those (``720x1280`` → 9:16 at 720p) and a task's are written back
as a size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from relay.doors.ark_shapes import unix

JSON = dict[str, Any]

STATUSES: Final = {
    "queued": "queued",
    "running": "in_progress",
    "succeeded": "completed",
    "failed": "failed",
    "expired": "failed",
    "cancelled": "failed",
}
PROGRESS: Final = {"queued": 0, "in_progress": 50, "completed": 100, "failed": 100}
"""Progress when the provider reports none."""
RATIOS: Final = {
    "16:9": 16 / 9,
    "4:3": 4 / 3,
    "1:1": 1.0,
    "3:4": 3 / 4,
    "9:16": 9 / 16,
    "21:9": 21 / 9,
}
RESOLUTIONS: Final = {"480p": 480, "720p": 720, "1080p": 1080}
CREATE_FIELDS: Final = frozenset({"prompt", "model", "seconds", "size", "input_reference"})
MAX_SIZE_SIDE = 8192


@dataclass(frozen=True, slots=True)
class Refusal:
    """An OpenAI 400 ``invalid_request_error`` about ``param``."""

    param: str
    message: str


def openai_error(
    message: str, kind: str, param: str | None = None, code: str | None = None
) -> JSON:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def neutral_input(
    fields: Mapping[str, Any], default_model: str, image: str | None = None
) -> JSON | Refusal:
    """The relay's provider-neutral input for a create's ``fields`` (a JSON body, or the text
    fields of a multipart one); ``image``: the reference image as a URL (``data:`` for an
    uploaded file), read by the caller from ``input_reference``."""
    unknown = sorted(set(fields) - CREATE_FIELDS)
    if unknown:
        return Refusal(unknown[0], f"Unrecognized request argument supplied: {unknown[0]}")
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return Refusal("prompt", "prompt is required: a non-empty string")
    model = fields.get("model") or default_model
    if not isinstance(model, str):
        return Refusal("model", "model must be a string")
    out: JSON = {"model": model, "prompt": prompt}
    seconds = fields.get("seconds")
    if seconds is not None:
        text = str(seconds)
        if isinstance(seconds, bool) or not text.isascii() or not text.isdigit() or len(text) > 4:
            return Refusal("seconds", "seconds must be a whole number of seconds, as a string")
        out["duration"] = int(text)
    size = fields.get("size")
    if size is not None:
        read = read_size(size)
        if isinstance(read, Refusal):
            return read
        out["ratio"], out["resolution"] = read
    if image is not None:
        out["images"] = [{"url": image, "role": "first_frame"}]
    return out


def reference_url(value: object) -> str | Refusal | None:
    """The image URL of a JSON ``input_reference`` (``{"image_url": …}``); None: none given."""
    if value is None:
        return None
    if isinstance(value, Mapping) and isinstance(value.get("image_url"), str):
        return str(value["image_url"])
    if isinstance(value, Mapping) and "file_id" in value:
        return Refusal("input_reference", "file ids are not supported: give an image_url")
    return Refusal("input_reference", "input_reference must be {'image_url': '...'} or a file")


def read_size(size: object) -> tuple[str, str] | Refusal:
    """The ratio and resolution nearest to ``{width}x{height}``."""
    parts = size.split("x") if isinstance(size, str) else []
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and 0 < len(p) <= 5 for p in parts):
        return Refusal("size", "size must be {width}x{height}, such as 1280x720")
    width, height = int(parts[0]), int(parts[1])
    if not (0 < width <= MAX_SIZE_SIDE and 0 < height <= MAX_SIZE_SIDE):
        return Refusal("size", f"each side of size must be from 1 to {MAX_SIZE_SIDE}")
    ratio = min(RATIOS, key=lambda name: abs(math.log(RATIOS[name] * height / width)))
    short = min(width, height)
    resolution = min(RESOLUTIONS, key=lambda name: abs(RESOLUTIONS[name] - short))
    return ratio, resolution


def size_of(ratio: object, resolution: object) -> str:
    """The ``{width}x{height}`` of a ratio at a resolution (the short side), even numbers
    as encoders make them; 16:9 at 720p when either is unknown."""
    value = RATIOS.get(ratio, RATIOS["16:9"]) if isinstance(ratio, str) else RATIOS["16:9"]
    short = RESOLUTIONS.get(resolution, 720) if isinstance(resolution, str) else 720
    long = 2 * round(short * max(value, 1 / value) / 2)
    return f"{long}x{short}" if value >= 1 else f"{short}x{long}"


def openai_video(task: Mapping[str, Any], requested: Mapping[str, Any] | None = None) -> JSON:
    """The OpenAI video object of a relay task's public JSON; ``requested``: the neutral
    input it was created with, for what the task learns only at its first poll (its model,
    length and shape)."""
    asked = requested or {}
    status = STATUSES.get(str(task.get("status")), "queued")
    progress = task.get("progress")
    if status == "completed" or not isinstance(progress, int):
        progress = PROGRESS[status]
    error = None
    if status == "failed":
        relay_error = task.get("error") or {}
        error = {
            "code": relay_error.get("code") or str(task.get("status")),
            "message": relay_error.get("message") or f"the task {task.get('status')}",
        }
    duration = task.get("duration") or asked.get("duration")
    finished = task.get("completed_at")
    return {
        "id": task["id"],
        "object": "video",
        "model": task.get("model") or asked.get("model") or "",
        "status": status,
        "progress": max(0, min(100, progress)),
        "created_at": unix(task.get("created_at")),
        "completed_at": unix(finished) if finished else None,
        "expires_at": None,
        "seconds": str(duration) if duration else "",
        "size": size_of(
            task.get("ratio") or asked.get("ratio"),
            task.get("resolution") or asked.get("resolution"),
        ),
        "prompt": None,
        "remixed_from_video_id": None,
        "error": error,
    }


def deleted(video_id: str) -> JSON:
    return {"id": video_id, "object": "video.deleted", "deleted": True}
