"""Registers tasks, polls the ones that are due, and applies what providers answer.

The decisions are pure (``relay.transitions`` for status changes, ``relay.policy`` for when to
poll next); this module only sequences I/O around them. Every write goes through the store's
conditional ``save_task``: if a refresh and a scheduled poll race, the loser re-reads the task
and applies its answer again, which the monotonic rules make harmless.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import httpx

from relay.adapters.base import Created
from relay.clock import Clock
from relay.errors import BadRequest, Conflict, NotFound
from relay.ids import new_id
from relay.models import (
    Account,
    Destination,
    ErrorCode,
    EventType,
    FaultKind,
    ProviderFault,
    ProviderTask,
    Task,
    TaskError,
    TaskStatus,
)
from relay.policy import PollPolicy, is_past_max_age, next_poll_delay
from relay.providers import ProviderClient
from relay.pump import Pump
from relay.store.interface import DuplicateTask, Store
from relay.transitions import Change, apply_answer, registered, terminate

log = logging.getLogger("relay.tracker")

NOT_FOUND_LIMIT = 3
"""Consecutive "no such task" answers before a task is given up (a just-created task can
briefly be unknown to a gateway's replica)."""


@dataclass(frozen=True, slots=True)
class Registration:
    provider: str
    provider_task_id: str | None = None
    input: Mapping[str, Any] | None = None
    callback_url: str | None = None
    callback_events: frozenset[EventType] | None = None
    reference: str | None = None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ProviderPlan:
    """How the tracker polls one provider."""

    client: ProviderClient
    poll: PollPolicy
    max_age: float


class ProviderRejected(Exception):
    def __init__(self, fault: ProviderFault) -> None:
        super().__init__(fault.message)
        self.fault = fault


class Tracker:
    def __init__(
        self, *, store: Store, providers: Mapping[str, ProviderPlan], clock: Clock,
        rng: random.Random, on_events: Callable[[], None], batch_size: int = 200,
        lease_seconds: float = 120.0,
    ) -> None:
        self._store = store
        self._providers = providers
        self._clock = clock
        self._rng = rng
        self._on_events = on_events
        self._batch = batch_size
        self._lease = lease_seconds
        self._running: set[asyncio.Task[None]] = set()
        self._claimed_at = clock.now()
        self.pump = Pump("polls", self._claim_polls, self._seconds_to_next)

    # registration

    async def register(self, account: Account, reg: Registration) -> Task:
        plan = self._providers.get(reg.provider)
        if plan is None:
            raise BadRequest(f"unknown provider {reg.provider!r}", code="unknown_provider")
        now = self._clock.now()
        task_id = new_id("task")
        # Everything that can refuse the request is checked before the provider is asked:
        # a task submitted and paid for must not then fail to be tracked.
        callback = None
        if reg.callback_url is not None:
            callback = Destination(
                id=new_id("dst"), account_id=account.id, kind="callback", url=reg.callback_url,
                key=_origin(reg.callback_url), event_types=reg.callback_events, task_id=task_id)
        created: Created | None = None
        provider_task_id = reg.provider_task_id
        if reg.input is not None:
            answer = await plan.client.create(reg.input)
            if isinstance(answer, ProviderFault):
                raise ProviderRejected(answer)
            created = answer
            provider_task_id = answer.provider_task_id
        task = Task(
            id=task_id, account_id=account.id, provider=reg.provider,
            provider_task_id=provider_task_id, status=TaskStatus.QUEUED, created_at=now,
            updated_at=now, reference=reg.reference, metadata=dict(reg.metadata or {}),
            callback_url=reg.callback_url, callback_events=reg.callback_events,
            next_poll_at=now if created is None else now + timedelta(
                seconds=next_poll_delay(0, None, plan.poll, self._rng)),
        )
        change = registered(task, now, _event_id)
        if created is not None and created.task is not None:
            change = _chain(change, apply_answer(change.task, created.task, now, _event_id))
        try:
            await self._store.create_task(change, callback)
        except DuplicateTask as dup:
            raise Conflict(f"this provider task is already tracked as {dup.existing_id}"
                           if dup.existing_id else
                           "this provider task is already tracked by another account",
                           code="task_exists") from None
        self._after_write(change)
        self.wake()
        return change.task

    async def refresh(self, account_id: str, task_id: str) -> Task:
        """Poll one task now, whatever its schedule."""
        task = await self._store.get_task(account_id, task_id)
        if task is None:
            raise NotFound(f"no task {task_id}")
        return await self._poll(task)

    # polling

    def wake(self) -> None:
        """Look for due polls now, not at the next tick."""
        self.pump.wake()

    async def poll_due(self) -> None:
        """Claim due tasks and poll each under its provider's concurrency cap (the tick)."""
        await self.pump.run()

    async def drain(self) -> None:
        """Wait for polls in flight; a poll finishing meanwhile may re-arm the timer, so it
        is cancelled until nothing runs."""
        while self._running or self.pump.timer_armed or self.pump.busy:
            self.pump.cancel_timer()
            await self.pump.settle()
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)

    def stop(self) -> None:
        self.pump.stop()

    async def _claim_polls(self) -> bool:
        self._claimed_at = self._clock.now()
        tasks = await self._store.claim_due_polls(self._claimed_at, self._batch, self._lease)
        for task in tasks:
            self._spawn(self._poll_quietly(task))
        return len(tasks) == self._batch

    async def _seconds_to_next(self) -> float | None:
        # Work due by the last claim was that claim's; anything later wants a timer.
        due = await self._store.next_poll_at(self._claimed_at)
        return None if due is None else (due - self._clock.now()).total_seconds()

    async def _poll_quietly(self, task: Task) -> None:
        try:
            await self._poll(task)
        except Exception:  # a bug in one poll must not stop the others
            log.exception("poll of %s failed", task.id)

    async def _poll(self, task: Task) -> Task:
        plan = self._providers.get(task.provider)
        for _ in range(3):
            now = self._clock.now()
            if task.status.terminal:
                return task
            if plan is None:
                change = terminate(task, TaskStatus.FAILED, TaskError(
                    ErrorCode.INVALID_REQUEST,
                    f"provider {task.provider!r} is no longer configured"), now, _event_id)
            else:
                change, answered = await self._ask(task, plan)
                # Past its maximum age a task gets one last real look (it may have finished
                # while the provider was backed off) before the relay gives up on it.
                # A provider that keeps failing for this task gets as long again: then the
                # task expires without an answer rather than being polled forever.
                if not change.task.status.terminal and (
                        (answered and is_past_max_age(task.created_at, now, plan.max_age))
                        or is_past_max_age(task.created_at, now, 2 * plan.max_age)):
                    change = _chain(change, terminate(change.task, TaskStatus.EXPIRED, TaskError(
                        ErrorCode.EXPIRED, f"the task did not finish within {plan.max_age:g} s"
                    ), self._clock.now(), _event_id))
            if await self._store.save_task(change, task.version):
                self._after_write(change)
                if change.task.next_poll_at is not None:
                    # The pass that claimed this poll could not know its next time.
                    self.pump.due_in((change.task.next_poll_at - self._clock.now())
                                     .total_seconds())
                return replace(change.task, version=task.version + 1)
            again = await self._store.get_task(task.account_id, task.id)
            if again is None:
                return task
            task = again
        return task

    async def _ask(self, task: Task, plan: ProviderPlan) -> tuple[Change, bool]:
        """The change one provider query makes, and whether the provider answered about the
        task (it is not asked while backed off, and a fault is no answer)."""
        backoff = plan.client.backoff_until()
        if backoff is not None or task.provider_task_id is None:
            return Change(replace(task, next_poll_at=backoff or self._clock.now())), False
        answer = await plan.client.query(task.provider_task_id)
        now = self._clock.now()
        task = replace(task, poll_count=task.poll_count + 1)
        if isinstance(answer, ProviderTask):
            change = apply_answer(replace(task, not_found_count=0), answer, now, _event_id)
        elif answer.kind is FaultKind.NOT_FOUND:
            change = self._unknown(task, answer, now)
        else:
            change = Change(task)
        ended = change.task.status.terminal
        later = None if ended else now + timedelta(seconds=self._delay(change.task, plan, now))
        if not ended and plan.client.backoff_until() is not None:
            later = max(later or now, plan.client.backoff_until() or now)
        # Only an answer about the task counts as a look at it; a provider fault says nothing.
        answered = isinstance(answer, ProviderTask) or answer.kind is FaultKind.NOT_FOUND
        return Change(replace(change.task, next_poll_at=later), change.events), answered

    def _unknown(self, task: Task, fault: ProviderFault, now: datetime) -> Change:
        count = task.not_found_count + 1
        task = replace(task, not_found_count=count)
        if count < NOT_FOUND_LIMIT:
            return Change(task)
        return terminate(task, TaskStatus.FAILED, TaskError(
            ErrorCode.NOT_FOUND, f"the provider does not know this task: {fault.message}",
            provider_code=fault.provider_code), now, _event_id)

    def _delay(self, task: Task, plan: ProviderPlan, now: datetime) -> float:
        age = (now - task.created_at).total_seconds()
        return next_poll_delay(age, task.progress, plan.poll, self._rng)

    def _after_write(self, change: Change) -> None:
        if change.events:
            self._on_events()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._running.add(task)
        task.add_done_callback(self._running.discard)


def _chain(first: Change, then: Change) -> Change:
    return Change(then.task, first.events + then.events)


def _event_id() -> str:
    return new_id("evt")


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}".lower()
