"""The delivery engine's tests run against a real SQLite store of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.store import open_store
from relay.store.interface import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'relay.db'}")
    await store.migrate()
    yield store
    await store.close()
