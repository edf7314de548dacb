"""What providers answer, normalized by the dialect adapters: a task's state
(``ProviderTask``) or why there is none (``ProviderFault``), and the health the relay reads
from a provider's run of answers (``ProviderHealth``).

Nothing here does I/O. Times are timezone-aware UTC ``datetime`` values throughout.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relay.models import JSON, TaskError, TaskStatus, iso


@dataclass(frozen=True, slots=True)
class ProviderTask:
    """One provider answer about one task, normalized by a dialect adapter.

    ``status`` is ``None`` when the provider said something non-committal (``unknown``,
    an unrecognized string): the relay keeps the task as it was and never emits a
    completion from it. Fields the provider did not report are ``None``.
    """

    provider_task_id: str
    status: TaskStatus | None
    raw_status: str | None = None
    progress: int | None = None
    model: str | None = None
    video_url: str | None = None
    video_url_expires_at: datetime | None = None
    last_frame_url: str | None = None
    error: TaskError | None = None
    usage: JSON | None = None
    resolution: str | None = None
    ratio: str | None = None
    duration: int | None = None
    fps: int | None = None
    seed: int | None = None


class FaultKind(enum.StrEnum):
    """Why a provider call gave no usable task answer. None of these is the task's fault."""

    NOT_FOUND = "not_found"
    UNAUTHORIZED = "unauthorized"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    BAD_RESPONSE = "bad_response"
    INVALID_REQUEST = "invalid_request"
    TIMEOUT = "timeout"
    BACKED_OFF = "backed_off"
    """Not asked at all: the relay is backing off this provider after earlier faults."""


@dataclass(frozen=True, slots=True)
class ProviderFault:
    kind: FaultKind
    retryable: bool
    message: str
    status_code: int | None = None
    provider_code: str | None = None
    retry_after: float | None = None
    """Seconds, from a ``Retry-After`` header, when the provider sent one."""
    reached: bool = True
    """False when the request certainly never reached the provider (no connection, backed
    off): what decides whether a failed create may have been taken (``relay.submissions``)."""


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    """A provider as the relay sees it now: its run of faults and its back-off."""

    name: str
    dialect: str
    consecutive_faults: int
    last_fault: str | None
    last_fault_at: datetime | None
    backoff_until: datetime | None
    in_flight: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dialect": self.dialect,
            "healthy": self.consecutive_faults == 0,
            "consecutive_faults": self.consecutive_faults,
            "last_fault": self.last_fault,
            "last_fault_at": iso(self.last_fault_at),
            "backoff_until": iso(self.backoff_until),
            "in_flight": self.in_flight,
        }
