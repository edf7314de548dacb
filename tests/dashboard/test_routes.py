"""The dashboard's routes on a real app (real SQLite store, real lifespan) through httpx's ASGI
transport: sign in and out, what needs a session, CSRF refusals, pagination, every page, and
that no secret or API key is ever rendered."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.app import create_app
from relay.config.settings import Settings, redacted
from relay.dashboard.session import SESSION_COOKIE
from relay.keys import ApiKey, issue_key, key_id
from relay.models import Account, TaskStatus
from relay.services import Services
from relay.signing import hash_api_key
from tests.clock import FakeClock
from tests.store.factories import NOW, answer_change, register

API_KEY = "rk_dashboard-test-key-0123456789abcdefghijklmnop"
CALLBACK_SECRET = "whsec_ZGFzaGJvYXJkLWNhbGxiYWNrLXNlY3JldA=="
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
DEAD_URL = "http://127.0.0.1:9/hook"
"""Nothing listens on port 9 (discard): deliveries there fail at once, without a network."""


@dataclass
class Dash:
    client: httpx.AsyncClient
    services: Services
    account: Account

    async def csrf(self, path: str = "/dashboard/tasks") -> str:
        page = await self.client.get(path)
        assert page.status_code == 200, page.text
        found = CSRF.search(page.text)
        assert found, page.text
        return found.group(1)

    async def sign_in(self, key: str = API_KEY) -> httpx.Response:
        token = await self.csrf("/dashboard/login")
        return await self.client.post("/dashboard/login", data={"csrf": token, "api_key": key})


def settings_for(tmp_path: Path, **sections: Any) -> Settings:
    return Settings.from_mapping(
        {
            "database_url": f"sqlite:///{tmp_path / 'relay.db'}",
            "server": {"port": 8791},
            "delivery": {"retry_schedule": [3600], "jitter": 0, "timeout": 2},
            # DEAD_URL is on 127.0.0.1, which the default network policy refuses.
            "network": {"allow_networks": ["127.0.0.0/8"]},
            **sections,
        },
        env={},
    )


@pytest.fixture
async def dash(tmp_path: Path) -> AsyncIterator[Dash]:
    app = create_app(settings_for(tmp_path), clock=FakeClock(NOW))
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        account = Account(id="acct_dash", name="dash-team", created_at=NOW)
        await services.store.create_account(account, hash_api_key(API_KEY), CALLBACK_SECRET)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield Dash(c, services, account)


async def test_pages_need_a_session(dash: Dash) -> None:
    for path in (
        "/dashboard/",
        "/dashboard/tasks",
        "/dashboard/events",
        "/dashboard/subscriptions",
        "/dashboard/providers",
        "/dashboard/tasks/x",
        "/dashboard/submissions",
        "/dashboard/submissions/x",
    ):
        response = await dash.client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/dashboard/login"
    # An API key is not a dashboard session.
    bearer = await dash.client.get(
        "/dashboard/tasks", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert bearer.status_code == 303


async def test_sign_in_keeps_the_account_not_the_key(dash: Dash) -> None:
    refused = await dash.sign_in("rk_not-a-key")
    assert refused.status_code == 401
    assert "not valid" in refused.text
    assert "rk_not-a-key" not in refused.text

    signed = await dash.sign_in()
    assert signed.status_code == 303
    assert signed.headers["location"] == "/dashboard/"  # the overview
    cookie = signed.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "max-age", "path", "samesite"} <= attributes
    assert "path=/dashboard" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    assert "secure" not in attributes  # plain http here; see the https test
    value = cookie.split(";")[0].split("=", 1)[1]
    payload = base64.b64decode(value.split(".")[0] + "==").decode()
    session = json.loads(payload)
    assert session["account_id"] == "acct_dash"
    assert API_KEY not in payload
    assert hash_api_key(API_KEY) not in payload

    tasks = await dash.client.get("/dashboard/tasks")
    assert tasks.status_code == 200
    assert "dash-team" in tasks.text
    assert tasks.headers["cache-control"] == "no-store"
    assert API_KEY not in tasks.text


async def test_wrong_keys_in_the_form_count_against_the_address(tmp_path: Path) -> None:
    """The sign-in form is no way around the API's limit on wrong keys: after the burst a
    wrong key is a 429, on the form and on the API; the right key still signs in."""
    app = create_app(
        settings_for(tmp_path, limits={"auth_failure_burst": 3, "auth_failures_per_minute": 1}),
        clock=FakeClock(NOW),
    )
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        account = Account(id="acct_dash", name="dash-team", created_at=NOW)
        await services.store.create_account(account, hash_api_key(API_KEY), CALLBACK_SECRET)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            dash = Dash(c, services, account)
            for _ in range(3):
                assert (await dash.sign_in("rk_wrong")).status_code == 401
            blocked = await dash.sign_in("rk_wrong")
            assert blocked.status_code == 429
            assert int(blocked.headers["retry-after"]) > 0
            api = await c.get("/v1/me", headers={"Authorization": "Bearer rk_wrong"})
            assert api.status_code == 429
            assert (await c.get("/dashboard/tasks")).status_code == 303  # not signed in
            assert (await dash.sign_in()).status_code == 303
            assert (await c.get("/dashboard/tasks")).status_code == 200


async def test_a_sign_in_ends_after_its_max_age(dash: Dash) -> None:
    await dash.sign_in()
    clock = dash.services.clock
    assert isinstance(clock, FakeClock)
    clock.advance(43_200 - 60)  # pages seen meanwhile re-sign the cookie, not the sign-in
    assert (await dash.client.get("/dashboard/tasks")).status_code == 200
    clock.advance(61)
    gone = await dash.client.get("/dashboard/tasks")
    assert gone.status_code == 303
    assert gone.headers["location"] == "/dashboard/login"


async def test_over_https_the_cookie_is_secure(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path), clock=FakeClock(NOW))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://relay.test"
        ) as client,
    ):
        login = await client.get("/dashboard/login")
        assert "secure" in [p.strip().lower() for p in login.headers["set-cookie"].split(";")]


async def test_forms_without_the_session_token_are_refused(dash: Dash) -> None:
    # Sign-in itself: a form from another site (no token) is refused.
    no_token = await dash.client.post("/dashboard/login", data={"api_key": API_KEY})
    assert no_token.status_code == 403
    assert (await dash.client.get("/dashboard/tasks")).status_code == 303

    assert (await dash.sign_in()).status_code == 303
    task = (await register(dash.services.store, dash.account, callback_url=None)).event
    redeliver = f"/dashboard/events/{task.id}/redeliver"
    for data in ({"back": "/dashboard/tasks"}, {"csrf": ""}, {"csrf": "forged-token"}):
        refused = await dash.client.post(redeliver, data=data)
        assert refused.status_code == 403, data
        assert "security token" in refused.text
    # The token of the session before sign-in is not the one after it.
    stale = await dash.client.post("/dashboard/logout", data={"csrf": "x"})
    assert stale.status_code == 403
    # Only a form body counts: the token in JSON is refused.
    as_json = await dash.client.post(redeliver, json={"csrf": await dash.csrf()})
    assert as_json.status_code == 400


async def test_sign_out_ends_the_session(dash: Dash) -> None:
    await dash.sign_in()
    token = await dash.csrf()
    out = await dash.client.post("/dashboard/logout", data={"csrf": token})
    assert out.status_code == 303
    assert out.headers["location"] == "/dashboard/login"
    assert (await dash.client.get("/dashboard/tasks")).status_code == 303
    # The old token died with the session.
    again = await dash.client.post("/dashboard/logout", data={"csrf": token})
    assert again.status_code == 403


async def test_tasks_are_paginated_by_cursor_and_filtered(dash: Dash) -> None:
    store = dash.services.store
    created = [
        (await register(store, dash.account, callback_url=None, reference=f"ref-{i}")).task
        for i in range(120)
    ]
    running = created[7]
    change = answer_change(running, TaskStatus.RUNNING, NOW)
    assert await store.save_task(change, running.version)
    await dash.sign_in()

    seen: list[str] = []
    url: str | None = "/dashboard/tasks"
    pages = 0
    while url is not None:
        page = await dash.client.get(url)
        assert page.status_code == 200
        rows = re.findall(r'class="mono task-link" href="/dashboard/tasks/([^"]+)"', page.text)
        assert 0 < len(rows) <= 50
        seen += rows
        pages += 1
        link = re.search(r'id="next-page" href="\?([^"]+)"', page.text)
        url = f"/dashboard/tasks?{link.group(1).replace('&amp;', '&')}" if link else None
    assert pages == 3
    assert seen == [t.id for t in reversed(created)]  # newest first, none twice

    only = await dash.client.get("/dashboard/tasks", params={"status": "running"})
    assert re.findall(r'href="/dashboard/tasks/([^"]+)"', only.text) == [running.id]
    assert "next-page" not in only.text
    bad = await dash.client.get("/dashboard/tasks", params={"status": "sleeping"})
    assert bad.status_code == 400
    forged = await dash.client.get("/dashboard/tasks", params={"cursor": "not-ours"})
    assert forged.status_code == 400
    assert "cursor is not valid" in forged.text


async def test_a_task_page_shows_events_deliveries_and_redelivers(dash: Dash) -> None:
    store = dash.services.store
    reg = await register(store, dash.account, callback_url=DEAD_URL, events=None)
    change = answer_change(reg.task, TaskStatus.SUCCEEDED, NOW)
    assert await store.save_task(change, reg.task.version)
    (done,) = [e for e in change.events if e.type.value == "task.succeeded"]
    await dash.sign_in()
    path = f"/dashboard/tasks/{reg.task.id}"

    async def deliveries() -> int:
        return len(await store.event_deliveries(dash.account.id, done.id))

    page = await dash.client.get(path)
    assert page.status_code == 200
    assert reg.task.id in page.text
    assert "task.succeeded" in page.text
    assert "registered" in page.text
    assert "finished: succeeded" in page.text
    assert DEAD_URL in page.text
    before = await deliveries()
    assert before == 1

    token = CSRF.search(page.text)
    assert token
    replay = await dash.client.post(
        f"/dashboard/events/{done.id}/redeliver", data={"csrf": token.group(1), "back": path}
    )
    assert replay.status_code == 303
    assert replay.headers["location"] == path
    assert await deliveries() == before + 1
    after = await dash.client.get(path)
    assert "Redelivery of" in after.text
    assert after.text.count('<tr class="delivery">') == 2

    # A redirect elsewhere is not followed: the form comes back to the event.
    away = await dash.client.post(
        f"/dashboard/events/{done.id}/redeliver",
        data={"csrf": token.group(1), "back": "https://evil.test/"},
    )
    assert away.headers["location"] == f"/dashboard/events/{done.id}"
    event_page = await dash.client.get(f"/dashboard/events/{done.id}")
    assert event_page.status_code == 200
    assert event_page.text.count('<tr class="delivery">') == 3

    missing = await dash.client.get("/dashboard/tasks/task_nope")
    assert missing.status_code == 404
    assert "no task task_nope" in missing.text
    other = await dash.client.post(
        "/dashboard/events/evt_nope/redeliver", data={"csrf": token.group(1)}
    )
    assert other.status_code == 404


async def test_events_providers_and_subscriptions_render(dash: Dash) -> None:
    await dash.sign_in()
    api = {"Authorization": f"Bearer {API_KEY}"}
    created = await dash.client.post(
        "/v1/subscriptions",
        headers=api,
        json={
            "url": DEAD_URL,
            "description": "ops hook",
            "headers": {"X-Receiver-Token": "header-secret-value"},
        },
    )
    assert created.status_code == 201, created.text
    sub_id, first_secret = created.json()["id"], created.json()["secret"]
    await register(dash.services.store, dash.account, callback_url=None)

    events = await dash.client.get("/dashboard/events")
    assert events.status_code == 200
    assert "task.queued" in events.text
    providers = await dash.client.get("/dashboard/providers")
    assert providers.status_code == 200
    assert "sandbox" in providers.text
    assert "healthy" in providers.text

    subs = await dash.client.get("/dashboard/subscriptions")
    assert subs.status_code == 200
    assert sub_id in subs.text
    assert "ops hook" in subs.text
    assert 'class="status s-new">new<' in subs.text
    token = CSRF.search(subs.text)
    assert token
    csrf = token.group(1)

    tested = await dash.client.post(
        f"/dashboard/subscriptions/{sub_id}/test", data={"csrf": csrf}, follow_redirects=True
    )
    assert "not delivered" in tested.text  # nothing listens there

    rotated = await dash.client.post(
        f"/dashboard/subscriptions/{sub_id}/rotate-secret", data={"csrf": csrf}
    )
    assert rotated.status_code == 200
    assert rotated.headers["cache-control"] == "no-store"
    new_secret = re.search(r'id="new-secret">(whsec_[^<]+)<', rotated.text)
    assert new_secret
    assert new_secret.group(1) != first_secret

    disabled = await dash.client.post(
        f"/dashboard/subscriptions/{sub_id}/disable", data={"csrf": csrf}, follow_redirects=True
    )
    assert "disabled from the dashboard" in disabled.text
    refused = await dash.client.post(f"/dashboard/subscriptions/{sub_id}/test", data={"csrf": csrf})
    assert refused.status_code == 409
    enabled = await dash.client.post(
        f"/dashboard/subscriptions/{sub_id}/enable", data={"csrf": csrf}, follow_redirects=True
    )
    assert f"Subscription {sub_id} enabled" in enabled.text
    replayed = await dash.client.post(
        f"/dashboard/subscriptions/{sub_id}/replay",
        data={"csrf": csrf, "since": "2020-01-01T00:00:00Z"},
        follow_redirects=True,
    )
    assert "Replay to" in replayed.text
    bad_time = await dash.client.post(
        f"/dashboard/subscriptions/{sub_id}/replay", data={"csrf": csrf, "since": "yesterday"}
    )
    assert bad_time.status_code == 400

    # No page ever shows a secret, a static header's value or the API key.
    for path in (
        "/dashboard/",
        "/dashboard/subscriptions",
        f"/dashboard/subscriptions/{sub_id}/edit",
        f"/dashboard/subscriptions/{sub_id}/replay?since=2020-01-01T00:00:00Z",
        "/dashboard/tasks",
        "/dashboard/events",
        "/dashboard/providers",
    ):
        text = (await dash.client.get(path)).text
        for secret in (
            first_secret,
            new_secret.group(1),
            CALLBACK_SECRET,
            API_KEY,
            "header-secret-value",
        ):
            assert secret not in text, (path, secret)


async def test_dashboard_follows_role_and_config(tmp_path: Path) -> None:
    pg = {"database_url": "postgresql://postgres@127.0.0.1:5432/test"}
    worker = Settings.from_mapping(pg, env={})
    assert "/dashboard" not in {
        getattr(r, "path", "") for r in create_app(worker, role="worker").routes
    }
    assert "/dashboard" in {getattr(r, "path", "") for r in create_app(worker, role="api").routes}
    off = settings_for(tmp_path, dashboard={"enabled": False})
    assert "/dashboard" not in {getattr(r, "path", "") for r in create_app(off).routes}

    secret = Settings.from_mapping(
        {"dashboard": {"session_secret": "${S}"}}, env={"S": "a-session-secret-of-some-length"}
    )
    assert secret.dashboard.session_secret == "a-session-secret-of-some-length"
    assert redacted(secret)["dashboard"]["session_secret"] == "***"


# --- sessions are held server-side, against the key that opened them --------------------------


async def copied(dash: Dash) -> httpx.AsyncClient:
    """Another browser holding a copy of the session cookie as it is now."""
    cookie = dash.client.cookies.get(SESSION_COOKIE)
    assert cookie
    return httpx.AsyncClient(
        transport=dash.client._transport,
        base_url="http://testserver",
        headers={"Cookie": f"{SESSION_COOKIE}={cookie}"},
    )


async def test_a_cookie_copied_before_sign_out_is_refused_after_it(dash: Dash) -> None:
    await dash.sign_in()
    token = await dash.csrf()
    async with await copied(dash) as thief:
        assert (await thief.get("/dashboard/tasks")).status_code == 200
        out = await dash.client.post("/dashboard/logout", data={"csrf": token})
        assert out.status_code == 303

        page = await thief.get("/dashboard/tasks")
        assert page.status_code == 303
        assert page.headers["location"] == "/dashboard/login"
        assert f"{SESSION_COOKIE}=null" in page.headers["set-cookie"]  # and told to forget it
        # Nor does its form token act any more.
        task = (await register(dash.services.store, dash.account, callback_url=None)).event
        acted = await thief.post(f"/dashboard/events/{task.id}/redeliver", data={"csrf": token})
        assert acted.status_code in (401, 403)
    assert len(await dash.services.store.event_deliveries(dash.account.id, task.id)) == 0


async def test_revoking_the_key_ends_its_sessions_at_once(dash: Dash) -> None:
    other_key = "rk_dashboard-second-key-0123456789abcdefghijklmn"
    store, now = dash.services.store, dash.services.clock.now()
    second = ApiKey(key_id(hash_api_key(other_key)), dash.account.id, None, now, None)
    await store.add_api_key(second, hash_api_key(other_key))
    await dash.sign_in()
    async with await copied(dash) as first_browser:
        dash.client.cookies.clear()
        await dash.sign_in(other_key)  # a second session, opened with the second key
        assert (await first_browser.get("/dashboard/tasks")).status_code == 200

        await store.revoke_api_key(dash.account.id, key_id(hash_api_key(API_KEY)), now)
        gone = await first_browser.get("/dashboard/tasks")
        assert gone.status_code == 303
        assert gone.headers["location"] == "/dashboard/login"
        # The session of the key still active holds.
        assert (await dash.client.get("/dashboard/tasks")).status_code == 200
    dash.client.cookies.clear()
    assert (await dash.sign_in()).status_code == 401  # and the revoked key signs in no more


async def test_a_deleted_key_row_ends_its_sessions(dash: Dash, tmp_path: Path) -> None:
    await dash.sign_in()
    assert (await dash.client.get("/dashboard/tasks")).status_code == 200
    with sqlite3.connect(tmp_path / "relay.db") as conn:
        conn.execute("DELETE FROM api_keys")
    conn.close()
    gone = await dash.client.get("/dashboard/tasks")
    assert gone.status_code == 303
    assert gone.headers["location"] == "/dashboard/login"


async def test_a_rotation_grace_ends_the_old_keys_sessions_when_it_ends(dash: Dash) -> None:
    await dash.sign_in()
    store, clock = dash.services.store, dash.services.clock
    assert isinstance(clock, FakeClock)
    issued = issue_key(dash.account.id, clock.now())
    await store.add_api_key(issued.key, issued.hash, others_until=clock.now() + timedelta(hours=1))
    clock.advance(3599)
    assert (await dash.client.get("/dashboard/tasks")).status_code == 200
    clock.advance(1)
    assert (await dash.client.get("/dashboard/tasks")).status_code == 303


async def test_a_session_that_cannot_be_checked_is_neither_honoured_nor_dropped(
    dash: Dash, tmp_path: Path
) -> None:
    await dash.sign_in()
    with sqlite3.connect(tmp_path / "relay.db") as conn:
        conn.execute("ALTER TABLE dashboard_sessions RENAME TO away")  # the check fails
    conn.close()
    unchecked = await dash.client.get("/dashboard/tasks")
    assert unchecked.status_code == 503
    assert "dash-team" not in unchecked.text
    assert unchecked.headers["retry-after"] == "5"
    with sqlite3.connect(tmp_path / "relay.db") as conn:
        conn.execute("ALTER TABLE away RENAME TO dashboard_sessions")
    conn.close()
    assert (await dash.client.get("/dashboard/tasks")).status_code == 200  # still signed in
