"""Acting safely from the dashboard: subscriptions created (the secret shown once), edited and
deleted through forms; delete, disable and rotate behind confirmation pages that change
nothing themselves; a replay counted on a confirmation page before anything is sent, and
never the whole history without the explicit ask, in the dashboard and in the API."""

from __future__ import annotations

import re
from typing import Any

from relay.models import EventType, TaskStatus
from tests.dashboard.test_routes import API_KEY, CSRF, DEAD_URL, Dash
from tests.store.factories import advance, at, register

API = {"Authorization": f"Bearer {API_KEY}"}
SECRET = re.compile(r'id="new-secret">(whsec_[^<]+)<')


async def subscribe(dash: Dash, **fields: Any) -> str:
    created = await dash.client.post(
        "/v1/subscriptions", headers=API, json={"url": DEAD_URL, **fields}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def finished_tasks(dash: Dash, n: int) -> list[str]:
    """``n`` tasks that succeeded (one task.succeeded event each), an hour apart from NOW."""
    ids = []
    for i in range(n):
        reg = await register(
            dash.services.store, dash.account, callback_url=None, created_at=at(hours=i)
        )
        await advance(dash.services.store, reg.task, TaskStatus.SUCCEEDED, at(hours=i, minutes=1))
        ids.append(reg.task.id)
    return ids


async def pending_for(dash: Dash, sub_id: str) -> int:
    """Deliveries to the subscription, over the account's events."""
    store = dash.services.store
    page = await dash.client.get("/v1/events", headers=API, params={"limit": 200})
    total = 0
    for event in page.json()["data"]:
        views = await store.event_deliveries(dash.account.id, event["id"])
        total += sum(1 for v in views if v.delivery.destination_id == sub_id)
    return total


async def test_create_edit_and_delete_a_subscription_with_forms(dash: Dash) -> None:
    await dash.sign_in()
    form = await dash.client.get("/dashboard/subscriptions/new")
    assert form.status_code == 200
    csrf = CSRF.search(form.text)
    assert csrf
    token = csrf.group(1)

    # A URL the network policy refuses: the form again, with the reason; nothing created.
    refused = await dash.client.post(
        "/dashboard/subscriptions",
        data={"csrf": token, "url": "http://169.254.169.254/latest", "description": "meta"},
    )
    assert refused.status_code == 400
    assert 'id="form-error"' in refused.text
    assert 'value="meta"' in refused.text  # what was typed is kept
    listed = await dash.client.get("/v1/subscriptions", headers=API)
    assert listed.json()["data"] == []

    created = await dash.client.post(
        "/dashboard/subscriptions",
        data={
            "csrf": token,
            "url": DEAD_URL,
            "description": "from the form",
            "type:task.succeeded": "on",
            "type:task.failed": "on",
        },
    )
    assert created.status_code == 200, created.text
    assert created.headers["cache-control"] == "no-store"
    secret = SECRET.search(created.text)
    assert secret
    sub = (await dash.client.get("/v1/subscriptions", headers=API)).json()["data"][0]
    assert sub["url"] == DEAD_URL
    assert sorted(sub["event_types"]) == ["task.failed", "task.succeeded"]
    assert sub["description"] == "from the form"
    assert "secret" not in sub
    # Shown once: no page shows it again.
    for path in ("/dashboard/subscriptions", f"/dashboard/subscriptions/{sub['id']}/edit"):
        assert secret.group(1) not in (await dash.client.get(path)).text

    edit = f"/dashboard/subscriptions/{sub['id']}/edit"
    saved = await dash.client.post(
        edit,
        data={"csrf": token, "url": DEAD_URL + "/v2", "description": "", "type:task.queued": "on"},
        follow_redirects=True,
    )
    assert saved.status_code == 200
    assert f"Subscription {sub['id']} saved." in saved.text
    after = (await dash.client.get(f"/v1/subscriptions/{sub['id']}", headers=API)).json()
    assert (after["url"], after["event_types"], after["description"]) == (
        DEAD_URL + "/v2",
        ["task.queued"],
        None,
    )
    bad = await dash.client.post(edit, data={"csrf": token, "url": "not a url"})
    assert bad.status_code == 400
    assert (await dash.client.get(f"/v1/subscriptions/{sub['id']}", headers=API)).json() == after

    # Delete: the confirmation page changes nothing; its form deletes.
    delete = f"/dashboard/subscriptions/{sub['id']}/delete"
    confirm = await dash.client.get(delete)
    assert confirm.status_code == 200
    assert 'id="confirm-delete"' in confirm.text
    assert (await dash.client.get(f"/v1/subscriptions/{sub['id']}", headers=API)).status_code == 200
    assert (await dash.client.post(delete, data={"csrf": ""})).status_code == 403  # no token
    gone = await dash.client.post(delete, data={"csrf": token}, follow_redirects=True)
    assert f"Subscription {sub['id']} deleted." in gone.text
    assert (await dash.client.get(f"/v1/subscriptions/{sub['id']}", headers=API)).status_code == 404


async def test_rotate_and_disable_are_confirmed_first(dash: Dash) -> None:
    sub_id = await subscribe(dash)
    await dash.sign_in()
    base = f"/dashboard/subscriptions/{sub_id}"
    listing = await dash.client.get("/dashboard/subscriptions")
    # The list links to the confirmations: no button there rotates or disables at once.
    assert f'action="{base}/rotate-secret"' not in listing.text
    assert f'action="{base}/disable"' not in listing.text
    assert f'href="{base}/rotate-secret"' in listing.text
    assert f'href="{base}/disable"' in listing.text
    before = (await dash.client.get(f"/v1/subscriptions/{sub_id}", headers=API)).json()
    for act in ("rotate-secret", "disable"):
        page = await dash.client.get(f"{base}/{act}")
        assert page.status_code == 200
        assert f'id="confirm-{act}"' in page.text
    assert (await dash.client.get(f"/v1/subscriptions/{sub_id}", headers=API)).json() == before
    token = CSRF.search(page.text)
    assert token
    disabled = await dash.client.post(
        f"{base}/disable", data={"csrf": token.group(1)}, follow_redirects=True
    )
    assert f"Subscription {sub_id} disabled." in disabled.text
    assert (await dash.client.get(f"/v1/subscriptions/{sub_id}", headers=API)).json()[
        "status"
    ] == "disabled"


async def test_a_replay_is_counted_and_confirmed_and_never_everything_by_default(
    dash: Dash,
) -> None:
    sub_id = await subscribe(dash, event_types=[EventType.TASK_SUCCEEDED.value])
    await finished_tasks(dash, 3)
    await dash.sign_in()
    dash.services.clock.advance(4 * 3600)  # type: ignore[attr-defined]
    base = f"/dashboard/subscriptions/{sub_id}/replay"
    sent_before = await pending_for(dash, sub_id)
    assert sent_before == 3  # each task.succeeded, fanned out when it was written

    form = await dash.client.get(base)
    assert form.status_code == 200
    assert 'id="replay-form"' in form.text
    token = CSRF.search(form.text)
    assert token
    # An empty form is refused: no whole history in one click.
    empty = await dash.client.post(base, data={"csrf": token.group(1)})
    assert empty.status_code == 400
    assert "everything" in empty.text
    assert await pending_for(dash, sub_id) == sent_before

    # A range: the confirmation says how many will go, and sends nothing yet.
    since = at(hours=1).isoformat()
    confirm = await dash.client.get(base, params={"since": since})
    assert confirm.status_code == 200
    assert re.search(r'id="replay-count"><strong>2 events</strong>', confirm.text)
    assert await pending_for(dash, sub_id) == sent_before
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', confirm.text))
    assert set(fields) == {"csrf", "since", "until"}  # the range is closed at the count
    done = await dash.client.post(base, data=fields, follow_redirects=True)
    assert f"Replay to {sub_id} queued: 2 event(s)." in done.text
    assert await pending_for(dash, sub_id) == sent_before + 2

    # Everything, when asked for in so many words.
    everything = await dash.client.get(base, params={"all": "on"})
    assert re.search(r'id="replay-count"><strong>3 events</strong>', everything.text)
    assert "every event of the account" in everything.text
    both = await dash.client.get(base, params={"all": "on", "since": since})
    assert both.status_code == 400
    assert 'id="replay-error"' in both.text
    bad = await dash.client.get(base, params={"since": "yesterday"})
    assert bad.status_code == 400
    assert "not an ISO 8601 time" in bad.text
    # The search box knows subscription ids too: straight to its page.
    found = await dash.client.get("/dashboard/search", params={"q": sub_id})
    assert found.headers["location"] == f"/dashboard/subscriptions/{sub_id}/edit"
    fields = dict(
        re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', everything.text)
    )
    assert fields["all"] == "on"
    await dash.client.post(base, data=fields)
    assert await pending_for(dash, sub_id) == sent_before + 5


async def test_the_api_replays_everything_only_when_asked_in_so_many_words(dash: Dash) -> None:
    sub_id = await subscribe(dash, event_types=[EventType.TASK_SUCCEEDED.value])
    await finished_tasks(dash, 2)
    dash.services.clock.advance(3 * 3600)  # type: ignore[attr-defined]
    replay = f"/v1/subscriptions/{sub_id}/replay"
    before = await pending_for(dash, sub_id)
    for body in ({}, None, {"only_failed": True}, {"until": at(hours=3).isoformat()}):
        refused = await dash.client.post(replay, headers=API, json=body)
        assert refused.status_code == 400, (body, refused.text)
        error = refused.json()["error"]
        assert error["code"] == "invalid_request"
        assert '{"all": true}' in error["message"], error
        assert "since" in error["message"]
    both = await dash.client.post(
        replay, headers=API, json={"all": True, "since": at().isoformat()}
    )
    assert both.status_code == 400
    assert await pending_for(dash, sub_id) == before  # nothing was queued
    asked = await dash.client.post(replay, headers=API, json={"all": True})
    assert (asked.status_code, asked.json()) == (202, {"subscription_id": sub_id, "replayed": 2})
    ranged = await dash.client.post(replay, headers=API, json={"since": at(hours=1).isoformat()})
    assert (ranged.status_code, ranged.json()["replayed"]) == (202, 1)
    assert await pending_for(dash, sub_id) == before + 3
