"""The contract suite's fixtures: every test runs once per storage backend.

A backend is one entry of ``BACKENDS``: a factory that provides a fresh, empty database for
one test and removes it afterwards, named by its ``database_url``. Adding PostgreSQL is one
more entry (create a throwaway database or schema, yield its URL, drop it); the tests never
branch on the backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
import pytest_asyncio

from relay.models import Account
from relay.store import open_store
from relay.store.interface import Store
from tests.store.factories import make_account

BackendFactory = Callable[[Path], AbstractAsyncContextManager[str]]


@asynccontextmanager
async def sqlite_database(tmp_path: Path) -> AsyncIterator[str]:
    yield f"sqlite:///{tmp_path / 'relay.db'}"


BACKENDS: dict[str, BackendFactory] = {
    "sqlite": sqlite_database,
}


@pytest_asyncio.fixture(params=sorted(BACKENDS), ids=sorted(BACKENDS))
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a fresh, empty database (not migrated yet)."""
    async with BACKENDS[request.param](tmp_path) as url:
        yield url


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A migrated store on a fresh database, closed after the test."""
    s = open_store(database_url)
    await s.migrate()
    yield s
    await s.close()


@pytest_asyncio.fixture
async def alice(store: Store) -> Account:
    return await make_account(store, "alice")


@pytest_asyncio.fixture
async def bob(store: Store) -> Account:
    return await make_account(store, "bob")
