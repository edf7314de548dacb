"""Endpoint verification: ``verify: true`` creates a subscription only once its URL answers the
Standard Webhooks challenge, as a receiver built on the ``standardwebhooks`` library does.
Real receivers on loopback; nothing is created when the answer does not prove control."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from tests.api.conftest import InProcessFactory, start_relay
from tests.e2e.harness import free_port

__all__ = ["start_relay"]

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
async def honest() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A receiver that holds SECRET: it verifies the challenge message, then answers it."""
    seen: list[dict[str, Any]] = []
    verifier = Webhook(SECRET)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        seen.append(verifier.verify(body, headers))  # raises if not signed with SECRET
        challenge = headers["webhook-challenge"]
        answer = verifier.endpoint_verification_response(challenge)
        return web.Response(text="ok", headers={"webhook-challenge-response": answer})

    async for url in serve(handle):
        yield url, seen


async def serve(handle: Any) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


async def test_a_receiver_that_answers_the_challenge_is_subscribed(
    start_relay: InProcessFactory, honest: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = honest
    relay = await start_relay()
    account = await relay.account("careful")
    async with relay.client(account) as client:
        body = {"url": url, "secret": SECRET, "verify": True}
        made = await client.post("/v1/subscriptions", json=body)
        assert made.status_code == 201, made.text
        assert made.json()["secret"] == SECRET
        [message] = seen
        assert message["type"] == "endpoint.verification"
        listed = (await client.get("/v1/subscriptions")).json()["data"]
        assert [s["url"] for s in listed] == [url]


async def test_a_plain_2xx_or_a_wrong_answer_creates_nothing(start_relay: InProcessFactory) -> None:
    async def just_ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def wrong(request: web.Request) -> web.Response:
        other = Webhook("whsec_" + base64.b64encode(os.urandom(32)).decode())
        said = other.endpoint_verification_response(request.headers["webhook-challenge"])
        return web.Response(text="ok", headers={"webhook-challenge-response": said})

    relay = await start_relay()
    account = await relay.account("wary")
    async with relay.client(account) as client:
        for handler, why in ((just_ok, "without a webhook-challenge-response"), (wrong, "match")):
            async for url in serve(handler):
                body = {"url": url, "secret": SECRET, "verify": True}
                refused = await client.post("/v1/subscriptions", json=body)
                assert refused.status_code == 400, refused.text
                error = refused.json()["error"]
                assert error["code"] == "endpoint_not_verified"
                assert why in error["message"]
        no_secret = await client.post(
            "/v1/subscriptions", json={"url": "http://127.0.0.1:9/hook", "verify": True}
        )
        assert no_secret.status_code == 400
        assert "verify needs secret" in no_secret.json()["error"]["message"]
        assert (await client.get("/v1/subscriptions")).json()["data"] == []


async def test_an_unreachable_or_forbidden_url_is_not_verified(
    start_relay: InProcessFactory,
) -> None:
    relay = await start_relay()
    account = await relay.account("nowhere")
    async with relay.client(account) as client:
        dead = f"http://127.0.0.1:{free_port()}/hook"
        refused = await client.post(
            "/v1/subscriptions", json={"url": dead, "secret": SECRET, "verify": True}
        )
        assert refused.status_code == 400, refused.text
        assert "could not be reached" in refused.json()["error"]["message"]
        bad = await client.post(
            "/v1/subscriptions", json={"url": "http://127.0.0.1:9/x", "secret": "whsec_short"}
        )
        assert bad.status_code == 400
        assert (await client.get("/v1/subscriptions")).json()["data"] == []


async def test_a_secret_that_is_not_base64_of_24_to_64_bytes_is_refused(
    start_relay: InProcessFactory,
) -> None:
    relay = await start_relay(listen=False)
    account = await relay.account("exact")
    async with relay.client(account) as client:
        for secret in ("whsec_" + "A" * 33, "whsec_" + base64.b64encode(b"x" * 70).decode()):
            body = {"url": "https://hooks.example.com/h", "secret": secret}
            refused = await client.post("/v1/subscriptions", json=body)
            assert refused.status_code == 400, refused.text
        assert (await client.get("/v1/subscriptions")).json()["data"] == []
