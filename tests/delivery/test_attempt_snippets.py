"""What an attempt keeps of the receiver's answer (``relay.delivery.attempts``): the body as
the receiver meant it, decoded when it came compressed, cut at the snippet size; read
through the relay's transport from a real server on loopback."""

from __future__ import annotations

import gzip
import random
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from relay.clock import SystemClock
from relay.delivery.attempts import Attempts
from relay.delivery.outcomes import RetryPolicy
from relay.metrics import RelayMetrics
from relay.models import DueDelivery
from relay.net.transport import RelayTransport
from relay.signing import generate_webhook_secret
from tests.e2e.harness import free_port

ANSWER = "thanks, got it: " + "é" * 20


async def answer(request: web.Request) -> web.Response:
    await request.read()
    if request.path == "/gzip":
        return web.Response(
            status=200,
            body=gzip.compress(ANSWER.encode()),
            headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
        )
    return web.Response(status=200, text=ANSWER)


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def delivery(url: str) -> DueDelivery:
    return DueDelivery(
        pk=1,
        id="dlv_1",
        event_id="evt_1",
        destination_key="https://receiver.example",
        url=url,
        body='{"type": "task.succeeded"}',
        secrets=(generate_webhook_secret(),),
        attempt_count=0,
    )


@pytest.mark.parametrize(
    ("path", "snippet_bytes"), [("/plain", 1024), ("/gzip", 1024), ("/plain", 20)]
)
async def test_the_snippet_is_the_answer_as_sent_decoded_and_cut(
    base_url: str, path: str, snippet_bytes: int
) -> None:
    transport = RelayTransport(max_connections=4)
    attempts = Attempts(
        transport=transport,
        clock=SystemClock(),
        rng=random.Random(1),
        timeout=5.0,
        snippet_bytes=snippet_bytes,
        retry=RetryPolicy(),
        refresh=None,
        metrics=RelayMetrics(),
    )
    try:
        record = await attempts.make(delivery(base_url + path))
    finally:
        await transport.aclose()
    assert record.attempt.status_code == 200
    expected = ANSWER.encode()[:snippet_bytes].decode("utf-8", errors="replace")
    assert record.attempt.response_snippet == expected
