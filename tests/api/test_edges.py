"""The smaller edges of issue 11 (item 9), each against the real app in-process:

- a client that hangs up in the middle of its body is a quiet 499, not an ERROR traceback;
- a callback or subscription host DNS cannot hold (a 70-character label) is refused at
  registration (what a delivery to one does is in ``tests/net/test_hostnames.py``);
- the sandbox's keyless control API is served only while every provider is the sandbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from tests.api.conftest import InProcessFactory
from tests.e2e.harness import HOST, InProcessRelay, ark_input, eventually

# --- a client gone mid-body ---------------------------------------------------------------------


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged() -> Iterator[Records]:
    """Every record of the API's logger and uvicorn's (which does not propagate to the root,
    where caplog listens): uvicorn logs "Exception in ASGI application" there."""
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("relay.api", "uvicorn.error")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
    logging.getLogger("relay.api").setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


async def hang_up_mid_body(relay: InProcessRelay, path: str, key: str) -> None:
    """Send the head of a POST announcing 1000 bytes, 20 of them, and close the socket."""
    _reader, writer = await asyncio.open_connection(HOST, relay.port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        '{"provider": "sandbo'.encode()
    )
    await writer.drain()
    await asyncio.sleep(0.1)  # the route is reading the body by now
    writer.close()
    await writer.wait_closed()


async def test_a_client_hanging_up_mid_body_is_no_error(
    start_relay: InProcessFactory, logged: Records
) -> None:
    relay = await start_relay()  # served on its port: a real HTTP server reads the body
    account = await relay.account("alice")
    for n, path in enumerate(("/v1/tasks", "/v1/subscriptions"), start=1):
        await hang_up_mid_body(relay, path, account.api_key)

        async def noted(n: int = n) -> bool:
            return sum("hung up" in r.getMessage() for r in logged.records) >= n

        await eventually(noted, within=5, what="the relay's note of the hang-up")
    # The sandbox, served on the same port to anyone, takes it as quietly (its log of
    # requests records the one that was not read).
    await hang_up_mid_body(relay, ARK_TASKS, "sandbox")

    async def recorded() -> bool:
        async with relay.client() as anyone:
            log = (await anyone.get("/sandbox/_control/requests")).json()["data"]
        return any(r["method"] == "POST" and r["status"] == 499 for r in log)

    await eventually(recorded, within=5, what="the sandbox's record of the hang-up")
    errors = [(r.name, r.getMessage()) for r in logged.records if r.levelno >= logging.ERROR]
    assert not errors, errors
    assert not [r for r in logged.records if r.exc_info], "a traceback was logged"
    async with relay.client(account) as client:
        assert (await client.get("/v1/tasks")).json()["data"] == []
        assert (await client.get("/v1/subscriptions")).json()["data"] == []


# --- host names DNS cannot hold -----------------------------------------------------------------

LABEL_70 = "a" * 70


async def test_a_host_with_a_label_over_63_characters_is_refused_at_registration(
    start_relay: InProcessFactory,
) -> None:
    relay = await start_relay(listen=False)
    account = await relay.account("alice")
    bad = f"https://{LABEL_70}.example.com/hook"
    async with relay.client(account) as client:
        tracked = {"provider": "sandbox", "provider_task_id": "cgt-20260606160057-host"}
        for path, body, phrases in (
            ("/v1/tasks", {**tracked, "callback_url": bad}, ("callback_url", "70 characters")),
            ("/v1/subscriptions", {"url": bad}, ("url", "DNS allows at most 63")),
            ("/v1/subscriptions", {"target_url": bad}, ("target_url", "70 characters")),
            ("/v1/subscriptions", {"url": "https://a..example.com/hook"}, ("empty label",)),
        ):
            response = await client.post(path, json=body)
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert error["code"] == "invalid_request", error
            assert all(phrase in error["message"] for phrase in phrases), error
        # 63 characters is DNS's limit, and fine (the name need not resolve yet).
        ok = await client.post("/v1/subscriptions", json={"url": f"https://{'a' * 63}.example/h"})
        assert ok.status_code == 201, ok.text
        moved = await client.patch(f"/v1/subscriptions/{ok.json()['id']}", json={"url": bad})
        assert moved.status_code == 400, moved.text
        assert "label of 70 characters" in moved.json()["error"]["message"]
        assert (await client.get("/v1/tasks")).json()["data"] == []
        [kept] = (await client.get("/v1/subscriptions")).json()["data"]
        assert kept["url"] == f"https://{'a' * 63}.example/h"


# --- the sandbox's control API ------------------------------------------------------------------

CONTROL = [
    ("GET", "/sandbox/_control/faults"),
    ("PUT", "/sandbox/_control/faults"),
    ("DELETE", "/sandbox/_control/faults"),
    ("GET", "/sandbox/_control/requests"),
    ("DELETE", "/sandbox/_control/requests"),
    ("GET", "/sandbox/_control/pushes"),
    ("DELETE", "/sandbox/_control/pushes"),
]
ARK_TASKS = "/sandbox/ark/api/v3/contents/generations/tasks"
REAL = {
    "dialect": "ark",
    "base_url": "https://ark.provider.example/api/v3",
    "api_key": "sk-real-provider-key-0123456789",
}


async def test_the_sandbox_control_api_is_served_while_only_sandbox_providers_are(
    start_relay: InProcessFactory,
) -> None:
    relay = await start_relay(
        listen=False,
        providers={"ink": {"preset": "seedance2ink", "sandbox": True}},
    )
    async with relay.client() as anyone:
        plan = {"plan": ["500"]}
        for method, path in CONTROL:
            response = await anyone.request(method, path, json=plan if method == "PUT" else None)
            assert response.status_code in (200, 204), (method, path, response.text)


async def test_the_sandbox_control_api_is_off_once_a_real_provider_is_configured(
    start_relay: InProcessFactory,
) -> None:
    relay = await start_relay(listen=False, providers={"ark": REAL})
    async with relay.client() as anyone:
        for method, path in CONTROL:
            body = {"plan": ["500"], "repeat": True} if method == "PUT" else None
            response = await anyone.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
        # The sandbox itself still serves its emulation (the built-in sandbox provider uses
        # it), and no fault was set through the refused control call.
        for _ in range(3):
            created = await anyone.post(
                ARK_TASKS, json=ark_input(), headers={"Authorization": "Bearer sandbox"}
            )
            assert created.status_code == 200, created.text
