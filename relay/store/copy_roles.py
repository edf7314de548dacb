"""The store's role for the copier of finished videos: the queue of output copies. Part of
the ``relay.store.interface.Store`` contract, whose rules (the transactional outbox, leases
and fencing) it keeps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from relay.copies.values import OutputCopy


class CopyStore(Protocol):
    """What the copier of finished videos needs (``relay.copies``): the queue of output
    copies, written with their task by ``create_task`` and ``save_task`` (``Change.copies``:
    each copy inserted, or updated as the change left it, which ends its lease), and the
    reads behind stable links, announcements and retention. A copy's id comes from a signed
    link, so these reads take no account."""

    async def claim_due_copies(
        self, now: datetime, limit: int, lease_seconds: float, owner: str
    ) -> list[OutputCopy]:
        """Lease up to ``limit`` pending copies whose next try is due at ``now`` to
        ``owner``, the longest due first (the lease rules are in ``relay.store.interface``)."""
        ...

    async def renew_copy(self, copy_id: str, owner: str, lease_until: datetime) -> bool:
        """Extend ``owner``'s lease to ``lease_until`` while a long copy runs; False when the
        copy is no longer pending or no longer leased to ``owner``."""
        ...

    async def release_copy(self, copy_id: str, owner: str) -> None:
        """Drop ``owner``'s lease (a copier stopping mid-copy), changing nothing else: the
        copy is claimable again at once."""
        ...

    async def get_copy(self, copy_id: str) -> OutputCopy | None:
        """The copy, of any account, or None."""
        ...

    async def task_copies(self, task_id: str) -> list[OutputCopy]:
        """The task's copies: its video first, then its last frame."""
        ...

    async def due_announcements(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(account id, task id) of up to ``limit`` tasks with a copy whose ``announce_by``
        has come at ``now``: the successes that waited for their copies as long as they may,
        each task once, the longest waiting first."""
        ...

    async def stored_copies_before(self, before: datetime, limit: int) -> list[OutputCopy]:
        """Up to ``limit`` stored copies stored before ``before``, the oldest first (for
        retention)."""
        ...

    async def next_copy_at(self, after: datetime) -> datetime | None:
        """The earliest try or announcement scheduled later than ``after`` (due ones are for
        the claim and ``due_announcements``)."""
        ...
