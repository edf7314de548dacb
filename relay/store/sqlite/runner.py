"""SQLite connections confined to their own threads, versioned migrations, and the lock that
keeps a database file to one serving relay.

Each store operation is one plain function run whole on a database thread, inside one
transaction. That is why this is not ``aiosqlite``: it hops threads per statement and keeps a
transaction open across ``await`` points, where another coroutine's statements would land
inside it. Here one hop runs one transaction, and the writer thread serializes writers; the
writes that queue up meanwhile are committed together, each in a savepoint of its own
(``group_commit.py``).

A full disk is an outage that heals by itself. Every SQLite error comes out as
``StoreError`` (the API answers 503); a failed transaction is rolled back, or, when even that
fails, its connection is closed (which discards it) and opened afresh, so nothing half-done
is committed and the next write commits as soon as there is room again. The write-ahead log
is kept small, so the relay's own log does not fill the disk: a checkpointer on a connection
and thread of its own (``checkpointer.py``) folds it into the database in the background every
``CHECKPOINT_EVERY`` writes or once its file grew past ``PASSIVE_ABOVE``, and empties it
(``TRUNCATE``, briefly holding up writes) only when it holds more than ``CHECKPOINT_ABOVE``
that could not be folded in otherwise; no commit runs a checkpoint. After a write fails for
want of space, a ``TRUNCATE`` checkpoint is run at once on the writer thread (at most every
``FULL_CHECKPOINT_PAUSE`` seconds: it is an outage), which folds the log into the database
and frees its space once the disk has room for the database to grow. Should the log still pass
``LOG_LIMIT`` times ``CHECKPOINT_ABOVE`` (the checkpointer stalled while a fast writer went on),
the writer truncates it itself.

``checkpoints="inline"`` is the old way, kept as the baseline of
``benchmarks/commit_stalls.py``: SQLite's automatic checkpoint on the writer's connection,
and a ``TRUNCATE`` on the writer thread every ``checkpoint_every`` writes or above
``CHECKPOINT_ABOVE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Literal, TypeVar

from relay.errors import MigrationError, StoreError
from relay.store.named_sql import load_queries
from relay.store.schema import packaged_migrations, pending_migrations
from relay.store.sqlite.checkpointer import Checkpointer
from relay.store.sqlite.group_commit import GroupCommit, GroupRead

QUERIES = load_queries("relay.store.sqlite")

log = logging.getLogger("relay.store.sqlite")

R = TypeVar("R")

CHECKPOINT_EVERY = 1000
"""Write transactions between two background checkpoints (a ``PASSIVE`` one: it copies the
log into the database without holding up writers; the next write then restarts the log)."""

PASSIVE_ABOVE = 4 * 2**20
"""A log file larger than this after a write asks for a background checkpoint at once
(where SQLite's automatic checkpoint would have run: 1,000 pages)."""

CHECKPOINT_ABOVE = 8 * 2**20
"""A log longer than this that the background round's ``PASSIVE`` passes left not copied
whole (or copied whole, yet not restarted since the round before: a reader was on it at the
next write) is emptied (``TRUNCATE``): a passive checkpoint running beside a steady stream
of writes ends a few commits short each time, so the log might never restart and grow
without end. The ``TRUNCATE`` waits for the readers (a short read transaction at most; 50 ms
at the most, or it gives up for a second), copies what the passes left and shrinks the file
to nothing. (Inline: the log file size past which the writer truncates it at once.)"""

LOG_LIMIT = 4
"""Times ``CHECKPOINT_ABOVE``: a log file larger than this after a write is truncated by the
writer itself, at once (as inline), whatever the checkpointer is doing. The checkpointer
keeps the log near ``CHECKPOINT_ABOVE``, but a pass that stalls (a slow disk's sync, a
thread kept off the CPU) lets a fast writer grow it meanwhile: this is the bound that holds
regardless, so the log cannot fill the disk."""

FULL_CHECKPOINT_PAUSE = 1.0
"""Seconds between two checkpoints tried after writes failed for want of space: each copies
the log into the database until the disk refuses, which is not worth doing for every write
of an outage."""

FULL_REPORTED_FOR = 5.0
"""Seconds the write probe (``/readyz``) still fails after any write failed for want of
space: the probe is small, and a small write can fit where the relay's own writes do not
(the frames a failed commit left in the log's file are reused by the next write)."""

_OUT_OF_SPACE = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR})
"""Primary result codes of a disk that refuses: ENOSPC is SQLITE_FULL, or an I/O error where
SQLite meets it outside a plain write (growing the shared-memory index, a sync)."""


def _connect(path: str, *, inline_checkpoints: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        # WAL, durability, waiting for locks and the log's size: the pragmas and their
        # reasons are in queries.sql.
        conn.executescript(QUERIES["configure_connection"])
        if inline_checkpoints:
            conn.executescript(QUERIES["configure_inline_checkpoints"])
    except BaseException:
        conn.close()
        raise
    return conn


class _Connection:
    """One connection and the one thread that uses it. A transaction that fails is undone;
    when SQLite cannot say what state it left (its rollback failed), the connection is
    closed, which discards the transaction, and opened afresh on next use: one failed write
    must never keep the next one from committing."""

    def __init__(self, path: str, name: str, *, inline_checkpoints: bool = False) -> None:
        self._path = path
        self._inline = inline_checkpoints
        self._conn: sqlite3.Connection | None = _connect(path, inline_checkpoints=self._inline)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=name)

    async def run(self, fn: Callable[[], R]) -> R:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    @property
    def thread(self) -> ThreadPoolExecutor:
        return self._thread

    def conn(self) -> sqlite3.Connection:
        """The open connection (on this connection's thread), opened again if it was closed."""
        if self._conn is None:
            try:
                self._conn = _connect(self._path, inline_checkpoints=self._inline)
            except sqlite3.Error as exc:
                raise StoreError(f"sqlite: cannot open the database again: {exc}") from exc
        return self._conn

    def submit(self, fn: Callable[[], object]) -> object:
        """Queue ``fn`` on this connection's thread (without waiting for it)."""
        return self._thread.submit(fn)

    def undo(self, conn: sqlite3.Connection) -> None:
        # SQLite may have rolled the transaction back itself (it does when the disk is full,
        # and a ROLLBACK then fails with "no transaction is active"), or the failure may be
        # BEGIN's, finding a transaction left open: either way the connection must end up
        # outside any transaction.
        try:
            if conn.in_transaction:
                conn.execute(QUERIES["rollback"])
        except sqlite3.Error as exc:
            log.warning("sqlite: rollback failed (%s); the connection is opened afresh", exc)
            self.discard()

    def discard(self) -> None:
        """Close the connection (on this thread); closing discards an open transaction."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def shutdown(self) -> None:
        self._thread.shutdown(wait=True)

    async def close(self) -> None:
        await self.run(self.discard)
        self.shutdown()


class SqliteRunner:
    """One writer thread and one reader thread, each with its own connection (WAL lets the
    reader see the last committed state while the writer works)."""

    def __init__(
        self,
        path: str,
        *,
        checkpoint_every: int = CHECKPOINT_EVERY,
        passive_above: int = PASSIVE_ABOVE,
        checkpoint_above: int = CHECKPOINT_ABOVE,
        full_reported_for: float = FULL_REPORTED_FOR,
        checkpoints: Literal["background", "inline"] = "background",
    ) -> None:
        self.path = path
        self._wal = path + "-wal"
        self._checkpoint_every = checkpoint_every
        self._passive_above = passive_above
        self._checkpoint_above = checkpoint_above
        self._log_limit = LOG_LIMIT * checkpoint_above
        self._limited_at = float("-inf")
        self._limited_size = 0
        """When, and at what log size, the writer last gave up truncating the log."""
        self._full_reported_for = full_reported_for
        self._writes = 0
        self._full_at = float("-inf")
        """When a write last failed for want of space (``time.monotonic``)."""
        self._full_checkpoint_at = float("-inf")
        self._nudge_above = passive_above
        """Log file size past which a write asks for a background round: ``passive_above``,
        and each time a round was asked for, a quarter of that more than the size then (the
        file keeps its size when the log restarts, so its size alone would ask after every
        write); back to ``passive_above`` when the file shrank (truncated, or cut back)."""
        self._last_size = 0
        inline = checkpoints == "inline"
        self._writer = _Connection(path, "sqlite-writer", inline_checkpoints=inline)
        try:
            self._reader = _Connection(path, "sqlite-reader")
        except BaseException:
            self._writer.discard()
            self._writer.shutdown()
            raise
        self.checkpointer = (
            None
            if inline
            else Checkpointer(
                partial(_connect, path),
                self._writer.thread,
                self._wal,
                truncate_above=checkpoint_above,
            )
        )
        """The background checkpointer (None when checkpoints run in line)."""
        self._write_groups = GroupCommit(self._writer, self._after_group)
        self._read_groups = GroupRead(self._reader)

    async def write(self, fn: Callable[[sqlite3.Connection], R], *, alone: bool = False) -> R:
        """``fn`` committed whole or not at all (``group_commit.py``: ``alone`` for work
        that may take long)."""
        return await self._write_groups.run(fn, alone=alone)

    async def probe(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        """Commit ``fn`` as a write probe: ``StoreError`` if it fails, or if any write
        failed for want of space in the last ``FULL_REPORTED_FOR`` seconds."""
        await self.write(fn)
        ago = time.monotonic() - self._full_at
        if ago < self._full_reported_for:
            raise StoreError(f"sqlite: a write failed {ago:.1f} s ago: the disk is full")

    async def read(self, fn: Callable[[sqlite3.Connection], R], *, alone: bool = False) -> R:
        return await self._read_groups.run(fn, alone=alone)

    async def write_untransacted(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """For work that manages its own transactions (migrations)."""
        return await self._writer.run(lambda: fn(self._writer.conn()))

    async def checkpointed(self) -> None:
        """Wait for the background checkpoint asked for so far, if one is (for tests)."""
        pending = self.checkpointer.pending() if self.checkpointer is not None else None
        if pending is not None:
            await asyncio.wrap_future(pending)

    async def close(self) -> None:
        await self._write_groups.close()
        await self._read_groups.close()
        if self.checkpointer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.checkpointer.close)
        await self._writer.close()
        await self._reader.close()

    def _after_group(self, committed: int, failures: list[sqlite3.Error]) -> None:
        """After a group of writes (on the writer thread): a full disk noted, and the log
        kept in check."""
        if any(_out_of_space(f) for f in failures):
            now = self._full_at = time.monotonic()
            if now - self._full_checkpoint_at >= FULL_CHECKPOINT_PAUSE:
                self._full_checkpoint_at = now
                self._checkpoint()
        if not committed:
            return
        self._writes += committed
        if self.checkpointer is not None:
            size = self._log_size()
            if size < self._last_size:
                self._nudge_above = self._passive_above
            self._last_size = size
            if size > self._log_limit:
                self._limit_log(size)
            if self._writes >= self._checkpoint_every or size > self._nudge_above:
                self._writes = 0
                self._nudge_above = max(size, self._passive_above) + self._passive_above // 4
                self.checkpointer.nudge()
        elif self._writes >= self._checkpoint_every or self._log_size() > self._checkpoint_above:
            self._checkpoint()

    def _limit_log(self, size: int) -> None:
        """The log (``size`` bytes) passed ``LOG_LIMIT``: truncate it on the writer thread,
        waiting for readers (and a checkpoint under way) no more than the checkpointer does;
        after that gave up, not again for ``FULL_CHECKPOINT_PAUSE`` unless the log doubled
        meanwhile: a reader that holds on costs writes 50 ms a second (and one try each time
        the log doubles), not 10 s each, while a reader that was only slow (a busy machine
        keeps threads off the CPU) does not leave a fast writer a whole second to grow the
        log."""
        now = time.monotonic()
        if now - self._limited_at < FULL_CHECKPOINT_PAUSE and size < 2 * self._limited_size:
            return
        try:
            conn = self._writer.conn()
            conn.executescript(QUERIES["configure_checkpointer"])
            try:
                if not self._checkpoint():
                    self._limited_at, self._limited_size = now, size
            finally:
                conn.executescript(QUERIES["restore_busy_timeout"])
        except (sqlite3.Error, StoreError) as exc:
            log.warning("sqlite: the write-ahead log could not be truncated: %s", exc)
            self._writer.discard()  # opened afresh, with its own busy timeout

    def _log_size(self) -> int:
        try:
            return os.stat(self._wal).st_size
        except OSError:  # no log file (yet)
            return 0

    def _checkpoint(self) -> bool:
        """Copy the log into the database and truncate it (on the writer thread: inline, or
        after a write failed for want of space); whether that was done whole. A failure
        loses nothing: the log keeps what the database did not take."""
        self._writes = 0
        try:
            # fetchall: a statement left unfinished would keep the next COMMIT from running.
            [(busy, _, _)] = self._writer.conn().execute(QUERIES["checkpoint"]).fetchall()
        except (sqlite3.Error, StoreError) as exc:
            log.warning("sqlite: the write-ahead log could not be checkpointed: %s", exc)
            return False
        if busy:
            # A reader held on past the busy timeout: the log was copied as far as it could
            # be; it is truncated at the next round.
            log.info("sqlite: checkpoint incomplete, a reader was busy")
        return not busy


def _out_of_space(exc: BaseException | None) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _OUT_OF_SPACE


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
            # SQLite may have rolled it back already (a full disk does).
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
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
