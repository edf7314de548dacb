"""The dashboard's submissions page on a real relay in-process (its sandbox provider served on
loopback): a create whose answer is lost is listed as uncertain, counted in the navigation,
filtered by state, and settled from the page, by tracking the task found at the provider or by
abandoning it, with the same refusals as the API (a second abandon, a form without its CSRF
token, another account's submission)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from tests.api.conftest import InProcessFactory, start_relay
from tests.e2e.harness import Account, InProcessRelay, ark_input

__all__ = ["start_relay"]

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ARK_TASKS = "/sandbox/ark/api/v3/contents/generations/tasks"
SANDBOX = {"Authorization": "Bearer sandbox"}


async def uncertain_submission(relay: InProcessRelay, account: Account) -> str:
    """A create the sandbox answers 500: the relay cannot tell whether it was taken."""
    async with relay.client(account) as api:
        faults = await api.put("/sandbox/_control/faults", json={"plan": ["500"]})
        assert faults.status_code == 200, faults.text
        lost = await api.post(
            "/v1/tasks",
            json={"provider": "sandbox", "input": ark_input("lost"), "reference": "ref-lost"},
            headers={"Idempotency-Key": "lost-1"},
        )
        assert (lost.status_code, lost.json()["error"]["code"]) == (502, "submission_uncertain")
        listed = await api.get("/v1/submissions", params={"state": "uncertain"})
        [sub] = listed.json()["data"]
        return str(sub["id"])


@asynccontextmanager
async def signed_in(
    relay: InProcessRelay, account: Account
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A browser-like client signed in to the dashboard, and its session's CSRF token."""
    async with relay.client() as client:
        yield client, await _sign_in(client, account)


async def _sign_in(client: httpx.AsyncClient, account: Account) -> str:
    form = await client.get("/dashboard/login")
    token = CSRF.search(form.text)
    assert token, form.text
    signed = await client.post(
        "/dashboard/login", data={"csrf": token.group(1), "api_key": account.api_key}
    )
    assert signed.status_code == 303, signed.text
    page = await client.get("/dashboard/submissions")
    token = CSRF.search(page.text)
    assert token, page.text
    return token.group(1)


async def test_an_uncertain_submission_is_listed_counted_filtered_and_tracked(
    start_relay: InProcessFactory,
) -> None:
    relay = await start_relay()
    account = await relay.account("submitter")
    sub_id = await uncertain_submission(relay, account)
    async with signed_in(relay, account) as (client, csrf):
        landing = await client.get("/dashboard/tasks")
        assert "Submissions (1 uncertain)" in landing.text
        assert 'id="uncertain-notice"' in landing.text

        listed = await client.get("/dashboard/submissions")
        row = re.search(
            rf'<tr class="submission" id="submission-{sub_id}">(.*?)</tr>', listed.text, re.S
        )
        assert row, listed.text
        assert "s-uncertain" in row.group(1)
        assert "ref-lost" in row.group(1)
        assert f'action="/dashboard/submissions/{sub_id}/resolve"' in row.group(1)
        assert f'action="/dashboard/submissions/{sub_id}/abandon"' in row.group(1)
        uncertain = await client.get("/dashboard/submissions", params={"state": "uncertain"})
        assert f"submission-{sub_id}" in uncertain.text
        accepted = await client.get("/dashboard/submissions", params={"state": "accepted"})
        assert accepted.status_code == 200
        assert f"submission-{sub_id}" not in accepted.text
        bogus = await client.get("/dashboard/submissions", params={"state": "lost"})
        assert bogus.status_code == 400
        assert "state" in bogus.text

        empty = await client.post(
            f"/dashboard/submissions/{sub_id}/resolve", data={"csrf": csrf, "provider_task_id": " "}
        )
        assert empty.status_code == 400
        assert "provider_task_id" in empty.text

        # The operator finds the task at the provider (here: one the sandbox really holds).
        async with relay.client() as provider:
            made = await provider.post(ARK_TASKS, json=ark_input("lost"), headers=SANDBOX)
            assert made.status_code == 200, made.text
            provider_task_id = made.json()["id"]
        resolved = await client.post(
            f"/dashboard/submissions/{sub_id}/resolve",
            data={"csrf": csrf, "provider_task_id": provider_task_id},
            follow_redirects=True,
        )
        assert resolved.status_code == 200, resolved.text
        assert str(resolved.url).endswith(f"/dashboard/submissions/{sub_id}")
        assert f"provider task {provider_task_id} is tracked as task" in resolved.text
        assert 'id="submission-state">accepted' in resolved.text
        link = re.search(r'href="/dashboard/tasks/([^"]+)"', resolved.text)
        assert link, resolved.text
        assert "/abandon" not in resolved.text

        task = await client.get(f"/dashboard/tasks/{link.group(1)}")
        assert task.status_code == 200
        assert provider_task_id in task.text
        assert "ref-lost" in task.text
        after = await client.get("/dashboard/tasks")
        assert ">Submissions</a>" in after.text
        assert "uncertain-notice" not in after.text
    async with relay.client(account) as api:
        tracked = await api.get(f"/v1/tasks/{link.group(1)}")
        assert tracked.status_code == 200
        assert tracked.json()["provider_task_id"] == provider_task_id


async def test_abandon_once_with_its_token_and_only_in_its_account(
    start_relay: InProcessFactory,
) -> None:
    relay = await start_relay()
    owner, other = await relay.account("owner"), await relay.account("other")
    sub_id = await uncertain_submission(relay, owner)
    abandon = f"/dashboard/submissions/{sub_id}/abandon"

    async with signed_in(relay, other) as (stranger, stranger_csrf):
        assert f"submission-{sub_id}" not in (await stranger.get("/dashboard/submissions")).text
        assert (await stranger.get(f"/dashboard/submissions/{sub_id}")).status_code == 404
        for action, data in (
            (abandon, {"csrf": stranger_csrf}),
            (
                f"/dashboard/submissions/{sub_id}/resolve",
                {"csrf": stranger_csrf, "provider_task_id": "cgt-x"},
            ),
        ):
            refused = await stranger.post(action, data=data)
            assert refused.status_code == 404, refused.text

    async with signed_in(relay, owner) as (client, csrf):
        for data in ({"back": "/dashboard/tasks"}, {"csrf": ""}, {"csrf": "forged-token"}):
            forged = await client.post(abandon, data=data)
            assert forged.status_code == 403, forged.text
        still = await client.get(f"/dashboard/submissions/{sub_id}")
        assert 'id="submission-state">uncertain' in still.text

        dropped = await client.post(
            abandon, data={"csrf": csrf, "back": "/dashboard/submissions"}, follow_redirects=True
        )
        assert dropped.status_code == 200
        assert str(dropped.url).endswith("/dashboard/submissions")
        assert f"Submission {sub_id} abandoned" in dropped.text
        row = re.search(rf'id="submission-{sub_id}">(.*?)</tr>', dropped.text, re.S)
        assert row
        assert "s-abandoned" in row.group(1)
        assert "/abandon" not in row.group(1)

        twice = await client.post(abandon, data={"csrf": csrf})
        assert twice.status_code == 409
        assert f"submission {sub_id} is already abandoned" in twice.text
    async with relay.client(owner) as api:
        read = await api.get(f"/v1/submissions/{sub_id}")
        assert read.json()["state"] == "abandoned"
