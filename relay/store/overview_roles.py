"""The store role behind the dashboard's overview and search: small, bounded reads of an
account's latest tasks and deliveries (never a scan of its whole history), and a lookup by
the provider's task id. Part of ``relay.store.interface.Store``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from relay.models import DeliveryStatus, TaskStatus


@dataclass(frozen=True, slots=True)
class TaskSample:
    """What the overview needs of one task (no JSON decoded)."""

    status: TaskStatus
    provider: str
    created_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeliverySample:
    """One delivery of a recent event, with one of its attempts (None: not tried yet)."""

    delivery: int
    """The delivery's row key: a delivery with several attempts has several samples."""
    status: DeliveryStatus
    event_created_at: datetime
    latency_ms: float | None
    outcome: str | None


@dataclass(frozen=True, slots=True)
class Backlog:
    """The account's deliveries due now and not being sent, counted up to a cap."""

    due: int
    oldest_due_at: datetime | None


class OverviewStore(Protocol):
    async def count_tasks_capped(self, account_id: str, cap: int) -> Mapping[TaskStatus, int]:
        """The account's tasks by status, each count stopping at ``cap`` (an index range per
        status, however many tasks there are); a status with none is absent."""
        ...

    async def recent_tasks(self, account_id: str, limit: int) -> Sequence[TaskSample]:
        """The account's latest ``limit`` tasks, newest first."""
        ...

    async def recent_deliveries(self, account_id: str, events: int) -> Sequence[DeliverySample]:
        """The deliveries of the account's latest ``events`` events, one sample per attempt
        (or one with no attempt)."""
        ...

    async def account_backlog(self, account_id: str, now: datetime, cap: int) -> Backlog:
        """The account's deliveries due at ``now`` and not leased, up to ``cap``, and when
        the longest-waiting of them came due."""
        ...

    async def tasks_with_provider_task_id(
        self, account_id: str, provider_task_id: str, providers: Sequence[str]
    ) -> list[str]:
        """The ids of the account's tasks that have ``provider_task_id`` at one of
        ``providers`` (one unique-index probe each)."""
        ...
