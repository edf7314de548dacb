"""Nothing of the operator's leaves through the moderation passthrough (issue 11, item 6).

The provider here is a real HTTP server on loopback that echoes the request's headers, the
operator's provider key and configured header among them, in every way a provider's answer
might: a 2xx JSON body (plain, with ``\\/`` escapes as PHP writes them, with ``\\u`` escapes), a
JSON refusal quoting them, an HTML error page, a 401 naming the key, a 5xx page, a text/plain
2xx. Whatever comes back, the calling account sees neither the key nor the header value in
any form, in the body or the headers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.api.conftest import InProcessFactory
from tests.e2e.harness import HOST, free_port

PROVIDER_KEY = "sk-ark/PROVIDER+KEY=7f3a9c2e5b1d4068"
HEADER_VALUE = "hdr/GATEWAY+HEADER=5e7a1c3b9d2f4680"
SECRETS = (PROVIDER_KEY, HEADER_VALUE)
PATH = "/v1/images/moderations"


def u_escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def echoed(request: web.Request) -> dict[str, str]:
    return dict(request.headers)


def php_json(value: Any) -> str:
    return json.dumps(value).replace("/", "\\/")


Mode = Callable[[web.Request], web.Response]

MODES: dict[str, Mode] = {
    "ok": lambda r: web.json_response(
        {"code": "success", "data": {"items": [], "request_headers": echoed(r)}}
    ),
    "php": lambda r: web.Response(
        text=php_json({"data": {"request_headers": echoed(r)}}), content_type="application/json"
    ),
    "escaped": lambda r: web.Response(
        text='{"data": {"key": "'
        + u_escaped(PROVIDER_KEY)
        + '", "hdr": "'
        + u_escaped(HEADER_VALUE)
        + '", "'
        + u_escaped(PROVIDER_KEY)
        + '": 1}}',
        content_type="application/json",
    ),
    "refusal": lambda r: web.json_response(
        {
            "code": "invalid_request",
            "message": f"bad request from {r.headers['Authorization']} "
            f"(X-Gateway-Token: {r.headers['X-Gateway-Token']})",
            "data": None,
        },
        status=400,
    ),
    "nested": lambda r: web.json_response(
        {"error": {"message": f"unknown model; you sent {echoed(r)}", "type": "bad"}}, status=404
    ),
    "html": lambda r: web.Response(
        text="<html><body><pre>" + "\n".join(f"{k}: {v}" for k, v in r.headers.items()),
        status=400,
        content_type="text/html",
    ),
    "unauthorized": lambda r: web.json_response(
        {"error": {"message": f"Incorrect API key provided: {PROVIDER_KEY}"}}, status=401
    ),
    "rate": lambda r: web.json_response(
        {"message": f"quota of {PROVIDER_KEY} used up"}, status=429
    ),
    "crash": lambda r: web.Response(
        text=f"Traceback ... headers={echoed(r)}", status=500, content_type="text/plain"
    ),
    "text": lambda r: web.Response(text=f"ok {echoed(r)}", content_type="text/plain"),
    "redirect": lambda r: web.Response(
        status=302, headers={"Location": f"https://x.example/?k={PROVIDER_KEY}"}
    ),
}
EXPECTED = {
    # mode: (status, code) the caller gets
    "ok": (200, None),
    "php": (200, None),
    "escaped": (200, None),
    "refusal": (400, "provider_rejected"),
    "nested": (400, "provider_rejected"),
    "html": (400, "provider_rejected"),
    "unauthorized": (502, "provider_unavailable"),
    "rate": (502, "provider_unavailable"),
    "crash": (502, "provider_unavailable"),
    "text": (502, "provider_unavailable"),
    "redirect": (502, "provider_unavailable"),
}


@pytest.fixture
async def echo_provider() -> AsyncIterator[str]:
    """The base URL of the echoing provider; ``{base}/{mode}`` answers as ``MODES[mode]``."""
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return MODES[request.match_info["mode"]](request)

    app = web.Application()
    app.router.add_post("/{mode}" + PATH, handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, HOST, port).start()
    try:
        yield f"http://{HOST}:{port}"
    finally:
        await runner.cleanup()
    # The provider did get the operator's credentials: what is hidden is hidden from callers.
    assert seen
    assert all(h["Authorization"] == f"Bearer {PROVIDER_KEY}" for h in seen)
    assert all(h["X-Gateway-Token"] == HEADER_VALUE for h in seen)


def forms(secret: str) -> list[str]:
    """Every way the secret could be written in an answer a caller reads."""
    return [
        secret,
        secret.replace("/", "\\/"),
        u_escaped(secret),
        json.dumps(secret)[1:-1],
        secret.split("=")[0],  # the long head of it, whatever follows
    ]


def assert_nothing_of_the_operators(response: httpx.Response) -> None:
    seen = response.text + " " + " ".join(f"{k}: {v}" for k, v in response.headers.items())
    if response.headers.get("content-type", "").startswith("application/json"):
        seen += " " + json.dumps(response.json(), ensure_ascii=False)
    for secret in SECRETS:
        for form in forms(secret):
            assert form not in seen, (form, response.status_code, seen)


async def test_the_caller_never_sees_the_provider_key_or_configured_headers(
    start_relay: InProcessFactory, echo_provider: str
) -> None:
    providers = {
        mode: {
            "dialect": "unified",
            "base_url": f"{echo_provider}/{mode}",
            "api_key": PROVIDER_KEY,
            "headers": {"X-Gateway-Token": HEADER_VALUE},
            "moderation_path": PATH,
        }
        for mode in MODES
    }
    relay = await start_relay(listen=False, providers=providers)
    account = await relay.account("alice")
    body = {"model": "doubao-seedance-2.0", "images": ["https://example.com/a.png"]}
    async with relay.client(account) as client:
        for mode, (status, code) in EXPECTED.items():
            response = await client.post(f"/v1/providers/{mode}/moderations", json=body)
            assert response.status_code == status, (mode, response.text)
            assert_nothing_of_the_operators(response)
            if code is not None:
                assert response.json()["error"]["code"] == code, (mode, response.text)
            # Callers still get the provider's answer and its words, with the key cut out.
            if mode == "ok":
                data = response.json()["data"]
                assert data["items"] == []
                assert data["request_headers"]["Authorization"] == "Bearer ***"
                assert data["request_headers"]["X-Gateway-Token"] == "***"
            if mode == "refusal":
                message = response.json()["error"]["message"]
                assert message == (
                    "the provider refused the moderation request (HTTP 400): "
                    "bad request from Bearer *** (X-Gateway-Token: ***)"
                )
            if mode == "nested":
                assert "HTTP 404): unknown model" in response.json()["error"]["message"]
