"""Rows of the overview reads (``relay.store.overview_roles``) as values, shared by both
backends (their columns are the same, times as unix seconds)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relay.models import DeliveryStatus, TaskStatus, utc
from relay.store.codec import dt
from relay.store.overview_roles import Backlog, DeliverySample, TaskSample


def task_sample(row: Sequence[Any]) -> TaskSample:
    status, provider, created_at, completed_at = row
    return TaskSample(TaskStatus(status), str(provider), utc(created_at), dt(completed_at))


def delivery_sample(row: Sequence[Any]) -> DeliverySample:
    pk, status, created_at, latency_ms, outcome = row
    return DeliverySample(
        delivery=int(pk),
        status=DeliveryStatus(status),
        event_created_at=utc(created_at),
        latency_ms=None if latency_ms is None else float(latency_ms),
        outcome=None if outcome is None else str(outcome),
    )


def backlog_from_row(row: Sequence[Any] | None) -> Backlog:
    if row is None:
        return Backlog(0, None)
    due, oldest = row
    return Backlog(int(due or 0), dt(oldest))
