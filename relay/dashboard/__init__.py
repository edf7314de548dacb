"""The web dashboard at ``/dashboard``: server-rendered pages (Jinja2, no JavaScript) over the
same store queries and operations as the JSON API, signed in with an API key."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from relay.config.settings import Settings
from relay.dashboard import actions, pages
from relay.dashboard.session import DashboardSessions

PREFIX = "/dashboard"


def dashboard_routes(prices: Mapping[str, str] | None = None) -> list[Route]:
    """The pages and forms; ``prices``: the configured price tables' currencies by
    provider (the Usage page says which providers have one)."""
    sub = "/subscriptions/{sub_id}"
    submission = "/submissions/{submission_id}"
    return [
        Route("/", pages.home),
        Route("/login", actions.login_form, methods=["GET"]),
        Route("/login", actions.login, methods=["POST"]),
        Route("/logout", actions.logout, methods=["POST"]),
        Route("/tasks", pages.tasks),
        Route("/tasks/{task_id}", pages.task),
        Route("/events", pages.events),
        Route("/events/{event_id}", pages.event),
        Route("/events/{event_id}/redeliver", actions.redeliver_event, methods=["POST"]),
        Route("/subscriptions", pages.subscriptions),
        Route(sub + "/test", actions.test_subscription, methods=["POST"]),
        Route(sub + "/enable", actions.enable_subscription, methods=["POST"]),
        Route(sub + "/disable", actions.disable_subscription, methods=["POST"]),
        Route(sub + "/replay", actions.replay_subscription, methods=["POST"]),
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
