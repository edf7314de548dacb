"""Pure rules for copying a task's files into the output store (``relay.copies.values``).

With outputs on, a task's success does not announce itself at once:

1. ``hold_success``: the change that makes a task succeed also writes one pending copy per
   file (the video, and the last frame when there is one), and its ``task.succeeded`` waits,
   at most ``CopyPolicy.wait`` (``announce_by`` on the copies).
2. ``stored`` / ``failed`` say what one try left of a copy; a failed try is retried after
   ``CopyPolicy.retry_delays`` until ``max_attempts``.
3. ``settle`` folds the copies back into the task: its ``output`` summary, ``video_url`` =
   the stored copy's stable link once there is one (``provider_video_url`` stays the
   provider's), and the event owed:
   - ``task.succeeded`` as soon as the video's copy settled, with the stable link, or at
     ``announce_by`` whatever its state: then with the provider's link and a
     ``relay_notice`` saying why, so the outcome is never held longer than the wait, nor lost
     because a copy fails;
   - ``task.output_stored`` when the video is stored after ``task.succeeded`` went out
     without it, carrying the stable link.
   The last frame is copied alongside but waited for by nobody: its link becomes the stable
   one whenever its copy lands.
4. ``removed``: the copies deleted (retention, or the account asked), the task pointing at
   the provider's link again and recording when and why.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from relay.copies.values import (
    TRIES_KEPT,
    CopyState,
    CopyTry,
    OutputCopy,
    OutputKind,
    StoredFile,
    TaskOutput,
)
from relay.models import EventType, Task, TaskStatus, iso
from relay.transitions import Change, IdFactory, emit

LinkFactory = Callable[[OutputCopy], str]
"""The stable link of a stored copy (``relay.outputs.links``)."""


@dataclass(frozen=True, slots=True)
class CopyPolicy:
    wait: float = 60.0
    """Seconds a ``task.succeeded`` waits for the task's copies (0: it goes out at once)."""
    max_attempts: int = 8
    retry_delays: tuple[float, ...] = (10, 60, 300, 1800, 3600, 3 * 3600, 6 * 3600)
    """Seconds before the next try after the first, second, ... failed one (the last repeats)."""

    def __post_init__(self) -> None:
        if self.wait < 0 or self.max_attempts < 1 or not self.retry_delays:
            raise ValueError("a copy policy needs wait >= 0, max_attempts >= 1 and delays")

    def delay(self, attempts: int) -> timedelta:
        return timedelta(seconds=self.retry_delays[min(attempts, len(self.retry_delays)) - 1])


def hold_success(
    change: Change,
    policy: CopyPolicy,
    now: datetime,
    new_event_id: IdFactory,
    new_copy_id: IdFactory,
) -> Change:
    """``change`` with the copies of its task's files, when it is the one that makes the task
    succeed; its ``task.succeeded`` is held for them (or, with no wait, re-emitted with the
    pending ``output``). Any other change is returned as it is."""
    task = change.task
    if (
        task.status is not TaskStatus.SUCCEEDED
        or task.output is not None
        or task.provider_video_url is None
        or not any(e.type is EventType.TASK_SUCCEEDED for e in change.events)
    ):
        return change
    announce_by = now + timedelta(seconds=policy.wait) if policy.wait > 0 else None
    sources = {OutputKind.VIDEO: task.provider_video_url}
    if task.provider_last_frame_url is not None:
        sources[OutputKind.LAST_FRAME] = task.provider_last_frame_url
    copies = tuple(
        OutputCopy(
            id=new_copy_id(),
            account_id=task.account_id,
            task_id=task.id,
            kind=kind,
            state=CopyState.PENDING,
            created_at=now,
            updated_at=now,
            next_attempt_at=now,
            announce_by=announce_by,
        )
        for kind in sources
    )
    # The success event is the change's last (a terminal status ends the task's events).
    events = tuple(e for e in change.events if e.type is not EventType.TASK_SUCCEEDED)
    held = replace(task, output=TaskOutput(CopyState.PENDING), sequence=task.sequence - 1)
    if announce_by is not None:
        return Change(held, events, change.copies + copies)
    now_out = emit(
        held,
        EventType.TASK_SUCCEEDED,
        now,
        new_event_id,
        _notice(held, TaskOutput(CopyState.PENDING)),
    )
    return Change(now_out.task, events + now_out.events, change.copies + copies)


def stored(copy: OutputCopy, now: datetime, key: str, file: StoredFile) -> OutputCopy:
    """``copy`` after a try that stored its file under ``key``."""
    return replace(
        copy,
        state=CopyState.STORED,
        attempts=copy.attempts + 1,
        next_attempt_at=None,
        object_key=key,
        size=file.size,
        sha256=file.sha256,
        content_type=file.content_type,
        stored_at=now,
        error=None,
        updated_at=now,
        tries=(*copy.tries, CopyTry(now))[-TRIES_KEPT:],
    )


def failed(copy: OutputCopy, now: datetime, error: str, policy: CopyPolicy) -> OutputCopy:
    """``copy`` after a failed try: due again later, or failed for good after the last."""
    attempts = copy.attempts + 1
    last = attempts >= policy.max_attempts
    return replace(
        copy,
        state=CopyState.FAILED if last else CopyState.PENDING,
        attempts=attempts,
        next_attempt_at=None if last else now + policy.delay(attempts),
        error=error,
        updated_at=now,
        tries=(*copy.tries, CopyTry(now, error))[-TRIES_KEPT:],
    )


def summarize(copies: Sequence[OutputCopy]) -> TaskOutput:
    """The task's ``output`` from its copies: its status is the video's (what receivers
    wait for); the last frame is kept alongside, whenever its own copy lands."""
    by_kind = {c.kind: c for c in copies}
    video = by_kind.get(OutputKind.VIDEO)
    if video is None:
        return TaskOutput(CopyState.PENDING, error=_errors(copies))
    frame = by_kind.get(OutputKind.LAST_FRAME)
    return TaskOutput(
        status=video.state,
        video=_file(video),
        last_frame=_file(frame) if frame is not None else None,
        stored_at=video.stored_at,
        error=_errors(copies),
        deleted_at=video.deleted_at,
        deleted_reason=video.deleted_reason,
    )


def settle(
    task: Task,
    copies: Sequence[OutputCopy],
    now: datetime,
    new_event_id: IdFactory,
    link: LinkFactory,
) -> Change:
    """The task after its ``copies`` changed, with the event that is owed now, if one is;
    the copies travel in the change (written with the task)."""
    by_kind = {c.kind: c for c in copies}
    video, frame = by_kind.get(OutputKind.VIDEO), by_kind.get(OutputKind.LAST_FRAME)
    output = summarize(copies)
    keep = video is not None and video.state is CopyState.STORED
    updated = replace(
        task,
        output=output,
        updated_at=now,
        video_url=link(video) if keep and video else task.provider_video_url,
        video_url_expires_at=None if keep else task.provider_video_url_expires_at,
        last_frame_url=link(frame)
        if frame is not None and frame.state is CopyState.STORED
        else task.provider_last_frame_url,
    )
    deadlines = [c.announce_by for c in copies if c.announce_by is not None]
    if deadlines and (output.status is not CopyState.PENDING or min(deadlines) <= now):
        announced = emit(
            updated, EventType.TASK_SUCCEEDED, now, new_event_id, _notice(updated, output)
        )
        settled = tuple(replace(c, announce_by=None) for c in copies)
        return Change(announced.task, announced.events, settled)
    was_stored = task.output is not None and task.output.status is CopyState.STORED
    if not deadlines and output.status is CopyState.STORED and not was_stored:
        late = emit(updated, EventType.TASK_OUTPUT_STORED, now, new_event_id)
        return Change(late.task, late.events, tuple(copies))
    return Change(updated, (), tuple(copies))


def removed(
    task: Task,
    copies: Sequence[OutputCopy],
    which: Collection[str],
    now: datetime,
    reason: str,
    new_event_id: IdFactory,
    link: LinkFactory,
) -> Change:
    """The task once the copies ``which`` names are deleted (their objects are gone) and the
    others no longer tried: its links are the provider's again."""
    gone = [
        replace(
            c,
            state=CopyState.DELETED,
            next_attempt_at=None,
            deleted_at=now,
            deleted_reason=reason,
            updated_at=now,
        )
        if c.id in which or c.state is CopyState.PENDING
        else c
        for c in copies
    ]
    return settle(task, gone, now, new_event_id, link)


def _file(copy: OutputCopy) -> StoredFile | None:
    if copy.state is not CopyState.STORED or copy.size is None:
        return None
    return StoredFile(copy.size, copy.sha256 or "", copy.content_type or "")


def _errors(copies: Sequence[OutputCopy]) -> str | None:
    errors = [f"{c.kind.value}: {c.error}" for c in copies if c.error is not None]
    return "; ".join(errors) or None


def _notice(task: Task, output: TaskOutput) -> dict[str, str] | None:
    """What a ``task.succeeded`` without its stored video says about it."""
    if output.status is CopyState.STORED:
        return None
    expires = iso(task.provider_video_url_expires_at)
    link = "video_url is the provider's own link" + (
        f", which expires at {expires}" if expires else ""
    )
    if output.status is CopyState.PENDING:
        return {
            "code": "output_pending",
            "message": f"the video is not stored yet: {link}; a task.output_stored event "
            "carries the stored copy's link once it is",
        }
    if output.status is CopyState.DELETED:
        return {
            "code": "output_deleted",
            "message": f"the stored video was deleted ({output.deleted_reason}): {link}",
        }
    return {
        "code": "output_not_stored",
        "message": f"the video could not be stored ({output.error}): {link}",
    }
