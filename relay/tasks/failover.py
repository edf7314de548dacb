"""Submitting through a route (``relay.routing``): each provider in turn, never paying twice.

A provider is skipped without being asked when the input does not translate to it
(``unsupported_by_provider``) or when it is backed off. One that is asked gets a submission
of its own (``relay.tasks.submitting``: written before the create, settled by the answer);
the next provider is asked only if that one certainly took nothing. An answer that may hide
a task (a timeout after the body was sent, a connection cut before the answer, a 5xx whose
meaning is unknown) ends the route at once with ``submission_uncertain``: never a second
create. The steps go on the task (``submissions``) and, when no provider took it, into the
502 that says why for each.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal

from relay.adapters.video_input import is_neutral
from relay.clock import Clock
from relay.errors import (
    BudgetExceeded,
    InvalidInput,
    ProviderRejected,
    ProviderUnavailable,
    RouteUnavailable,
    SubmissionKeyReused,
    UntranslatableInput,
)
from relay.models import Task
from relay.routing import (
    Route,
    StepOutcome,
    Strategy,
    SubmissionStep,
    exhausted_message,
    order,
)
from relay.submissions import body_hash
from relay.tasks.budgets import likely_cost
from relay.tasks.registration import ProviderPlan, Registration, native_input
from relay.tasks.submitting import Submitter

log = logging.getLogger("relay.submissions")


async def submit_through(
    submitter: Submitter,
    route: Route,
    providers: Mapping[str, ProviderPlan],
    clock: Clock,
    account_id: str,
    reg: Registration,
    task_id: str,
) -> Task:
    earlier = await _earlier(submitter, route, providers, account_id, reg)
    if earlier is not None:
        return earlier
    dialects = {providers[name].client.dialect.name for name in route.providers}
    if len(dialects) > 1 and not is_neutral_input(reg):
        raise InvalidInput(
            "input",
            f"route {route.name!r} spans providers of different dialects "
            f"({', '.join(sorted(dialects))}): give the provider-neutral input "
            "(model, prompt, ...), which the relay translates for each",
        )
    health = {name: providers[name].client.health() for name in route.providers}
    likely = estimates(route, providers, reg) if route.strategy is Strategy.CHEAPEST else {}
    steps: list[SubmissionStep] = []
    unsupported: list[UntranslatableInput] = []
    over_budget: BudgetExceeded | None = None
    rejected: ProviderRejected | None = None
    rejections = 0
    for name in order(route, health, likely):
        plan = providers[name]
        asked = replace(
            reg,
            provider=name,
            route=route.name,
            steps=tuple(steps),
            keep_input=bool(route.resubmit_on),
        )
        try:
            native_input(asked, plan)
        except UntranslatableInput as exc:
            unsupported.append(exc)
            steps.append(SubmissionStep(name, clock.now(), StepOutcome.SKIPPED, str(exc)))
            continue
        backoff = plan.client.backoff_until()
        if backoff is not None:
            why = f"backed off until {backoff.isoformat(timespec='seconds')}"
            steps.append(SubmissionStep(name, clock.now(), StepOutcome.SKIPPED, why))
            continue
        try:
            return await submitter.submit(account_id, asked, task_id, plan)
        except BudgetExceeded as exc:  # here; a cheaper provider may still fit
            over_budget = exc
            steps.append(SubmissionStep(name, clock.now(), StepOutcome.SKIPPED, str(exc)))
            continue
        except ProviderRejected as exc:
            # The request itself was refused: another provider may take it, unless it was
            # refused for its content, which every provider would refuse as well.
            rejected, rejections = exc, rejections + 1
            steps.append(SubmissionStep(name, clock.now(), StepOutcome.NOT_ACCEPTED, str(exc)))
            if about_content(exc):
                raise
        except ProviderUnavailable as exc:
            # Certainly not taken (relay.submissions.create_was_taken): the next may.
            steps.append(SubmissionStep(name, clock.now(), StepOutcome.NOT_ACCEPTED, str(exc)))
            log.info("route %s: %s did not take the task: %s", route.name, name, exc)
    if steps and len(unsupported) == len(steps):  # the input's fault, not the providers'
        said = "; ".join(f"{s.provider}: {s.error}" for s in steps)
        raise UntranslatableInput(
            unsupported[0].field, f"no provider of route {route.name!r} can do this: {said}"
        )
    if over_budget is not None and all(s.outcome is StepOutcome.SKIPPED for s in steps):
        raise over_budget
    tried = sum(s.outcome is StepOutcome.NOT_ACCEPTED for s in steps)
    if rejected is not None and rejections == tried:
        raise rejected  # the caller's request, as every provider asked said: a 400
    raise RouteUnavailable(exhausted_message(route.name, steps), tuple(steps))


def estimates(
    route: Route, providers: Mapping[str, ProviderPlan], reg: Registration
) -> dict[str, Decimal | None]:
    """Each provider's likely cost of this task (None where the input does not translate)."""
    found: dict[str, Decimal | None] = {}
    for name in route.providers:
        plan = providers[name]
        try:
            found[name] = likely_cost(plan, native_input(replace(reg, provider=name), plan))
        except UntranslatableInput:
            found[name] = None
    return found


def about_content(exc: ProviderRejected) -> bool:
    """Whether the provider refused the input for what it shows (a moderation refusal)."""
    said = f"{exc.fault.provider_code or ''} {exc.fault.message}".lower()
    return any(word in said for word in CONTENT_REFUSALS)


CONTENT_REFUSALS = ("sensitive", "policy", "moderation", "nsfw", "safety")


def is_neutral_input(reg: Registration) -> bool:
    assert reg.input is not None
    return reg.input_format == "unified" or (reg.input_format is None and is_neutral(reg.input))


async def _earlier(
    submitter: Submitter,
    route: Route,
    providers: Mapping[str, ProviderPlan],
    account_id: str,
    reg: Registration,
) -> Task | None:
    """A repeat of an earlier request through this route (the same Idempotency-Key and
    input): its answer, from the provider that decided it, never a new round."""
    if reg.idempotency_key is None:
        return None
    last = await submitter.latest_for_key(account_id, reg.idempotency_key)
    if last is None or last.provider not in route.providers:
        return None
    try:
        body = native_input(replace(reg, provider=last.provider), providers[last.provider])
    except UntranslatableInput:
        body = None
    if body is not None and body_hash(body) == last.body_hash:
        return await submitter.repeat_if_decided(last)
    if last.state.open:
        raise SubmissionKeyReused(
            "this Idempotency-Key was used with a different request, whose "
            f"submission {last.id} is not settled"
        )
    return None
