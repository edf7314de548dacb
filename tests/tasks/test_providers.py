"""The provider client's health bookkeeping against a real (refusing) address."""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
from datetime import UTC, datetime, timedelta

import httpx

from relay.adapters.ark import ArkDialect
from relay.clock import SystemClock
from relay.net.transport import RelayTransport
from relay.provider_answers import FaultKind, ProviderFault
from relay.tasks.providers import ProviderClient
from relay.tasks.request_budget import CATCH_UP, EARLY
from tests.clock import FakeClock


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


async def test_concurrent_calls_refused_at_once_are_one_fault_not_many() -> None:
    # Eight polls in flight when the provider goes away are one outage: counting them as
    # eight faults in a row would back the provider off for minutes after a blip.
    async with RelayTransport() as transport:
        client = ProviderClient(
            name="blip",
            dialect=ArkDialect(),
            base_url=f"http://127.0.0.1:{refused_port()}",
            api_key="k",
            headers={},
            timeout=2,
            max_concurrency=8,
            transport=transport,
            clock=SystemClock(),
            rng=random.Random(1),
        )
        answers = await asyncio.gather(*(client.query(f"cgt-{i}") for i in range(8)))
    assert all(isinstance(a, ProviderFault) and a.kind is FaultKind.UNAVAILABLE for a in answers)
    health = client.health()
    assert health.consecutive_faults == 1
    assert health.backoff_until is not None
    assert (health.backoff_until - health.last_fault_at).total_seconds() <= 2.4  # type: ignore[operator]


async def test_a_retry_after_in_the_same_outage_still_holds() -> None:
    # A 500 and a 429 answered to two concurrent polls: the 500, counted first, backs the
    # provider off for 2 s ± 20 %; the 429 is the same outage (not a second fault in a
    # row), yet its Retry-After of 30 s is what the provider asked for.
    clock = FakeClock(datetime(2026, 6, 6, 16, 0, tzinfo=UTC))
    in_flight, first_noted = asyncio.Event(), asyncio.Event()

    async def provider(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/cgt-a"):
            clock.advance(1)  # the 500 comes back a second after both polls started
            return httpx.Response(
                500, json={"error": {"code": "InternalServiceError", "message": "try again"}}
            )
        in_flight.set()
        await first_noted.wait()
        return httpx.Response(
            429,
            headers={"retry-after": "30"},
            json={
                "error": {"code": "RateLimitExceeded.EndpointRPMExceeded", "message": "slow down"}
            },
        )

    async with httpx.MockTransport(provider) as transport:
        client = ProviderClient(
            name="busy",
            dialect=ArkDialect(),
            base_url="http://provider.test",
            api_key="k",
            headers={},
            timeout=2,
            max_concurrency=8,
            transport=transport,
            clock=clock,
            rng=random.Random(1),
        )
        late = asyncio.ensure_future(client.query("cgt-b"))
        await in_flight.wait()
        early = await client.query("cgt-a")
        noted_at = clock.now()
        first_noted.set()
        rate_limited = await late
    assert isinstance(early, ProviderFault)
    assert early.kind is FaultKind.UNAVAILABLE
    assert isinstance(rate_limited, ProviderFault)
    assert (rate_limited.kind, rate_limited.retry_after) == (FaultKind.RATE_LIMITED, 30)
    health = client.health()
    assert (health.consecutive_faults, health.last_fault_at) == (1, noted_at)
    assert (health.last_fault or "").startswith("unavailable: provider answered HTTP 500")
    assert health.backoff_until == noted_at + timedelta(seconds=30)
    assert client.backoff_until() == noted_at + timedelta(seconds=30)


async def test_a_shorter_retry_after_in_the_same_outage_does_not_cut_the_back_off() -> None:
    clock = FakeClock(datetime(2026, 6, 6, 16, 0, tzinfo=UTC))
    in_flight, first_noted = asyncio.Event(), asyncio.Event()

    async def provider(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/cgt-a"):
            clock.advance(1)
            return httpx.Response(429, headers={"retry-after": "60"}, json={})
        in_flight.set()
        await first_noted.wait()
        return httpx.Response(429, headers={"retry-after": "1"}, json={})

    async with httpx.MockTransport(provider) as transport:
        client = ProviderClient(
            name="busy",
            dialect=ArkDialect(),
            base_url="http://provider.test",
            api_key="k",
            headers={},
            timeout=2,
            max_concurrency=8,
            transport=transport,
            clock=clock,
            rng=random.Random(1),
        )
        late = asyncio.ensure_future(client.query("cgt-b"))
        await in_flight.wait()
        await client.query("cgt-a")
        noted_at = clock.now()
        first_noted.set()
        await late
    health = client.health()
    assert health.consecutive_faults == 1
    assert health.backoff_until == noted_at + timedelta(seconds=60)


async def test_the_request_budget_spaces_requests_to_a_provider() -> None:
    seen: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(asyncio.get_running_loop().time())
        return httpx.Response(
            200, json={"id": request.url.path.rsplit("/", 1)[1], "status": "running"}
        )

    async with httpx.MockTransport(answer) as transport:
        client = ProviderClient(
            name="budget",
            dialect=ArkDialect(),
            base_url="http://provider.example",
            api_key="k",
            headers={},
            timeout=2,
            max_concurrency=8,
            transport=transport,
            clock=SystemClock(),
            rng=random.Random(1),
            requests_per_second=20,
        )
        await asyncio.gather(*(client.query(f"cgt-{i}") for i in range(6)))
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert len(seen) == 6
    # 20/s: 50 ms apart (less at most the timer lateness the budget makes up for), not a
    # burst of 6.
    assert all(gap >= 0.05 - CATCH_UP - EARLY for gap in gaps), gaps
    assert seen[-1] - seen[0] < 0.5


async def test_a_token_set_as_a_bearer_header_is_scrubbed_from_fault_messages() -> None:
    """A provider that echoes the token it refused: a token configured as a whole
    ``Authorization: Bearer <token>`` header (not ``api_key``) must not reach the fault
    message either, which tasks and logs carry."""
    token = "sk-header-0123456789"

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401,
            json={
                "error": {
                    "code": "invalid_api_key",
                    "message": f"Incorrect API key provided: {token}",
                }
            },
        )

    async with httpx.MockTransport(echo) as transport:
        client = ProviderClient(
            name="echo",
            dialect=ArkDialect(),
            base_url="https://provider.example",
            api_key=None,
            headers={"Authorization": f"Bearer {token}"},
            timeout=2,
            max_concurrency=1,
            transport=transport,
            clock=SystemClock(),
            rng=random.Random(1),
        )
        answer = await client.query("cgt-1")
    assert isinstance(answer, ProviderFault)
    assert answer.kind is FaultKind.UNAUTHORIZED
    assert token not in answer.message, answer.message
    assert token not in (client.health().last_fault or "")
