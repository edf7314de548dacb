"""What every dialect adapter is: pure functions from requests to HTTP calls and from
HTTP replies to normalized values. Adapters never do I/O; ``relay.tasks.providers`` sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from relay.models import TaskStatus
from relay.provider_answers import ProviderFault, ProviderTask
from relay.submissions import Candidate


@dataclass(frozen=True, slots=True)
class HttpCall:
    """A request to make, relative to the provider's base URL and path prefix."""

    method: str
    path: str
    json: Mapping[str, Any] | None = None
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HttpReply:
    status_code: int
    headers: Mapping[str, str]
    """Header names are lower-case."""
    body: bytes


@dataclass(frozen=True, slots=True)
class Created:
    """A provider accepted a new task."""

    provider_task_id: str
    task: ProviderTask | None = None
    """What the create answer already says about the task, when it says anything."""


@dataclass(frozen=True, slots=True)
class CancelAccepted:
    """The provider took the cancel request. ``task`` is what its answer says about the
    task, when it says anything (seedance2.ink echoes ``status: cancelled``; Ark answers
    ``{}``)."""

    task: ProviderTask | None = None


class Dialect(Protocol):
    """One provider API dialect (``ark``, ``unified``, ``seedance2ink``)."""

    name: str
    pushes: bool
    """The provider POSTs the final result to a webhook URL given at creation."""
    cancellable: frozenset[TaskStatus]
    """The statuses a task may be cancelled in (empty: the dialect cannot cancel)."""

    def build_create(self, body: Mapping[str, Any], webhook_url: str | None = None) -> HttpCall:
        """The call that submits ``body`` (the provider's native create body), asking the
        provider to push the result to ``webhook_url`` when the dialect can."""
        ...

    def push_worth_a_look(self, body: bytes) -> bool:
        """Whether a push with this body may announce the task's end, and so is worth a
        confirming query. A push is an unsigned hint: its body never changes a task, it
        only spares the provider a query for news that is not an end (Ark pushes every
        status change). Anything unclear is worth a look."""
        ...

    def parse_create(self, reply: HttpReply, now: datetime) -> Created | ProviderFault: ...

    def build_query(self, provider_task_id: str) -> HttpCall: ...

    def parse_query(
        self, reply: HttpReply, provider_task_id: str, now: datetime
    ) -> ProviderTask | ProviderFault: ...

    def build_cancel(self, provider_task_id: str) -> HttpCall | None:
        """The call that cancels the task; None when the dialect has none."""
        ...

    def parse_cancel(
        self, reply: HttpReply, provider_task_id: str, now: datetime
    ) -> CancelAccepted | ProviderFault: ...

    def build_list(self, model: str | None) -> HttpCall | None:
        """The call that lists the account's recent tasks (of ``model``), newest first, to
        reconcile an uncertain create (``relay.submissions``); None: the dialect has none."""
        ...

    def parse_list(self, reply: HttpReply, now: datetime) -> list[Candidate] | ProviderFault: ...

    def created_at_from_id(self, provider_task_id: str) -> datetime | None:
        """When the task was created, read from its id, for a dialect whose ids carry it;
        None otherwise. A task registered long after it was made is dated by it, so that
        it expires with the provider's retention instead of failing as unknown."""
        ...
