"""The values of output copies: one ``OutputCopy`` per file a task produced (the video, and
its last frame when the provider gives one), and the ``TaskOutput`` summary on the task."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TRIES_KEPT = 10
"""A copy keeps its latest tries for the task's timeline."""


class OutputKind(enum.StrEnum):
    VIDEO = "video"
    LAST_FRAME = "last_frame"


class CopyState(enum.StrEnum):
    PENDING = "pending"
    """Not stored yet: due again at ``next_attempt_at``."""
    STORED = "stored"
    FAILED = "failed"
    """Every try failed; the provider's link is all there is."""
    DELETED = "deleted"
    """Stored, then removed (retention, or the account asked)."""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class CopyTry:
    """One try at a copy: when it ended, and why it failed (None: it stored the file)."""

    at: datetime
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.timestamp(), "error": self.error}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CopyTry:
        return cls(datetime.fromtimestamp(data["at"], UTC), data.get("error"))


@dataclass(frozen=True, slots=True)
class OutputCopy:
    """One file of a task to copy into the output store: durable work in the outbox, written
    in the transaction of the task's success and claimed by copiers under a lease."""

    id: str
    """Also what the file's stable link names (``relay.outputs.links``)."""
    account_id: str
    task_id: str
    kind: OutputKind
    state: CopyState
    created_at: datetime
    updated_at: datetime
    attempts: int = 0
    next_attempt_at: datetime | None = None
    """Pending: when the next try is due."""
    announce_by: datetime | None = None
    """While the task's ``task.succeeded`` waits for its copies: the latest it goes out."""
    object_key: str | None = None
    size: int | None = None
    sha256: str | None = None
    content_type: str | None = None
    stored_at: datetime | None = None
    error: str | None = None
    """Why the last try failed."""
    deleted_at: datetime | None = None
    deleted_reason: str | None = None
    tries: tuple[CopyTry, ...] = ()
    """The latest tries, oldest first, at most ``TRIES_KEPT``."""

    @property
    def settled(self) -> bool:
        return self.state is not CopyState.PENDING


@dataclass(frozen=True, slots=True)
class StoredFile:
    size: int
    sha256: str
    content_type: str

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "sha256": self.sha256, "content_type": self.content_type}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoredFile:
        return cls(int(data["size"]), str(data["sha256"]), str(data["content_type"]))


@dataclass(frozen=True, slots=True)
class TaskOutput:
    """What the relay keeps of a task's files, as the task shows it (``output``)."""

    status: CopyState
    """The task's copies together: pending until each settled, then stored only if every one
    was, failed if one failed; deleted once removed."""
    video: StoredFile | None = None
    last_frame: StoredFile | None = None
    stored_at: datetime | None = None
    error: str | None = None
    deleted_at: datetime | None = None
    deleted_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "video": self.video.to_json() if self.video else None,
            "last_frame": self.last_frame.to_json() if self.last_frame else None,
            "stored_at": _iso(self.stored_at),
            "error": self.error,
            "deleted_at": _iso(self.deleted_at),
            "deleted_reason": self.deleted_reason,
        }

    def to_data(self) -> dict[str, Any]:
        """Stored form (times as unix seconds)."""
        data = self.to_json()
        data["stored_at"] = None if self.stored_at is None else self.stored_at.timestamp()
        data["deleted_at"] = None if self.deleted_at is None else self.deleted_at.timestamp()
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> TaskOutput:
        def at(value: float | None) -> datetime | None:
            return None if value is None else datetime.fromtimestamp(value, UTC)

        return cls(
            status=CopyState(data["status"]),
            video=StoredFile.from_json(data["video"]) if data.get("video") else None,
            last_frame=StoredFile.from_json(data["last_frame"]) if data.get("last_frame") else None,
            stored_at=at(data.get("stored_at")),
            error=data.get("error"),
            deleted_at=at(data.get("deleted_at")),
            deleted_reason=data.get("deleted_reason"),
        )
