"""The Ark video-task API's bodies, as the relay's Ark door answers them, pure.

The door (``relay.doors.ark_routes``) speaks Ark so that the official Volcengine Ark SDK works
against the relay unchanged; these functions say what Ark's bodies look like
(shared/providers/DIALECTS.md §2 and §4, the SDK's ``ContentGenerationTask``):

- ``ark_task``: the Ark task object of a relay task (its public JSON, ``Task.to_json``), as
  ``GET .../tasks/{id}`` answers it, as a list item, and as the body of an Ark callback
  (``relay.delivery.formats``): ``content`` and ``usage`` once succeeded, ``error`` only
  when the task failed or expired, times as unix seconds;
- ``read_create``: an Ark create body checked and turned into the relay's provider-neutral
  input (``relay.adapters.video_input``), plus what only Ark itself can take;
- ``read_list``: the list endpoint's paging and filters;
- ``ark_error``: Ark's error envelope ``{"error": {"code", "message", "param", "type"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

JSON = dict[str, Any]

SERVICE_TIER: Final = "default"
"""The only tier Seedance 2.0 runs in (``flex`` is not offered for it)."""
EXECUTION_EXPIRES_AFTER: Final = 172_800
"""Ark's default: a task not finished 48 h after its creation expires."""
MIN_EXPIRES_AFTER, MAX_EXPIRES_AFTER = 3_600, 259_200

STATUSES: Final = ("queued", "running", "succeeded", "failed", "expired", "cancelled")
"""Ark's status words: the relay's own (``relay.models.TaskStatus``) are the same."""

_OPTIONS: Final = (
    "duration",
    "ratio",
    "resolution",
    "generate_audio",
    "seed",
    "watermark",
    "return_last_frame",
)
"""Create options the neutral input carries as they are."""
ARK_ONLY: Final = frozenset(
    {
        "camera_fixed",
        "frames",
        "draft",
        "tools",
        "priority",
        "safety_identifier",
        "output_format",
        "omni_reference_task_type",
    }
)
"""Create options only an Ark provider understands: sent natively to one, refused for others."""
_MEDIA: Final = {"image_url": "images", "video_url": "videos", "audio_url": "audios"}
MAX_PAGE_SIZE: Final = 500
MAX_TASK_IDS: Final = 500


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused: an Ark 400 (``MissingParameter`` or ``InvalidParameter``)."""

    param: str
    message: str
    code: str = "InvalidParameter"


@dataclass(frozen=True, slots=True)
class ArkCreate:
    """A checked create body."""

    neutral: JSON
    """The relay's provider-neutral input."""
    native: JSON
    """The body as Ark takes it, without ``callback_url`` and unset (null) options."""
    callback_url: str | None
    ark_only: tuple[str, ...]
    """Options given that only an Ark provider takes (``ARK_ONLY``)."""


@dataclass(frozen=True, slots=True)
class ArkListQuery:
    page_num: int = 1
    page_size: int = 10
    status: str | None = None
    task_ids: tuple[str, ...] = ()
    model: str | None = None
    service_tier: str | None = None


def invalid(param: str, detail: str) -> Refusal:
    return Refusal(
        param, f"The parameter `{param}` specified in the request is not valid: {detail}."
    )


def missing(param: str) -> Refusal:
    return Refusal(
        param,
        f"The request failed because it is missing one or multiple required parameters: `{param}`.",
        "MissingParameter",
    )


def read_create(body: Mapping[str, Any]) -> ArkCreate | Refusal:
    """Check ``body`` as Ark does; the SDK sends every option it knows, unset ones as null."""
    given = {key: value for key, value in body.items() if value is not None}
    model = given.get("model")
    if model is None:
        return missing("model")
    if not isinstance(model, str) or not model.strip():
        return invalid("model", "must be a non-empty string")
    callback_url = given.pop("callback_url", None)
    if callback_url is not None and not isinstance(callback_url, str):
        return invalid("callback_url", "must be a string")
    tier = given.get("service_tier")
    if tier is not None and tier != SERVICE_TIER:
        return invalid("service_tier", f"only {SERVICE_TIER!r} is offered for this model")
    expires = given.get("execution_expires_after")
    if expires is not None and not (
        _is_int(expires) and MIN_EXPIRES_AFTER <= expires <= MAX_EXPIRES_AFTER
    ):
        return invalid(
            "execution_expires_after",
            f"must be an integer in [{MIN_EXPIRES_AFTER}, {MAX_EXPIRES_AFTER}]",
        )
    neutral = _content(given.get("content"))
    if isinstance(neutral, Refusal):
        return neutral
    neutral["model"] = model
    neutral.update({name: given[name] for name in _OPTIONS if name in given})
    known = {"model", "content", "service_tier", "execution_expires_after", *_OPTIONS, *ARK_ONLY}
    unknown = sorted(set(given) - known)
    if unknown:
        return invalid(unknown[0], "is not a parameter of this API")
    return ArkCreate(
        neutral=neutral,
        native=given,
        callback_url=callback_url,
        ark_only=tuple(sorted(ARK_ONLY & set(given))),
    )


def _content(content: object) -> JSON | Refusal:
    """The prompt and media of Ark's ``content`` items, in the neutral form's keys."""
    if content is None or content == []:
        return missing("content")
    if not isinstance(content, list):
        return invalid("content", "must be an array of content items")
    texts: list[str] = []
    out: JSON = {}
    for item in content:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            return invalid("content", "every item must be an object with a type")
        kind = item["type"]
        if kind == "text":
            text = item.get("text")
            if not isinstance(text, str) or not text.strip():
                return invalid("content.text", "must be a non-empty string")
            texts.append(text)
            continue
        key = _MEDIA.get(kind)
        if key is None:
            return invalid("content.type", "must be one of text, image_url, video_url, audio_url")
        media = item.get(kind)
        if not isinstance(media, dict) or not isinstance(media.get("url"), str) or not media["url"]:
            return invalid(f"content.{kind}.url", "must be a non-empty string")
        role = item.get("role")
        if role is not None and not isinstance(role, str):
            return invalid("content.role", "must be a string")
        if key == "images":
            out.setdefault(key, []).append(
                {"url": media["url"], "role": role} if role else media["url"]
            )
        else:
            # Videos and audios are always references in the neutral form.
            out.setdefault(key, []).append(media["url"])
    if texts:
        out["prompt"] = "\n".join(texts)
    return out


def read_list(params: Any) -> ArkListQuery | Refusal:
    """The list query (``page_num``, ``page_size`` up to 500, ``filter.status``,
    ``filter.task_ids`` repeated, ``filter.model``, ``filter.service_tier``); ``params`` is a
    Starlette ``QueryParams`` (``getlist`` for the repeated key)."""
    numbers: dict[str, int] = {}
    for name, default, top in (("page_num", 1, None), ("page_size", 10, MAX_PAGE_SIZE)):
        raw = params.get(name)
        if raw is None or raw == "":
            numbers[name] = default
            continue
        if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
            return invalid(name, "must be a positive integer")
        value = int(raw)
        if value < 1 or (top is not None and value > top):
            return invalid(name, f"must be in [1, {top}]" if top else "must be at least 1")
        numbers[name] = value
    status = params.get("filter.status") or None
    if status is not None and status not in STATUSES:
        return invalid("filter.status", f"must be one of {', '.join(STATUSES)}")
    task_ids = tuple(dict.fromkeys(i for i in params.getlist("filter.task_ids") if i))
    if len(task_ids) > MAX_TASK_IDS:
        return invalid("filter.task_ids", f"at most {MAX_TASK_IDS} ids")
    return ArkListQuery(
        page_num=numbers["page_num"],
        page_size=numbers["page_size"],
        status=status,
        task_ids=task_ids,
        model=params.get("filter.model") or None,
        service_tier=params.get("filter.service_tier") or None,
    )


def ark_task(task: Mapping[str, Any]) -> JSON:
    """The Ark task object of a relay task's public JSON."""
    status = str(task.get("status"))
    body: JSON = {"id": task["id"], "model": task.get("model") or "", "status": status}
    if status == "succeeded":
        content: JSON = {"video_url": task.get("video_url") or ""}
        if task.get("last_frame_url"):
            content["last_frame_url"] = task["last_frame_url"]
        body["content"] = content
        usage = ark_usage(task.get("usage"))
        if usage is not None:
            body["usage"] = usage
    elif status in ("failed", "expired"):
        error = task.get("error") or {}
        body["error"] = {
            "code": error.get("provider_code") or error.get("code") or status,
            "message": error.get("message") or f"the task {status}",
        }
    body["created_at"] = unix(task.get("created_at"))
    body["updated_at"] = unix(task.get("updated_at"))
    for ark_name, name in (
        ("seed", "seed"),
        ("resolution", "resolution"),
        ("ratio", "ratio"),
        ("duration", "duration"),
        ("framespersecond", "fps"),
    ):
        if task.get(name) is not None:
            body[ark_name] = task[name]
    body["service_tier"] = SERVICE_TIER
    body["execution_expires_after"] = EXECUTION_EXPIRES_AFTER
    return body


def ark_usage(usage: object) -> JSON | None:
    """Ark's usage (tokens) from what the provider reported, if it reported tokens."""
    if not isinstance(usage, Mapping):
        return None
    completion = usage.get("completion_tokens")
    if not _is_int(completion):
        return None
    total = usage.get("total_tokens")
    return {
        "completion_tokens": completion,
        "total_tokens": total if _is_int(total) else completion,
    }


def unix(value: object) -> int:
    """Unix seconds of a relay ISO time (``2026-01-02T03:04:05Z``); 0 when there is none."""
    if not isinstance(value, str):
        return 0
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


def ark_error(code: str, message: str, param: str = "", kind: str = "BadRequest") -> JSON:
    return {"error": {"code": code, "message": message, "param": param, "type": kind}}


_BY_STATUS: Final = {
    400: ("InvalidParameter", "BadRequest"),
    401: ("AuthenticationError", "Unauthorized"),
    402: ("SetLimitExceeded", "TooManyRequests"),
    404: ("ResourceNotFound", "NotFound"),
    413: ("InvalidParameter", "BadRequest"),
    429: ("RateLimitExceeded", "TooManyRequests"),
}


def ark_status(status: int) -> tuple[int, str, str]:
    """Ark's status, code and type for a relay answer of ``status``: Ark has no 402 (an
    account's spending limit is its 429 ``SetLimitExceeded``), nor 409 (a task that cannot
    be cancelled is a 400) or 413; the relay's 5xx (a provider down or uncertain) is Ark's
    500."""
    if status == 402:
        return 429, *_BY_STATUS[402]
    if status in (409, 413, 416):
        return 400, *_BY_STATUS[400]
    if status >= 500:
        return 500, "InternalServiceError", "InternalServerError"
    code, kind = _BY_STATUS.get(status, _BY_STATUS[400])
    return status if status in _BY_STATUS else 400, code, kind


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
