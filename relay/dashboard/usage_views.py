"""What the dashboard's Usage page shows, computed from the account's priced tasks: pure, no
I/O, the clock passed in. The window is whole UTC days ending today; the totals and the tables
are ``relay.pricing.usage_totals`` (the same exact sums as ``GET /v1/usage``); the chart is bar
geometry for a server-rendered inline SVG (no script: the dashboard's policy allows none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from relay.pricing import Spent, usage_totals

WINDOWS = (7, 30, 90)
"""The windows a person may pick, in days."""
DEFAULT_DAYS = 30
CHART_WIDTH = 720
CHART_HEIGHT = 200
TOP = 22.0
"""Room above the plot for the label of the highest day."""
BOTTOM = 20.0
"""Room below the plot for the dates."""
GAP = 0.15
"""The share of a day's slot left empty on each side of its bar."""
MOST_TICKS = 5
MIN_BAR = 1.0
"""A day that cost anything is at least this tall, so it never looks like a day that cost
nothing, however small it is next to the highest."""


@dataclass(frozen=True, slots=True)
class Window:
    """``days`` whole UTC days, ``first`` to ``last`` (today), read as ``[since, until)``."""

    days: int
    first: date
    last: date
    since: datetime
    until: datetime


def usage_window(now: datetime, days: int) -> Window:
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    return Window(
        days=days,
        first=first,
        last=today,
        since=datetime.combine(first, time(), UTC),
        until=datetime.combine(today + timedelta(days=1), time(), UTC),
    )


@dataclass(frozen=True, slots=True)
class Bar:
    """One day's slot of the chart and the bar in it (SVG user units, y downwards)."""

    day: date
    amount: Decimal
    slot_x: float
    slot_width: float
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class Tick:
    """A date under the chart."""

    x: float
    label: str
    anchor: str
    """SVG ``text-anchor``: the first date starts at its slot, the last ends at its slot."""


@dataclass(frozen=True, slots=True)
class ChartBars:
    width: int
    height: int
    top: float
    """The y of the highest day's top (the max amount's line)."""
    baseline: float
    """The y of zero."""
    max_amount: Decimal
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]


def usage_chart(
    days: Sequence[tuple[date, Decimal]], width: int = CHART_WIDTH, height: int = CHART_HEIGHT
) -> ChartBars:
    """A bar per day from the first of ``days`` to the last, in order: a day missing in
    between is an empty slot (amount 0, no height); amounts of the same day add up. The
    highest day fills the plot's height, the others in proportion (a day that cost anything
    is at least ``MIN_BAR`` tall). Dates are labelled under at most ``MOST_TICKS`` slots,
    the first and the last always."""
    baseline = height - BOTTOM
    if not days:
        return ChartBars(width, height, TOP, baseline, Decimal(0), (), ())
    amounts: dict[date, Decimal] = {}
    for day, amount in days:
        amounts[day] = amounts.get(day, Decimal(0)) + amount
    first, last = min(amounts), max(amounts)
    count = (last - first).days + 1
    slot = width / count
    gap = slot * GAP
    plot = baseline - TOP
    top_amount = max(amounts.values())
    bars = []
    for i in range(count):
        day = first + timedelta(days=i)
        amount = amounts.get(day, Decimal(0))
        tall = 0.0
        if amount > 0 and top_amount > 0:
            tall = max(plot * float(amount / top_amount), MIN_BAR)
        bars.append(
            Bar(
                day=day,
                amount=amount,
                slot_x=_px(i * slot),
                slot_width=_px(slot),
                x=_px(i * slot + gap),
                y=_px(baseline - tall),
                width=_px(slot - 2 * gap),
                height=_px(tall),
            )
        )
    ticks = tuple(_tick(bars[i], i, count) for i in _tick_indexes(count))
    return ChartBars(width, height, TOP, baseline, top_amount, tuple(bars), ticks)


def _px(value: float) -> float:
    return round(value, 2)


def _tick_indexes(count: int) -> list[int]:
    if count <= MOST_TICKS:
        return list(range(count))
    step = (count - 1) / (MOST_TICKS - 1)
    return sorted({int(i * step + 0.5) for i in range(MOST_TICKS)})


def _tick(bar: Bar, index: int, count: int) -> Tick:
    label = bar.day.isoformat()
    if count > 1 and index == 0:
        return Tick(bar.slot_x, label, "start")
    if count > 1 and index == count - 1:
        return Tick(_px(bar.slot_x + bar.slot_width), label, "end")
    return Tick(_px(bar.slot_x + bar.slot_width / 2), label, "middle")


def daily_amounts(
    spent: Sequence[Spent], currency: str, first: date, last: date
) -> list[tuple[date, Decimal]]:
    """What each UTC day from ``first`` to ``last`` cost in ``currency`` (0 for a day of no
    priced task; tasks outside the days or in other currencies do not count)."""
    amounts = {first + timedelta(days=i): Decimal(0) for i in range((last - first).days + 1)}
    for s in spent:
        day = s.completed_at.astimezone(UTC).date()
        if s.cost.currency == currency and day in amounts:
            amounts[day] += s.cost.amount
    return list(amounts.items())


@dataclass(frozen=True, slots=True)
class Row:
    """A line of a totals table: a currency's amount (a decimal string) and its tasks."""

    label: str
    currency: str
    amount: str
    tasks: int


def main_currency(totals: Sequence[Mapping[str, Any]]) -> str | None:
    """The currency with the largest total (then the most tasks, then by name); None for
    none."""
    if not totals:
        return None
    best = max(totals, key=lambda t: (Decimal(t["amount"]), t["tasks"], _reverse(t["currency"])))
    return str(best["currency"])


def _reverse(text: str) -> tuple[int, ...]:
    """Sorts ``text`` backwards, so ``max`` picks the first name in order."""
    return tuple(-ord(c) for c in text)


def group_rows(groups: Sequence[Mapping[str, Any]], none_label: str) -> list[Row]:
    """``usage_totals`` groups as rows, the costliest first (by currency, then amount), a
    group without a key (no model reported, no route) named ``none_label``."""
    rows = [
        Row(
            label=none_label if g["key"] is None else str(g["key"]),
            currency=str(g["currency"]),
            amount=str(g["amount"]),
            tasks=int(g["tasks"]),
        )
        for g in groups
    ]
    return sorted(rows, key=lambda r: (r.currency, -Decimal(r.amount), r.label))


@dataclass(frozen=True, slots=True)
class UsagePage:
    window: Window
    priced: tuple[tuple[str, str], ...]
    """The providers with a price table, and its currency, by name."""
    totals: tuple[Row, ...]
    currency: str | None
    """The chart's currency (``main_currency``); None when nothing was spent."""
    chart: ChartBars
    by_provider: tuple[Row, ...]
    by_model: tuple[Row, ...]
    by_route: tuple[Row, ...]

    @property
    def other_currencies(self) -> list[str]:
        return [r.currency for r in self.totals if r.currency != self.currency]


def usage_page(spent: Sequence[Spent], window: Window, prices: Mapping[str, str]) -> UsagePage:
    """The page for the priced tasks ``spent`` in ``window``; ``prices``: the configured
    price tables' currencies by provider."""
    listed = list(spent)
    totals = usage_totals(listed, None)["totals"]
    currency = main_currency(totals)
    days = daily_amounts(listed, currency, window.first, window.last) if currency else []
    return UsagePage(
        window=window,
        priced=tuple(sorted(prices.items())),
        totals=tuple(group_rows([{"key": t["currency"], **t} for t in totals], "")),
        currency=currency,
        chart=usage_chart(days),
        by_provider=tuple(group_rows(usage_totals(listed, "provider")["groups"], "-")),
        by_model=tuple(group_rows(usage_totals(listed, "model")["groups"], "not reported")),
        by_route=tuple(group_rows(usage_totals(listed, "route")["groups"], "none (direct)")),
    )
