"""The sandbox's pure core: what a simulated Seedance task is and what it looks like at ``now``.

Nothing here does I/O or reads a clock; the dialect modules (``relay.sandbox.ark`` and, later,
the unified and seedance2ink emulations) turn these values into each provider's HTTP shape.

Timeline of a task: ``queued`` for ``queued_seconds`` after ``created_at``, then ``running`` for
``running_seconds``, then its outcome. The outcome is chosen by keywords in the prompt (any
case), so a caller can steer a task without any extra parameter a real provider would reject:

- ``[fail]``: the task fails with Ark's output-moderation error (:data:`FAILURE_CODE`).
- ``[expire]``: the task ends ``expired``, as Ark reports a task past ``execution_expires_after``.
- ``[slow]``: the running phase lasts five times longer (:data:`SLOW_FACTOR`), to exercise the
  relay's adaptive polling against a task that overruns its expected duration.

Stateless ids: a restarted relay keeps tracking its tasks in its database while the sandbox's
memory is gone, so the whole timeline and every reported field live in the id itself::

    cgt-YYYYMMDDHHMMSS-<40 lowercase base32 characters>

The timestamp is the creation time in Beijing time (UTC+8), as real Ark ids have it. The payload
packs 25 bytes: created_at in ms (6), queued ms (4), running ms (4), seed (4), a 16-bit field
(outcome, generate_audio, return_last_frame, resolution, ratio, duration, model), a random
nonce (3, so two tasks created in the same millisecond differ) and a checksum (2, so a
mistyped id answers 404 instead of an invented task). A model name outside :data:`MODELS`
cannot be packed; after a restart such a task reports :data:`DEFAULT_MODEL`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone

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
)
"""Model names an id can carry; index 7 of the 3-bit field means "another name"."""
RESOLUTIONS: tuple[str, ...] = ("480p", "720p", "1080p")
RATIOS: tuple[str, ...] = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")
MIN_DURATION, MAX_DURATION = 4, 15
FPS = 24
SLOW_FACTOR = 5

FAILURE_CODE = "OutputVideoSensitiveContentDetected.PolicyViolation"
FAILURE_MESSAGE = (
    "The request failed because the output video may be related to policy restrictions."
)

RETENTION = timedelta(days=7)
"""Ark answers for a task during 7 days after its creation, then 404s."""
CANCELLED_RETENTION = timedelta(hours=24)
"""Ark drops a cancelled record 24 hours after the cancellation."""
URL_LIFETIME_SECONDS = 86400

BEIJING = timezone(timedelta(hours=8))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_U32 = 2**32 - 1
_ID_RE = re.compile(r"cgt-(\d{14})-([a-z2-7]{40})")
_URL_KEY = b"seedance-relay-sandbox"
"""Not a secret: it only makes the sandbox's signed-looking URLs checkable."""

# Pixel area per resolution tier. Ark bills every ratio of a tier the same, and
# (duration * fps + 1) frames reproduce apiyi's real sample exactly (5 s 720p: 108900 tokens).
_TIER_AREA = {"480p": 854 * 480, "720p": 1280 * 720, "1080p": 1920 * 1080}


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"


_OUTCOMES: tuple[Outcome, ...] = (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.EXPIRED)


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """How long simulated tasks take. Out-of-range values raise ``ValueError``."""

    queued_seconds: float = 2.0
    running_seconds: float = 6.0

    def __post_init__(self) -> None:
        # Both phases travel in the id as unsigned 32-bit milliseconds, [slow] included.
        if not 0 <= self.queued_seconds * 1000 <= _MAX_U32:
            raise ValueError("queued_seconds must be between 0 and about 49 days")
        if not 0 <= self.running_seconds * 1000 * SLOW_FACTOR <= _MAX_U32:
            raise ValueError("running_seconds must be between 0 and about 9 days")


@dataclass(frozen=True, slots=True)
class SandboxTask:
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
    """A task as of one instant: what every dialect reports."""

    task: SandboxTask
    status: TaskStatus
    updated_at: datetime


def outcome_for_prompt(prompt: str) -> Outcome:
    lowered = prompt.lower()
    if "[fail]" in lowered:
        return Outcome.FAILED
    if "[expire]" in lowered:
        return Outcome.EXPIRED
    return Outcome.SUCCEEDED


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
) -> SandboxTask:
    """A task created at ``now``; ``nonce`` (24 bits) comes from the caller's randomness.

    Values are expected already validated by the dialect (``ratio`` resolved from
    ``adaptive``, ``duration`` from -1). ``seed=None`` picks one deterministically.
    """
    created_ms = _ms(now)
    running = settings.running_seconds * (SLOW_FACTOR if "[slow]" in prompt.lower() else 1)
    unnamed = SandboxTask(
        id="",
        created_at=_from_ms(created_ms),
        queued_seconds=round(settings.queued_seconds * 1000) / 1000,
        running_seconds=round(running * 1000) / 1000,
        outcome=outcome_for_prompt(prompt),
        model=model,
        resolution=resolution,
        ratio=ratio,
        duration=duration,
        seed=_derived_seed(created_ms, nonce) if seed is None else seed,
        generate_audio=generate_audio,
        return_last_frame=return_last_frame,
    )
    return replace(unnamed, id=encode_task_id(unnamed, nonce))


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


# -- ids ------------------------------------------------------------------------------------


def encode_task_id(task: SandboxTask, nonce: int) -> str:
    """The id of ``task`` (its own ``id`` field is ignored)."""
    model_index = MODELS.index(task.model) if task.model in MODELS else 7
    packed = (
        _OUTCOMES.index(task.outcome) << 14
        | int(task.generate_audio) << 13
        | int(task.return_last_frame) << 12
        | RESOLUTIONS.index(task.resolution) << 10
        | RATIOS.index(task.ratio) << 7
        | task.duration << 3
        | model_index
    )
    body = (
        _ms(task.created_at).to_bytes(6, "big")
        + round(task.queued_seconds * 1000).to_bytes(4, "big")
        + round(task.running_seconds * 1000).to_bytes(4, "big")
        + task.seed.to_bytes(4, "big")
        + packed.to_bytes(2, "big")
        + (nonce & 0xFFFFFF).to_bytes(3, "big")
    )
    payload = base64.b32encode(body + _checksum(body)).decode("ascii").lower()
    stamp = task.created_at.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")
    return f"cgt-{stamp}-{payload}"


def decode_task_id(task_id: str) -> SandboxTask | None:
    """The task an id describes, or ``None`` when the id is not one the sandbox made."""
    match = _ID_RE.fullmatch(task_id)
    if match is None:
        return None
    try:
        raw = base64.b32decode(match.group(2).upper())
    except (binascii.Error, ValueError):
        return None
    body, check = raw[:23], raw[23:]
    if len(raw) != 25 or not hmac.compare_digest(check, _checksum(body)):
        return None
    created_ms = int.from_bytes(body[0:6], "big")
    packed = int.from_bytes(body[18:20], "big")
    outcome, resolution, ratio = packed >> 14, (packed >> 10) & 3, (packed >> 7) & 7
    duration, model_index = (packed >> 3) & 15, packed & 7
    if (
        outcome >= len(_OUTCOMES)
        or resolution >= len(RESOLUTIONS)
        or ratio >= len(RATIOS)
        or not MIN_DURATION <= duration <= MAX_DURATION
    ):
        return None
    try:
        created_at = _from_ms(created_ms)
        stamp = created_at.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")
    except OverflowError:
        return None
    if stamp != match.group(1):
        return None
    return SandboxTask(
        id=task_id,
        created_at=created_at,
        queued_seconds=int.from_bytes(body[6:10], "big") / 1000,
        running_seconds=int.from_bytes(body[10:14], "big") / 1000,
        outcome=_OUTCOMES[outcome],
        model=MODELS[model_index] if model_index < len(MODELS) else DEFAULT_MODEL,
        resolution=RESOLUTIONS[resolution],
        ratio=RATIOS[ratio],
        duration=duration,
        seed=int.from_bytes(body[14:18], "big"),
        generate_audio=bool(packed >> 13 & 1),
        return_last_frame=bool(packed >> 12 & 1),
    )


def _checksum(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()[:2]


def _derived_seed(created_ms: int, nonce: int) -> int:
    digest = hashlib.sha256(f"seed:{created_ms}:{nonce}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _ms(moment: datetime) -> int:
    # timedelta arithmetic is exact where float timestamps can round a millisecond away.
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


# -- signed-looking file URLs ---------------------------------------------------------------


def file_signature(name: str, tos_date: str, expires: str) -> str:
    """The ``X-Tos-Signature`` of file ``name`` signed at ``tos_date`` (``YYYYMMDDTHHMMSSZ``)
    for ``expires`` seconds; covering the lifetime stops a caller from extending it."""
    message = f"{name}\n{tos_date}\n{expires}".encode()
    return hmac.new(_URL_KEY, message, hashlib.sha256).hexdigest()


def signed_file_url(files_base: str, name: str, signed_at: datetime) -> str:
    """A URL shaped like Ark's TOS links (``X-Tos-Expires=86400``), checkable by the sandbox."""
    date, expires = tos_date(signed_at), str(URL_LIFETIME_SECONDS)
    return (
        f"{files_base}/{name}?X-Tos-Algorithm=TOS4-HMAC-SHA256&X-Tos-Date={date}"
        f"&X-Tos-Expires={expires}&X-Tos-Signature={file_signature(name, date, expires)}"
    )


def tos_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_tos_date(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


# -- the book of tasks one sandbox instance has seen ----------------------------------------


class TaskBook:
    """What one sandbox instance remembers beyond the ids: tasks it created (their exact
    model name), cancellations and deletions. All of it is lost on restart, on purpose:
    after a restart a cancelled task resumes its timeline and a deleted one reappears,
    which is the price of stateless ids and harmless for a test double.
    """

    def __init__(self) -> None:
        self.tasks: dict[str, SandboxTask] = {}
        self.cancelled: dict[str, datetime] = {}
        self.deleted: set[str] = set()

    def add(self, task: SandboxTask) -> None:
        self.tasks[task.id] = task

    def lookup(self, task_id: str, now: datetime) -> TaskView | None:
        if task_id in self.deleted:
            return None
        task = self.tasks.get(task_id) or decode_task_id(task_id)
        if task is None or now - task.created_at >= RETENTION:
            return None
        cancelled_at = self.cancelled.get(task_id)
        if cancelled_at is not None:
            if now - cancelled_at >= CANCELLED_RETENTION:
                return None
            return TaskView(task, TaskStatus.CANCELLED, cancelled_at)
        return TaskView(task, status_at(task, now), updated_at(task, now))

    def cancel(self, task_id: str, now: datetime) -> TaskStatus | None:
        """Cancel a queued task or forget a finished one, as Ark's DELETE does.

        Returns the status the task had (``running`` means nothing happened: Ark refuses),
        or ``None`` for an unknown task.
        """
        view = self.lookup(task_id, now)
        if view is None:
            return None
        if view.status is TaskStatus.QUEUED:
            self.cancelled[task_id] = now
        elif view.status.terminal:
            self.deleted.add(task_id)
            self.tasks.pop(task_id, None)
            self.cancelled.pop(task_id, None)
        return view.status
