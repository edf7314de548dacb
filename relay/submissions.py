"""Submissions: the durable intent written before the relay asks a provider to create a
task, and the pure rules around it.

A create costs the caller money the moment the provider accepts it, and an answer can be
lost (the relay killed mid-request, a timeout after the body was sent, a 5xx whose meaning
is unknown). So the relay writes what it is about to submit *before* it asks, completes
that record in the same transaction as the task it creates, and treats a record left
without an answer as **uncertain**: never a reason to create again, always something to
reconcile (the provider's own task list, a push naming the task) or for a person to settle.

States::

    pending ──▶ accepted          the provider took it; the task exists (same transaction)
       │    ──▶ not_accepted      certainly not taken (refused, not reached): safe to retry
       └────▶ uncertain ──▶ accepted   found at the provider, or settled with its task id
                       └──▶ abandoned  settled by a person: nothing was created
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from relay.models import iso
from relay.provider_answers import FaultKind, ProviderFault


class SubmissionState(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    NOT_ACCEPTED = "not_accepted"
    UNCERTAIN = "uncertain"
    ABANDONED = "abandoned"

    @property
    def open(self) -> bool:
        """Still waiting for the provider's answer to be known."""
        return self in (SubmissionState.PENDING, SubmissionState.UNCERTAIN)


@dataclass(frozen=True, slots=True)
class Submission:
    """One create the relay sent (or was about to send) to a provider."""

    id: str
    account_id: str
    task_id: str
    """The id the relay task has (or will have) once the provider's answer is known."""
    provider: str
    state: SubmissionState
    body_hash: str
    """SHA-256 of the provider body, so a settled record can be matched to a request."""
    registration: Mapping[str, Any]
    """What the caller asked for (callback, reference, metadata, model...), to track the
    task when it is found later. The provider body itself is not kept."""
    created_at: datetime
    updated_at: datetime
    lease_until: datetime
    """While ``pending``, the instance asking the provider holds it until then."""
    idempotency_key: str | None = None
    provider_task_id: str | None = None
    detail: str | None = None
    """What happened, in words: the fault that made it uncertain, how it was settled."""
    looks: int = 0
    """How often the provider's task list was read for it."""
    next_look_at: datetime | None = None
    """While uncertain: when the reconciler reads the provider's list again (None: it
    cannot, only a person can settle it)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task_id": self.task_id if self.state is SubmissionState.ACCEPTED else None,
            "provider": self.provider,
            "state": self.state.value,
            "provider_task_id": self.provider_task_id,
            "idempotency_key": self.idempotency_key,
            "detail": self.detail,
            "reference": self.registration.get("reference"),
            "model": self.registration.get("model"),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


def body_hash(body: Mapping[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


_REFUSALS = frozenset(
    {
        FaultKind.INVALID_REQUEST,
        FaultKind.UNAUTHORIZED,
        FaultKind.RATE_LIMITED,
        FaultKind.NOT_FOUND,
        FaultKind.BACKED_OFF,
    }
)
"""Answers that say the create was not taken: the request was wrong, not allowed, too many,
sent to no such endpoint, or never sent (the relay is backing the provider off)."""

NOT_TAKEN_STATUSES = frozenset({503})
"""HTTP statuses that mean "not processed" when the provider itself says so (its own error
code in the body): a gateway with no free channel (new-api ``model_not_found``). A 503 page
from whatever proxy sits in front (an Envoy "reset before headers") may come after the
provider took it, as may a 500, 502 or 504."""


def create_was_taken(fault: ProviderFault) -> bool | None:
    """Whether a create that met ``fault`` may have been taken by the provider: False when it
    certainly was not (safe to try again, here or elsewhere), None when nobody can tell."""
    if not fault.reached or fault.kind in _REFUSALS:
        return False
    if (
        fault.kind is FaultKind.UNAVAILABLE
        and fault.status_code in NOT_TAKEN_STATUSES
        and fault.provider_code is not None
    ):
        return False
    return None


# --- reconciling an uncertain submission against the provider's task list ------------------

LOOK_FIRST = 10.0
"""Seconds after a create's answer was lost before the provider's list is first read: a
task may show in the list a moment after it was created."""
LOOK_MAX_WAIT = 3600.0
"""The longest wait between two looks at one uncertain submission's provider list."""
RECONCILE_FOR = timedelta(hours=48)
"""After this (Ark's longest task life) an uncertain submission is left to a person."""


def next_look(now: datetime, looks: int) -> datetime:
    """When to read the provider's list again after ``looks`` looks found nothing: doubling
    from ``LOOK_FIRST``, at most ``LOOK_MAX_WAIT`` apart."""
    return now + timedelta(seconds=min(LOOK_FIRST * 2 ** min(looks, 20), LOOK_MAX_WAIT))


def is_rival(submission: Submission, other: Submission) -> bool:
    """Whether the task ``submission`` finds in its window might be ``other``'s: an open
    submission to the same provider whose model is the same or unknown on either side (the
    store has already bounded both windows)."""
    mine, theirs = submission.registration.get("model"), other.registration.get("model")
    return other.id != submission.id and (mine is None or theirs is None or mine == theirs)


MATCH_EARLY = timedelta(seconds=5)
"""How long before the intent was written a provider's clock may put the task (clock skew;
Ark's ``created_at`` is in whole seconds)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A task from the provider's list, with what can tell it apart."""

    provider_task_id: str
    created_at: datetime
    model: str | None
    params: Mapping[str, Any]
    """The generation parameters the provider reports (``duration``, ``ratio``, ``seed``...)."""


@dataclass(frozen=True, slots=True)
class Found:
    provider_task_id: str


@dataclass(frozen=True, slots=True)
class NotFound:
    reason: str


MATCHED_PARAMS = ("duration", "ratio", "resolution", "seed", "generate_audio")


_LET_THE_MODEL_CHOOSE = {"seed": -1, "duration": -1, "ratio": "adaptive"}
"""Request values that ask the model to choose: a listed task reports what it chose."""


def matched_params(body: Mapping[str, Any]) -> dict[str, Any]:
    """What of a create body a listed task can be matched on (kept with the intent): the
    parameters it set, except those that let the model choose."""
    return {
        name: body[name]
        for name in MATCHED_PARAMS
        if body.get(name) is not None and body[name] != _LET_THE_MODEL_CHOOSE.get(name)
    }


def match_submission(
    submission: Submission,
    window_end: datetime,
    candidates: Iterable[Candidate],
    known: frozenset[str],
    rivals: int,
) -> Found | NotFound:
    """The one provider task that ``submission`` created, or why it cannot be told.

    A candidate matches when it was created between the intent and ``window_end`` (when
    the request's answer was due), with the same model and every parameter the body set
    (``matched_params``, kept in ``registration``) and the provider reports. ``known``
    are provider task ids the relay already tracks or another submission holds;
    ``rivals`` counts other open submissions to the same provider and model in that
    window: while there are any, a lone match might be theirs, so nothing is adopted
    (another tenant's video must never reach this caller)."""
    if rivals:
        return NotFound(f"{rivals} other submission(s) to this provider are unsettled")
    model = submission.registration.get("model")
    params: Mapping[str, Any] = submission.registration.get("params") or {}
    earliest = submission.created_at - MATCH_EARLY
    found = [
        c
        for c in candidates
        if c.provider_task_id not in known
        and earliest <= c.created_at <= window_end
        and (model is None or c.model is None or c.model == model)
        and all(
            value == c.params[name]
            for name, value in params.items()
            if c.params.get(name) is not None
        )
    ]
    if len(found) == 1:
        return Found(found[0].provider_task_id)
    if not found:
        return NotFound("the provider lists no task that matches it")
    return NotFound(f"the provider lists {len(found)} tasks that could be it")
