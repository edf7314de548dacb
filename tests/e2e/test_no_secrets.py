"""Secrets never leak (issue 6): a full scenario against a real ``relay serve`` process logging
at DEBUG, then every log line, every error body, ``/metrics`` and the dashboard's pages are
searched for the API key, the provider keys and every webhook secret (old ones after a
rotation included), and none is found.

To cover another page or endpoint, add it to ``PAGES`` (or ``DASHBOARD_PAGES``); error bodies
are collected from every 4xx/5xx answer the scenario gets.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ReceiverFactory
from tests.e2e.harness import (
    Account,
    RelayProcess,
    ark_input,
    create_account,
    eventually,
    free_port,
    relay_config,
    write_config,
)

PROVIDER_KEY = "sk-ark-PROVIDERKEY-7f3a9c2e5b1d4068"
GATEWAY_KEY = "sk-gw-GATEWAYKEY-0c4e8a2f6b9d1357"
GATEWAY_HEADER = "hdr-GATEWAYHEADER-5e7a1c3b9d2f4680"
GATEWAY_QUERY = "qp-GATEWAYQUERY-2b4d6f8a0c1e3579"
CALLBACK_TOKEN = "cbtok-CALLBACKTOKEN-9a8b7c6d5e4f3021"
"""A token in a callback URL's query string: the receiver's credential, not the relay's."""

PAGES = ("/metrics", "/v1/providers", "/v1/events", "/v1/tasks", "/v1/subscriptions")
"""API answers searched besides the error bodies (with the API key)."""
DASHBOARD_PAGES = (
    "/dashboard/",
    "/dashboard/tasks",
    "/dashboard/events",
    "/dashboard/subscriptions",
    "/dashboard/providers",
    "/dashboard/login",
)
"""Dashboard pages searched after signing in; ``{task}`` and ``{event}`` pages are added."""


def config(tmp_path: Path, port: int) -> dict[str, Any]:
    base = relay_config(tmp_path, port, log_level="debug", delivery={"timeout": 2})
    sandbox = {**base["providers"]["sandbox"], "api_key": PROVIDER_KEY, "timeout": 1}
    gateway = {
        "dialect": "unified",
        "sandbox": True,
        "api_key": GATEWAY_KEY,
        "headers": {"X-Gateway-Token": GATEWAY_HEADER},
        "query_params": {"sig": GATEWAY_QUERY},
        "poll": {"min_interval": 0.1, "max_interval": 0.5, "learn": False},
    }
    return {**base, "providers": {"sandbox": sandbox, "gateway": gateway}}


class Recorder:
    """An API client that keeps every error body it is answered."""

    def __init__(self, base_url: str, api_key: str | None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(
            base_url=base_url, timeout=10, trust_env=False, headers=headers
        )
        self.errors: list[str] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.client.request(method, path, **kwargs)
        if response.status_code >= 400:
            self.errors.append(f"{method} {path} -> {response.status_code}: {response.text}")
        return response

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.text}"
        return response.json() if response.content else None


async def scenario(
    relay: RelayProcess, account: Account, flaky: str, steady: str, gone: str
) -> tuple[Recorder, list[str], dict[str, str]]:
    """Everything a user does; the secrets it was handed, and a task and event id."""
    api = Recorder(relay.url, account.api_key)
    stranger = Recorder(relay.url, None)
    secrets = [account.secret]

    # Bad requests: no key, a wrong key (in both headers), bad bodies, unknown objects.
    await stranger.request("GET", "/v1/me")
    await stranger.request("GET", "/v1/me", headers={"Authorization": "Bearer rk_wrong"})
    await stranger.request("GET", "/v1/me", headers={"X-API-Key": account.api_key[:-4]})
    await api.request("POST", "/v1/tasks", content=b"{not json")
    await api.request("POST", "/v1/tasks", json={"provider": "sandbox"})
    await api.request("POST", "/v1/tasks", json={"provider": "nope", "input": ark_input()})
    await api.request(
        "POST",
        "/v1/tasks",
        json={"provider": "sandbox", "input": ark_input(), "callback_url": "ftp://example.com/x"},
    )
    await api.request("POST", "/v1/subscriptions", json={"url": "not a url"})
    await api.request("GET", "/v1/tasks/task_nope")
    await api.request("GET", "/v1/nowhere")

    # Subscriptions: one that answers 500 twice then 200, one that answers 410.
    first = await api.ok("POST", "/v1/subscriptions", json={"url": steady})
    second = await api.ok(
        "POST",
        "/v1/subscriptions",
        json={"url": gone, "headers": {"Authorization": "Bearer receiver-token-xyz"}},
    )
    secrets += [first["secret"], second["secret"]]
    rotated = await api.ok("POST", f"/v1/subscriptions/{first['id']}/rotate-secret")
    secrets.append(rotated["secret"])
    await api.ok("POST", f"/v1/subscriptions/{first['id']}/test")

    # Tasks: one succeeds (its callback fails, then succeeds), one fails, one is tracked at
    # a provider that never heard of it, one at the gateway.
    ok = await api.ok(
        "POST",
        "/v1/tasks",
        json={
            "provider": "sandbox",
            "input": ark_input("a cat"),
            "callback_url": f"{flaky}?token={CALLBACK_TOKEN}",
        },
    )
    await api.ok(
        "POST", "/v1/tasks", json={"provider": "sandbox", "input": ark_input("a dog [fail]")}
    )
    await api.ok(
        "POST",
        "/v1/tasks",
        json={"provider": "sandbox", "provider_task_id": "cgt-20991231000000-nosuch"},
    )
    await api.ok(
        "POST", "/v1/tasks", json={"provider": "gateway", "provider_task_id": "task_nosuch"}
    )
    renewed = await api.ok("POST", "/v1/callback-secret/rotate")
    secrets.append(renewed["secret"])

    async def succeeded() -> str | None:
        events = (
            await api.ok(
                "GET", "/v1/events", params={"task_id": ok["id"], "type": "task.succeeded"}
            )
        )["data"]
        return events[0]["id"] if events else None

    event_id = await eventually(succeeded, within=15, what="the task's success")

    async def delivered() -> bool:
        views = (await api.ok("GET", f"/v1/events/{event_id}/deliveries"))["data"]
        return any(v["status"] == "succeeded" for v in views)

    await eventually(delivered, within=15, what="the callback delivered after two 500s")
    await api.ok("POST", f"/v1/events/{event_id}/redeliver")

    # Provider faults: 500s, a 429 and a timeout, then recovery.
    fault = await stranger.request(
        "PUT",
        "/sandbox/_control/faults",
        json={"plan": ["500", "503", "429", "timeout", "garbage"], "timeout_seconds": 2},
    )
    assert fault.status_code == 200, fault.text
    await api.request("POST", f"/v1/tasks/{ok['id']}/refresh")
    busy = await api.ok(
        "POST",
        "/v1/tasks",
        json={"provider": "sandbox", "provider_task_id": "cgt-20991231000000-busy"},
    )

    async def faults_done() -> dict[str, Any] | None:
        state: dict[str, Any] = (await stranger.client.get("/sandbox/_control/faults")).json()
        return None if state["active"] else state

    # The provider backs off after each fault (doubling), so the plan takes a while.
    await eventually(faults_done, within=90, what="the fault plan used up", interval=0.2)
    await stranger.client.aclose()
    api.errors += stranger.errors
    return api, secrets, {"task": busy["id"], "ok_task": ok["id"], "event": event_id}


async def dashboard(base_url: str, api_key: str, ids: dict[str, str]) -> list[str]:
    """The dashboard's pages, signed in; a failed sign-in's page too."""
    texts = []
    async with httpx.AsyncClient(base_url=base_url, timeout=10, trust_env=False) as client:
        form = await client.get("/dashboard/login")
        assert form.status_code == 200, form.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf, form.text
        bad = await client.post(
            "/dashboard/login", data={"api_key": api_key[:-3] + "xyz", "csrf": csrf.group(1)}
        )
        texts.append(bad.text)
        signed = await client.post(
            "/dashboard/login",
            data={"api_key": api_key, "csrf": csrf.group(1)},
            follow_redirects=True,
        )
        assert signed.status_code == 200, signed.text
        for path in (
            *DASHBOARD_PAGES,
            f"/dashboard/tasks/{ids['ok_task']}",
            f"/dashboard/events/{ids['event']}",
        ):
            page = await client.get(path, follow_redirects=True)
            assert page.status_code == 200, f"{path}: {page.status_code}"
            texts.append(f"{path}: {page.text}")
    return texts


def leaks(texts: Iterable[str], secrets: Iterable[str]) -> list[str]:
    """``secret ... in ...`` for each secret found (its base64 part alone counts too)."""
    found = []
    for text in texts:
        for secret in secrets:
            for form in {secret, secret.removeprefix("whsec_")}:
                if form in text:
                    found.append(f"{secret[:10]}... in {text[:300]!r}")
    return found


@pytest.mark.slow
async def test_no_secret_in_logs_errors_metrics_or_dashboard(
    tmp_path: Path,
    start_receiver: ReceiverFactory,
) -> None:
    flaky = await start_receiver([500, 500], default=200)
    steady = await start_receiver(default=200)
    gone = await start_receiver(default=410)
    port = free_port()
    path = write_config(tmp_path, config(tmp_path, port))
    account = await create_account(path, "secrets")
    relay = RelayProcess(path, port, tmp_path / "relay.log")
    try:
        await relay.start()
        api, secrets, ids = await scenario(relay, account, flaky.url, steady.url, gone.url)
        bodies = list(api.errors)
        for page in PAGES:
            bodies.append(f"{page}: {(await api.request('GET', page)).text}")
        pages = await dashboard(relay.url, account.api_key, ids)
        await api.client.aclose()
        assert await relay.kill(signal.SIGTERM) in (0, -signal.SIGTERM), relay.log()[-3000:]
    finally:
        await relay.ensure_dead()

    lines = [line for line in relay.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # not a terminal: JSON, one per line
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)

    # The scenario did produce what is searched: debug polls, delivery retries with their
    # ids, provider faults, error bodies of each kind, and the receivers got the webhooks.
    assert any(r["level"] == "debug" and r.get("provider") == "gateway" for r in records)
    assert any(
        r.get("outcome") == "retry"
        and r.get("delivery_id", "").startswith("dlv_")
        and r.get("event_id", "").startswith("evt_")
        for r in records
    )
    assert any(r["logger"] == "relay.providers" and r["level"] == "warning" for r in records)
    assert any(r.get("event_id") and r.get("task_id") for r in records)
    assert len(api.errors) >= 10
    assert any("-> 401" in e for e in api.errors)
    assert any("-> 400" in e or "-> 422" in e for e in api.errors)
    assert len(flaky.requests) >= 4
    assert len(gone.requests) >= 1

    everything = [*lines, *bodies, *pages]
    provider_secrets = [PROVIDER_KEY, GATEWAY_KEY, GATEWAY_HEADER, GATEWAY_QUERY]
    assert leaks(everything, [account.api_key, *provider_secrets, *secrets]) == []
    # The receivers' own credentials (a URL's token, a static header) stay out of the logs.
    assert leaks(lines, [CALLBACK_TOKEN, "receiver-token-xyz"]) == []
