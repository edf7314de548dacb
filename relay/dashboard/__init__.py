"""The web dashboard at ``/dashboard``: server-rendered pages (Jinja2; one small script of the
relay's own for local times, copy buttons and auto-refresh, which every page works without)
over the same store queries and operations as the JSON API, signed in with an API key."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from relay.config.settings import Settings
from relay.dashboard import actions, assets, overview_page, pages, search
from relay.dashboard import subscription_forms as forms
from relay.dashboard.session import DashboardSessions

PREFIX = "/dashboard"


def dashboard_routes(prices: Mapping[str, str] | None = None) -> list[Route]:
    """The pages and forms; ``prices``: the configured price tables' currencies by
    provider (the Usage page says which providers have one)."""
    sub = "/subscriptions/{sub_id}"
    submission = "/submissions/{submission_id}"
    return [
        Route("/", overview_page.overview(prices or {})),
        Route("/search", search.search),
        Route("/static/dashboard.js", assets.script),
        Route("/login", actions.login_form, methods=["GET"]),
        Route("/login", actions.login, methods=["POST"]),
        Route("/logout", actions.logout, methods=["POST"]),
        Route("/tasks", pages.tasks),
        Route("/tasks/{task_id}", pages.task),
        Route("/events", pages.events),
        Route("/events/{event_id}", pages.event),
        Route("/events/{event_id}/redeliver", actions.redeliver_event, methods=["POST"]),
        Route("/subscriptions", pages.subscriptions, methods=["GET"]),
        Route("/subscriptions", forms.create, methods=["POST"]),
        Route("/subscriptions/new", forms.new_form),
        Route(sub + "/edit", forms.edit_form, methods=["GET"]),
        Route(sub + "/edit", forms.edit, methods=["POST"]),
        Route(sub + "/delete", forms.confirm_delete, methods=["GET"]),
        Route(sub + "/delete", forms.delete, methods=["POST"]),
        Route(sub + "/test", actions.test_subscription, methods=["POST"]),
        Route(sub + "/enable", actions.enable_subscription, methods=["POST"]),
        Route(sub + "/disable", forms.confirm_disable, methods=["GET"]),
        Route(sub + "/disable", actions.disable_subscription, methods=["POST"]),
        Route(sub + "/replay", forms.replay_form, methods=["GET"]),
        Route(sub + "/replay", actions.replay_subscription, methods=["POST"]),
        Route(sub + "/rotate-secret", forms.confirm_rotate, methods=["GET"]),
        Route(sub + "/rotate-secret", actions.rotate_secret, methods=["POST"]),
        Route("/submissions", pages.submissions),
        Route(submission, pages.submission),
        Route(submission + "/resolve", actions.resolve_submission, methods=["POST"]),
        Route(submission + "/abandon", actions.abandon_submission, methods=["POST"]),
        Route("/providers", pages.providers),
        Route("/usage", pages.usage(prices or {})),
    ]


def dashboard_mount(settings: Settings) -> Mount:
    """``/dashboard`` with its session middleware (the API never sees a cookie)."""
    return Mount(
        PREFIX,
        routes=dashboard_routes({n: t.currency for n, t in settings.prices.items()}),
        middleware=[
            Middleware(
                DashboardSessions, settings=settings.dashboard, secret_key=settings.secret_key
            )
        ],
    )
