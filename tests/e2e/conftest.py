"""Fixtures of the end-to-end tests: each test gets its own relay, database and receivers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Receiver, RelayServer, free_port, relay_config, write_config

RelayFactory = Callable[..., Awaitable[RelayServer]]
ReceiverFactory = Callable[..., Awaitable[Receiver]]


@pytest.fixture
async def start_relay(tmp_path: Path) -> AsyncIterator[RelayFactory]:
    """Start a relay on a fresh database in ``tmp_path``; keyword arguments go to
    :func:`relay_config` (e.g. ``retry_schedule=[...]``, ``delivery={...}``)."""
    started: list[RelayServer] = []

    async def start(**overrides: Any) -> RelayServer:
        config = relay_config(tmp_path, free_port(), **overrides)
        server = RelayServer(config, write_config(tmp_path, config))
        started.append(server)
        return await server.start()

    yield start
    for server in reversed(started):
        await server.stop()


@pytest.fixture
async def relay(start_relay: RelayFactory) -> RelayServer:
    return await start_relay()


@pytest.fixture
async def start_receiver() -> AsyncIterator[ReceiverFactory]:
    """Start a receiver answering ``script`` then ``default`` (see :class:`Receiver`)."""
    started: list[Receiver] = []

    async def start(
        script: Iterable[Any] = (), default: Any = 200, port: int | None = None
    ) -> Receiver:
        receiver = Receiver(script, default, port)
        started.append(receiver)
        return await receiver.start()

    yield start
    for receiver in started:
        await receiver.stop()


@pytest.fixture
async def receiver(start_receiver: ReceiverFactory) -> Receiver:
    return await start_receiver()
