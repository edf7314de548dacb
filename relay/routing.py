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
from collections.abc import Mapping
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


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    providers: tuple[str, ...]
    strategy: Strategy = Strategy.ORDERED


@dataclass(frozen=True, slots=True)
class SubmissionStep:
    """One provider of a submission: when, what came of it, and why (a task's
    ``submissions``)."""

    provider: str
    at: datetime
    outcome: StepOutcome
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "at": self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "outcome": self.outcome.value,
            "error": self.error,
        }

    def to_data(self) -> dict[str, Any]:
        return {**self.to_json(), "at": self.at.timestamp()}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> SubmissionStep:
        return cls(
            provider=str(data["provider"]),
            at=datetime.fromtimestamp(float(data["at"]), UTC),
            outcome=StepOutcome(data["outcome"]),
            error=data.get("error"),
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
