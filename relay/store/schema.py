"""The packaged migrations, shared by the backends: each backend package keeps its own in a
``migrations/`` folder (``0001_initial.sql``, …), applied in version order, once each."""

from __future__ import annotations

from collections.abc import Collection
from importlib import resources

from relay.errors import MigrationError


def packaged_migrations(package: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) of ``package``'s migrations, in order."""
    folder = resources.files(package) / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def pending_migrations(
    known: list[tuple[int, str, str]], applied: Collection[int]
) -> list[tuple[int, str, str]]:
    """The migrations still to apply; ``MigrationError`` when the database is newer than
    this relay (an older relay must not run against a schema it does not know)."""
    newest = max((v for v, _, _ in known), default=0)
    if applied and max(applied) > newest:
        raise MigrationError(
            f"the database is at schema version {max(applied)}, newer than this relay "
            f"({newest}); upgrade the relay"
        )
    return [m for m in known if m[0] not in applied]
