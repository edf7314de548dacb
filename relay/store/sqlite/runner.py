"""SQLite connections confined to their own threads, versioned migrations, and the lock that
keeps a database file to one serving relay.

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
from typing import TypeVar

from relay.errors import MigrationError, StoreError
from relay.store.named_sql import load_queries
from relay.store.schema import packaged_migrations, pending_migrations

QUERIES = load_queries("relay.store.sqlite")

R = TypeVar("R")


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    # WAL, durability and waiting for locks: the pragmas and their reasons are in queries.sql.
    conn.executescript(QUERIES["configure_connection"])
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
            self._writer, partial(_in_tx, self._wconn, fn, QUERIES["begin_write"])
        )

    async def read(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._reader, partial(_in_tx, self._rconn, fn, QUERIES["begin_read"])
        )

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
        conn.execute(QUERIES["rollback"])
        raise StoreError(f"sqlite: {exc}") from exc
    except BaseException:
        conn.execute(QUERIES["rollback"])
        raise
    try:
        conn.execute(QUERIES["commit"])
    except sqlite3.Error as exc:
        conn.execute(QUERIES["rollback"])
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


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply every packaged migration not applied yet, each in its own transaction."""
    conn.execute(QUERIES["create_schema_migrations"])
    applied = {row[0] for row in conn.execute(QUERIES["applied_migrations"])}
    known = packaged_migrations("relay.store.sqlite")
    done = []
    for version, name, sql in pending_migrations(known, applied):
        try:
            conn.execute(QUERIES["begin_write"])
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(
                QUERIES["record_migration"],
                {"version": version, "name": name, "applied_at": time.time()},
            )
            conn.execute(QUERIES["commit"])
        except sqlite3.Error as exc:
            conn.execute(QUERIES["rollback"])
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
