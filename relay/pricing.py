"""What a task cost (pure): a price table per provider and model, and the cost of a finished
task from the usage its provider reported.

``prices: {PROVIDER: {currency: USD, models: {MODEL | "*": {per_million_tokens | per_second
| per_task | per_credit: "1.40"}}}}`` in the config. A succeeded task carries ``cost``:
``{"amount": "0.1525", "currency": "USD", "basis": "108900 tokens \\u00d7 1.40 USD per million"}``,
decimal strings, never floats, rounded half up to 4 places. The usage comes from the provider:
Ark's ``completion_tokens`` (else ``total_tokens``), seedance2.ink's ``creditsCharged``, the
video's ``duration``. A task whose usage the price needs but the provider did not report has
no cost (``null``), never a guess.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

PLACES = Decimal("0.0001")
MAX_AMOUNT = Decimal(10) ** 12
"""A cost past this is no cost the relay believes (a provider's usage gone wild)."""
MAX_USAGE = Decimal(10) ** 15
"""Tokens, seconds or credits past this are not a usage the relay believes."""
MILLION = Decimal(1_000_000)
ANY_MODEL = "*"
TIMES = "\u00d7"
"""The multiplication sign of a cost's ``basis``."""


class Unit(enum.StrEnum):
    MILLION_TOKENS = "per_million_tokens"
    SECOND = "per_second"
    TASK = "per_task"
    CREDIT = "per_credit"


@dataclass(frozen=True, slots=True)
class Price:
    unit: Unit
    amount: Decimal


@dataclass(frozen=True, slots=True)
class PriceTable:
    """One provider's prices, in one currency; ``"*"`` prices every other model."""

    currency: str
    models: Mapping[str, Price]

    def price(self, model: str | None) -> Price | None:
        found = self.models.get(model) if model is not None else None
        return found or self.models.get(ANY_MODEL)


@dataclass(frozen=True, slots=True)
class Cost:
    amount: Decimal
    currency: str
    basis: str

    def to_json(self) -> dict[str, str]:
        return {"amount": str(self.amount), "currency": self.currency, "basis": self.basis}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Cost:
        return cls(Decimal(str(data["amount"])), str(data["currency"]), str(data["basis"]))


def cost_of(
    table: PriceTable | None,
    model: str | None,
    usage: Mapping[str, Any] | None,
    duration: int | None,
) -> Cost | None:
    """What a succeeded task cost by ``table``; None without a price or the usage it needs."""
    price = table.price(model) if table is not None else None
    if table is None or price is None:
        return None
    per = f"{price.amount} {table.currency}"
    if price.unit is Unit.TASK:
        return _cost(price.amount, table.currency, f"1 task {TIMES} {per}")
    if price.unit is Unit.SECOND:
        if duration is None:
            return None
        return _cost(
            price.amount * duration, table.currency, f"{duration} s {TIMES} {per} per second"
        )
    if price.unit is Unit.CREDIT:
        credits = _number((usage or {}).get("creditsCharged"))
        if credits is None:
            return None
        return _cost(price.amount * credits, table.currency, f"{credits} credits {TIMES} {per}")
    tokens = _number((usage or {}).get("completion_tokens"))
    if tokens is None:
        tokens = _number((usage or {}).get("total_tokens"))
    if tokens is None:
        return None
    return _cost(
        price.amount * tokens / MILLION,
        table.currency,
        f"{tokens} tokens {TIMES} {per} per million",
    )


def total(costs: list[Cost]) -> Decimal:
    return sum((c.amount for c in costs), Decimal(0))


def _cost(amount: Decimal, currency: str, basis: str) -> Cost | None:
    rounded = _rounded(amount)
    return None if rounded is None else Cost(rounded, currency, basis)


def _rounded(amount: Decimal) -> Decimal | None:
    """``amount`` to ``PLACES``; None when it is past any sane price (``MAX_AMOUNT``)."""
    if not amount.is_finite() or abs(amount) > MAX_AMOUNT:
        return None
    return amount.quantize(PLACES, rounding=ROUND_HALF_UP)


def _number(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() and 0 <= number <= MAX_USAGE else None


@dataclass(frozen=True, slots=True)
class Spent:
    """One priced task, as usage totals read it."""

    completed_at: datetime
    provider: str
    model: str | None
    route: str | None
    cost: Cost


GROUPINGS = ("day", "provider", "model", "route")


def spent_in(spent: list[Spent], currency: str) -> Decimal:
    """What ``spent`` adds up to in ``currency`` (other currencies do not count)."""
    return total([s.cost for s in spent if s.cost.currency == currency])


def usage_totals(spent: list[Spent], group_by: str | None) -> dict[str, Any]:
    """Totals per currency, and per group (``GROUPINGS``) when asked: exact decimal sums,
    as strings, with the number of tasks."""

    def key(s: Spent) -> str | None:
        if group_by == "day":
            return s.completed_at.astimezone(UTC).strftime("%Y-%m-%d")
        if group_by == "provider":
            return s.provider
        if group_by == "model":
            return s.model
        return s.route

    def sums(items: list[Spent]) -> list[dict[str, Any]]:
        by_currency: dict[str, list[Cost]] = {}
        for s in items:
            by_currency.setdefault(s.cost.currency, []).append(s.cost)
        return [
            {"currency": currency, "amount": str(total(costs)), "tasks": len(costs)}
            for currency, costs in sorted(by_currency.items())
        ]

    groups: list[dict[str, Any]] = []
    if group_by is not None:
        keyed: dict[str | None, list[Spent]] = {}
        for s in spent:
            keyed.setdefault(key(s), []).append(s)
        for name in sorted(keyed, key=lambda k: (k is None, k or "")):
            groups.extend({"key": name, **row} for row in sums(keyed[name]))
    return {"totals": sums(spent), "groups": groups}


class Period(enum.StrEnum):
    DAY = "day"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``amount`` of ``currency`` per calendar ``period`` (UTC), per account."""

    period: Period
    amount: Decimal
    currency: str

    def started(self, now: datetime) -> datetime:
        """When the current period began."""
        day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return day if self.period is Period.DAY else day.replace(day=1)

    def to_json(self) -> dict[str, str]:
        return {"period": self.period.value, "amount": str(self.amount), "currency": self.currency}


PIXELS = {"480p": 864 * 480, "720p": 1280 * 720, "1080p": 1920 * 1080}
"""Pixels per frame of Ark's 16:9 sizes (other ratios hold about as many)."""
DEFAULT_SECONDS = 5
MAX_SECONDS = 3600
"""A longer duration asked for is priced as this (no provider makes longer clips)."""
DEFAULT_FPS = 24


def estimate(
    table: PriceTable | None, model: str | None, duration: int | None, resolution: str | None
) -> Decimal | None:
    """What a task not made yet will likely cost, in the table's currency: its price for the
    asked duration and resolution (Ark's defaults, 5 s at 720p, when not asked), tokens as
    Ark counts them ((seconds * 24 + 1) frames * pixels / 1024). None: no price, or one
    whose usage cannot be told in advance (credits)."""
    price = table.price(model) if table is not None else None
    if price is None:
        return None
    seconds = min(duration or DEFAULT_SECONDS, MAX_SECONDS)
    if price.unit is Unit.TASK:
        return _rounded(price.amount)
    if price.unit is Unit.SECOND:
        return _rounded(price.amount * seconds)
    if price.unit is Unit.CREDIT:
        return None
    pixels = PIXELS.get(resolution or "720p", PIXELS["720p"])
    tokens = Decimal((seconds * DEFAULT_FPS + 1) * pixels) / 1024
    return _rounded(price.amount * tokens / MILLION)
