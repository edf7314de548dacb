from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from relay.sandbox.app import Sandbox
from tests.clock import FakeClock
from tests.sandbox.ark_support import client_for, mounted
from tests.sandbox.support import T0, served


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for a mounted sandbox (the Ark tests' fixture)."""
    async with client_for(mounted(clock)) as http:
        yield http


@pytest.fixture
async def sandbox_http(clock: FakeClock) -> AsyncIterator[tuple[Sandbox, httpx.AsyncClient]]:
    async with served(clock) as pair:
        yield pair


@pytest.fixture
def sandbox(sandbox_http: tuple[Sandbox, httpx.AsyncClient]) -> Sandbox:
    return sandbox_http[0]


@pytest.fixture
def http(sandbox_http: tuple[Sandbox, httpx.AsyncClient]) -> httpx.AsyncClient:
    return sandbox_http[1]
