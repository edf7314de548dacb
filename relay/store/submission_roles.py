"""The store's roles for creating a task through the relay: Idempotency-Key reservations
(for the API) and submissions, the intents written before a provider is asked (for the
tracker's creates). Part of the ``relay.store.interface.Store`` contract, whose rules
(accounts, leases) they keep.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from relay.store.values import IdempotentReply, KeyReserved, Page
from relay.submissions import Submission, SubmissionState
from relay.transitions import Change


class IdempotencyStore(Protocol):
    """Idempotency-Key reservations and the answers they replay. A reservation is held by
    one request (``owner``) under a lease it renews while it runs; a later request with the
    same body takes over one whose lease ran out unanswered (its holder died)."""

    async def reserve_idempotency_key(
        self,
        account_id: str,
        key: str,
        request_hash: str,
        owner: str,
        now: datetime,
        lease_until: datetime,
    ) -> IdempotentReply | None:
        """None: the key is now ``owner``'s; else what the request holding it got."""
        ...

    async def reserve_idempotency_key_to_submit(
        self,
        account_id: str,
        key: str,
        request_hash: str,
        owner: str,
        now: datetime,
        lease_until: datetime,
    ) -> IdempotentReply | KeyReserved:
        """``reserve_idempotency_key`` for a request that submits a task: when the key is
        now ``owner``'s, the latest submission under it (``submission_for_key``), read in
        the same write instead of a round trip of its own."""
        ...

    async def renew_idempotency_key(
        self, account_id: str, key: str, owner: str, lease_until: datetime
    ) -> bool:
        """Extend ``owner``'s lease; False when the reservation is no longer its own."""
        ...

    async def finish_idempotency_key(
        self, account_id: str, key: str, owner: str, status_code: int, body: str
    ) -> None:
        """Keep the answer the reserving request got, for later requests with the key."""
        ...

    async def forget_idempotency_key(self, account_id: str, key: str, owner: str) -> None:
        """Drop a reservation whose request failed, so a retry may run again."""
        ...

    async def prune_idempotency_keys(self, before: datetime) -> int:
        """Delete keys reserved before ``before``, and submissions settled before it; how
        many keys went."""
        ...


class SubmissionStore(Protocol):
    """The intents written before a provider is asked to create a task
    (``relay.submissions``). ``create_task(..., submission=id)`` accepts one, and raises
    ``SubmissionSettled`` (writing nothing) when it was accepted already or not accepted."""

    async def begin_submission(self, submission: Submission) -> bool:
        """Write a ``pending`` submission, before the provider is asked. False, writing
        nothing, when a submission with its id exists (a resubmission, whose id is the same
        on every instance: ``relay.routing.resubmission_id``)."""
        ...

    async def move_task(self, change: Change, expected_version: int, submission: str) -> bool:
        """A resubmission taken: write ``change`` (the task at its new provider, its events)
        if the task is still at ``expected_version``, accepting ``submission`` in the same
        transaction (``SubmissionSettled`` if it was settled otherwise). False: the task
        moved on meanwhile. ``DuplicateTask`` when the new provider task is tracked already."""
        ...

    async def renew_submission(self, submission_id: str, lease_until: datetime) -> None:
        """Extend a pending submission's lease while its create is still under way."""
        ...

    async def settle_submission(
        self,
        submission_id: str,
        state: SubmissionState,
        now: datetime,
        detail: str | None = None,
        provider_task_id: str | None = None,
        next_look_at: datetime | None = None,
    ) -> bool:
        """Move an open submission to ``state`` (``next_look_at``: an uncertain one's first
        look at the provider's list); False when it was already settled."""
        ...

    async def note_look(
        self, submission_id: str, now: datetime, detail: str, next_look_at: datetime | None
    ) -> None:
        """A look at the provider's list that settled nothing: why, and when to look again
        (None: never; a person must)."""
        ...

    async def get_submission(self, account_id: str, submission_id: str) -> Submission | None: ...

    async def submission_for_key(self, account_id: str, key: str) -> Submission | None:
        """The latest submission made under this Idempotency-Key."""
        ...

    async def list_submissions(
        self, account_id: str, state: SubmissionState | None, after: int | None, limit: int
    ) -> Page[Submission]:
        """Newest first."""
        ...

    async def due_submissions(self, now: datetime, since: datetime, limit: int) -> list[Submission]:
        """Every account's uncertain submissions created after ``since`` whose next look is
        due at ``now``, the longest waiting first."""
        ...

    async def rival_submissions(
        self, submission: Submission, start: datetime, end: datetime
    ) -> list[Submission]:
        """The other open submissions to ``submission``'s provider whose windows (creation
        to lease) meet ``start`` to ``end``."""
        ...

    async def expire_submissions(self, now: datetime, detail: str) -> int:
        """Pending submissions whose holder's lease ran out become uncertain, due for a look
        at once; how many."""
        ...

    async def known_provider_task_ids(self, provider: str, ids: Sequence[str]) -> frozenset[str]:
        """Those of ``ids`` the relay tracks as tasks of ``provider`` or a submission holds."""
        ...
