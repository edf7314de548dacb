"""Storage: the interface (``relay.store.interface``) and its implementations."""

from __future__ import annotations

from relay.errors import ConfigError
from relay.store.interface import Store


def open_store(database_url: str) -> Store:
    """The store a ``database_url`` names (``sqlite:///relay.db``)."""
    if database_url.startswith("sqlite:///"):
        from relay.store.sqlite import SqliteStore

        return SqliteStore(database_url.removeprefix("sqlite:///"))
    raise ConfigError("database_url", "only sqlite:/// URLs are supported by this version")
