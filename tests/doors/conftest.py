"""Fixtures of the front-door tests: a real relay on loopback (its built-in sandbox as the
provider behind both doors, tasks finishing in 0.6 s), an account, and the official SDKs'
clients pointed at the doors, as a user changes one line to adopt the relay.

The SDKs are the test extras' ``openai`` and ``volcengine-ark-runtime`` (the Ark runtime of
``volcengine-python-sdk``), installed from PyPI by ``scripts/test``; they add packages and
change none of the relay's own (``pip install --dry-run`` says so), so they share its
environment."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from openai import AsyncOpenAI
from volcenginesdkarkruntime import AsyncArk

from tests.api.conftest import InProcessFactory, receiver, start_receiver, start_relay
from tests.e2e.harness import Account, InProcessRelay

__all__ = ["receiver", "start_receiver", "start_relay"]

MODEL = "doubao-seedance-2-0-260128"


@pytest.fixture
async def relay(start_relay: InProcessFactory) -> InProcessRelay:
    return await start_relay()


@pytest.fixture
async def account(relay: InProcessRelay) -> Account:
    return await relay.account("alice")


@pytest.fixture
async def ark(relay: InProcessRelay, account: Account) -> AsyncIterator[AsyncArk]:
    client = AsyncArk(base_url=f"{relay.url}/ark/api/v3", api_key=account.api_key, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def openai_client(relay: InProcessRelay, account: Account) -> AsyncIterator[AsyncOpenAI]:
    client = AsyncOpenAI(base_url=f"{relay.url}/openai/v1", api_key=account.api_key, max_retries=0)
    yield client
    await client.close()
