"""The provider client's health bookkeeping against a real (refusing) address."""

from __future__ import annotations

import asyncio
import random
import socket

import httpx

from relay.adapters.ark import ArkDialect
from relay.clock import SystemClock
from relay.models import FaultKind, ProviderFault
from relay.providers import ProviderClient
from relay.transport import RelayTransport


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


async def test_concurrent_calls_refused_at_once_are_one_fault_not_many() -> None:
    # Eight polls in flight when the provider goes away are one outage: counting them as
    # eight faults in a row would back the provider off for minutes after a blip.
    async with httpx.AsyncClient(transport=RelayTransport()) as http:
        client = ProviderClient(
            name="blip", dialect=ArkDialect(), base_url=f"http://127.0.0.1:{refused_port()}",
            api_key="k", headers={}, timeout=2, max_concurrency=8, http=http,
            clock=SystemClock(), rng=random.Random(1))
        answers = await asyncio.gather(*(client.query(f"cgt-{i}") for i in range(8)))
    assert all(isinstance(a, ProviderFault) and a.kind is FaultKind.UNAVAILABLE
               for a in answers)
    health = client.health()
    assert health.consecutive_faults == 1
    assert health.backoff_until is not None
    assert (health.backoff_until - health.last_fault_at).total_seconds() <= 2.4  # type: ignore[operator]
