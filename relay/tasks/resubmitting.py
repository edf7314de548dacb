"""Resubmitting a task its provider failed, on the next provider of its route, without ever
paying twice (``relay.tasks.resubmission`` has what it does to the task).

1. The poll that learns of the failure keeps the task open with the failure as a ``failed``
   step (one write) instead of ending it; from then on, whichever instance claims the task
   carries the resubmission on, after any crash.
2. The route's other providers are asked in its order, as a first submission asks them
   (``relay.tasks.failover``): skipped when the input does not translate, when backed off or
   over budget; the next one only when this one certainly took nothing. Each is asked under
   a submission whose id is derived from the task, the round and the provider, so two
   instances (or one instance before and after a crash) write one submission, and only the
   one that wrote it asks the provider.
3. A provider that takes it moves the task there in the transaction that accepts its
   submission (``task.resubmitted``). An answer that was lost leaves the task waiting on
   the reconciler, which moves it when it finds the provider's task, or on a person
   (``POST /v1/submissions/{id}/resolve``: abandoning it lets the next provider be asked).
4. No provider left (or ``max_resubmits`` used up): the task fails as its provider failed
   it, saying why it was not resubmitted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from relay.adapters.base import Created
from relay.clock import Clock
from relay.errors import (
    BudgetExceeded,
    ProviderRejected,
    ProviderUnavailable,
    StoreError,
    SubmissionInFlight,
    SubmissionUncertain,
    UnknownTask,
    UntranslatableInput,
)
from relay.models import Task, TaskStatus
from relay.routing import (
    Route,
    StepOutcome,
    SubmissionStep,
    exhausted_message,
    order,
    resubmission_id,
    resubmitting,
    took_it,
    wants_resubmission,
)
from relay.submissions import RECONCILE_FOR, SubmissionState
from relay.tasks import resubmission as rules
from relay.tasks import verdicts
from relay.tasks.failover import about_content, estimates
from relay.tasks.reconciling import TrackingStore
from relay.tasks.registration import ProviderPlan, Registration, native_input
from relay.tasks.submitting import Submitter
from relay.transitions import Change, apply_answer

log = logging.getLogger("relay.submissions")

RECHECK = 30.0
"""Seconds between looks at a resubmission whose answer is not known yet (a database read,
no provider request): the reconciler or a person settles it meanwhile."""
HOLD = 120.0
"""Seconds a task held for resubmission waits before another instance carries it on, should
this one die first (a live one finishes well before)."""


class Resubmitter:
    def __init__(
        self,
        *,
        store: TrackingStore,
        providers: Mapping[str, ProviderPlan],
        routes: Mapping[str, Route],
        submitter: Submitter,
        clock: Clock,
        first_delay: Callable[[ProviderPlan], float],
        hold: Callable[[Change], Change],
        written: Callable[[Change], None],
    ) -> None:
        """``first_delay(plan)``: seconds to a new task's first poll at that provider;
        ``hold``: the tracker's (outputs); ``written(change)``: told of every write."""
        self._store = store
        self._providers = providers
        self._routes = routes
        self._submitter = submitter
        self._clock = clock
        self._first_delay = first_delay
        self._hold = hold
        self._written = written

    async def failed(self, task: Task, change: Change) -> Task | None:
        """The poll of ``task`` came to ``change``: if that fails the task and its route
        resubmits such failures, resubmit it (what came of it); else None, and the poll
        saves ``change`` as usual."""
        error = change.task.error
        route = self._routes.get(task.route) if task.route else None
        if (
            route is None
            or change.task.status is not TaskStatus.FAILED
            or task.status.terminal
            or error is None
            or task.kept_input is None
            or not wants_resubmission(route, task.submissions, error.code.value)
        ):
            return None
        now = self._clock.now()
        looked = replace(task, looks=change.task.looks, poll_count=change.task.poll_count)
        hold = rules.held(looked, error, now, now + timedelta(seconds=HOLD))
        if not await self._store.save_task(hold, task.version):
            return await self._store.get_task(task.account_id, task.id) or task
        log.info(
            "task %s failed at %s (%s): resubmitting through route %s",
            task.id,
            task.provider,
            error.code.value,
            route.name,
        )
        return await self.resume(replace(hold.task, version=task.version + 1), holding=True)

    async def resume(self, task: Task, *, holding: bool = False) -> Task:
        """Carry on ``task``'s resubmission (its last failure not yet taken elsewhere), unless
        another look holds it now; ``holding``: this look holds it already."""
        now = self._clock.now()
        if not holding:
            if task.resubmit_lease is not None and task.resubmit_lease > now:
                return task  # another look is asking a provider right now
            claim = await self._claim(task, task.submissions)
            if claim is None:
                return await self._store.get_task(task.account_id, task.id) or task
            task = claim
        failure = resubmitting(task.submissions)
        assert failure is not None
        route = self._routes.get(task.route) if task.route else None
        if route is None or task.kept_input is None:
            return await self._give_up(task, list(task.submissions), "its route is gone")
        round_ = sum(s.outcome is StepOutcome.FAILED for s in task.submissions)
        since = task.submissions.index(failure)
        steps = list(task.submissions)
        # Every submission of this round first: one still open (asked by a look that died,
        # or whose answer was lost) is waited for, whatever the order now says.
        earlier = {
            name: await self._store.get_submission(
                task.account_id, resubmission_id(task.id, round_, name)
            )
            for name in route.providers
        }
        for name, sub in earlier.items():
            if sub is not None and sub.state is SubmissionState.ACCEPTED:  # moved meanwhile
                return await self._store.get_task(task.account_id, task.id) or task
            if sub is not None and sub.state.open:
                return await self._wait(task, steps, since, sub.created_at, name, sub.id)
        health = {name: self._providers[name].client.health() for name in route.providers}
        again = Registration(
            provider=route.providers[0],
            input=task.kept_input["input"],
            input_format=task.kept_input.get("format"),
        )
        for name in order(route, health, estimates(route, self._providers, again)):
            if name in took_it(steps) or any(s.provider == name for s in steps[since + 1 :]):
                continue  # took it once, or asked (or skipped) already in this round
            sub = earlier[name]
            if sub is not None:  # certainly not taken (or abandoned by a person)
                said = sub.detail or sub.state.value
                steps.append(SubmissionStep(name, sub.updated_at, StepOutcome.NOT_ACCEPTED, said))
                continue
            plan = self._providers[name]
            reg = Registration(
                provider=name,
                input=task.kept_input["input"],
                input_format=task.kept_input.get("format"),
                route=route.name,
                steps=tuple(steps),
                resubmission=True,
            )
            try:
                native_input(reg, plan)
            except UntranslatableInput as exc:
                steps.append(self._step(name, StepOutcome.SKIPPED, str(exc)))
                continue
            backoff = plan.client.backoff_until()
            if backoff is not None:
                why = f"backed off until {backoff.isoformat(timespec='seconds')}"
                steps.append(self._step(name, StepOutcome.SKIPPED, why))
                continue
            # Hold it again, with the steps so far, before this provider is asked.
            claim = await self._claim(task, steps)
            if claim is None:
                return await self._store.get_task(task.account_id, task.id) or task
            task = claim
            sid = resubmission_id(task.id, round_, name)
            try:
                return await self._submitter.submit(task.account_id, reg, task.id, plan, sid)
            except BudgetExceeded as exc:
                steps.append(self._step(name, StepOutcome.SKIPPED, str(exc)))
            except ProviderRejected as exc:
                steps.append(self._step(name, StepOutcome.NOT_ACCEPTED, str(exc)))
                if about_content(exc):
                    break
            except ProviderUnavailable as exc:
                steps.append(self._step(name, StepOutcome.NOT_ACCEPTED, str(exc)))
            except (SubmissionUncertain, SubmissionInFlight):
                return await self._wait(task, steps, since, self._clock.now(), name, sid)
        asked = steps[since + 1 :]
        why = exhausted_message(route.name, asked) if asked else "no other provider in its route"
        return await self._give_up(task, steps, why)

    async def _claim(self, task: Task, steps: Sequence[SubmissionStep]) -> Task | None:
        """Hold ``task``'s resubmission for this look (None: another look wrote it first)."""
        now = self._clock.now()
        change = rules.claimed(task, steps, now, now + timedelta(seconds=HOLD))
        if await self._store.save_task(change, task.version):
            return replace(change.task, version=task.version + 1)
        return None

    async def taken(
        self,
        account_id: str,
        reg: Registration,
        task_id: str,
        created: Created | None,
        submission: str | None,
    ) -> Task:
        """A provider took the resubmission ``submission`` (just now, or found later by the
        reconciler): move the task there."""
        assert submission is not None
        plan = self._providers[reg.provider]
        provider_task_id = created.provider_task_id if created else reg.provider_task_id
        for _ in range(3):
            task = await self._store.get_task(account_id, task_id)
            if task is None:
                raise UnknownTask(task_id)
            current = resubmitting(task.submissions) is not None and submission == resubmission_id(
                task.id,
                sum(s.outcome is StepOutcome.FAILED for s in task.submissions),
                reg.provider,
            )
            if task.status.terminal or not current:
                # Ended (cancelled) meanwhile, or this is no longer the resubmission the task
                # waits for (a person abandoned it, and another provider took the task).
                return await self._orphaned(task, reg.provider, provider_task_id, submission)
            now = self._clock.now()
            first = now if created is None else now + timedelta(seconds=self._first_delay(plan))
            steps = rules.merged_steps(task.submissions, reg.steps)
            change = rules.moved(
                replace(task, estimate=reg.estimate),
                reg.provider,
                provider_task_id,
                steps,
                now,
                first,
            )
            if created is not None and created.task is not None:
                answered = apply_answer(
                    change.task, created.task, now, verdicts.event_id, plan.prices
                )
                change = verdicts.chain(change, answered)
            change = self._hold(change)
            if await self._store.move_task(change, task.version, submission):
                log.info(
                    "task %s resubmitted: %s took it as %s",
                    task.id,
                    reg.provider,
                    provider_task_id,
                )
                self._written(change)
                return replace(change.task, version=task.version + 1)
        raise StoreError(f"task {task_id} kept changing while its resubmission was saved")

    async def _orphaned(
        self, task: Task, provider: str, provider_task_id: str | None, submission: str
    ) -> Task:
        """A resubmission taken when the task no longer waits for it (it ended, or another
        provider took it): the provider's task is paid and tracked by nothing. Settled as
        taken, saying so, and logged as an error, so that a person knows."""
        log.error(
            "resubmission %s of task %s was taken by %s as %s, but the task no longer waits "
            "for it (%s): that provider task is not tracked",
            submission,
            task.id,
            provider,
            provider_task_id,
            task.status.value,
        )
        await self._store.settle_submission(
            submission,
            SubmissionState.ACCEPTED,
            self._clock.now(),
            f"taken by {provider} as {provider_task_id} after the task no longer waited for "
            f"it ({task.status.value} at {task.provider}): not tracked",
            provider_task_id,
        )
        return task

    async def _wait(
        self,
        task: Task,
        steps: list[SubmissionStep],
        since: int,
        asked_at: datetime,
        provider: str,
        submission: str,
    ) -> Task:
        """``provider``'s answer to ``submission`` (asked at ``asked_at``) is not known yet:
        look again later, or give up once the reconciler no longer looks for it."""
        now = self._clock.now()
        if now - asked_at > RECONCILE_FOR:
            why = f"the answer of {provider} (submission {submission}) was never known"
            return await self._give_up(task, steps, why)
        if not any(
            s.provider == provider and s.outcome is StepOutcome.UNCERTAIN
            for s in steps[since + 1 :]
        ):
            why = f"its answer is not known yet (submission {submission})"
            steps.append(self._step(provider, StepOutcome.UNCERTAIN, why))
        change = rules.waiting(task, steps, now, now + timedelta(seconds=RECHECK))
        return await self._save(task, change)

    async def _give_up(self, task: Task, steps: list[SubmissionStep], why: str) -> Task:
        log.info("task %s not resubmitted: %s", task.id, why)
        return await self._save(task, rules.given_up(task, steps, why, self._clock.now()))

    async def _save(self, task: Task, change: Change) -> Task:
        if await self._store.save_task(change, task.version):
            self._written(change)
            return replace(change.task, version=task.version + 1)
        return await self._store.get_task(task.account_id, task.id) or task

    def _step(self, provider: str, outcome: StepOutcome, error: str) -> SubmissionStep:
        return SubmissionStep(provider, self._clock.now(), outcome, error)
