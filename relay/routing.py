"""Routes: one name for several providers of the same model, tried in turn (pure rules).

``routes: {NAME: {providers: [a, b, c], strategy: ordered | healthiest}}`` in the config; a
route name is accepted wherever a provider name is. A submission through a route asks each
provider in turn, and moves to the next only when the create was certainly not taken
(``relay.submissions.create_was_taken``): never after an answer that may hide a paid task.
A provider that cannot do what is asked (the input does not translate) or that is backed
off is skipped without being asked. Every step is kept on the task (``submissions``).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # models (floor 0 too) imports this module for SubmissionStep
    from relay.provider_answers import ProviderHealth


class Strategy(enum.StrEnum):
    ORDERED = "ordered"
    """The providers in the route's order."""
    HEALTHIEST = "healthiest"
    """Fewest faults in a row first (ties in the route's order)."""
    CHEAPEST = "cheapest"
    """The lowest likely cost of this task first, by the price table (``relay.pricing``);
    providers with no estimate last, ties in the route's order."""


class StepOutcome(enum.StrEnum):
    SKIPPED = "skipped"
    """Not asked: it cannot do what was asked, or it is backed off."""
    NOT_ACCEPTED = "not_accepted"
    """Asked, and it certainly took nothing."""
    UNCERTAIN = "uncertain"
    """Asked, and its answer was lost: the route stops there."""
    ACCEPTED = "accepted"
    FAILED = "failed"
    """It took the task, which then failed there: submitted again on the next provider
    (the route's ``resubmit_on``)."""


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    providers: tuple[str, ...]
    strategy: Strategy = Strategy.ORDERED
    resubmit_on: frozenset[str] = frozenset()
    """Error codes (``relay.models.ErrorCode`` values) of a failure at the provider that
    submit the task again on the next provider; empty: never."""
    max_resubmits: int = 0


@dataclass(frozen=True, slots=True)
class SubmissionStep:
    """One provider of a submission: when, what came of it, and why (a task's
    ``submissions``)."""

    provider: str
    at: datetime
    outcome: StepOutcome
    error: str | None = None
    code: str | None = None
    """A failed step's error code (``relay.models.ErrorCode``), to end the task with if no
    other provider takes it."""

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "at": self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "outcome": self.outcome.value,
            "error": self.error,
        }

    def to_data(self) -> dict[str, Any]:
        data = {**self.to_json(), "at": self.at.timestamp()}
        if self.code is not None:
            data["code"] = self.code
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> SubmissionStep:
        return cls(
            provider=str(data["provider"]),
            at=datetime.fromtimestamp(float(data["at"]), UTC),
            outcome=StepOutcome(data["outcome"]),
            error=data.get("error"),
            code=data.get("code"),
        )


def order(
    route: Route,
    health: Mapping[str, ProviderHealth],
    estimates: Mapping[str, Decimal | None] | None = None,
) -> list[str]:
    """The route's providers in the order to ask them; ``estimates``: each one's likely cost
    of this task (``cheapest``)."""
    if route.strategy is Strategy.ORDERED:
        return list(route.providers)
    position = {name: n for n, name in enumerate(route.providers)}
    if route.strategy is Strategy.CHEAPEST:
        costs = estimates or {}

        def price(name: str) -> tuple[bool, Decimal, int]:
            found = costs.get(name)
            return (found is None, found or Decimal(0), position[name])

        return sorted(route.providers, key=price)

    def faults(name: str) -> tuple[int, int]:
        known = health.get(name)
        return (known.consecutive_faults if known else 0, position[name])

    return sorted(route.providers, key=faults)


def exhausted_message(route: str, steps: list[SubmissionStep]) -> str:
    """Why no provider of ``route`` took the task, one clause per provider."""
    said = "; ".join(f"{s.provider}: {s.outcome.value} ({s.error})" for s in steps)
    return f"no provider of route {route!r} took the task: {said}"


# Resubmission: a task that failed at the provider that took it, submitted again on the next
# provider of its route under the same relay task id (``relay.tasks.resubmitting``).

RESUBMITTABLE = frozenset({"provider_error", "timeout", "quota_exceeded"})
"""Failures that are the provider's, not the caller's: another provider may well succeed.
Never ``content_policy`` or ``invalid_request``, which every provider would repeat."""


def wants_resubmission(route: Route, steps: Sequence[SubmissionStep], code: str) -> bool:
    """Whether a failure with ``code`` at the provider that took the task submits it again."""
    done = sum(step.outcome is StepOutcome.FAILED for step in steps)
    return code in route.resubmit_on and code in RESUBMITTABLE and done < route.max_resubmits


def resubmitting(steps: Sequence[SubmissionStep]) -> SubmissionStep | None:
    """The failure whose resubmission is under way (a failed step no later step accepted
    the task after); None when the provider that has the task is the last one asked."""
    for step in reversed(steps):
        if step.outcome is StepOutcome.ACCEPTED:
            return None
        if step.outcome is StepOutcome.FAILED:
            return step
    return None


def took_it(steps: Sequence[SubmissionStep]) -> frozenset[str]:
    """The providers that took the task once: a resubmission never goes back to them."""
    return frozenset(
        step.provider
        for step in steps
        if step.outcome in (StepOutcome.ACCEPTED, StepOutcome.FAILED)
    )


def resubmission_id(task_id: str, round_: int, provider: str) -> str:
    """The submission id of resubmitting ``task_id`` to ``provider`` after its ``round_``-th
    failure: the same on every instance and after any restart, so two relays that both see
    the failure write one submission, and only the one that wrote it asks the provider."""
    digest = hashlib.sha256(f"{task_id}\x00{round_}\x00{provider}".encode()).hexdigest()
    return f"smb_r{digest[:26]}"
