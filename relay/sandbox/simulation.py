"""The sandbox's task memory and the URLs of its results: pure, no I/O, no clock of its own.

:mod:`relay.sandbox.timeline` says what a task is and how it moves, :mod:`relay.sandbox.ids`
how it travels in its id; this module creates tasks (:func:`new_task`), remembers what one
sandbox instance has seen (:class:`TaskBook`) and signs the URLs its files are served at.
The names of those two modules are re-exported here, where callers have always found them.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from relay.models import TaskStatus
from relay.sandbox.ids import IdStyle, decode_task_id, encode_task_id, from_ms, ms, style_of
from relay.sandbox.timeline import (
    CANCELLED_RETENTION,
    DEFAULT_MODEL,
    FAILURE_CODE,
    FAILURE_MESSAGE,
    FPS,
    MAX_DURATION,
    MIN_DURATION,
    MODELS,
    RATIOS,
    RESOLUTIONS,
    RETENTION,
    SLOW_FACTOR,
    URL_LIFETIME_SECONDS,
    Flavor,
    Outcome,
    SandboxSettings,
    SandboxTask,
    TaskView,
    outcome_for_prompt,
    running_seconds_for,
    status_at,
    updated_at,
)

__all__ = [
    "CANCELLED_RETENTION",
    "DEFAULT_MODEL",
    "FAILURE_CODE",
    "FAILURE_MESSAGE",
    "FPS",
    "MAX_DURATION",
    "MIN_DURATION",
    "MODELS",
    "RATIOS",
    "RESOLUTIONS",
    "RETENTION",
    "SLOW_FACTOR",
    "URL_LIFETIME_SECONDS",
    "Flavor",
    "IdStyle",
    "Outcome",
    "SandboxSettings",
    "SandboxTask",
    "TaskBook",
    "TaskView",
    "decode_task_id",
    "encode_task_id",
    "file_signature",
    "new_task",
    "outcome_for_prompt",
    "parse_tos_date",
    "public_file_url",
    "signed_file_url",
    "status_at",
    "tos_date",
    "updated_at",
]

_URL_KEY = b"seedance-relay-sandbox"
"""Not a secret: it only makes the sandbox's signed-looking URLs checkable."""
_MAX_REMEMBERED = 100_000
"""Tasks one instance remembers in full (exact model name, prompt); older ones are still
answered from their ids alone, as after a restart."""


def new_task(
    *,
    now: datetime,
    settings: SandboxSettings,
    nonce: int,
    prompt: str,
    model: str = DEFAULT_MODEL,
    resolution: str = "720p",
    ratio: str = "16:9",
    duration: int = 5,
    seed: int | None = None,
    generate_audio: bool = True,
    return_last_frame: bool = False,
    watermark: bool = False,
    has_images: bool = False,
    flavor: Flavor = Flavor.ARK,
    style: IdStyle = IdStyle.CGT,
) -> SandboxTask:
    """A task created at ``now``; ``nonce`` (24 bits) comes from the caller's randomness.

    Values are expected already validated by the dialect (``ratio`` resolved from
    ``adaptive``, ``duration`` from -1). ``seed=None`` picks one deterministically.
    """
    created_ms = ms(now)
    unnamed = SandboxTask(
        id="",
        created_at=from_ms(created_ms),
        queued_seconds=round(settings.queued_seconds * 1000) / 1000,
        running_seconds=round(running_seconds_for(prompt, settings) * 1000) / 1000,
        outcome=outcome_for_prompt(prompt, flavor),
        model=model,
        resolution=resolution,
        ratio=ratio,
        duration=duration,
        seed=_derived_seed(created_ms, nonce) if seed is None else seed,
        generate_audio=generate_audio,
        return_last_frame=return_last_frame,
        watermark=watermark,
        has_images=has_images,
        flavor=flavor,
        nonce=nonce & 0xFFFFFF,
    )
    return replace(unnamed, id=encode_task_id(unnamed, style))


def _derived_seed(created_ms: int, nonce: int) -> int:
    digest = hashlib.sha256(f"seed:{created_ms}:{nonce}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


# -- the book of tasks one sandbox instance has seen ----------------------------------------


class TaskBook:
    """What one sandbox instance remembers beyond the ids: tasks it created (their exact
    model name and prompt), cancellations and deletions. All of it is lost on restart, on
    purpose: after a restart a cancelled task resumes its timeline and a deleted one
    reappears, which is the price of stateless ids and harmless for a test double.
    """

    def __init__(self) -> None:
        self.tasks: dict[str, SandboxTask] = {}
        self.prompts: dict[str, str] = {}
        self.cancelled: dict[str, datetime] = {}
        self.deleted: set[str] = set()

    def add(self, task: SandboxTask, prompt: str = "") -> None:
        self.tasks[task.id] = task
        self.prompts[task.id] = prompt
        if len(self.tasks) > _MAX_REMEMBERED:
            oldest = next(iter(self.tasks))
            del self.tasks[oldest]
            self.prompts.pop(oldest, None)

    def listed(self, now: datetime, flavor: Flavor) -> list[TaskView]:
        """The tasks ``flavor`` created that it still knows, newest first (Ark's list)."""
        views = (self.lookup(task_id, now, flavor=flavor) for task_id in reversed(self.tasks))
        return [view for view in views if view is not None]

    def lookup(
        self,
        task_id: str,
        now: datetime,
        *,
        flavor: Flavor | None = None,
        style: IdStyle | None = None,
    ) -> TaskView | None:
        """The task as of ``now``, or ``None`` when unknown, too old, or not one that
        ``flavor`` issued in ``style`` (a provider knows only its own ids)."""
        if task_id in self.deleted:
            return None
        if style is not None and style_of(task_id) is not style:
            return None
        task = self.tasks.get(task_id) or decode_task_id(task_id)
        if task is None or now - task.created_at >= RETENTION:
            return None
        if flavor is not None and task.flavor is not flavor:
            return None
        prompt = self.prompts.get(task_id, "")
        cancelled_at = self.cancelled.get(task_id)
        if cancelled_at is not None:
            if now - cancelled_at >= CANCELLED_RETENTION:
                return None
            return TaskView(task, TaskStatus.CANCELLED, cancelled_at, prompt)
        changed = updated_at(task, now)
        return TaskView(
            task,
            status_at(task, now),
            changed,
            prompt,
            urls_signed_at=url_signing_time(changed, now),
        )

    def cancel(
        self,
        task_id: str,
        now: datetime,
        *,
        flavor: Flavor | None = None,
        style: IdStyle | None = None,
    ) -> TaskStatus | None:
        """Cancel a queued task or forget a finished one, as Ark's DELETE does.

        Returns the status the task had (``running`` means nothing happened: Ark refuses),
        or ``None`` for an unknown task.
        """
        view = self.lookup(task_id, now, flavor=flavor, style=style)
        if view is None:
            return None
        if view.status is TaskStatus.QUEUED:
            self.cancelled[task_id] = now
        elif view.status.terminal:
            self.deleted.add(task_id)
            self.tasks.pop(task_id, None)
            self.prompts.pop(task_id, None)
            self.cancelled.pop(task_id, None)
        return view.status

    def cancel_active(
        self,
        task_id: str,
        now: datetime,
        *,
        flavor: Flavor | None = None,
        style: IdStyle | None = None,
    ) -> TaskStatus | None:
        """Cancel a queued or running task, as seedance2.ink does; a finished one is left
        alone. Returns the status the task had, or ``None`` for an unknown task."""
        view = self.lookup(task_id, now, flavor=flavor, style=style)
        if view is None:
            return None
        if not view.status.terminal:
            self.cancelled[task_id] = now
        return view.status


# -- the URLs of results --------------------------------------------------------------------


def file_signature(name: str, tos_date: str, expires: str) -> str:
    """The ``X-Tos-Signature`` of file ``name`` signed at ``tos_date`` (``YYYYMMDDTHHMMSSZ``)
    for ``expires`` seconds; covering the lifetime stops a caller from extending it."""
    message = f"{name}\n{tos_date}\n{expires}".encode()
    return hmac.new(_URL_KEY, message, hashlib.sha256).hexdigest()


def url_signing_time(finished_at: datetime, now: datetime) -> datetime:
    """When the file URLs a query answers with now were signed.

    A finished task's URLs are signed when it finishes and stay the same for their 24 h
    lifetime; a query after that gets them signed again, for the next 24 h window, while
    the provider keeps the task. Whether Ark re-signs is undocumented; a sandbox that does
    lets the relay's refresh of expired URLs be exercised, and within a window the answer
    stays byte-for-byte stable, as a real one would.
    """
    lifetime = timedelta(seconds=URL_LIFETIME_SECONDS)
    if now < finished_at + lifetime:
        return finished_at
    return finished_at + ((now - finished_at) // lifetime) * lifetime


def signed_file_url(files_base: str, name: str, signed_at: datetime) -> str:
    """A URL shaped like Ark's TOS links (``X-Tos-Expires=86400``), checkable by the sandbox."""
    date, expires = tos_date(signed_at), str(URL_LIFETIME_SECONDS)
    return (
        f"{files_base}/{name}?X-Tos-Algorithm=TOS4-HMAC-SHA256&X-Tos-Date={date}"
        f"&X-Tos-Expires={expires}&X-Tos-Signature={file_signature(name, date, expires)}"
    )


def public_file_url(bucket_base: str, task_id: str) -> str:
    """seedance2.ink's result URL: a public bucket object, no signature and no expiry."""
    return f"{bucket_base}/open-api-results/{task_id}.mp4"


def tos_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_tos_date(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
