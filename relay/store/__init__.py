"""Storage: the interface (``relay.store.interface``) and its implementations."""

from __future__ import annotations

from relay.errors import ConfigError
from relay.store.interface import Store


def open_store(database_url: str) -> Store:
    """The store a ``database_url`` names: ``sqlite:///relay.db`` (one instance) or
    ``postgresql://user@host/database`` (several instances)."""
    if database_url.startswith("sqlite:///"):
        from relay.store.sqlite import SqliteStore

        return SqliteStore(database_url.removeprefix("sqlite:///"))
    if database_url.startswith(("postgresql://", "postgres://")):
        from relay.store.postgres import PostgresStore

        return PostgresStore(database_url)
    raise ConfigError("database_url", "must start with sqlite:/// or postgresql://")
