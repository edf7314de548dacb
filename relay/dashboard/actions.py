"""The dashboard's forms: sign in and out, and the buttons that act (redeliver an event; test,
enable, disable, replay a subscription or rotate its secret; settle an uncertain submission).

Every form is a POST that carries the session's CSRF token and is refused without it. The
actions call what the JSON API calls (the store's own operations, ``relay.operator_actions`` for
replays, the delivery engine for test events, the submitter for settling) and then redirect
(303) to a page that shows the result, except a secret rotation: its new secret is shown
once, in the answer to that POST (never cached, never stored, never logged), as
``POST /v1/.../rotate-secret`` does.
"""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from relay import operator_actions as operations
from relay.api.http import caller_for_key, services
from relay.api.schemas import ResolveSubmission, parse
from relay.dashboard.render import NO_STORE, guarded, page, redirect
from relay.dashboard.session import (
    check_csrf,
    flash,
    read_form,
    require_account,
    sign_in,
    sign_out,
    signed_in,
)
from relay.dashboard.subscription_forms import replay_query
from relay.dashboard.views import back_target
from relay.errors import (
    BadRequest,
    SubscriptionDisabled,
    TooManyRequests,
    Unauthorized,
    UnknownSubscription,
)
from relay.ids import new_id
from relay.models import (
    DeliveryStatus,
    Event,
    EventType,
    Subscription,
    SubscriptionStatus,
    Task,
)
from relay.operator_actions import redeliver
from relay.signing import generate_webhook_secret
from relay.transitions import envelope


@guarded
async def login_form(request: Request) -> Response:
    if signed_in(request) is not None:
        return redirect("/dashboard/")
    return page(request, "login.html", {"error": None})


@guarded
async def login(request: Request) -> Response:
    form = await read_form(request)
    check_csrf(request, form)
    key = form.get("api_key", "").strip()
    # The key is never echoed back, logged or kept. Wrong keys count against the address
    # as they do on the API, so the form is no way around its limit.
    try:
        caller = await caller_for_key(request, key or " ")
    except TooManyRequests as exc:
        refused = page(request, "login.html", {"error": str(exc)}, status_code=429)
        refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    except Unauthorized:
        return page(request, "login.html", {"error": "That API key is not valid."}, status_code=401)
    await sign_in(request, caller)
    return redirect("/dashboard/")


@guarded
async def logout(request: Request) -> Response:
    form = await read_form(request)
    check_csrf(request, form)
    await sign_out(request)
    return redirect("/dashboard/login")


async def _acting(request: Request) -> tuple[str, dict[str, str]]:
    """The signed-in account and the checked form of a button."""
    who = require_account(request)
    form = await read_form(request)
    check_csrf(request, form)
    return who.account_id, form


@guarded
async def redeliver_event(request: Request) -> Response:
    account_id, form = await _acting(request)
    svc = services(request)
    event_id = request.path_params["event_id"]
    created = await redeliver(
        svc.store, account_id, event_id, form.get("destination_id") or None, svc.clock.now()
    )
    svc.delivery.wake()
    flash(
        request,
        f"Redelivery of {event_id} queued: {len(created)} new delivery"
        f"{'' if len(created) == 1 else 's'}.",
    )
    return redirect(back_target(form.get("back"), f"/dashboard/events/{event_id}"))


SUBSCRIPTIONS = "/dashboard/subscriptions"


@guarded
async def test_subscription(request: Request) -> Response:
    account_id, form = await _acting(request)
    svc = services(request)
    sub = await _active(request, account_id)
    now = svc.clock.now()
    event_id = new_id("evt")
    event = Event(
        id=event_id,
        account_id=account_id,
        task_id=None,
        type=EventType.RELAY_TEST,
        sequence=0,
        created_at=now,
        body=envelope(
            event_id,
            EventType.RELAY_TEST,
            0,
            now,
            {
                "subscription_id": sub.id,
                "message": "A test event from the Seedance relay: answer 2xx.",
            },
        ),
    )
    due = await svc.store.insert_test_delivery(
        event, sub.id, svc.delivery.owner, now, svc.delivery.lease_seconds
    )
    if due is None:
        raise UnknownSubscription(f"no subscription {sub.id}")
    record = await svc.delivery.send_now(due)
    a = record.attempt
    answer = f"HTTP {a.status_code}" if a.status_code is not None else (a.error or a.outcome)
    verdict = "delivered" if record.status is DeliveryStatus.SUCCEEDED else "not delivered"
    flash(
        request, f"Test event {event_id} to {sub.url}: {verdict} ({answer}, {a.latency_ms:.0f} ms)."
    )
    return redirect(back_target(form.get("back"), SUBSCRIPTIONS))


@guarded
async def enable_subscription(request: Request) -> Response:
    account_id, form = await _acting(request)
    svc = services(request)
    sub_id = request.path_params["sub_id"]
    _, _, replayed = await operations.enable(
        svc.store, account_id, sub_id, svc.clock.now(), replay_missed=True, wake=svc.delivery.wake
    )
    flash(request, f"Subscription {sub_id} enabled; {replayed} missed event(s) replayed.")
    return redirect(back_target(form.get("back"), SUBSCRIPTIONS))


@guarded
async def disable_subscription(request: Request) -> Response:
    account_id, form = await _acting(request)
    svc = services(request)
    sub_id = request.path_params["sub_id"]
    disabled = await svc.store.disable_subscription(
        account_id, sub_id, "disabled from the dashboard", svc.clock.now()
    )
    if disabled is None:
        raise UnknownSubscription(f"no subscription {sub_id}")
    flash(request, f"Subscription {sub_id} disabled.")
    return redirect(back_target(form.get("back"), SUBSCRIPTIONS))


@guarded
async def replay_subscription(request: Request) -> Response:
    account_id, form = await _acting(request)
    svc = services(request)
    sub_id = request.path_params["sub_id"]
    now = svc.clock.now()
    # An explicit range, or "everything" ticked: an empty form is a 400, never a history.
    query = replay_query(form)
    total = await operations.replay(svc.store, account_id, sub_id, query, now, svc.delivery.wake)
    flash(request, f"Replay to {sub_id} queued: {total} event(s).")
    return redirect(back_target(form.get("back"), SUBSCRIPTIONS))


@guarded
async def rotate_secret(request: Request) -> Response:
    account_id, _ = await _acting(request)
    svc = services(request)
    sub_id = request.path_params["sub_id"]
    now = svc.clock.now()
    until = now + timedelta(seconds=svc.rotation_grace)
    secret = generate_webhook_secret()
    sub = await svc.store.rotate_subscription_secret(account_id, sub_id, secret, until, now)
    if sub is None:
        raise UnknownSubscription(f"no subscription {sub_id}")
    response = page(request, "secret.html", {"subscription": sub, "secret": secret, "until": until})
    response.headers.update(NO_STORE)
    return response


@guarded
async def resolve_submission(request: Request) -> Response:
    """The operator found the submission's task at the provider: track it (``POST
    /v1/submissions/{id}/resolve`` with ``provider_task_id``)."""
    account_id, form = await _acting(request)
    given = form.get("provider_task_id", "").strip()
    if not given:
        raise BadRequest("provider_task_id: enter the task id the provider gave the task")
    # The API's own limits on it (length), with the API's messages.
    body = parse(ResolveSubmission, {"provider_task_id": given})
    return await _settle(request, account_id, form, body.provider_task_id)


@guarded
async def abandon_submission(request: Request) -> Response:
    """Nothing was created at the provider (``POST /v1/submissions/{id}/resolve`` with
    ``abandon``)."""
    account_id, form = await _acting(request)
    return await _settle(request, account_id, form, None)


async def _settle(
    request: Request, account_id: str, form: dict[str, str], provider_task_id: str | None
) -> Response:
    submission_id = request.path_params["submission_id"]
    settled = await services(request).tracker.submitter.resolve(
        account_id, submission_id, provider_task_id
    )
    if isinstance(settled, Task):
        flash(
            request,
            f"Submission {submission_id} settled: provider task {settled.provider_task_id} "
            f"is tracked as task {settled.id}.",
        )
    else:
        flash(
            request,
            f"Submission {submission_id} abandoned: a retry with its Idempotency-Key "
            "submits again.",
        )
    return redirect(back_target(form.get("back"), f"/dashboard/submissions/{submission_id}"))


async def _active(request: Request, account_id: str) -> Subscription:
    sub_id = request.path_params["sub_id"]
    sub = await services(request).store.get_subscription(account_id, sub_id)
    if sub is None:
        raise UnknownSubscription(f"no subscription {sub_id}")
    if sub.status is not SubscriptionStatus.ACTIVE:
        raise SubscriptionDisabled("the subscription is disabled; enable it first")
    return sub
