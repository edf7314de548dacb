"""Submitting a task to a provider without ever paying twice or losing what was paid for.

The sequence (``relay.submissions`` has the states and the pure rules):

1. A repeat of an earlier request (same Idempotency-Key, same provider body) is answered
   from that request's submission: its task, ``submission_uncertain`` while nobody knows,
   never a second create.
2. The intent is written (``pending``, leased to this request) before the provider is asked.
3. The provider's answer settles it: a task, created in the transaction that accepts the
   submission; a refusal that certainly took nothing (``not_accepted``, so a retry may run);
   or an answer that says nothing (``uncertain``, 502 ``submission_uncertain``).
4. An uncertain submission (or a pending one whose process died) is reconciled: the task id
   the provider gave, if it was known before the task could be written; else the
   provider's task list, where the dialect has one and exactly one unclaimed task matches.
   What cannot be told waits for a person (``POST /v1/submissions/{id}/resolve``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from relay.clock import Clock
from relay.errors import (
    DuplicateTask,
    ProviderRejected,
    ProviderUnavailable,
    StoreError,
    SubmissionInFlight,
    SubmissionKeyReused,
    SubmissionSettled,
    SubmissionStillUncertain,
    SubmissionUncertain,
    UnknownSubmission,
    UnknownTask,
)
from relay.heartbeat import renewing
from relay.ids import new_id
from relay.models import Task
from relay.provider_answers import FaultKind, ProviderFault
from relay.routing import StepOutcome, SubmissionStep
from relay.submissions import (
    LOOK_FIRST,
    Submission,
    SubmissionState,
    body_hash,
    create_was_taken,
    matched_params,
)
from relay.tasks.budgets import Budgets, estimate_of
from relay.tasks.reconciling import Reconciler, Track, TrackingStore
from relay.tasks.registration import ProviderPlan, Registration, native_input

log = logging.getLogger("relay.submissions")

LEASE = 15.0
"""Seconds a pending submission outlives the request asking the provider: renewed while the
create runs (``relay.heartbeat``), so only a dead process's submission runs out."""


class Submitter:
    def __init__(
        self,
        *,
        store: TrackingStore,
        providers: Mapping[str, ProviderPlan],
        clock: Clock,
        track: Track,
        webhook_url: Callable[[str, str, str], str | None],
        budgets: Budgets | None = None,
    ) -> None:
        """``track(account_id, reg, task_id, created, submission)`` writes the task (and
        accepts ``submission`` with it); ``webhook_url(provider, account_id, task_id)`` is
        the push URL to give a provider that pushes (None: none)."""
        self._store = store
        self._clock = clock
        self._track = track
        self._webhook_url = webhook_url
        self._budgets = budgets
        self.reconciler = Reconciler(store=store, providers=providers, clock=clock, track=track)

    async def submit(
        self,
        account_id: str,
        reg: Registration,
        task_id: str,
        plan: ProviderPlan,
        submission_id: str | None = None,
    ) -> Task:
        """``submission_id``: the id to write the submission under (a resubmission's, the
        same on every instance); ``SubmissionInFlight`` when it exists already."""
        body = native_input(reg, plan)
        digest = body_hash(body)
        if reg.idempotency_key is not None:
            if reg.key_latest is not None:  # read when the request reserved the key
                earlier = reg.key_latest.latest
            else:
                earlier = await self._store.submission_for_key(account_id, reg.idempotency_key)
            if earlier is not None and earlier.body_hash == digest:
                if earlier.state is SubmissionState.ACCEPTED or earlier.state.open:
                    return await self._repeat(earlier)
            elif earlier is not None and earlier.state.open:
                # Its reservation was let go (a 502 keeps nothing), the submission was not.
                raise SubmissionKeyReused(
                    "this Idempotency-Key was used with a different request, whose "
                    f"submission {earlier.id} is not settled"
                )
        if self._budgets is not None:
            await self._budgets.check(account_id, reg.provider, plan, body)
        reg = replace(reg, estimate=estimate_of(plan, body))
        now = self._clock.now()
        submission = Submission(
            id=submission_id or new_id("smb"),
            account_id=account_id,
            task_id=task_id,
            provider=reg.provider,
            state=SubmissionState.PENDING,
            body_hash=digest,
            registration=_registration_json(reg, body),
            created_at=now,
            updated_at=now,
            lease_until=now + timedelta(seconds=LEASE),
            idempotency_key=reg.idempotency_key,
        )
        if not await self._store.begin_submission(submission):
            raise SubmissionInFlight(f"submission {submission.id} was begun elsewhere")
        webhook = None
        if plan.client.dialect.pushes:
            webhook = self._webhook_url(reg.provider, account_id, task_id)
        async with renewing(
            lambda: self._store.renew_submission(
                submission.id, self._clock.now() + timedelta(seconds=LEASE)
            ),
            LEASE / 3,
            f"submission {submission.id}",
        ):
            answer = await plan.client.create(body, webhook)
        if isinstance(answer, ProviderFault):
            return await self._failed(submission, answer)
        took = SubmissionStep(reg.provider, self._clock.now(), StepOutcome.ACCEPTED)
        reg = replace(reg, steps=(*reg.steps, took))
        try:
            return await self._track(account_id, reg, task_id, answer, submission.id)
        except (DuplicateTask, SubmissionSettled):
            # Reconciled meanwhile (this request outlived its lease): the same task.
            task = await self.reconciler.accepted_task(submission)
            if task is not None:
                return task
            raise
        except StoreError:
            # Paid for and not recorded: keep what the provider said where the reconciler
            # finds it (if the database takes this write), and in the log if not.
            log.error(
                "provider %s took submission %s as task %s, but the task could not be saved",
                reg.provider,
                submission.id,
                answer.provider_task_id,
            )
            await self._store.settle_submission(
                submission.id,
                SubmissionState.UNCERTAIN,
                self._clock.now(),
                "the provider took it, but the relay could not save the task",
                answer.provider_task_id,
                next_look_at=self._clock.now(),
            )
            raise

    async def latest_for_key(self, account_id: str, key: str) -> Submission | None:
        return await self._store.submission_for_key(account_id, key)

    async def repeat_if_decided(self, earlier: Submission) -> Task | None:
        """The answer to a repeat of ``earlier`` when it took a task or may have (as
        ``submit`` answers one); None when it certainly took nothing (submit again)."""
        if earlier.state is SubmissionState.ACCEPTED or earlier.state.open:
            return await self._repeat(earlier)
        return None

    async def _failed(self, submission: Submission, fault: ProviderFault) -> Task:
        said = f"{fault.kind.value}: {fault.message}"
        now = self._clock.now()
        if create_was_taken(fault) is False:
            await self._store.settle_submission(
                submission.id, SubmissionState.NOT_ACCEPTED, now, said
            )
            if fault.kind is FaultKind.INVALID_REQUEST:
                raise ProviderRejected(fault)
            raise ProviderUnavailable(f"the provider could not take the task now: {fault.message}")
        first_look = now + timedelta(seconds=LOOK_FIRST)
        await self._store.settle_submission(
            submission.id, SubmissionState.UNCERTAIN, now, said, next_look_at=first_look
        )
        log.warning(
            "submission %s to %s is uncertain: %s", submission.id, submission.provider, said
        )
        raise SubmissionUncertain(
            submission.id, f"the provider's answer to the create was lost ({said})"
        )

    async def _repeat(self, earlier: Submission) -> Task:
        """Answer a repeat of ``earlier`` from what is known of it. The provider is asked
        only when the submission's next look is due anyway, so a client retrying in a loop
        costs no more provider requests than the reconciler's own schedule."""
        now = self._clock.now()
        if earlier.state is SubmissionState.ACCEPTED:
            task = await self._store.get_task(earlier.account_id, earlier.task_id)
            if task is not None:
                return task
            raise UnknownTask(earlier.task_id)
        if earlier.state is SubmissionState.PENDING and earlier.lease_until > now:
            raise SubmissionInFlight(
                "a request with this Idempotency-Key is still waiting for the provider"
            )
        looked = await self.reconciler.look_if_due(earlier)
        if isinstance(looked, Task):
            return looked
        wait = None if looked is None else max(1, math.ceil((looked - now).total_seconds()))
        raise SubmissionStillUncertain(
            earlier.id,
            "an earlier request with this Idempotency-Key was sent to the provider and its "
            "answer was lost",
            retry_after=wait,
        )

    # settling by hand

    async def resolve(
        self, account_id: str, submission_id: str, provider_task_id: str | None
    ) -> Submission | Task:
        """Settle an uncertain submission: with ``provider_task_id`` (found at the
        provider), track that task; without, abandon it (nothing was created, so a retry
        with its Idempotency-Key submits again)."""
        sub = await self._store.get_submission(account_id, submission_id)
        if sub is None:
            raise UnknownSubmission(submission_id)
        if not sub.state.open:
            raise SubmissionSettled(f"submission {sub.id} is already {sub.state.value}")
        if sub.state is SubmissionState.PENDING and sub.lease_until > self._clock.now():
            raise SubmissionInFlight("the relay is still waiting for the provider's answer")
        if provider_task_id is not None:
            return await self.reconciler.adopt(sub, provider_task_id)
        if sub.provider_task_id is not None:
            raise SubmissionSettled(
                f"the provider took submission {sub.id} as task {sub.provider_task_id}: "
                "resolve it with that provider_task_id instead"
            )
        if not await self._store.settle_submission(
            sub.id,
            SubmissionState.ABANDONED,
            self._clock.now(),
            "abandoned by hand (API or dashboard)",
        ):
            raise SubmissionSettled(f"submission {sub.id} was settled meanwhile")
        again = await self._store.get_submission(account_id, submission_id)
        assert again is not None
        return again


def _registration_json(reg: Registration, body: Mapping[str, Any]) -> dict[str, Any]:
    model = body.get("model")
    return {
        "callback_url": reg.callback_url,
        "callback_events": None
        if reg.callback_events is None
        else sorted(e.value for e in reg.callback_events),
        "reference": reg.reference,
        "metadata": dict(reg.metadata) if reg.metadata is not None else None,
        "model": model if isinstance(model, str) else None,
        "params": matched_params(body),
        "route": reg.route,
        "steps": [step.to_data() for step in reg.steps],
        "callback_format": reg.callback_format,
        "estimate": reg.estimate.to_json() if reg.estimate else None,
        "resubmission": reg.resubmission,
        # The caller's input is not kept, unless a route may have to submit it again.
        "kept_input": reg.kept_input(),
    }
