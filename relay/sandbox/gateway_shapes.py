"""What new-api-style gateways (naci, vastnum, cubicspaces' unified API, a plain new-api)
answer for a task, pure: their status machine over the upstream Ark task, the wrapped
``TaskDto``, the OpenAI-video object, and their error bodies. ``relay.sandbox.unified``
serves them.

How a gateway sees its upstream task (new-api's doubao adaptor, DIALECTS §1): before its
first upstream poll the task is ``NOT_START`` (``"0%"``, no upstream data); then Ark
``queued`` reads ``QUEUED``/``"10%"``, ``running`` ``IN_PROGRESS``/``"50%"``,
``succeeded`` ``SUCCESS``/``"100%"``, ``failed`` ``FAILURE``/``"100%"`` with the upstream
message as ``fail_reason``; anything else (Ark ``expired``) falls into the adaptor's
default branch, ``IN_PROGRESS``/``"30%"``, until the gateway's own timeout (1440 minutes
after submission) turns it into ``FAILURE`` with :data:`TIMEOUT_REASON`. Gateways poll
their upstream in the background, so a real one lags by up to 15 s; the sandbox does not
lag, except that the first poll happens :func:`first_poll_delay` after creation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from relay.models import JSON, TaskStatus
from relay.sandbox.simulation import FAILURE_CODE, FAILURE_MESSAGE, TaskView, signed_file_url
from relay.sandbox.timeline import SandboxTask, unix

GATEWAY_POLL_SECONDS = 15.0
GATEWAY_TIMEOUT = timedelta(minutes=1440)
TIMEOUT_REASON = "任务超时（1440分钟）"  # noqa: RUF001 (new-api's own full-width brackets)
PLATFORM = "54"
"""new-api's ``constant.TaskPlatform`` of its DoubaoVideo channel."""

_VIDEO_STATUS = {
    "QUEUED": "queued",
    "SUBMITTED": "queued",
    "IN_PROGRESS": "in_progress",
    "SUCCESS": "completed",
    "FAILURE": "failed",
}


@dataclass(frozen=True, slots=True)
class GatewayState:
    """A task as a gateway's database holds it at one instant."""

    status: str
    """``NOT_START``, ``QUEUED``, ``IN_PROGRESS``, ``SUCCESS`` or ``FAILURE``."""
    progress: str
    fail_reason: str
    start_time: int
    finish_time: int
    updated_at: int
    polled: bool
    """Whether the gateway has polled its upstream yet (``data`` is null before)."""

    @property
    def video_status(self) -> str:
        return _VIDEO_STATUS.get(self.status, "unknown")

    @property
    def progress_int(self) -> int:
        return int(self.progress.rstrip("%"))


def first_poll_delay(task: SandboxTask) -> timedelta:
    """When the gateway first polls upstream: half the queued phase, at most one period."""
    return timedelta(seconds=min(task.queued_seconds / 2, GATEWAY_POLL_SECONDS))


def gateway_state(view: TaskView, now: datetime) -> GatewayState:
    task = view.task
    created = unix(task.created_at)
    if now - task.created_at < first_poll_delay(task):
        return GatewayState("NOT_START", "0%", "", 0, 0, created, False)
    started = unix(task.started_at) if view.status is not TaskStatus.QUEUED else 0
    finished = unix(view.updated_at)
    if view.status is TaskStatus.SUCCEEDED:
        return GatewayState("SUCCESS", "100%", "", started, finished, finished, True)
    if view.status is TaskStatus.FAILED:
        return GatewayState("FAILURE", "100%", FAILURE_MESSAGE, started, finished, finished, True)
    timeout_at = task.created_at + GATEWAY_TIMEOUT
    if now >= timeout_at:
        at = unix(timeout_at)
        return GatewayState("FAILURE", "100%", TIMEOUT_REASON, started, at, at, True)
    changed = unix(view.updated_at)
    if view.status is TaskStatus.QUEUED:
        return GatewayState("QUEUED", "10%", "", 0, 0, changed, True)
    if view.status is TaskStatus.RUNNING:
        return GatewayState("IN_PROGRESS", "50%", "", started, 0, changed, True)
    # Ark expired (or cancelled): the doubao adaptor's default branch.
    return GatewayState("IN_PROGRESS", "30%", "", started, 0, changed, True)


def video_url(view: TaskView, files_base: str, upstream_id: str) -> str:
    """The upstream Ark video URL once succeeded, else ``""`` (Go's zero value)."""
    if view.status is not TaskStatus.SUCCEEDED:
        return ""
    return signed_file_url(files_base, f"{upstream_id}.mp4", view.signed_at)


def openai_video(
    view: TaskView,
    state: GatewayState,
    *,
    public_id: str,
    url: str,
    with_error: bool = True,
    with_task_id: bool = True,
) -> JSON:
    """The OpenAI-video object (``object: "video"``), as new-api's doubao adaptor converts a
    task (``ConvertToOpenAIVideo``): ``metadata.url`` is ``""`` until done and
    ``completed_at`` is the last update even while running. ``with_task_id``/``with_error``
    off give the generic ``Task.ToOpenAIVideo`` instead."""
    task = view.task
    body: JSON = {"id": public_id}
    if with_task_id:
        body["task_id"] = public_id
    body.update(
        {
            "object": "video",
            "model": task.model,
            "status": state.video_status,
            "progress": state.progress_int,
            "created_at": unix(task.created_at),
            "completed_at": state.updated_at,
        }
    )
    if with_error and state.polled and view.status is TaskStatus.FAILED:
        body["error"] = {"message": FAILURE_MESSAGE, "code": FAILURE_CODE}
    body["metadata"] = {"url": url}
    return body


def created_video(task: SandboxTask, public_id: str) -> JSON:
    """The answer to a create: ``status: "queued"``, ``progress: 0``, no ``completed_at``."""
    return {
        "id": public_id,
        "task_id": public_id,
        "object": "video",
        "model": task.model,
        "status": "queued",
        "progress": 0,
        "created_at": unix(task.created_at),
    }


def action(task: SandboxTask) -> str:
    """new-api's ``action``: ``generate`` with input images, else ``textGenerate``."""
    return "generate" if task.has_images else "textGenerate"


def task_dto(
    view: TaskView,
    state: GatewayState,
    *,
    public_id: str,
    data: JSON | None,
    result_url: str,
) -> JSON:
    """new-api's full ``TaskDto`` (``GET /v1/video/generations/{id}``'s ``data``)."""
    task = view.task
    body: JSON = {
        "id": db_id(public_id),
        "created_at": unix(task.created_at),
        "updated_at": state.updated_at,
        "task_id": public_id,
        "platform": PLATFORM,
        "user_id": 1,
        "group": "default",
        "channel_id": 1,
        "quota": task.usage_tokens,
        "action": action(task),
        "status": state.status,
        "fail_reason": state.fail_reason,
    }
    if state.status == "SUCCESS":
        body["result_url"] = result_url
    body.update(
        {
            "submit_time": unix(task.created_at),
            "start_time": state.start_time,
            "finish_time": state.finish_time,
            "progress": state.progress,
            "properties": {
                "input": view.prompt,
                "upstream_model_name": task.model,
                "origin_model_name": task.model,
            },
            "data": data if state.polled else None,
        }
    )
    return body


def db_id(public_id: str) -> int:
    """A stable integer standing for the gateway's database row id."""
    return int.from_bytes(hashlib.sha256(public_id.encode()).digest()[:4], "big") % 9_000_000 + 1


def derived_task_id(public_id: str) -> str:
    """The id another new-api upstream of this gateway gave the same task."""
    digest = hashlib.sha256(f"upstream:{public_id}".encode()).hexdigest()
    return "task_" + digest[:32]


def success(data: JSON | None, *, message: bool = True) -> JSON:
    """The wrapper ``{"code": "success", "message": "", "data": …}`` (naci drops the
    ``message``)."""
    if message:
        return {"code": "success", "message": "", "data": data}
    return {"code": "success", "data": data}


# -- errors ----------------------------------------------------------------------------------


def task_error(code: str, message: str) -> JSON:
    """new-api's ``TaskError`` body, as its task routes answer every refusal."""
    return {"code": code, "message": message, "data": None}


TASK_NOT_EXIST = task_error("task_not_exist", "task_not_exist")
RATE_LIMITED = task_error("fail_to_fetch_task", "当前分组上游负载已饱和，请稍后再试")  # noqa: RUF001


def invalid_token(request_id: str) -> JSON:
    return {
        "error": {
            "message": f"Invalid token (request id: {request_id})",
            "type": "new_api_error",
            "code": "",
        }
    }
