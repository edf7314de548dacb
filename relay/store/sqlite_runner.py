"""SQLite connections confined to their own threads, and versioned migrations.

Each store operation is one plain function run whole on a database thread, inside one
transaction. That is why this is not ``aiosqlite``: it hops threads per statement and keeps a
transaction open across ``await`` points, where another coroutine's statements would land
inside it. Here one hop runs one transaction, and the writer thread serializes writers.
"""

from __future__ import annotations

import asyncio
import fcntl
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from importlib import resources
from typing import TypeVar

from relay.errors import MigrationError, StoreError

R = TypeVar("R")


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a killed process (what at-least-once delivery needs);
    # only an OS crash or power loss can drop the last transactions.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA wal_autocheckpoint=10000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class SqliteRunner:
    """One writer thread and one reader thread, each with its own connection (WAL lets the
    reader see the last committed state while the writer works)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="sqlite-reader")
        self._wconn = _connect(path)
        self._rconn = _connect(path)

    async def write(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._writer, partial(_in_tx, self._wconn, fn, "BEGIN IMMEDIATE")
        )

    async def read(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, partial(_in_tx, self._rconn, fn, "BEGIN"))

    async def write_untransacted(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """For work that manages its own transactions (migrations)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, partial(fn, self._wconn))

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._wconn.close)
        await loop.run_in_executor(self._reader, self._rconn.close)
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)


def _in_tx(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], R], begin: str) -> R:
    try:
        conn.execute(begin)
    except sqlite3.Error as exc:
        raise StoreError(f"sqlite: {exc}") from exc
    try:
        result = fn(conn)
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK")
        raise StoreError(f"sqlite: {exc}") from exc
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK")
        raise StoreError(f"sqlite: {exc}") from exc
    return result


class InstanceLock:
    """An exclusive lock beside the database file: SQLite serves one relay instance, and a
    second one on the same file would reclaim the first one's leases on start."""

    def __init__(self, db_path: str) -> None:
        self._file = open(db_path + ".lock", "a")  # noqa: SIM115 - held for the lifetime
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise StoreError(
                f"another relay is already serving {db_path}: SQLite is for one instance; "
                "to run several, use PostgreSQL (database_url: postgresql://...)"
            ) from None

    def release(self) -> None:
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) of the packaged migrations, in order."""
    folder = resources.files("relay.store") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply every packaged migration not applied yet, each in its own transaction."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    known = migrations("sqlite")
    newest = max((v for v, _, _ in known), default=0)
    if applied and max(applied) > newest:
        raise MigrationError(
            f"the database is at schema version {max(applied)}, newer than this relay "
            f"({newest}); upgrade the relay"
        )
    done = []
    for version, name, sql in known:
        if version in applied:
            continue
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, time.time()),
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise MigrationError(f"migration {name} failed: {exc}") from exc
        done.append(version)
    return done


def _statements(sql: str) -> list[str]:
    """Split a migration into statements, using SQLite's own notion of a complete one (so
    semicolons inside comments and literals are safe)."""
    statements, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buffer.splitlines()
    ):
        raise MigrationError(f"unterminated statement: {buffer.strip()[:80]}")
    return statements
