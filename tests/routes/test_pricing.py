"""The pure rules of ``relay.pricing``: a task's cost from its usage and the price table, and
usage totals that are exact decimal sums."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from relay.pricing import Cost, Price, PriceTable, Spent, Unit, cost_of, usage_totals

NOW = datetime(2026, 6, 6, 16, 0, tzinfo=UTC)
TOKENS = {"completion_tokens": 108900, "total_tokens": 108900}


def table(unit: Unit, amount: str, model: str = "*", currency: str = "USD") -> PriceTable:
    return PriceTable(currency, {model: Price(unit, Decimal(amount))})


@pytest.mark.parametrize(
    ("unit", "amount", "usage", "duration", "expected", "basis"),
    [
        (
            Unit.MILLION_TOKENS,
            "1.40",
            TOKENS,
            5,
            "0.1525",
            "108900 tokens \u00d7 1.40 USD per million",
        ),
        (Unit.MILLION_TOKENS, "1.40", {"total_tokens": 1000000}, 5, "1.4000", "1000000 tokens"),
        (Unit.SECOND, "0.05", None, 5, "0.2500", "5 s \u00d7 0.05 USD per second"),
        (Unit.TASK, "0.3", None, None, "0.3000", "1 task \u00d7 0.3 USD"),
        (Unit.CREDIT, "0.01", {"creditsCharged": 37}, 5, "0.3700", "37 credits"),
    ],
)
def test_a_cost_from_each_kind_of_price(
    unit: Unit,
    amount: str,
    usage: dict[str, int] | None,
    duration: int | None,
    expected: str,
    basis: str,
) -> None:
    cost = cost_of(table(unit, amount), "m", usage, duration)
    assert cost is not None
    assert cost.to_json()["amount"] == expected
    assert cost.currency == "USD"
    assert cost.basis.startswith(basis)


def test_rounding_is_half_up_to_four_places() -> None:
    cost = cost_of(table(Unit.MILLION_TOKENS, "1"), "m", {"completion_tokens": 150}, None)
    assert cost is not None
    assert cost.amount == Decimal("0.0002")  # 0.00015 rounds up


@pytest.mark.parametrize(
    ("unit", "usage", "duration"),
    [
        (Unit.MILLION_TOKENS, None, 5),
        (Unit.MILLION_TOKENS, {"completion_tokens": "lots"}, 5),
        (Unit.MILLION_TOKENS, {"completion_tokens": -3}, 5),
        (Unit.SECOND, TOKENS, None),
        (Unit.CREDIT, TOKENS, 5),
    ],
)
def test_without_the_usage_a_price_needs_there_is_no_cost_never_a_guess(
    unit: Unit, usage: dict[str, object] | None, duration: int | None
) -> None:
    assert cost_of(table(unit, "1"), "m", usage, duration) is None


def test_a_model_price_wins_over_the_default_and_no_table_means_no_cost() -> None:
    prices = PriceTable(
        "EUR",
        {"fast": Price(Unit.TASK, Decimal("1")), "*": Price(Unit.TASK, Decimal("2"))},
    )
    assert cost_of(prices, "fast", None, None) == Cost(
        Decimal("1.0000"), "EUR", "1 task \u00d7 1 EUR"
    )
    assert cost_of(prices, "other", None, None) is not None
    assert cost_of(None, "fast", None, None) is None
    assert (
        cost_of(PriceTable("USD", {"fast": Price(Unit.TASK, Decimal(1))}), "x", None, None) is None
    )


def test_usage_totals_are_exact_per_currency_and_per_group() -> None:
    def spent(hours: int, provider: str, amount: str, currency: str = "USD") -> Spent:
        return Spent(
            NOW + timedelta(hours=hours), provider, "m", None, Cost(Decimal(amount), currency, "")
        )

    rows = [
        spent(0, "a", "0.1000"),
        spent(1, "b", "0.2000"),
        spent(30, "a", "0.3000"),
        spent(31, "a", "5.0000", "EUR"),
    ]
    by_day = usage_totals(rows, "day")
    assert by_day["totals"] == [
        {"currency": "EUR", "amount": "5.0000", "tasks": 1},
        {"currency": "USD", "amount": "0.6000", "tasks": 3},
    ]
    assert by_day["groups"] == [
        {"key": "2026-06-06", "currency": "USD", "amount": "0.3000", "tasks": 2},
        {"key": "2026-06-07", "currency": "EUR", "amount": "5.0000", "tasks": 1},
        {"key": "2026-06-07", "currency": "USD", "amount": "0.3000", "tasks": 1},
    ]
    by_provider = usage_totals(rows, "provider")["groups"]
    assert [(g["key"], g["currency"], g["amount"]) for g in by_provider] == [
        ("a", "EUR", "5.0000"),
        ("a", "USD", "0.4000"),
        ("b", "USD", "0.2000"),
    ]
    assert usage_totals([], None) == {"totals": [], "groups": []}


def test_usage_past_belief_is_no_cost_rather_than_a_crash() -> None:
    per_token = table(Unit.MILLION_TOKENS, "1.40")
    assert cost_of(per_token, "m", {"completion_tokens": 10**30}, 5) is None
    huge = PriceTable("USD", {"*": Price(Unit.SECOND, Decimal(10) ** 20)})
    assert cost_of(huge, "m", None, 5) is None
