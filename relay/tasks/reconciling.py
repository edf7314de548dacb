"""Reconciling uncertain submissions: finding the task a create whose answer was lost made
at the provider, and tracking it as if the answer had come (``relay.submissions``).

Only the reconciler asks the provider, on each submission's own schedule (``next_look_at``,
kept in the database so every instance and every restart shares it): a client repeating
its request, however often, costs no more provider requests than that schedule. A task is
adopted only when it is known for sure: the task id the provider gave before the task could
be written, or the one listed task that matches the submission while no other open
submission to that provider could own it, so another tenant's video never reaches a caller.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from datetime import datetime
from typing import Protocol

from relay.adapters.base import Created
from relay.clock import Clock
from relay.errors import DuplicateTask, StoreError, SubmissionSettled
from relay.models import EventType, Task
from relay.pricing import Cost
from relay.provider_answers import FaultKind, ProviderFault
from relay.routing import StepOutcome, SubmissionStep
from relay.store.interface import TaskStore
from relay.store.submission_roles import SubmissionStore
from relay.submissions import (
    MATCH_EARLY,
    RECONCILE_FOR,
    Found,
    Submission,
    SubmissionState,
    is_rival,
    match_submission,
    next_look,
)
from relay.tasks.registration import ProviderPlan, Registration

log = logging.getLogger("relay.submissions")

DEAD_HOLDER = "the relay stopped before the provider's answer to the create was known"
NO_LIST = "this provider has no task list to look it up in: settle it with its task id"
BATCH = 50
"""Submissions one reconciler pass looks at, the longest waiting first."""


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


class Reconciler:
    def __init__(
        self,
        *,
        store: TrackingStore,
        providers: Mapping[str, ProviderPlan],
        clock: Clock,
        track: Track,
    ) -> None:
        self._store = store
        self._providers = providers
        self._clock = clock
        self._track = track

    async def reconcile_open(self) -> int:
        """One pass (from the scheduler): pending submissions whose holder died become
        uncertain, and the uncertain ones whose look is due are looked up. How many were
        settled."""
        now = self._clock.now()
        await self._store.expire_submissions(now, DEAD_HOLDER)
        settled = 0
        for sub in await self._store.due_submissions(now, now - RECONCILE_FOR, BATCH):
            try:
                if isinstance(await self.look(sub), Task):
                    settled += 1
            except (StoreError, DuplicateTask, SubmissionSettled) as exc:
                log.warning("could not reconcile submission %s: %s", sub.id, exc)
        return settled

    async def look_if_due(self, sub: Submission) -> Task | datetime | None:
        """For a request repeating ``sub``: its task if a look now finds it; else when the
        next look comes (None: no look will, a person must settle it)."""
        now = self._clock.now()
        if sub.state is SubmissionState.PENDING:  # its holder died, its lease ran out
            await self._store.settle_submission(
                sub.id, SubmissionState.UNCERTAIN, now, DEAD_HOLDER, next_look_at=now
            )
            return await self.look(sub)
        if sub.next_look_at is not None and sub.next_look_at <= now:
            return await self.look(sub)
        return sub.next_look_at

    async def look(self, sub: Submission) -> Task | datetime | None:
        """Look for ``sub``'s task once: the task, adopted; else when to look again."""
        found = sub.provider_task_id
        if found is None:
            plan = self._providers.get(sub.provider)
            if plan is None:
                why = "its provider is no longer configured"
                await self._store.note_look(sub.id, self._clock.now(), why, None)
                return None
            looked = await self._find(sub, plan)
            if not isinstance(looked, str):
                return looked
            found = looked
        task = await self.adopt(sub, found)
        log.info(
            "submission %s reconciled: provider %s task %s, tracked as %s",
            sub.id,
            sub.provider,
            found,
            task.id,
        )
        return task

    async def _find(self, sub: Submission, plan: ProviderPlan) -> str | datetime | None:
        """The provider task id ``sub`` made, or (noted in the store) when to look again."""
        now = self._clock.now()
        model = sub.registration.get("model")
        listed = await plan.client.list_recent(model if isinstance(model, str) else None)
        if listed is None or (
            isinstance(listed, ProviderFault) and listed.kind is FaultKind.NOT_FOUND
        ):
            await self._store.note_look(sub.id, now, NO_LIST, None)
            return None
        again = next_look(now, sub.looks)
        if isinstance(listed, ProviderFault):
            why = f"the provider's task list could not be read: {listed.kind.value}"
            await self._store.note_look(sub.id, now, why, again)
            return again
        known = await self._store.known_provider_task_ids(
            sub.provider, [c.provider_task_id for c in listed]
        )
        rivals = [
            other
            for other in await self._store.rival_submissions(
                sub, sub.created_at - MATCH_EARLY, sub.lease_until
            )
            if is_rival(sub, other)
        ]
        verdict = match_submission(sub, sub.lease_until, listed, known, len(rivals))
        if isinstance(verdict, Found):
            return verdict.provider_task_id
        why = f"not found in the provider's task list: {verdict.reason}"
        await self._store.note_look(sub.id, now, why, again)
        return again

    async def adopt(self, sub: Submission, provider_task_id: str) -> Task:
        """Track ``provider_task_id`` as ``sub``'s task, with everything the caller asked
        for (callback, reference, metadata), and accept ``sub`` in the same write."""
        reg = _registration_from(sub, provider_task_id)
        try:
            return await self._track(sub.account_id, reg, sub.task_id, None, sub.id)
        except (DuplicateTask, SubmissionSettled):
            task = await self.accepted_task(sub)
            if task is not None:
                return task
            raise

    async def accepted_task(self, sub: Submission) -> Task | None:
        """``sub``'s task, when another writer (a live request, another instance) accepted
        it first."""
        again = await self._store.get_submission(sub.account_id, sub.id)
        if again is None or again.state is not SubmissionState.ACCEPTED:
            return None
        return await self._store.get_task(sub.account_id, again.task_id)


def _registration_from(sub: Submission, provider_task_id: str) -> Registration:
    r = sub.registration
    events = r.get("callback_events")
    steps = tuple(SubmissionStep.from_data(step) for step in r.get("steps", ()))
    kept = r.get("kept_input")
    found = SubmissionStep(
        sub.provider,
        sub.created_at,
        StepOutcome.ACCEPTED,
        "its answer was lost; found at the provider later",
    )
    return Registration(
        provider=sub.provider,
        provider_task_id=provider_task_id,
        callback_url=r.get("callback_url"),
        callback_events=None if events is None else frozenset(EventType(e) for e in events),
        reference=r.get("reference"),
        metadata=r.get("metadata"),
        route=r.get("route"),
        steps=(*steps, found),
        callback_format=r.get("callback_format") or "standard",
        estimate=Cost.from_json(r["estimate"]) if r.get("estimate") else None,
        resubmission=bool(r.get("resubmission")),
        input=kept["input"] if isinstance(kept, dict) else None,
        input_format=kept.get("format") if isinstance(kept, dict) else None,
        keep_input=isinstance(kept, dict),
    )
