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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from relay.adapters.base import Created
from relay.clock import Clock
from relay.errors import (
    DuplicateTask,
    ProviderRejected,
    ProviderUnavailable,
    StoreError,
    SubmissionInFlight,
    SubmissionSettled,
    SubmissionStillUncertain,
    SubmissionUncertain,
    UnknownProvider,
    UnknownSubmission,
)
from relay.heartbeat import renewing
from relay.ids import new_id
from relay.models import EventType, FaultKind, ProviderFault, Task
from relay.store.interface import SubmissionStore, TaskStore
from relay.submissions import (
    Found,
    Submission,
    SubmissionState,
    body_hash,
    create_was_taken,
    match_submission,
    matched_params,
)
from relay.tasks.registration import ProviderPlan, Registration, native_input

log = logging.getLogger("relay.submissions")

LEASE = 15.0
"""Seconds a pending submission outlives the request asking the provider: renewed while the
create runs (``relay.heartbeat``), so only a dead process's submission runs out."""
DEAD_HOLDER = "the relay stopped before the provider's answer to the create was known"
RECONCILE_FIRST = 10.0
"""Seconds after a submission became uncertain before its provider's list is first read:
a task may show in the list a moment after it was created."""
RECONCILE_MAX_WAIT = 3600.0
"""The longest wait between two looks at one uncertain submission's provider list."""
RECONCILE_FOR = timedelta(hours=48)
"""After this (Ark's longest task life) an uncertain submission is left to a person."""


class Track(Protocol):
    def __call__(
        self,
        account_id: str,
        reg: Registration,
        task_id: str,
        created: Created | None,
        submission: str | None,
    ) -> Awaitable[Task]: ...


class TrackingStore(TaskStore, SubmissionStore, Protocol):
    """What the tracker and the submitter write: tasks and the submissions behind them."""


@dataclass(frozen=True, slots=True)
class _Retry:
    at: datetime
    wait: float


class Submitter:
    def __init__(
        self,
        *,
        store: TrackingStore,
        providers: Mapping[str, ProviderPlan],
        clock: Clock,
        track: Track,
        webhook_url: Callable[[str, str, str], str | None],
    ) -> None:
        """``track(account_id, reg, task_id, created, submission)`` writes the task (and
        accepts ``submission`` with it); ``webhook_url(provider, account_id, task_id)`` is
        the push URL to give a provider that pushes (None: none)."""
        self._store = store
        self._providers = providers
        self._clock = clock
        self._track = track
        self._webhook_url = webhook_url
        self._retries: dict[str, _Retry] = {}
        """When each uncertain submission's provider list is read next."""

    async def submit(
        self, account_id: str, reg: Registration, task_id: str, plan: ProviderPlan
    ) -> Task:
        body = native_input(reg, plan)
        digest = body_hash(body)
        if reg.idempotency_key is not None:
            earlier = await self._store.submission_for_key(account_id, reg.idempotency_key)
            if (
                earlier is not None
                and earlier.body_hash == digest
                and earlier.state in (SubmissionState.ACCEPTED, *_OPEN)
            ):
                return await self._repeat(earlier)
        now = self._clock.now()
        submission = Submission(
            id=new_id("smb"),
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
        await self._store.begin_submission(submission)
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
        try:
            return await self._track(account_id, reg, task_id, answer, submission.id)
        except DuplicateTask:
            # Reconciled meanwhile (this request outlived its lease): the same task.
            settled = await self._store.get_submission(account_id, submission.id)
            if settled is not None and settled.state is SubmissionState.ACCEPTED:
                task = await self._store.get_task(account_id, settled.task_id)
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
            )
            raise

    async def _failed(self, submission: Submission, fault: ProviderFault) -> Task:
        said = f"{fault.kind.value}: {fault.message}"
        if create_was_taken(fault) is False:
            await self._store.settle_submission(
                submission.id, SubmissionState.NOT_ACCEPTED, self._clock.now(), said
            )
            if fault.kind is FaultKind.INVALID_REQUEST:
                raise ProviderRejected(fault)
            raise ProviderUnavailable(f"the provider could not take the task now: {fault.message}")
        await self._store.settle_submission(
            submission.id, SubmissionState.UNCERTAIN, self._clock.now(), said
        )
        log.warning(
            "submission %s to %s is uncertain: %s", submission.id, submission.provider, said
        )
        raise SubmissionUncertain(
            submission.id, f"the provider's answer to the create was lost ({said})"
        )

    async def _repeat(self, earlier: Submission) -> Task:
        if earlier.state is SubmissionState.ACCEPTED:
            task = await self._store.get_task(earlier.account_id, earlier.task_id)
            if task is not None:
                return task
        elif earlier.state is SubmissionState.PENDING and earlier.lease_until > self._clock.now():
            raise SubmissionInFlight(
                "a request with this Idempotency-Key is still waiting for the provider"
            )
        else:
            task = await self.reconcile(earlier)
            if task is not None:
                return task
        raise SubmissionStillUncertain(
            earlier.id,
            "an earlier request with this Idempotency-Key was sent to the provider and its "
            "answer was lost",
        )

    # reconciling

    async def reconcile(self, sub: Submission) -> Task | None:
        """Track the task ``sub`` created, if it can be told; None otherwise (the
        submission stays uncertain, with the reason in its ``detail``)."""
        now = self._clock.now()
        if sub.state is SubmissionState.PENDING:
            await self._store.settle_submission(sub.id, SubmissionState.UNCERTAIN, now, DEAD_HOLDER)
        plan = self._providers.get(sub.provider)
        if plan is None:
            return None
        provider_task_id = sub.provider_task_id
        if provider_task_id is None:
            found = await self._find(sub, plan)
            if found is None:
                return None
            provider_task_id = found
        task = await self.adopt(sub, provider_task_id)
        log.info(
            "submission %s reconciled: provider %s task %s, tracked as %s",
            sub.id,
            sub.provider,
            provider_task_id,
            task.id,
        )
        return task

    async def _find(self, sub: Submission, plan: ProviderPlan) -> str | None:
        model = sub.registration.get("model")
        listed = await plan.client.list_recent(model if isinstance(model, str) else None)
        if listed is None:
            await self._note(sub, "this provider has no task list to look it up in")
            return None
        if isinstance(listed, ProviderFault):
            return None  # looked up again later
        ids = [c.provider_task_id for c in listed]
        known = await self._store.known_provider_task_ids(sub.provider, ids)
        verdict = match_submission(sub, sub.lease_until, listed, known, await self._rivals(sub))
        if isinstance(verdict, Found):
            return verdict.provider_task_id
        await self._note(sub, f"not found in the provider's task list: {verdict.reason}")
        return None

    async def _rivals(self, sub: Submission) -> int:
        """Other open submissions whose task could be the one ``sub`` finds."""
        model = sub.registration.get("model")
        return sum(
            1
            for other in await self._store.open_submissions(1000)
            if other.id != sub.id
            and other.provider == sub.provider
            and other.registration.get("model") in (None, model)
            and other.created_at <= sub.lease_until
            and sub.created_at <= other.lease_until
        )

    async def _note(self, sub: Submission, detail: str) -> None:
        if sub.detail != detail:
            await self._store.settle_submission(
                sub.id, SubmissionState.UNCERTAIN, self._clock.now(), detail
            )

    async def adopt(self, sub: Submission, provider_task_id: str) -> Task:
        """Track ``provider_task_id`` as ``sub``'s task, with everything the caller asked
        for (callback, reference, metadata), and accept ``sub`` in the same write."""
        reg = _registration_from(sub, provider_task_id)
        try:
            return await self._track(sub.account_id, reg, sub.task_id, None, sub.id)
        except DuplicateTask:
            again = await self._store.get_submission(sub.account_id, sub.id)
            if again is not None and again.state is SubmissionState.ACCEPTED:
                task = await self._store.get_task(sub.account_id, again.task_id)
                if task is not None:
                    return task
            raise

    async def reconcile_open(self) -> int:
        """One pass of the reconciler (from housekeeping): pending submissions whose holder
        died become uncertain, and uncertain ones are looked up, each on a back-off. How
        many were settled."""
        now = self._clock.now()
        await self._store.expire_submissions(now, DEAD_HOLDER)
        settled = 0
        open_now = await self._store.open_submissions(1000)
        for sub in open_now:
            if sub.state is not SubmissionState.UNCERTAIN or now - sub.created_at > RECONCILE_FOR:
                continue
            retry = self._retries.get(sub.id)
            if retry is None:
                retry = _Retry(sub.updated_at + timedelta(seconds=RECONCILE_FIRST), RECONCILE_FIRST)
            if retry.at > now:
                self._retries[sub.id] = retry
                continue
            try:
                task = await self.reconcile(sub)
            except (StoreError, DuplicateTask) as exc:
                log.warning("could not reconcile submission %s: %s", sub.id, exc)
                task = None
            if task is not None:
                settled += 1
                self._retries.pop(sub.id, None)
            else:
                wait = min(retry.wait * 2, RECONCILE_MAX_WAIT)
                self._retries[sub.id] = _Retry(now + timedelta(seconds=wait), wait)
        still = {s.id for s in open_now}
        for gone in [k for k in self._retries if k not in still]:
            del self._retries[gone]
        return settled

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
        if sub.provider not in self._providers:
            raise UnknownProvider(sub.provider)
        if provider_task_id is not None:
            return await self.adopt(sub, provider_task_id)
        if not await self._store.settle_submission(
            sub.id, SubmissionState.ABANDONED, self._clock.now(), "abandoned through the API"
        ):
            raise SubmissionSettled(f"submission {sub.id} was settled meanwhile")
        again = await self._store.get_submission(account_id, submission_id)
        assert again is not None
        return again


_OPEN = (SubmissionState.PENDING, SubmissionState.UNCERTAIN)


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
    }


def _registration_from(sub: Submission, provider_task_id: str) -> Registration:
    r = sub.registration
    events = r.get("callback_events")
    return Registration(
        provider=sub.provider,
        provider_task_id=provider_task_id,
        callback_url=r.get("callback_url"),
        callback_events=None if events is None else frozenset(EventType(e) for e in events),
        reference=r.get("reference"),
        metadata=r.get("metadata"),
    )
