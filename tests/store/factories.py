"""Builders for the store contract suite: accounts, tasks, callbacks, status changes and
attempts, all at explicit times around ``NOW`` and with deterministic ids.

Everything goes through the ``Store`` interface and the pure rules of ``relay.transitions``,
never through a backend, so the same helpers serve every backend.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import EllipsisType
from typing import Any

from relay.models import (
    Account,
    Attempt,
    DeliveryStatus,
    Destination,
    DueDelivery,
    ErrorCode,
    Event,
    EventType,
    Task,
    TaskError,
    TaskStatus,
)
from relay.provider_answers import ProviderTask
from relay.store.interface import Store
from relay.store.values import AttemptRecord, DeliveryView, EventQuery, Page
from relay.transitions import Change, apply_answer, registered

NOW = datetime(2026, 6, 6, 16, 0, tzinfo=UTC)
OWNER = "w1"
"""The owner the tests take poll leases as (deliveries name theirs inline)."""
HOOK_URL = "https://hooks.example.com/relay"
HOOK_KEY = "https://hooks.example.com"

_serial = itertools.count(1)


# --- time and ids ----------------------------------------------------------------------------


def at(**delta: float) -> datetime:
    """``NOW`` moved by a ``timedelta``: ``at(seconds=31)``, ``at(minutes=-1)``."""
    return NOW + timedelta(**delta)


def new_id(prefix: str) -> str:
    """Deterministic, unique across the session, and easy to read in a failure."""
    return f"{prefix}_{next(_serial):05d}"


def event_id() -> str:
    return new_id("evt")


# --- accounts, tasks, callbacks --------------------------------------------------------------


async def make_account(store: Store, name: str) -> Account:
    """An account whose key hash is ``hash-<name>`` and callback secret ``whsec_<name>``."""
    account = Account(id=f"acc_{name}", name=name, created_at=NOW)
    await store.create_account(account, f"hash-{name}", f"whsec_{name}")
    return account


def new_task(
    account: Account,
    *,
    created_at: datetime = NOW,
    next_poll_at: datetime | EllipsisType | None = ...,
    provider: str = "sandbox",
    provider_task_id: str | EllipsisType | None = ...,
    status: TaskStatus = TaskStatus.QUEUED,
    reference: str | None = None,
    callback_url: str | None = HOOK_URL,
    **fields: Any,
) -> Task:
    """A task as the tracker would register it; polled first at ``created_at`` by default."""
    id_ = new_id("task")
    return Task(
        id=id_,
        account_id=account.id,
        provider=provider,
        provider_task_id=f"cgt-{id_}" if provider_task_id is ... else provider_task_id,
        status=status,
        created_at=created_at,
        updated_at=created_at,
        next_poll_at=created_at if next_poll_at is ... else next_poll_at,
        reference=reference,
        callback_url=callback_url,
        **fields,
    )


def callback_for(
    task: Task, events: Iterable[EventType] | None = None, key: str = HOOK_KEY
) -> Destination:
    assert task.callback_url is not None
    return Destination(
        id=new_id("dst"),
        account_id=task.account_id,
        kind="callback",
        url=task.callback_url,
        key=key,
        event_types=None if events is None else frozenset(events),
        task_id=task.id,
    )


@dataclass(frozen=True, slots=True)
class Registered:
    task: Task
    """As stored right after registration (version 0, sequence 1)."""
    event: Event
    destination: Destination | None


async def register(
    store: Store,
    account: Account,
    *,
    events: Iterable[EventType] | None = None,
    key: str = HOOK_KEY,
    **task_fields: Any,
) -> Registered:
    """Register a new task with its callback (filter ``events``; None: terminal types only).

    Its registration event is dated ``created_at`` (default ``NOW``)."""
    task = new_task(account, **task_fields)
    change = registered(task, task.created_at, event_id)
    destination = callback_for(task, events, key) if task.callback_url else None
    await store.create_task(change, destination)
    (event,) = change.events
    return Registered(change.task, event, destination)


async def pending(
    store: Store, account: Account, when: datetime = NOW, key: str = HOOK_KEY
) -> Registered:
    """A task whose callback wants ``task.queued``: one pending delivery due at ``when``."""
    return await register(
        store, account, events={EventType.TASK_QUEUED}, created_at=when, key=key, next_poll_at=None
    )


# --- status changes and attempts -------------------------------------------------------------


def answer_change(task: Task, status: TaskStatus, when: datetime) -> Change:
    """What a provider answering ``status`` at ``when`` does to ``task``."""
    answer = ProviderTask(
        provider_task_id=task.provider_task_id or "cgt-unknown",
        status=status,
        video_url="https://cdn.example.com/v.mp4" if status is TaskStatus.SUCCEEDED else None,
        video_url_expires_at=when + timedelta(hours=24) if status is TaskStatus.SUCCEEDED else None,
        error=(
            TaskError(ErrorCode.PROVIDER_ERROR, "boom") if status is TaskStatus.FAILED else None
        ),
    )
    return apply_answer(task, answer, when, event_id)


async def advance(store: Store, task: Task, status: TaskStatus, when: datetime) -> Event:
    """Save ``task`` moved to ``status`` at ``when`` (it must be current); its one event."""
    change = answer_change(task, status, when)
    assert await store.save_task(change, task.version)
    (event,) = change.events
    return event


async def current(store: Store, task: Task) -> Task:
    stored = await store.get_task(task.account_id, task.id)
    assert stored is not None
    return stored


def attempt(
    due: DueDelivery,
    started_at: datetime,
    status_code: int | None,
    *,
    status: DeliveryStatus,
    next_attempt_at: datetime | None = None,
    error: str | None = None,
    snippet: str | None = None,
) -> AttemptRecord:
    """The record of the next attempt of a claimed delivery."""
    return AttemptRecord(
        delivery_pk=due.pk,
        attempt=Attempt(
            delivery_id=due.id,
            number=due.attempt_count + 1,
            started_at=started_at,
            latency_ms=42.5,
            outcome=error or f"HTTP {status_code}",
            status_code=status_code,
            error=error,
            response_snippet=snippet,
        ),
        status=status,
        next_attempt_at=next_attempt_at,
    )


# --- reading back ----------------------------------------------------------------------------


async def seed_events(store: Store, alice: Account, bob: Account) -> list[str]:
    """Alice's five events, one a minute from NOW (e0 … e4); Bob's two in between."""
    a = await register(store, alice)
    b = await register(store, alice, created_at=at(minutes=1))
    await register(store, bob, created_at=at(seconds=30))
    e2 = await advance(store, a.task, TaskStatus.RUNNING, at(minutes=2))
    await register(store, bob, created_at=at(seconds=150))
    e3 = await advance(store, await current(store, a.task), TaskStatus.SUCCEEDED, at(minutes=3))
    e4 = await advance(store, b.task, TaskStatus.FAILED, at(minutes=4))
    return [a.event.id, b.event.id, e2.id, e3.id, e4.id]


async def walk(fetch: Callable[[int | None], Awaitable[Page[Any]]]) -> list[list[str]]:
    """The ids of every page, following ``next_after`` until it is None."""
    pages: list[list[str]] = []
    after = None
    while len(pages) < 10:
        page = await fetch(after)
        pages.append([item.id for item in page.items])
        if page.next_after is None:
            return pages
        after = page.next_after
    raise AssertionError(f"pagination does not end: {pages}")


async def listed_events(store: Store, account: Account, **query: Any) -> list[str]:
    page = await store.list_events(account.id, EventQuery(**query))
    assert page.next_after is None
    return [e.id for e in page.items]


async def only_delivery(store: Store, account: Account, event: str) -> DeliveryView:
    [view] = await store.event_deliveries(account.id, event)
    return view


def state(view: DeliveryView) -> tuple[DeliveryStatus, int, datetime | None]:
    return view.delivery.status, view.delivery.attempt_count, view.delivery.next_attempt_at
