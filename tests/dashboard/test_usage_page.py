"""The dashboard's Usage page: what the signed-in account's tasks cost over the last days, with
a bar chart drawn on the server as inline SVG.

The chart's geometry and the page's values are pure functions, tested on values. The page is
read from real relays: one in-process with priced sandbox tasks that succeed (served on
loopback for its sandbox), one on a fake clock whose tasks finished on known days (saved
through the store with the pure transitions), and one without prices."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from relay.app import create_app
from relay.dashboard.render import content_policy
from relay.dashboard.usage_views import (
    BOTTOM,
    MIN_BAR,
    TOP,
    daily_amounts,
    group_rows,
    main_currency,
    usage_chart,
    usage_page,
    usage_window,
)
from relay.models import Account, TaskStatus
from relay.pricing import Cost, Price, PriceTable, Spent, Unit, usage_totals
from relay.provider_answers import ProviderTask
from relay.services import Services
from relay.signing import hash_api_key
from relay.transitions import apply_answer
from tests.api.conftest import InProcessFactory, start_relay
from tests.clock import FakeClock
from tests.dashboard.test_routes import API_KEY, CALLBACK_SECRET, settings_for
from tests.e2e.harness import Account as Caller
from tests.e2e.harness import InProcessRelay
from tests.routes.test_costs import priced_relay, three_priced_tasks
from tests.store.factories import NOW, event_id, register

__all__ = ["start_relay"]

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
DAY = date(2026, 6, 1)
PLOT = 200 - TOP - BOTTOM
"""The plot's height in a chart of the default height."""


def spent(at: datetime, amount: str, currency: str = "USD", **fields: Any) -> Spent:
    values: dict[str, Any] = {"provider": "sandbox", "model": "m", "route": None, **fields}
    return Spent(at, cost=Cost(Decimal(amount), currency, "1 task"), **values)


# --- the chart's geometry --------------------------------------------------------------------


def test_no_day_is_an_empty_chart() -> None:
    chart = usage_chart([], 720, 200)
    assert (chart.bars, chart.ticks, chart.max_amount) == ((), (), Decimal(0))
    assert (chart.width, chart.height, chart.top, chart.baseline) == (720, 200, TOP, 200 - BOTTOM)


def test_one_day_fills_the_plot() -> None:
    chart = usage_chart([(DAY, Decimal("0.30"))], 720, 200)
    (bar,) = chart.bars
    assert (bar.day, bar.amount) == (DAY, Decimal("0.30"))
    assert (bar.slot_x, bar.slot_width) == (0, 720)
    assert (bar.y, bar.height) == (TOP, PLOT)
    assert bar.x > 0  # a gap each side
    assert bar.x + bar.width < 720
    assert chart.max_amount == Decimal("0.30")
    (tick,) = chart.ticks
    assert (tick.label, tick.anchor, tick.x) == ("2026-06-01", "middle", 360)


def test_many_days_are_slots_side_by_side_with_a_few_dates() -> None:
    days = [(DAY + timedelta(days=i), Decimal("1.00")) for i in range(30)]
    chart = usage_chart(days, 600, 200)
    assert [b.day for b in chart.bars] == [d for d, _ in days]
    assert [b.slot_x for b in chart.bars] == [i * 20 for i in range(30)]
    assert {b.slot_width for b in chart.bars} == {20}
    assert {(b.width, b.height) for b in chart.bars} == {(14, PLOT)}
    assert [b.x for b in chart.bars] == [i * 20 + 3 for i in range(30)]
    labels = [(t.label, t.anchor, t.x) for t in chart.ticks]
    assert len(labels) == 5
    assert labels[0] == ("2026-06-01", "start", 0)
    assert labels[-1] == ("2026-06-30", "end", 600)
    assert [t.anchor for t in chart.ticks[1:-1]] == ["middle"] * 3
    assert [t.x for t in chart.ticks] == sorted(t.x for t in chart.ticks)


def test_a_few_days_are_all_dated() -> None:
    chart = usage_chart([(DAY, Decimal("1")), (DAY + timedelta(days=2), Decimal("1"))], 300, 200)
    assert [t.label for t in chart.ticks] == ["2026-06-01", "2026-06-02", "2026-06-03"]


def test_days_without_cost_in_between_are_empty_slots() -> None:
    chart = usage_chart([(DAY + timedelta(days=3), Decimal("2")), (DAY, Decimal("1"))], 400, 200)
    assert [b.day for b in chart.bars] == [DAY + timedelta(days=i) for i in range(4)]
    assert [b.amount for b in chart.bars] == [Decimal("1"), 0, 0, Decimal("2")]
    empty = chart.bars[1:3]
    assert [(b.height, b.y) for b in empty] == [(0, 200 - BOTTOM)] * 2
    assert [b.slot_x for b in chart.bars] == [0, 100, 200, 300]  # each day keeps its slot


def test_the_highest_day_fills_the_plot_and_the_others_scale() -> None:
    chart = usage_chart(
        [
            (DAY, Decimal("1.00")),
            (DAY + timedelta(days=1), Decimal("4.00")),
            (DAY + timedelta(days=2), Decimal("2.00")),
            (DAY + timedelta(days=3), Decimal("0.0001")),
        ],
        400,
        200,
    )
    heights = [b.height for b in chart.bars]
    assert heights[:3] == [round(PLOT / 4, 2), PLOT, PLOT / 2]
    assert heights[3] == MIN_BAR  # tiny, still not nothing
    assert [b.y + b.height for b in chart.bars] == [200 - BOTTOM] * 4
    assert chart.max_amount == Decimal("4.00")


def test_amounts_of_the_same_day_add_up_and_zero_days_draw_nothing() -> None:
    chart = usage_chart([(DAY, Decimal("0.10")), (DAY, Decimal("0.20"))], 100, 200)
    assert [b.amount for b in chart.bars] == [Decimal("0.30")]
    nothing = usage_chart([(DAY, Decimal("0")), (DAY + timedelta(days=1), Decimal("0"))], 100, 200)
    assert [b.height for b in nothing.bars] == [0, 0]
    assert nothing.max_amount == 0


# --- the page's values -----------------------------------------------------------------------


def test_the_window_is_whole_utc_days_ending_today() -> None:
    late = datetime(2026, 6, 6, 23, 30, tzinfo=timezone(timedelta(hours=-3)))  # 7th in UTC
    window = usage_window(late, 30)
    assert (window.first, window.last) == (date(2026, 5, 9), date(2026, 6, 7))
    assert window.since == datetime(2026, 5, 9, tzinfo=UTC)
    assert window.until == datetime(2026, 6, 8, tzinfo=UTC)
    assert (window.last - window.first).days + 1 == window.days == 30


def test_daily_amounts_count_each_utc_day_of_one_currency() -> None:
    first = DAY
    costs = [
        spent(datetime(2026, 6, 1, 23, 0, tzinfo=UTC), "0.10"),
        spent(datetime(2026, 6, 1, 22, 0, tzinfo=timezone(timedelta(hours=-3))), "0.20"),  # 2nd
        spent(datetime(2026, 6, 2, 9, 0, tzinfo=UTC), "5.00", "EUR"),
        spent(datetime(2026, 6, 9, 9, 0, tzinfo=UTC), "7.00"),  # after the last day
    ]
    assert daily_amounts(costs, "USD", first, first + timedelta(days=2)) == [
        (DAY, Decimal("0.10")),
        (DAY + timedelta(days=1), Decimal("0.20")),
        (DAY + timedelta(days=2), 0),
    ]


def test_the_main_currency_is_the_largest_total() -> None:
    assert main_currency([]) is None
    totals = [
        {"currency": "CNY", "amount": "9.00", "tasks": 3},
        {"currency": "USD", "amount": "12.50", "tasks": 1},
    ]
    assert main_currency(totals) == "USD"
    tied = [
        {"currency": "EUR", "amount": "1.00", "tasks": 1},
        {"currency": "USD", "amount": "1.00", "tasks": 2},
        {"currency": "CNY", "amount": "1.00", "tasks": 2},
    ]
    assert main_currency(tied) == "CNY"  # more tasks, then the first name


def test_groups_are_rows_costliest_first_with_a_name_for_none() -> None:
    groups = usage_totals(
        [
            spent(NOW, "0.10", route="cheap"),
            spent(NOW, "0.50", route=None),
            spent(NOW, "0.20", route="cheap"),
            spent(NOW, "9.00", "EUR", route="euro"),
        ],
        "route",
    )["groups"]
    rows = [(r.label, r.currency, r.amount, r.tasks) for r in group_rows(groups, "direct")]
    assert rows == [
        ("euro", "EUR", "9.00", 1),
        ("direct", "USD", "0.50", 1),
        ("cheap", "USD", "0.30", 2),
    ]


def test_the_page_totals_every_currency_and_charts_the_main_one() -> None:
    window = usage_window(NOW, 7)
    costs = [
        spent(NOW - timedelta(days=2), "0.30", provider="a", model=None),
        spent(NOW, "0.45", provider="b", route="r"),
        spent(NOW, "0.05", "EUR", provider="c"),
    ]
    page = usage_page(costs, window, {"b": "USD", "a": "USD", "c": "EUR"})
    assert page.priced == (("a", "USD"), ("b", "USD"), ("c", "EUR"))
    assert [(r.currency, r.amount, r.tasks) for r in page.totals] == [
        ("EUR", "0.05", 1),
        ("USD", "0.75", 2),
    ]
    assert (page.currency, page.other_currencies) == ("USD", ["EUR"])
    assert [b.day for b in page.chart.bars] == [window.first + timedelta(days=i) for i in range(7)]
    assert [b.amount for b in page.chart.bars] == [0, 0, 0, 0, Decimal("0.30"), 0, Decimal("0.45")]
    assert [r.label for r in page.by_provider] == ["c", "b", "a"]
    assert [r.label for r in page.by_model] == ["m", "m", "not reported"]
    assert {r.label for r in page.by_route} == {"r", "none (direct)"}


def test_nothing_spent_is_a_page_without_totals_or_bars() -> None:
    page = usage_page([], usage_window(NOW, 30), {})
    assert (page.totals, page.currency, page.chart.bars, page.priced) == ((), None, (), ())


# --- the page in a relay ---------------------------------------------------------------------


@asynccontextmanager
async def browser(client: httpx.AsyncClient, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """``client`` signed in to the dashboard with ``api_key``."""
    form = await client.get("/dashboard/login")
    token = CSRF.search(form.text)
    assert token, form.text
    signed = await client.post(
        "/dashboard/login", data={"csrf": token.group(1), "api_key": api_key}
    )
    assert signed.status_code == 303, signed.text
    yield client


async def usage_of(relay: InProcessRelay, caller: Caller, query: str = "") -> httpx.Response:
    async with relay.client() as client, browser(client, caller.api_key) as signed:
        return await signed.get(f"/dashboard/usage{query}")


def table(text: str, id_: str) -> list[list[str]]:
    """The rows of the table ``id_`` (its header left out), each as its cells' text."""
    body = text.split(f'<table id="{id_}">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)[1:]
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)
        ]
        for r in rows
    ]


def bars(text: str) -> list[tuple[str, str, float]]:
    """The chart's bars: (day, hover text, height)."""
    svg = text.split('<svg class="chart"', 1)[1].split("</svg>", 1)[0]
    found = re.findall(
        r'<g class="day" data-day="([0-9-]+)"><title>([^<]*)</title>.*?'
        r'<rect class="bar" [^>]*height="([0-9.]+)"',
        svg,
        re.S,
    )
    return [(day, html.unescape(title), float(height)) for day, title, height in found]


async def test_the_page_totals_the_tasks_costs_and_charts_them_for_the_account_only(
    start_relay: InProcessFactory,
) -> None:
    relay = await priced_relay(start_relay)
    payer = await relay.account("payer")
    other = await relay.account("someone-else")
    tasks = await three_priced_tasks(relay, payer)
    amounts = [Decimal(t["cost"]["amount"]) for t in tasks]
    total = sum(amounts, Decimal(0))
    by_day: dict[str, Decimal] = {}
    for t, amount in zip(tasks, amounts, strict=True):
        day = t["completed_at"][:10]  # UTC
        by_day[day] = by_day.get(day, Decimal(0)) + amount

    before = datetime.now(UTC).date()
    page = await usage_of(relay, payer)
    after = datetime.now(UTC).date()
    assert page.status_code == 200, page.text
    text = page.text
    assert '<a href="/dashboard/usage" id="nav-usage">Usage</a>' in text
    assert table(text, "usage-totals") == [["USD", str(total), "3"]]
    assert "Priced providers: cubicspaces (USD), sandbox (USD)." in text
    drawn = bars(text)
    last = date.fromisoformat(drawn[-1][0])
    assert last in (before, after)
    assert [d for d, _, _ in drawn] == [str(last - timedelta(days=29 - i)) for i in range(30)]
    costly = {d: (title, h) for d, title, h in drawn if h}
    assert {d: title for d, (title, _) in costly.items()} == {
        d: f"{d}: {amount} USD" for d, amount in by_day.items()
    }
    assert max(h for _, h in costly.values()) == PLOT
    assert f"{max(by_day.values())} USD (highest day)" in text
    assert re.findall(r'text-anchor="(\w+)">([0-9-]+)<', text)[0] == ("start", str(drawn[0][0]))
    providers = table(text, "usage-providers")
    assert sorted(providers) == [
        ["cubicspaces", "USD", str(amounts[2]), "1"],
        ["sandbox", "USD", str(amounts[0] + amounts[1]), "2"],
    ]
    assert providers == sorted(providers, key=lambda row: -Decimal(row[2]))  # costliest first
    assert sorted(table(text, "usage-routes")) == sorted(
        [
            ["none (direct)", "USD", str(amounts[0] + amounts[1]), "2"],
            ["any", "USD", str(amounts[2]), "1"],
        ]
    )
    assert [row[2:] for row in table(text, "usage-models")] == [[str(total), "3"]]
    # Inline SVG needs nothing more of the policy: no inline script, no other source.
    assert page.headers["content-security-policy"] == content_policy()
    assert re.findall(r"<script[^>]*>", text) == [
        '<script src="/dashboard/static/dashboard.js" defer>'
    ]

    week = await usage_of(relay, payer, "?days=7")
    assert len(bars(week.text)) == 7
    assert table(week.text, "usage-totals") == [["USD", str(total), "3"]]
    assert (await usage_of(relay, payer, "?days=8")).status_code == 400

    stranger = await usage_of(relay, other)
    assert stranger.status_code == 200
    assert "No costs yet: none of this account's tasks" in stranger.text
    assert "<svg" not in stranger.text
    assert 'id="usage-totals"' not in stranger.text
    assert str(total) not in stranger.text


async def test_without_prices_the_page_says_so(start_relay: InProcessFactory) -> None:
    relay = await start_relay(listen=False)
    caller = await relay.account("unpriced")
    async with relay.client() as anonymous:
        signed_out = await anonymous.get("/dashboard/usage")
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/dashboard/login"
    page = await usage_of(relay, caller)
    assert page.status_code == 200, page.text
    assert "No costs yet: configure <code>prices:</code> in the config." in page.text
    assert "<svg" not in page.text
    assert 'id="usage-priced"' not in page.text


# --- on a fake clock: tasks finished on known days -------------------------------------------

TABLE = PriceTable("USD", {"*": Price(Unit.TASK, Decimal("0.30"))})


async def finish(services: Services, account: Account, when: datetime) -> None:
    """A sandbox task registered and succeeded at ``when``, priced by ``TABLE``."""
    task = (await register(services.store, account, created_at=when, next_poll_at=None)).task
    answer = ProviderTask(
        provider_task_id=task.provider_task_id or "cgt-x",
        status=TaskStatus.SUCCEEDED,
        video_url="https://cdn.example.com/v.mp4",
        video_url_expires_at=when + timedelta(hours=24),
    )
    change = apply_answer(task, answer, when, event_id, TABLE)
    assert change.task.cost is not None
    assert await services.store.save_task(change, task.version)


async def test_days_are_drawn_where_their_tasks_finished(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path, prices={"sandbox": {"currency": "USD", "models": {"*": {"per_task": "0.30"}}}}
    )
    app = create_app(settings, clock=FakeClock(NOW))
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        account = Account(id="acct_usage", name="usage-team", created_at=NOW)
        await services.store.create_account(account, hash_api_key(API_KEY), CALLBACK_SECRET)
        for when in (NOW - timedelta(days=3), NOW - timedelta(days=3, hours=2), NOW):
            await finish(services, account, when)
        await finish(services, account, NOW - timedelta(days=10))  # before the last 7 days
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
            browser(client, API_KEY) as signed,
        ):
            month = (await signed.get("/dashboard/usage")).text
            week = (await signed.get("/dashboard/usage?days=7")).text

    assert table(month, "usage-totals") == [["USD", "1.2000", "4"]]
    assert table(week, "usage-totals") == [["USD", "0.9000", "3"]]
    drawn = {day: (title, height) for day, title, height in bars(week)}
    assert list(drawn) == [str(date(2026, 5, 31) + timedelta(days=i)) for i in range(7)]
    assert drawn["2026-06-03"] == ("2026-06-03: 0.6000 USD", PLOT)
    assert drawn["2026-06-06"] == ("2026-06-06: 0.3000 USD", PLOT / 2)
    assert {h for d, (_, h) in drawn.items() if d not in ("2026-06-03", "2026-06-06")} == {0}
    assert "2026-06-04: 0 USD" in week  # an empty day still says so on hover
    assert [d for d, _, h in bars(month) if h] == ["2026-05-27", "2026-06-03", "2026-06-06"]
    assert len(bars(month)) == 30
    assert re.findall(r'text-anchor="\w+">([0-9-]+)<', week) == [
        "2026-05-31",
        "2026-06-02",
        "2026-06-03",
        "2026-06-05",
        "2026-06-06",
    ]
