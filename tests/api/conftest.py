"""Fixtures of the API tests: the real app in-process (:class:`InProcessRelay`), each test's
requests through ``httpx.ASGITransport``, a fresh SQLite file in ``tmp_path``, and real
receivers on loopback for what the relay delivers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import receiver, start_receiver
from tests.e2e.harness import InProcessRelay, free_port, relay_config, write_config

__all__ = ["InProcessFactory", "receiver", "relay", "start_receiver", "start_relay"]

InProcessFactory = Callable[..., Awaitable[InProcessRelay]]


@pytest.fixture
async def start_relay(tmp_path: Path) -> AsyncIterator[InProcessFactory]:
    """Start the app on a fresh database in ``tmp_path``; ``listen=False`` serves it on no
    port (see :class:`InProcessRelay`); other keyword arguments go to :func:`relay_config`."""
    started: list[InProcessRelay] = []

    async def start(*, listen: bool = True, **overrides: Any) -> InProcessRelay:
        config = relay_config(tmp_path, free_port(), **overrides)
        relay = InProcessRelay(config, write_config(tmp_path, config), listen=listen)
        started.append(relay)
        return await relay.start()

    yield start
    for relay in reversed(started):
        await relay.stop()


@pytest.fixture
async def relay(start_relay: InProcessFactory) -> InProcessRelay:
    return await start_relay()
