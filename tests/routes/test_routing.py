"""The pure rules of ``relay.routing``: the order providers are asked in, and a step's shape."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from relay.provider_answers import ProviderHealth
from relay.routing import Route, StepOutcome, Strategy, SubmissionStep, exhausted_message, order

NOW = datetime(2026, 6, 6, 16, 0, tzinfo=UTC)


def health(name: str, faults: int) -> ProviderHealth:
    return ProviderHealth(name, "ark", faults, None, None, None, 0)


def test_ordered_asks_as_listed_whatever_their_health() -> None:
    route = Route("r", ("a", "b", "c"))
    assert order(route, {"a": health("a", 5)}) == ["a", "b", "c"]


def test_healthiest_asks_the_fewest_faults_first_ties_as_listed() -> None:
    route = Route("r", ("a", "b", "c", "d"), Strategy.HEALTHIEST)
    found = {"a": health("a", 3), "b": health("b", 0), "c": health("c", 1), "d": health("d", 0)}
    assert order(route, found) == ["b", "d", "c", "a"]


def test_a_step_round_trips_and_reads_as_json() -> None:
    step = SubmissionStep("a", NOW, StepOutcome.NOT_ACCEPTED, "unavailable: HTTP 503")
    assert SubmissionStep.from_data(step.to_data()) == step
    assert step.to_json() == {
        "provider": "a",
        "at": "2026-06-06T16:00:00Z",
        "outcome": "not_accepted",
        "error": "unavailable: HTTP 503",
    }


def test_the_exhausted_message_names_each_provider_and_why() -> None:
    steps = [
        SubmissionStep("a", NOW, StepOutcome.SKIPPED, "backed off"),
        SubmissionStep("b", NOW, StepOutcome.NOT_ACCEPTED, "HTTP 503"),
    ]
    assert exhausted_message("r", steps) == (
        "no provider of route 'r' took the task: a: skipped (backed off); "
        "b: not_accepted (HTTP 503)"
    )


def test_cheapest_asks_the_lowest_likely_cost_first_unknown_last() -> None:
    route = Route("r", ("a", "b", "c", "d"), Strategy.CHEAPEST)
    estimates = {"a": Decimal("0.30"), "b": None, "c": Decimal("0.10"), "d": Decimal("0.10")}
    assert order(route, {}, estimates) == ["c", "d", "a", "b"]
