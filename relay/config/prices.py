"""The ``prices`` settings: what each provider charges, per model (``relay.pricing``)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from pydantic import Field, field_validator, model_validator

from relay.config.sections import ConfigModel
from relay.pricing import ANY_MODEL, Price, PriceTable, Unit

_CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_PRICE = Decimal(1_000_000)


def _decimal(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be a decimal number, such as 1.40")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None
    if not number.is_finite() or number < 0 or number > MAX_PRICE:
        raise ValueError(f"must be a number from 0 to {MAX_PRICE}")
    if number != number.quantize(Decimal("1e-8")):
        raise ValueError("at most 8 decimal places")
    return number


class PriceSettings(ConfigModel):
    """Exactly one of the units."""

    per_million_tokens: Decimal | None = None
    per_second: Decimal | None = None
    per_task: Decimal | None = None
    per_credit: Decimal | None = None

    @field_validator("per_million_tokens", "per_second", "per_task", "per_credit", mode="before")
    @classmethod
    def _amount(cls, value: object) -> Decimal | None:
        return None if value is None else _decimal(value)

    @model_validator(mode="after")
    def _one_unit(self) -> PriceSettings:
        given = [u for u in Unit if getattr(self, u.value) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of per_million_tokens, per_second, per_task, per_credit"
            )
        return self

    def price(self) -> Price:
        for unit in Unit:
            amount = getattr(self, unit.value)
            if amount is not None:
                return Price(unit, amount)
        raise AssertionError("validated to have one unit")


class PriceTableSettings(ConfigModel):
    currency: str = "USD"
    models: dict[str, PriceSettings] = Field(min_length=1)
    """Model names as the provider reports them; "*" for every other model."""

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise ValueError("must be an ISO 4217 code such as USD, EUR, CNY")
        return value

    def table(self) -> PriceTable:
        return PriceTable(self.currency, {m: p.price() for m, p in self.models.items()})


__all__ = ["ANY_MODEL", "PriceSettings", "PriceTableSettings"]
