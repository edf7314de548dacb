"""SQLite serves one relay instance: a store opened ``exclusive`` (the serving process) holds
the instance lock beside the database file until it closes; a second server is refused, while
tools that open the database without ``exclusive`` (``relay migrate``, …) are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.errors import StoreError
from relay.store import open_store


async def test_a_second_server_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    first = open_store(url, exclusive=True)
    await first.migrate()
    with pytest.raises(StoreError, match="another relay is already serving"):
        open_store(url, exclusive=True)
    await first.close()

    again = open_store(url, exclusive=True)
    await again.ping()
    await again.close()


async def test_a_tool_opens_a_served_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    server = open_store(url, exclusive=True)
    try:
        tool = open_store(url)
        assert await tool.migrate() != []
        await tool.ping()
        await tool.close()
        # A tool closing does not release the server's lock.
        with pytest.raises(StoreError, match="another relay is already serving"):
            open_store(url, exclusive=True)
    finally:
        await server.close()


async def test_without_exclusive_nothing_is_locked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    tool = open_store(url)
    try:
        server = open_store(url, exclusive=True)
        await server.close()
    finally:
        await tool.close()
