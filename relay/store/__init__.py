"""Storage: the interface (``relay.store.interface``) and its implementations."""

from __future__ import annotations

from relay.errors import ConfigError
from relay.store.interface import Store


def open_store(database_url: str, *, exclusive: bool = False) -> Store:
    """The store a ``database_url`` names: ``sqlite:///relay.db`` (one instance) or
    ``postgresql://user@host/database`` (several instances).

    ``exclusive``: this process serves the database. For SQLite the store then holds the
    instance lock until ``close``, and refuses to open (``StoreError``) while the file is
    served already; tools that only read or migrate (``relay migrate``, …) open it without.
    PostgreSQL coordinates several instances through leases: there it means nothing.
    """
    if database_url.startswith("sqlite:///"):
        from relay.store.sqlite.store import SqliteStore

        return SqliteStore(database_url.removeprefix("sqlite:///"), exclusive=exclusive)
    if database_url.startswith(("postgresql://", "postgres://")):
        from relay.store.postgres.store import PostgresStore

        return PostgresStore(database_url)
    raise ConfigError("database_url", "must start with sqlite:/// or postgresql://")
