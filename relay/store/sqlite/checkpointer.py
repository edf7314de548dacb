"""Write-ahead log checkpoints in the background: a connection of their own on a thread of
their own, so that no commit waits behind one.

The writer's connection never checkpoints (``wal_autocheckpoint=0`` in ``configure_connection``):
SQLite's automatic checkpoint runs on the committing connection, inside the commit that passed
its threshold, and the runner's own ``TRUNCATE`` used to run on the writer thread between two
writes; either one held up every write queued behind it (40-150 ms every few seconds under a
steady load).

A round here is first a ``PASSIVE`` checkpoint, which copies the log into the database while
writers go on committing (it takes no lock a writer needs, and waits for nobody). Once a pass
has copied the whole log, the next write transaction starts the log again from its beginning
(and cuts its file back to ``journal_size_limit``), so a log that is checkpointed this way
stays small by itself. Under a steady stream of writes it may never be copied whole, though:
each pass ends a few commits short. A round chases them with a few more passes, each copying
what was committed during the one before (so each is shorter, and the log is often copied
whole between two commits). When the log is longer than ``truncate_above`` and still not
copied whole after those (or copied whole, yet not restarted since: a reader was on it), a
``TRUNCATE`` checkpoint follows: it holds up new writes until the readers
have moved on to the last commit, copies what the pass left (a few commits' worth) and
empties the log file. It runs on the writer's thread, between two writes (still on this
connection): a writer that commits back to back would otherwise keep it from ever taking the
write lock (SQLite's locks are not queued; a busy wait polls for a gap between commits). Its
wait for readers is bounded by this connection's short busy timeout
(``configure_checkpointer``): a reader that holds on (a stuck one) makes it give up, instead
of keeping writers waiting for the readers' full 10 s, and no round tries again for
``TRUNCATE_RETRY_PAUSE`` (the passive passes go on meanwhile): while a reader holds on,
writes are held up for at most 50 ms a second.

Rounds are asked for by the writer (``nudge``: after so many writes, or when the log file grew
past a size) and run one at a time; a nudge while one is pending is the same round.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor

from relay.errors import StoreError
from relay.store.named_sql import load_queries

QUERIES = load_queries("relay.store.sqlite")

log = logging.getLogger("relay.store.sqlite")

CHASES = 3
"""``PASSIVE`` passes after a round's first one, while the log is not copied whole."""

TRUNCATE_RETRY_PAUSE = 1.0
"""Seconds after a ``TRUNCATE`` gave up on a reader before a round tries one again."""


class Checkpointer:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        writer: Executor,
        wal: str,
        *,
        truncate_above: int,
    ) -> None:
        """``connect``: opens a configured connection to the database (on this thread);
        ``writer``: the writer's thread; ``wal``: the log file's path; ``truncate_above``:
        bytes of log (frames times the page size) past which a round ends with a
        ``TRUNCATE``."""
        self._connect = connect
        self._wal = wal
        self._writer = writer
        self._truncate_above = truncate_above
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-checkpoint")
        self._lock = threading.Lock()
        self._pending: Future[None] | None = None
        self._closed = False
        self._truncate_after = float("-inf")
        """No ``TRUNCATE`` before this (``time.monotonic``): one gave up on a reader."""
        self._whole_at: bytes | None = None
        """The log's checkpoint sequence number when a round last left it copied whole."""
        self.rounds = 0
        """Rounds run (for tests and benchmarks)."""
        self.truncations = 0
        """``TRUNCATE`` checkpoints run."""

    def nudge(self) -> None:
        """Ask for a round (from any thread, without waiting for it)."""
        with self._lock:
            if self._closed or self._pending is not None:
                return
            self._pending = self._thread.submit(self._round)

    def pending(self) -> Future[None] | None:
        """The round asked for and not finished yet, if any."""
        return self._pending

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._thread.submit(self._discard)
        self._thread.shutdown(wait=True)

    def _round(self) -> None:
        try:
            self._run_round()
        except (sqlite3.Error, StoreError) as exc:
            log.warning("sqlite: the write-ahead log could not be checkpointed: %s", exc)
            self._discard()
        finally:
            with self._lock:
                self._pending = None

    def _run_round(self) -> None:
        self.rounds += 1
        left = self._checkpoint(truncate=False)
        # Passes that chase what was committed during the one before: each is shorter,
        # and one that ends between two commits copied the whole log (the next write
        # then restarts it, and no writer waited for anything).
        for _ in range(CHASES):
            if left is None or not left[1]:
                break
            left = self._checkpoint(truncate=False)
        if left is None:
            return
        frames, uncopied = left
        # Copied whole, the log restarts at the next write unless a reader is still on
        # it then: one that was copied whole at a round and has the same checkpoint
        # sequence number (its header's, counting restarts) at the next did not restart.
        sequence = self._sequence()
        stuck = self._whole_at is not None and sequence == self._whole_at
        self._whole_at = None if uncopied else sequence
        if (
            (uncopied or stuck)
            and frames * self._page_size() > self._truncate_above
            and time.monotonic() >= self._truncate_after
        ):
            self.truncations += 1
            self._whole_at = None
            # (This thread waits: the connection is used by one thread at a time.)
            self._writer.submit(self._checkpoint, truncate=True).result()

    def _checkpoint(self, *, truncate: bool) -> tuple[int, int] | None:
        """One checkpoint, ``TRUNCATE`` or ``PASSIVE``; the frames in the log after it and
        how many of them are not copied into the database yet (None when it failed). A
        failure loses nothing: the log keeps what the database did not take."""
        sql = QUERIES["checkpoint"] if truncate else QUERIES["checkpoint_passive"]
        try:
            conn = self._connection()
            # fetchall: a statement left unfinished would hold its read of the log.
            [(busy, frames, copied)] = conn.execute(sql).fetchall()
        except (sqlite3.Error, StoreError) as exc:
            log.warning("sqlite: the write-ahead log could not be checkpointed: %s", exc)
            self._discard()
            return None
        if busy and truncate:
            # A reader held on past this connection's busy timeout: the log was copied as
            # far as it could be; it is truncated at a later round.
            log.info("sqlite: checkpoint incomplete, a reader was busy")
            self._truncate_after = time.monotonic() + TRUNCATE_RETRY_PAUSE
        return int(frames), int(frames) - int(copied)

    def _sequence(self) -> bytes | None:
        """The log's checkpoint sequence number (bytes 12-15 of its header: SQLite counts
        the log's restarts there); None without a header."""
        try:
            with open(self._wal, "rb") as wal:
                wal.seek(12)
                sequence = wal.read(4)
        except OSError:
            return None
        return sequence if len(sequence) == 4 else None

    def _page_size(self) -> int:
        [(size,)] = self._connection().execute(QUERIES["page_size"]).fetchall()
        return int(size)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                conn = self._connect()
            except sqlite3.Error as exc:
                raise StoreError(f"sqlite: cannot open the database: {exc}") from exc
            try:
                conn.executescript(QUERIES["configure_checkpointer"])
            except sqlite3.Error as exc:
                conn.close()
                raise StoreError(f"sqlite: cannot configure the checkpointer: {exc}") from exc
            self._conn = conn
        return self._conn

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
