"""Registers tasks, polls the ones that are due, and applies what providers answer.

The decisions are pure (``relay.transitions`` for status changes, ``relay.polling`` for when to
poll next, ``relay.tasks.poll_results`` for what one answer changes); this module only
sequences I/O around them. Every write goes through the store's conditional ``save_task``: if
a refresh and a scheduled poll race, the loser re-reads the task and applies its answer
again, which the monotonic rules make harmless.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

import httpx

from relay.adapters.base import Created
from relay.clock import Clock
from relay.errors import InvalidInput, StoreError, UnknownProvider, UnknownTask
from relay.ids import new_id
from relay.logs import ids
from relay.metrics import RelayMetrics
from relay.models import Account, Destination, Task, TaskStatus
from relay.polling.pacer import Pacer
from relay.provider_answers import FaultKind, ProviderTask
from relay.routing import Route, resubmitting
from relay.tasks import verdicts
from relay.tasks.budgets import Budgets
from relay.tasks.cancelling import cancel_task
from relay.tasks.dispatch import PollDispatch
from relay.tasks.failover import submit_through
from relay.tasks.poll_results import Asked, apply_asked
from relay.tasks.pushes import Confirmations
from relay.tasks.reconciling import TrackingStore
from relay.tasks.registration import ProviderPlan, Registration
from relay.tasks.resubmitting import Resubmitter
from relay.tasks.saving import GroupSaver
from relay.tasks.submitting import Submitter
from relay.transitions import Change, apply_answer, registered

log = logging.getLogger("relay.tracker")


PUSH_RECHECK = 2.0
"""Seconds before another look when a push's confirming query still says "not done" or met
a provider fault: the provider's API may lag its own webhook, or be briefly down."""
PUSH_RECHECKS = 5
"""How many looks a push earns before the task is back on its ordinary (slow) schedule."""


class Tracker:
    def __init__(
        self,
        *,
        store: TrackingStore,
        providers: Mapping[str, ProviderPlan],
        clock: Clock,
        rng: random.Random,
        on_events: Callable[[], None],
        owner: str,
        batch_size: int = 200,
        lease_seconds: float = 120.0,
        inbound_url: Callable[[str, str, str], str] | None = None,
        metrics: RelayMetrics | None = None,
        hold: Callable[[Change], Change] | None = None,
        on_copies: Callable[[], None] = lambda: None,
        routes: Mapping[str, Route] | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        """``owner`` names this instance on the poll leases it takes;
        ``inbound_url(provider, account_id, task_id)`` is the webhook URL handed to a push
        provider for one task; ``metrics`` counts the polls. ``hold`` turns a change into
        the one written (outputs on: a success writes copies of its files and waits for
        them, ``relay.copies.rules.hold_success``); ``on_copies`` is told when copies were
        written."""
        self._hold = hold or (lambda change: change)
        self._routes = dict(routes or {})
        """Route names (``relay.routing``), accepted wherever a provider name is."""
        self._on_copies = on_copies
        self._store = store
        self._metrics = metrics or RelayMetrics()
        self._providers = providers
        self._clock = clock
        self._on_events = on_events
        self._owner = owner
        self._batch = batch_size
        self._lease = lease_seconds
        self._inbound_url = inbound_url
        self._unconfirmed = Confirmations(PUSH_RECHECKS)
        """Pushed tasks being confirmed: the quick looks they have left, and which pushes
        cost nothing."""
        self._pacer = Pacer(rng)
        """When to poll each task next, from how long tasks like it took."""
        self._saves = GroupSaver(store)
        """What polls found, written for many polls in one transaction under load."""
        self._dispatch = PollDispatch(
            store=store,
            ahead={name: plan.polls_ahead for name, plan in providers.items()},
            batch_size=batch_size,
            lease_seconds=lease_seconds,
            owner=owner,
            clock=clock,
            poll=self._poll_quietly,
        )
        self.pump = self._dispatch.pump
        self.submitter = Submitter(
            store=store,
            providers=providers,
            clock=clock,
            track=self._track,
            webhook_url=lambda provider, account_id, task_id: (
                None if inbound_url is None else inbound_url(provider, account_id, task_id)
            ),
            budgets=budgets,
        )
        self.resubmitter = Resubmitter(
            store=store,
            providers=providers,
            routes=self._routes,
            submitter=self.submitter,
            clock=clock,
            first_delay=lambda plan: self._pacer.first_delay(plan.poll),
            hold=self._hold,
            written=self._written,
        )

    # registration

    async def register(self, account: Account, reg: Registration) -> Task:
        """Track the task (or submit ``reg.input`` first, ``relay.tasks.submitting``).
        Raises ``UnknownProvider``, ``InvalidInput``/``UntranslatableInput`` (nothing was
        sent), ``ProviderRejected`` (the provider refused the input),
        ``ProviderUnavailable`` (it could not take it now), ``SubmissionUncertain`` (nobody
        can tell whether it took it) and ``DuplicateTask`` (the provider task is tracked
        already)."""
        route = self._routes.get(reg.provider)
        if route is not None:
            if reg.input is None:
                raise InvalidInput(
                    "provider",
                    f"{reg.provider!r} is a route, which submits tasks: to track an existing "
                    "task, name the provider that has it",
                )
            # Each provider of the route reads the key's latest submission afresh: the one
            # read with the reservation is the latest only until the first is asked.
            return await submit_through(
                self.submitter,
                route,
                self._providers,
                self._clock,
                account.id,
                replace(reg, key_latest=None),
                new_id("task"),
            )
        plan = self._providers.get(reg.provider)
        if plan is None:
            raise UnknownProvider(reg.provider)
        task_id = new_id("task")
        if reg.input is not None:
            return await self.submitter.submit(account.id, reg, task_id, plan)
        return await self._track(account.id, reg, task_id, None, None)

    async def _track(
        self,
        account_id: str,
        reg: Registration,
        task_id: str,
        created: Created | None,
        submission: str | None,
    ) -> Task:
        """Write the task ``reg`` names (or the provider just ``created``), accepting
        ``submission`` in the same transaction, and schedule its first poll."""
        if reg.resubmission:  # an existing task, taken by the next provider of its route
            return await self.resubmitter.taken(account_id, reg, task_id, created, submission)
        plan = self._providers[reg.provider]
        now = self._clock.now()
        callback = None
        if reg.callback_url is not None:
            callback = Destination(
                id=new_id("dst"),
                account_id=account_id,
                kind="callback",
                url=reg.callback_url,
                key=_origin(reg.callback_url),
                event_types=reg.callback_events,
                task_id=task_id,
                body_format=reg.callback_format,
            )
        task = Task(
            id=task_id,
            account_id=account_id,
            provider=reg.provider,
            provider_task_id=reg.provider_task_id if created is None else created.provider_task_id,
            status=TaskStatus.QUEUED,
            created_at=now,
            updated_at=now,
            reference=reg.reference,
            route=reg.route,
            submissions=reg.steps,
            estimate=reg.estimate,
            kept_input=reg.kept_input(),
            metadata=dict(reg.metadata or {}),
            callback_url=reg.callback_url,
            callback_events=reg.callback_events,
            next_poll_at=now
            if created is None
            else now + timedelta(seconds=self._pacer.first_delay(plan.poll)),
        )
        change = registered(task, now, verdicts.event_id)
        if created is not None and created.task is not None:
            change = verdicts.chain(
                change,
                apply_answer(change.task, created.task, now, verdicts.event_id, plan.prices),
            )
        change = self._hold(change)
        # The request's answer for its Idempotency-Key goes in the same transaction.
        answer = None if reg.key_answer is None else reg.key_answer.answer(change.task)
        await self._store.create_task(change, callback, submission, answer)  # DuplicateTask
        if answer is not None and reg.key_answer is not None:
            reg.key_answer.kept(answer)
        self._after_write(change)
        due = change.task.next_poll_at
        if due is not None and due <= self._clock.now():
            self.wake()  # a tracked task is polled at once
        elif due is not None:
            # A submitted one when its first poll is due: a claim pass now would find
            # nothing and only cost a write transaction.
            self.pump.due_in((due - self._clock.now()).total_seconds())
        return change.task

    async def refresh(self, account_id: str, task_id: str) -> Task:
        """Poll one task now, whatever its schedule."""
        task = await self._store.get_task(account_id, task_id)
        if task is None:
            raise UnknownTask(task_id)
        return await self._poll(task, via="refresh")

    async def pushed(
        self, account_id: str, task_id: str, *, created_after: datetime | None = None
    ) -> bool:
        """A push provider said something happened to this task. The push is only a hint
        (unsigned, DIALECTS §4): the task is confirmed by a query before any event, in the
        background so the provider's webhook call returns at once. Pushes are coalesced
        (``relay.tasks.pushes``): one for a task already being confirmed, or finished, asks
        the provider nothing. False: no such task, or none created after ``created_after``
        (what an untimed token still covers)."""
        now = self._clock.now()
        if created_after is None and self._unconfirmed.held(account_id, task_id, now):
            return True  # not even a read: a flood must not cost the database either
        task = await self._store.get_task(account_id, task_id)
        if task is None or (created_after is not None and task.created_at < created_after):
            return False
        if task.status.terminal:  # a duplicate push for a finished task changes nothing
            self._unconfirmed.finished(account_id, task.id, now)
        elif self._unconfirmed.begin(account_id, task.id, now):
            # Until a look confirms it, the next looks come soon, also when the first one
            # meets a provider fault: the result is there, only the provider's API is not.
            self._dispatch.spawn(self._poll_quietly(task))
        return True

    async def cancel(self, account_id: str, task_id: str) -> Task:
        """Cancel at the provider, where its dialect can, and emit ``task.cancelled``
        (``relay.tasks.cancelling``)."""
        return await cancel_task(
            account_id,
            task_id,
            store=self._store,
            providers=self._providers,
            clock=self._clock,
            look=lambda task: self._poll(task, via="cancel"),
            saved=self._after_write,
            hold=self._hold,
        )

    # polling

    def wake(self) -> None:
        """Look for due polls now, not at the next tick."""
        self.pump.wake()

    async def poll_due(self) -> None:
        """Claim due tasks and poll each under its provider's concurrency cap (the tick)."""
        # Shielded: the scheduler cancels a job still running at shutdown, and a pass it
        # cancelled mid-claim would leave claims shut_down never hands back.
        await asyncio.shield(self.pump.run())

    async def drain(self) -> None:
        """Wait for every poll under way (tests, and a tick's end)."""
        await self._dispatch.drain()

    def stop(self) -> None:
        self.pump.stop()

    async def shut_down(self, grace: float) -> None:
        """Stop polling: ``PollDispatch.shut_down``."""
        await self._dispatch.shut_down(grace, self._saves.settle)

    async def _poll_quietly(self, task: Task, recheck: float | None = None) -> None:
        try:
            await self._poll(task, recheck)
        except StoreError as exc:  # the database is away or full: the poll lease brings it back
            log.warning(
                "poll of %s not saved: %s",
                task.id,
                exc,
                extra=ids(task_id=task.id, provider=task.provider),
            )
        except Exception:  # a bug in one poll must not stop the others
            log.exception(
                "poll of %s failed", task.id, extra=ids(task_id=task.id, provider=task.provider)
            )

    async def _poll(self, task: Task, recheck: float | None = None, via: str = "poll") -> Task:
        """Ask the provider about ``task`` and save what it says; ``recheck`` brings the
        next poll forward to at most that many seconds away. ``via``: why (``Look.via``)."""
        plan = self._providers.get(task.provider)
        left = self._unconfirmed.take(task.id)
        if left:
            recheck = PUSH_RECHECK if recheck is None else min(recheck, PUSH_RECHECK)
            via = via if via == "cancel" else "push"
        asked: Asked | None = None
        for _ in range(3):
            now = self._clock.now()
            if task.status.terminal:
                return task
            if resubmitting(task.submissions) is not None:
                # Its provider failed it: carry the resubmission on (a cancel's look leaves
                # it to the cancel, which ends it without asking anyone).
                return task if via == "cancel" else await self.resubmitter.resume(task)
            if plan is None:
                change = verdicts.provider_gone(task, now)
            else:
                # One question per poll: a save that lost a race applies the same answer
                # to the task as the winner left it, it does not ask the provider again.
                asked = asked or await self._ask(task, plan)
                change, answered = apply_asked(task, plan, asked, via, self._pacer)
                next_at = change.task.next_poll_at
                if recheck is not None and next_at is not None:
                    soon = self._clock.now() + timedelta(seconds=recheck)
                    change = Change(
                        replace(change.task, next_poll_at=min(next_at, soon)), change.events
                    )
                change = verdicts.expire_if_overdue(
                    change, task.created_at, answered, plan.max_age, now, self._clock.now()
                )
                if via != "cancel":  # a cancel's look lets a failure stand
                    resubmitted = await self.resubmitter.failed(task, change)
                    if resubmitted is not None:
                        return resubmitted
            change = self._hold(change)
            if await self._saves.save(change, task.version):
                self._unconfirmed.looked(task.id, left, change.task.status.terminal)
                if plan is not None:
                    self._pacer.observe(task, change.task, now)
                self._after_write(change)
                if change.task.next_poll_at is not None:
                    # The pass that claimed this poll could not know its next time.
                    self.pump.due_in((change.task.next_poll_at - self._clock.now()).total_seconds())
                return replace(change.task, version=task.version + 1)
            again = await self._store.get_task(task.account_id, task.id)
            if again is None:
                return task
            if again.provider != task.provider:  # resubmitted meanwhile: that answer is stale
                plan, asked = self._providers.get(again.provider), None
            task = again
        return task

    async def _ask(self, task: Task, plan: ProviderPlan) -> Asked:
        """One provider query about ``task``, or none while the provider is backed off."""
        backoff = plan.client.backoff_until()
        if backoff is not None or task.provider_task_id is None:
            if backoff is not None:
                self._metrics.poll_finished(task.provider, FaultKind.BACKED_OFF.value)
            return Asked(None, backoff or self._clock.now())
        answer = await plan.client.query(task.provider_task_id)
        outcome = "answered" if isinstance(answer, ProviderTask) else answer.kind.value
        self._metrics.poll_finished(task.provider, outcome)
        if log.isEnabledFor(logging.DEBUG):  # (its fields cost as much as a poll's parse)
            log.debug(
                "poll of %s: %s",
                task.id,
                outcome if isinstance(answer, ProviderTask) else answer.message,
                extra=ids(
                    task_id=task.id,
                    provider=task.provider,
                    provider_task_id=task.provider_task_id,
                    outcome=outcome,
                ),
            )
        return Asked(answer, self._clock.now())

    def _written(self, change: Change) -> None:
        """A write outside the poll's own (a resubmission): its events, its next poll."""
        self._after_write(change)
        if change.task.next_poll_at is not None:
            self.pump.due_in((change.task.next_poll_at - self._clock.now()).total_seconds())

    def _after_write(self, change: Change) -> None:
        t = change.task
        for event in change.events:
            log.info(
                "task %s: %s",
                t.id,
                event.type.value,
                extra=ids(
                    task_id=t.id, event_id=event.id, provider=t.provider, status=t.status.value
                ),
            )
        if change.events:
            self._on_events()
        if change.copies:
            self._on_copies()


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}".lower()
