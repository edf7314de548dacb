"""The dashboard's subscription forms: create, edit and delete a subscription (its signing
secret shown once, in the answer to the create), and the confirmation pages in front of the
acts that cannot be taken back: delete, disable, rotate the secret, and replay (which says
how many events will go, counted as the replay will count them).

The confirmations are ``GET`` pages holding the form that acts; the acts themselves
(``relay.dashboard.actions``) are ``POST`` forms with the session's CSRF token, as before.
The checks are the JSON API's own: the same schemas (``relay.api.schemas``), the same
network policy for the URL, the same replay plan (``relay.operator_actions``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay import operator_actions as operations
from relay.api.errors import answer_for
from relay.api.http import check_destination, services
from relay.api.schemas import CreateSubscription, UpdateSubscription, parse
from relay.dashboard.render import NO_STORE, guarded, page, redirect
from relay.dashboard.session import check_csrf, flash, read_form, require_account
from relay.errors import BadRequest, RelayError, UnknownSubscription
from relay.ids import new_id
from relay.models import EventType, Subscription, iso
from relay.operator_actions import parse_time
from relay.signing import generate_webhook_secret
from relay.store.values import ReplayQuery

SUBSCRIPTIONS = "/dashboard/subscriptions"
CHOSEN_TYPES = [t.value for t in EventType if t is not EventType.RELAY_TEST]
"""The event types a subscription may ask for (test events go to it whatever it asks)."""


async def _subscription(request: Request, account_id: str) -> Subscription:
    sub_id = request.path_params["sub_id"]
    sub = await services(request).store.get_subscription(account_id, sub_id)
    if sub is None:
        raise UnknownSubscription(f"no subscription {sub_id}")
    return sub


def _fields(form: Mapping[str, str]) -> dict[str, Any]:
    """The form as the API's JSON body: each event type is its own checkbox
    (``type:task.succeeded``); none ticked means the default (terminal task events)."""
    types = [t for t in CHOSEN_TYPES if form.get(f"type:{t}") == "on"]
    return {
        "url": form.get("url", "").strip() or None,
        "event_types": types or None,
        "description": form.get("description", "").strip() or None,
    }


def _form_page(
    request: Request,
    values: Mapping[str, Any],
    sub: Subscription | None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return page(
        request,
        "subscription_form.html",
        {"values": values, "sub": sub, "error": error, "types": CHOSEN_TYPES},
        status_code=status_code,
    )


def _values_of(sub: Subscription) -> dict[str, Any]:
    return {
        "url": sub.url,
        "event_types": sorted(t.value for t in sub.event_types) if sub.event_types else None,
        "description": sub.description,
    }


@guarded
async def new_form(request: Request) -> Response:
    require_account(request)
    return _form_page(request, {"url": "", "event_types": None, "description": ""}, None)


@guarded
async def create(request: Request) -> Response:
    who = require_account(request)
    form = await read_form(request)
    check_csrf(request, form)
    values = _fields(form)
    try:
        body = parse(CreateSubscription, {k: v for k, v in values.items() if v is not None})
        await check_destination(request, "url", body.destination)
    except RelayError as exc:
        return _refused(request, values, None, exc)
    svc = services(request)
    now = svc.clock.now()
    sub = body.subscription(who.account_id, new_id("sub"), now)
    secret = generate_webhook_secret()
    await svc.store.create_subscription(sub, secret)
    # Shown in this answer only (never cached, stored in the clear, or logged), as the API's
    # create answer shows it once.
    response = page(
        request, "secret.html", {"subscription": sub, "secret": secret, "until": None, "new": True}
    )
    response.headers.update(NO_STORE)
    return response


def _refused(
    request: Request, values: Mapping[str, Any], sub: Subscription | None, exc: RelayError
) -> Response:
    """The form again with what was typed and why it was refused (a 4xx, nothing changed)."""
    answer = answer_for(exc)
    if answer is None:
        raise exc
    return _form_page(request, values, sub, str(exc), answer.status)


@guarded
async def edit_form(request: Request) -> Response:
    who = require_account(request)
    sub = await _subscription(request, who.account_id)
    return _form_page(request, _values_of(sub), sub)


@guarded
async def edit(request: Request) -> Response:
    who = require_account(request)
    form = await read_form(request)
    check_csrf(request, form)
    sub = await _subscription(request, who.account_id)
    values = _fields(form)
    try:
        if values["url"] is None:
            raise BadRequest("url: give the address the events are sent to")
        body = parse(UpdateSubscription, values)
        changes: dict[str, Any] = body.model_dump()
        changes.pop("target_url", None)
        changes.pop("headers", None)  # not on the form: kept as they are
        changes.pop("rate_limit", None)
        if changes["url"] != sub.url:
            await check_destination(request, "url", changes["url"])
    except RelayError as exc:
        return _refused(request, values, sub, exc)
    if changes["event_types"] is not None:
        changes["event_types"] = frozenset(EventType(t) for t in changes["event_types"])
    svc = services(request)
    updated = await svc.store.update_subscription(who.account_id, sub.id, changes, svc.clock.now())
    if updated is None:
        raise UnknownSubscription(f"no subscription {sub.id}")
    flash(request, f"Subscription {sub.id} saved.")
    return redirect(SUBSCRIPTIONS)


def _confirm(request: Request, sub: Subscription, **context: Any) -> Response:
    return page(request, "confirm.html", {"sub": sub, **context})


@guarded
async def confirm_delete(request: Request) -> Response:
    who = require_account(request)
    sub = await _subscription(request, who.account_id)
    return _confirm(
        request,
        sub,
        act="delete",
        title="Delete this subscription?",
        message="It stops receiving events at once; deliveries still waiting for it are "
        "dropped. Its event history stays. This cannot be undone: a new subscription gets a "
        "new id and a new secret.",
        button="Delete the subscription",
    )


@guarded
async def delete(request: Request) -> Response:
    who = require_account(request)
    form = await read_form(request)
    check_csrf(request, form)
    svc = services(request)
    sub_id = request.path_params["sub_id"]
    if not await svc.store.delete_subscription(who.account_id, sub_id, svc.clock.now()):
        raise UnknownSubscription(f"no subscription {sub_id}")
    flash(request, f"Subscription {sub_id} deleted.")
    return redirect(SUBSCRIPTIONS)


@guarded
async def confirm_disable(request: Request) -> Response:
    who = require_account(request)
    sub = await _subscription(request, who.account_id)
    return _confirm(
        request,
        sub,
        act="disable",
        title="Disable this subscription?",
        message="No event is sent to it until it is enabled again; then what it missed "
        "meanwhile is replayed.",
        button="Disable",
    )


@guarded
async def confirm_rotate(request: Request) -> Response:
    who = require_account(request)
    sub = await _subscription(request, who.account_id)
    grace = services(request).rotation_grace
    return _confirm(
        request,
        sub,
        act="rotate-secret",
        title="Rotate this subscription's signing secret?",
        message=f"A new secret is made and shown once. The current one keeps signing next to "
        f"it for {grace / 3600:g} hours, while the receiver is given the new one; after that "
        "only the new one signs.",
        button="Rotate the secret",
    )


def replay_query(form: Mapping[str, str]) -> ReplayQuery:
    """A replay's range from the form: ``since`` (and ``until``), or ``all`` ticked to mean
    every event the account has. Neither is a 400: an empty form never re-sends a history."""
    everything = form.get("all") == "on"
    since, until = _time(form, "since"), _time(form, "until")
    if everything and since is not None:
        raise BadRequest("since: leave it empty to replay everything, or untick everything")
    if not everything and since is None:
        raise BadRequest(
            "since: give the time the replay starts from (e.g. 2026-11-21T10:00:00Z), or "
            'tick "everything" to re-send every event the account has'
        )
    return ReplayQuery(since=since, until=until, only_failed=form.get("only_failed") == "on")


def _time(form: Mapping[str, str], name: str) -> Any:
    value = form.get(name, "").strip()
    if not value:
        return None
    try:
        return parse_time(value[:40])
    except ValueError:
        raise BadRequest(f"{name}: not an ISO 8601 time (e.g. 2026-11-21T10:00:00Z)") from None


@guarded
async def replay_form(request: Request) -> Response:
    """The replay's range; once given, the confirmation: how many events will go."""
    who = require_account(request)
    svc = services(request)
    sub = await _subscription(request, who.account_id)
    form = dict(request.query_params)
    context: dict[str, Any] = {"sub": sub, "form": form, "error": None, "plan": None}
    if form.get("since") or form.get("all"):
        try:
            query = replay_query(form)
            context["plan"] = await operations.plan_replay(
                svc.store, who.account_id, sub.id, query, svc.clock.now()
            )
        except RelayError as exc:
            answer = answer_for(exc)
            if answer is None:
                raise
            context["error"] = str(exc)
            return page(request, "replay.html", context, status_code=answer.status)
        # The confirmed replay sends exactly the range counted: an open range is closed at
        # the time of the count, so events written since are not added behind the count.
        context["fields"] = {
            "since": form.get("since", ""),
            "until": iso(context["plan"].query.until),
            "only_failed": form.get("only_failed", ""),
            "all": form.get("all", ""),
        }
    return page(request, "replay.html", context)
