"""The overview (the dashboard's home), the search box, the task and event filters, the
pretty-printed payload and the dashboard's own script, on a real app with a real SQLite store
(httpx's ASGI transport). The numbers are checked against tasks and deliveries written here,
so a wrong query or a wrong sum fails."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from relay.app import create_app
from relay.models import Account, DeliveryStatus, EventType, Task, TaskStatus
from relay.services import Services
from relay.signing import hash_api_key
from relay.store.interface import Store
from tests.clock import FakeClock
from tests.dashboard.test_routes import API_KEY, CALLBACK_SECRET, DEAD_URL, Dash, settings_for
from tests.dashboard.test_usage_page import browser, finish
from tests.store.factories import NOW, advance, at, attempt, current, register

TASK_LINK = re.compile(r'href="/dashboard/tasks/(task_[^"]+)"')


def figure(text: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', text)
    assert found, f"no #{element_id} on the page"
    return found.group(1).strip()


async def finished(store: Store, dash: Dash, status: TaskStatus, seconds: float, **kw: Any) -> Task:
    reg = await register(store, dash.account, callback_url=None, **kw)
    await advance(store, reg.task, TaskStatus.RUNNING, at(seconds=1))
    await advance(store, await current(store, reg.task), status, at(seconds=seconds))
    return reg.task


async def test_the_overview_counts_rates_latencies_backlog_and_charts(dash: Dash) -> None:
    store = dash.services.store
    clock = dash.services.clock
    # Three succeeded (20 s, 40 s and 60 s to the video), one failed, two queued; and an hour
    # later one more queued with a callback: its task.queued delivery is the backlog.
    for seconds in (20, 40, 60):
        await finished(store, dash, TaskStatus.SUCCEEDED, seconds)
    await finished(store, dash, TaskStatus.FAILED, 30)
    for _ in range(2):
        await register(store, dash.account, callback_url=None)
    hooked = await register(
        store,
        dash.account,
        callback_url=DEAD_URL,
        created_at=at(hours=1),
        next_poll_at=None,
        events={EventType.TASK_QUEUED},
    )
    # One more succeeded, 80 s after it was created (at 2 minutes).
    await finished(store, dash, TaskStatus.SUCCEEDED, 200, created_at=at(minutes=2))
    clock.advance(2 * 3600)  # type: ignore[attr-defined]
    now = clock.now()
    due = await store.claim_due_deliveries(now, 10, 60, "test")
    assert [d.event_id for d in due] == [hooked.event.id]
    await store.record_attempts(
        [attempt(due[0], now, 200, status=DeliveryStatus.SUCCEEDED)], "test"
    )
    backlogged = await register(
        store,
        dash.account,
        callback_url=DEAD_URL,
        created_at=now - timedelta(minutes=5),
        next_poll_at=None,
        events={EventType.TASK_QUEUED},
        key="https://other.example.com",
    )
    await dash.sign_in()

    page = await dash.client.get("/dashboard/")
    assert page.status_code == 200, page.text
    text = page.text
    assert figure(text, "count-succeeded") == "4"
    assert figure(text, "count-failed") == "1"
    assert figure(text, "count-queued") == "4"  # two, the hooked one and the backlogged one
    assert figure(text, "count-running") == "0"
    assert figure(text, "task-success-rate") == "80.0%"  # 4 of the 5 that ended
    assert figure(text, "duration-p50") == "40.0 s"
    assert figure(text, "duration-p99") == "1m 20s"  # the 80 s one
    assert figure(text, "delivery-success-rate") == "100.0%"
    assert figure(text, "latency-p50") == "42 ms"  # 42.5 rounds to even
    assert figure(text, "backlog-count") == "1"
    assert figure(text, "backlog-age") == "5m 0s"
    assert backlogged.event.id not in text  # the overview names no event
    # Providers as this instance sees them.
    assert re.search(r'id="provider-health".*sandbox.*healthy', text, re.S)
    # The charts: 24 hourly bars and 7 daily ones, every task in the day chart.
    day = text[text.index('id="chart-24h"') : text.index("</svg>", text.index('id="chart-24h"'))]
    week = text[text.index('id="chart-7d"') : text.index("</svg>", text.index('id="chart-7d"'))]
    assert day.count('<g class="slot"') == 24
    assert week.count('<g class="slot"') == 7
    assert sum(int(n) for n in re.findall(r'data-total="(\d+)"', day)) == 9
    assert sum(int(n) for n in re.findall(r'data-total="(\d+)"', week)) == 9
    assert week.count('class="bar bar-succeeded"') == 1  # all on one day
    # No prices configured: no costs card; the page reloads itself gently.
    assert 'id="card-costs"' not in text
    assert 'data-refresh="30"' in text
    assert page.headers["content-security-policy"].startswith(
        "default-src 'none'; script-src 'self';"
    )


async def test_the_search_box_finds_each_kind_of_id(dash: Dash) -> None:
    store = dash.services.store
    one = await register(
        store, dash.account, callback_url=None, provider_task_id="cgt-findme", reference="r1"
    )
    twins = [
        (await register(store, dash.account, callback_url=None, reference="twin")).task
        for _ in range(2)
    ]
    await dash.sign_in()

    async def find(q: str) -> tuple[int, str, str]:
        answer = await dash.client.get("/dashboard/search", params={"q": q})
        return answer.status_code, answer.headers.get("location", ""), answer.text

    task_page = f"/dashboard/tasks/{one.task.id}"
    assert (await find(one.task.id))[:2] == (303, task_page)
    assert (await find("cgt-findme"))[:2] == (303, task_page)
    assert (await find("  r1 "))[:2] == (303, task_page)
    assert (await find(one.event.id))[:2] == (303, f"/dashboard/events/{one.event.id}")
    status, _, listed = await find("twin")
    assert status == 200
    assert sorted(TASK_LINK.findall(listed)) == sorted(t.id for t in twins)
    status, _, nothing = await find("no-such-thing")
    assert status == 200
    assert 'id="no-hits"' in nothing
    assert (await find("x" * 300))[0] == 400
    # Another account's ids are not found.
    other = await dash.client.get("/dashboard/search", params={"q": "acct_other"})
    assert 'id="no-hits"' in other.text


async def test_tasks_filter_by_route_and_time_and_events_by_time(dash: Dash) -> None:
    store = dash.services.store
    old = (await register(store, dash.account, callback_url=None, route="cheap")).task
    new = (
        await register(
            store, dash.account, callback_url=None, route="fast", created_at=at(hours=30)
        )
    ).task
    plain = (await register(store, dash.account, callback_url=None, created_at=at(hours=30))).task
    dash.services.clock.advance(31 * 3600)  # type: ignore[attr-defined]
    await dash.sign_in()

    async def listed(**params: str) -> list[str]:
        page = await dash.client.get("/dashboard/tasks", params=params)
        assert page.status_code == 200, page.text
        return TASK_LINK.findall(page.text)

    assert await listed(route="fast") == [new.id]
    assert await listed(route="cheap") == [old.id]
    assert await listed(within="24h") == [plain.id, new.id]
    assert await listed(to=(NOW + timedelta(hours=1)).isoformat()) == [old.id]
    assert await listed(**{"from": "2000-01-01", "to": "2100-01-01"}) == [
        plain.id,
        new.id,
        old.id,
    ]
    for bad in (
        {"within": "1y"},
        {"from": "yesterday"},
        {"from": "2030-01-02", "to": "2030-01-01"},
    ):
        refused = await dash.client.get("/dashboard/tasks", params=bad)
        assert refused.status_code == 400, bad
    events = await dash.client.get("/dashboard/events", params={"from": at(hours=29).isoformat()})
    assert events.status_code == 200
    assert old.id not in events.text
    assert new.id in events.text


async def test_payloads_are_pretty_and_times_are_local_with_the_relays_script(dash: Dash) -> None:
    reg = await register(dash.services.store, dash.account, callback_url=None)
    await dash.sign_in()
    page = await dash.client.get(f"/dashboard/events/{reg.event.id}")
    payload = re.search(r'<pre class="mono json" id="event-payload">(.*?)</pre>', page.text, re.S)
    assert payload
    assert payload.group(1).startswith("{\n  &#34;")  # indented, HTML-escaped JSON
    assert 'data-copy="event-payload"' in page.text
    assert re.search(r'<time datetime="[0-9T:.-]+Z" title="[0-9T:.-]+Z">', page.text)
    # A running task's page reloads itself; the script is the relay's own, served plainly.
    task = await dash.client.get(f"/dashboard/tasks/{reg.task.id}")
    assert 'data-refresh="10"' in task.text
    script = await dash.client.get("/dashboard/static/dashboard.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "time[datetime]" in script.text
    assert "data-refresh" in script.text


async def test_with_prices_the_overview_shows_the_last_weeks_costs(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path, prices={"sandbox": {"currency": "USD", "models": {"*": {"per_task": "0.30"}}}}
    )
    app = create_app(settings, clock=FakeClock(NOW))
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        account = Account(id="acct_costs", name="costs-team", created_at=NOW)
        await services.store.create_account(account, hash_api_key(API_KEY), CALLBACK_SECRET)
        for when in (NOW - timedelta(days=2), NOW):
            await finish(services, account, when)
        await finish(services, account, NOW - timedelta(days=10))  # before the last 7 days
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
            browser(client, API_KEY) as signed,
        ):
            text = (await signed.get("/dashboard/")).text
    card = text[text.index('id="card-costs"') : text.index("</section>", text.index("card-costs"))]
    assert re.search(r'class="figure cost">0.6000 <span class="muted">USD</span>', card), card
    assert "2 tasks" in card
