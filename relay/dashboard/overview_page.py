"""``GET /dashboard/``: the overview, the dashboard's home. Every figure comes from a bounded
read (``relay.store.overview_roles``: capped counts, the latest tasks, the deliveries of the
latest events, the account's backlog) and the providers' health as this instance sees it, so
the page costs the same with a hundred tasks or ten million."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response

from relay.api.http import services
from relay.dashboard import overview_views as ov
from relay.dashboard import pages, usage_views
from relay.dashboard.pages import uncertain_count
from relay.dashboard.render import Handler, guarded, page
from relay.dashboard.session import require_account
from relay.pricing import usage_totals

COST_DAYS = 7


def overview(prices: Mapping[str, str]) -> Handler:
    """``prices``: the configured price tables' currencies by provider (costs are shown
    only when there is one)."""

    @guarded
    async def show(request: Request) -> Response:
        who = require_account(request)
        svc = services(request)
        store = svc.store
        now = svc.clock.now()
        summary = ov.overview(
            now,
            await store.count_tasks_capped(who.account_id, ov.COUNT_CAP),
            await store.recent_tasks(who.account_id, ov.TASK_SAMPLE),
            await store.recent_deliveries(who.account_id, ov.EVENT_SAMPLE),
            await store.account_backlog(who.account_id, now, ov.BACKLOG_CAP),
            [c.health() for c in svc.providers.values()],
        )
        costs: list[usage_views.Row] = []
        if prices:
            window = usage_views.usage_window(now, COST_DAYS)
            spent = await store.task_costs(who.account_id, window.since, window.until)
            totals = usage_totals(list(spent), None)["totals"]
            costs = usage_views.group_rows([{"key": t["currency"], **t} for t in totals], "")
        return page(
            request,
            "overview.html",
            {
                "o": summary,
                "costs": costs,
                "priced": bool(prices),
                "cost_days": COST_DAYS,
                "count_cap": ov.COUNT_CAP,
                "series": ov.SERIES,
                "uncertain": await uncertain_count(request, who.account_id),
            },
            refresh=pages.LIST_REFRESH,
        )

    return show
