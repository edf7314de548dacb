"""The contract suite's fixtures: every test runs once per storage backend.

A backend is one entry of ``BACKENDS``: a factory that provides a fresh, empty database for
one test and removes it afterwards, named by its ``database_url``; the tests never branch on
the backend.

PostgreSQL runs against the server ``RELAY_TEST_POSTGRES_URL`` names: each test gets a schema
of its own in that database (its URL's ``options`` put it first on the search path), dropped
afterwards. Without that variable, or with the server unreachable, those tests are skipped,
except under ``CI=true``, where they fail: CI must not go green without them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
import pytest_asyncio
from psycopg import sql

from relay.models import Account
from relay.store import open_store
from relay.store.interface import Store
from tests.store.factories import make_account

BackendFactory = Callable[[Path], AbstractAsyncContextManager[str]]


@asynccontextmanager
async def sqlite_database(tmp_path: Path) -> AsyncIterator[str]:
    yield f"sqlite:///{tmp_path / 'relay.db'}"


def _unavailable(why: str) -> NoReturn:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL tests cannot run under CI: {why}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {why}")


@asynccontextmanager
async def postgresql_database(tmp_path: Path) -> AsyncIterator[str]:
    base = os.environ.get("RELAY_TEST_POSTGRES_URL")
    if not base:
        _unavailable(
            "RELAY_TEST_POSTGRES_URL is not set (e.g. postgresql://postgres@127.0.0.1:5432/test)"
        )
    schema = f"relay_test_{uuid.uuid4().hex[:16]}"
    try:
        admin = await psycopg.AsyncConnection.connect(base, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        _unavailable(f"cannot connect to RELAY_TEST_POSTGRES_URL ({base}): {exc}")
    async with admin:
        await admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            # The schema name doubles as application_name: tests find their connections by it.
            yield (
                f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
                f"&application_name={schema}"
            )
        finally:
            await admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


BACKENDS: dict[str, BackendFactory] = {
    "sqlite": sqlite_database,
    "postgresql": postgresql_database,
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
