"""What a simulated Seedance task is and what it looks like at ``now``: pure values, no I/O.

Every flavor of the sandbox (the Ark mirrors, the new-api gateways, seedance2.ink) reports
the same underlying task; the dialect modules only change its shape.

Timeline of a task: ``queued`` for ``queued_seconds`` after ``created_at``, then ``running``
for ``running_seconds``, then its outcome. The outcome is chosen by keywords in the prompt
(any case), so a caller can steer a task without any extra parameter a real provider would
reject:

- ``[fail]``: the task fails with Ark's output-moderation error (:data:`FAILURE_CODE`);
  each dialect words that failure its own way.
- ``[fail@FLAVOR]`` (``[fail@seedance2ink]``, ...): the same, only at that flavor, so a
  task submitted again elsewhere (a route's resubmission) can succeed there.
- ``[expire]``: the task ends ``expired``, as Ark reports a task past
  ``execution_expires_after`` (each dialect shows that its own way, see its module).
- ``[slow]``: the running phase lasts five times longer (:data:`SLOW_FACTOR`), to exercise
  the relay's adaptive polling against a task that overruns its expected duration.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from relay.models import TaskStatus

DEFAULT_MODEL = "doubao-seedance-2-0-fast-260128"
MODELS: tuple[str, ...] = (
    DEFAULT_MODEL,
    "doubao-seedance-2-0-260128",
    "dreamina-seedance-2-0-fast-260128",
    "dreamina-seedance-2-0-260128",
    "doubao-seedance-2.0",
    "seedance-2.0",
    "seedance-2.0-fast",
    "seedance-1.5-pro",
)
"""Model names an id can carry (4 bits, index 15 meaning "another name")."""
RESOLUTIONS: tuple[str, ...] = ("480p", "720p", "1080p")
RATIOS: tuple[str, ...] = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")
MIN_DURATION, MAX_DURATION = 4, 15
FPS = 24
SLOW_FACTOR = 5
MAX_PHASE_MS = 2**32 - 1
"""Both phases travel in the id as unsigned 32-bit milliseconds, [slow] included."""

FAILURE_CODE = "OutputVideoSensitiveContentDetected.PolicyViolation"
FAILURE_MESSAGE = (
    "The request failed because the output video may be related to policy restrictions."
)
EXECUTION_EXPIRES_AFTER = 172800
"""Ark's default ``execution_expires_after`` (48 h), reported by the mirrors that show it."""

RETENTION = timedelta(days=7)
"""Every flavor answers for a task during 7 days after its creation (Ark's window), then
forgets it."""
CANCELLED_RETENTION = timedelta(hours=24)
"""Ark drops a cancelled record 24 hours after the cancellation."""
URL_LIFETIME_SECONDS = 86400
DEFAULT_VIDEO_BYTES = 65_536
"""Each task's video, in bytes (``sandbox.video_bytes``): small, so the suite stays fast;
benchmarks ask for tens of megabytes (the bytes are in :mod:`relay.sandbox.media`)."""
MIN_VIDEO_BYTES, MAX_VIDEO_BYTES = 64, 2**40

# Pixel area per resolution tier. Ark bills every ratio of a tier the same, and
# (duration * fps + 1) frames reproduce apiyi's real sample exactly (5 s 720p: 108900 tokens).
_TIER_AREA = {"480p": 854 * 480, "720p": 1280 * 720, "1080p": 1920 * 1080}


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"


OUTCOMES: tuple[Outcome, ...] = (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.EXPIRED)


class Flavor(enum.StrEnum):
    """One emulated provider: the first path segment under the sandbox, the name the
    control API filters faults by, and a field of every id (an id answers only at the
    flavor that issued it, as a real provider knows only its own tasks)."""

    ARK = "ark"
    APIYI = "apiyi"
    CUBICSPACES = "cubicspaces"
    NACI = "naci"
    VASTNUM = "vastnum"
    NEWAPI = "newapi"
    SEEDANCE2INK = "seedance2ink"


FLAVORS: tuple[Flavor, ...] = tuple(Flavor)
"""In id order: an id stores a flavor as its index here, so only append."""


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """How long simulated tasks take and how big their videos are. Out-of-range values
    raise ``ValueError``."""

    queued_seconds: float = 2.0
    running_seconds: float = 6.0
    video_bytes: int = DEFAULT_VIDEO_BYTES

    def __post_init__(self) -> None:
        if not 0 <= self.queued_seconds * 1000 <= MAX_PHASE_MS:
            raise ValueError("queued_seconds must be between 0 and about 49 days")
        if not 0 <= self.running_seconds * 1000 * SLOW_FACTOR <= MAX_PHASE_MS:
            raise ValueError("running_seconds must be between 0 and about 9 days")
        if not MIN_VIDEO_BYTES <= self.video_bytes <= MAX_VIDEO_BYTES:
            raise ValueError(f"video_bytes must be from {MIN_VIDEO_BYTES} to {MAX_VIDEO_BYTES}")


@dataclass(frozen=True, slots=True)
class SandboxTask:
    """Everything an id carries. ``nonce`` (24 bits) tells apart tasks created in the same
    millisecond; ``has_images`` is whether the request had input images (new-api's
    ``action``); ``watermark`` is echoed by naci's usage block."""

    id: str
    created_at: datetime
    queued_seconds: float
    running_seconds: float
    outcome: Outcome
    model: str = DEFAULT_MODEL
    resolution: str = "720p"
    ratio: str = "16:9"
    duration: int = 5
    seed: int = 0
    fps: int = FPS
    generate_audio: bool = True
    return_last_frame: bool = False
    draft: bool = False
    watermark: bool = False
    has_images: bool = False
    flavor: Flavor = Flavor.ARK
    nonce: int = 0

    @property
    def started_at(self) -> datetime:
        return self.created_at + timedelta(seconds=self.queued_seconds)

    @property
    def finished_at(self) -> datetime:
        return self.started_at + timedelta(seconds=self.running_seconds)

    @property
    def usage_tokens(self) -> int:
        return round((self.duration * self.fps + 1) * _TIER_AREA[self.resolution] / 1024)


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task as of one instant: what every dialect reports.

    ``prompt`` is known only to the sandbox instance that created the task (an id cannot
    carry free text); after a restart it reads ``""``.
    """

    task: SandboxTask
    status: TaskStatus
    updated_at: datetime
    prompt: str = ""
    urls_signed_at: datetime | None = None
    """When the file URLs handed out now were signed (None: at ``updated_at``)."""

    @property
    def signed_at(self) -> datetime:
        return self.urls_signed_at or self.updated_at


def outcome_for_prompt(prompt: str, flavor: Flavor | None = None) -> Outcome:
    lowered = prompt.lower()
    if "[fail]" in lowered or (flavor is not None and f"[fail@{flavor.value}]" in lowered):
        return Outcome.FAILED
    if "[expire]" in lowered:
        return Outcome.EXPIRED
    return Outcome.SUCCEEDED


def running_seconds_for(prompt: str, settings: SandboxSettings) -> float:
    slow = "[slow]" in prompt.lower()
    return settings.running_seconds * (SLOW_FACTOR if slow else 1)


def status_at(task: SandboxTask, now: datetime) -> TaskStatus:
    if now < task.started_at:
        return TaskStatus.QUEUED
    if now < task.finished_at:
        return TaskStatus.RUNNING
    return TaskStatus(task.outcome.value)


def updated_at(task: SandboxTask, now: datetime) -> datetime:
    """When the status last changed: Ark's ``updated_at`` moves only on a transition."""
    status = status_at(task, now)
    if status is TaskStatus.QUEUED:
        return task.created_at
    if status is TaskStatus.RUNNING:
        return task.started_at
    return task.finished_at


def unix(moment: datetime) -> int:
    """Whole seconds since the epoch, as every dialect's integer timestamps are."""
    return int(moment.timestamp())
