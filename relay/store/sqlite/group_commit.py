"""Group commit: the writes that come while the writer thread is busy are committed together.

Every store write is one function run whole in a transaction on the writer thread. Run one
transaction each, a relay under load spends as much on the transactions (BEGIN, COMMIT, the
thread hop there and back, the event loop woken once per write) as on the writes. Here the
writes queued meanwhile are run in one transaction, each inside a savepoint of its own, and
answered together once it commits:

- each write still succeeds or fails whole: one that raises is rolled back to its savepoint,
  and only its caller sees the error; the others commit;
- no write is answered before the transaction that holds it committed;
- should SQLite roll the whole transaction back under a write (it does when the disk is
  full), that write fails, and the ones before it in the transaction, which lost nothing of
  their own, run again, each in a transaction of its own, as they did before group commit
  (a claim that writes nothing still succeeds on a full disk); should the COMMIT fail, each
  write of the transaction runs again alone, so only the ones that fail alone fail;
- a group holds at most ``MAX_GROUP`` writes, taken in the order they came: a write waits
  behind at most one group, as it waited behind one write before;
- a write that may take long (``alone``: a replay's step, a retention batch) runs in a
  transaction of its own, so the quick ones queued before it are not held up until it ends.

Later writes of a group see the earlier ones, as they would have after their commits.

Reads are grouped the same way on the reader thread (``GroupRead``): the reads queued
meanwhile share one read transaction, which begins after all of them were asked for, so each
still sees every write committed before it was; a read that fails, fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from relay.errors import StoreError
from relay.store.named_sql import load_queries

QUERIES = load_queries("relay.store.sqlite")

log = logging.getLogger("relay.store.sqlite")

R = TypeVar("R")

MAX_GROUP = 32
"""Writes committed in one transaction at the most."""


class GroupConnection(Protocol):
    def conn(self) -> sqlite3.Connection: ...

    def undo(self, conn: sqlite3.Connection) -> None: ...

    def submit(self, fn: Callable[[], object]) -> object: ...

    async def run(self, fn: Callable[[], R]) -> R: ...


@dataclass(slots=True)
class _Work(Generic[R]):
    fn: Callable[[sqlite3.Connection], R]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[R]
    alone: bool = False
    result: Any = None
    error: BaseException | None = None


class _Groups:
    """Queues work for a connection's thread and runs it in groups, answering each group's
    callers with one call into their loop; what a group's transaction is, is the
    subclass's ``_run``."""

    def __init__(
        self,
        connection: GroupConnection,
        after: Callable[[int, list[sqlite3.Error]], None] | None = None,
        *,
        max_group: int = MAX_GROUP,
    ) -> None:
        self._connection = connection
        self._after = after
        self._max = max_group
        self._queue: deque[_Work[Any]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self._closed = False

    async def close(self) -> None:
        """Take no more work, and return once the work queued so far was answered (each
        no-op below runs after the group queued on the thread, which queues the next one
        behind it)."""
        with self._lock:
            self._closed = True
        while True:
            with self._lock:
                if not self._scheduled:
                    return
            await self._connection.run(lambda: None)

    async def run(self, fn: Callable[[sqlite3.Connection], R], *, alone: bool = False) -> R:
        """``fn``'s result once its group's transaction ended (its exception, if it raised).
        ``alone``: ``fn`` may take long (a replay's step, a retention batch), so it runs in
        a transaction of its own, and the quick work queued before it is answered first."""
        loop = asyncio.get_running_loop()
        work: _Work[R] = _Work(fn, loop, loop.create_future(), alone)
        with self._lock:
            if self._closed:
                raise StoreError("sqlite: the store is closed")
            self._queue.append(work)
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            self._schedule()
        return await work.future

    def _schedule(self) -> None:
        """A group run queued on the connection's thread; if the thread is gone (the store
        closed), everything queued fails instead of waiting for ever."""
        try:
            self._connection.submit(self._run_group)
        except RuntimeError:  # cannot schedule new futures after shutdown
            with self._lock:
                left = list(self._queue)
                self._queue.clear()
                self._scheduled = False
            for w in left:
                w.error = StoreError("sqlite: the store is closed")
            _answer(left)

    def _run_group(self) -> None:
        """One group, on the connection's thread; then the next one is queued behind
        whatever else the thread has to do (a checkpoint), or the queue is left empty."""
        with self._lock:
            group = [self._queue.popleft()]
            if not group[0].alone:
                while self._queue and len(group) < self._max and not self._queue[0].alone:
                    group.append(self._queue.popleft())
        try:
            try:
                failures = self._run(group)
            except BaseException as exc:  # a bug: nothing half done, no caller left hanging
                log.exception("sqlite: a group of store operations failed")
                with contextlib.suppress(StoreError):
                    self._connection.undo(self._connection.conn())
                for w in group:
                    if w.error is None:
                        w.error = _rolled_back(exc)
            else:
                if self._after is not None:
                    try:
                        self._after(sum(1 for w in group if w.error is None), failures)
                    except Exception:  # the group's own outcomes stand
                        log.exception("sqlite: the bookkeeping after a group failed")
        finally:
            _answer(group)
            with self._lock:
                more = bool(self._queue)
                self._scheduled = more
            if more:
                self._schedule()

    def _run(self, group: list[_Work[Any]]) -> list[sqlite3.Error]:
        raise NotImplementedError


class GroupCommit(_Groups):
    """Writes, committed in groups (module docstring). ``after(committed, failure)`` runs
    on the writer thread after each group: how many writes it committed, and the SQLite
    error that failed any of them (for the runner's checkpoints and its full-disk
    bookkeeping)."""

    def _run(self, group: list[_Work[Any]]) -> list[sqlite3.Error]:
        """Run ``group`` in as few transactions as it takes (module docstring); the SQLite
        errors that failed any of its writes."""
        failures: list[sqlite3.Error] = []
        queue: deque[tuple[_Work[Any], bool]] = deque((w, False) for w in group)
        while queue:
            failures.extend(self._transaction(queue))
        return failures

    def _transaction(self, queue: deque[tuple[_Work[Any], bool]]) -> list[sqlite3.Error]:
        """One transaction over the writes at the head of ``queue`` (each with whether it
        is a retry: a retry runs alone). A write that loses the transaction fails alone: the
        ones before it in it lost nothing of their own, and go back to the head of the
        queue to be retried, each in a transaction of its own, as they would have run
        before group commit; so does every write of a group whose COMMIT failed."""
        failures: list[sqlite3.Error] = []
        try:
            conn = self._connection.conn()
            conn.execute(QUERIES["begin_write"])
        except (sqlite3.Error, StoreError) as exc:
            if (found := _sqlite_error(exc)) is not None:
                failures.append(found)
            w, _ = queue.popleft()
            w.error = exc if isinstance(exc, StoreError) else _as_store_error(exc)
            with contextlib.suppress(StoreError):
                self._connection.undo(self._connection.conn())
            return failures
        done: list[tuple[_Work[Any], bool]] = []  # run in this transaction, not failed
        while queue and not (done and (done[-1][1] or queue[0][1])):
            w, retry = queue.popleft()
            try:
                conn.execute(QUERIES["savepoint_write"])
                w.result = w.fn(conn)
                conn.execute(QUERIES["release_write"])
            except BaseException as exc:  # the caller's to see: raised there
                if isinstance(exc, sqlite3.Error):
                    failures.append(exc)
                _fail([w], exc)
                if _roll_back_to_savepoint(conn):
                    continue
                self._connection.undo(conn)
                _retry(queue, done, exc)
                return failures
            done.append((w, retry))
        try:
            conn.execute(QUERIES["commit"])
        except sqlite3.Error as exc:
            failures.append(exc)
            self._connection.undo(conn)
            if len(done) == 1:
                _fail([done[0][0]], exc)
            else:
                _retry(queue, done, exc)
        return failures


def _retry(
    queue: deque[tuple[_Work[Any], bool]],
    done: list[tuple[_Work[Any], bool]],
    exc: BaseException,
) -> None:
    """The transaction holding ``done`` is gone (``exc``): each of them back to the head of
    the queue, to run again alone; one that ran alone already fails."""
    for w, retry in reversed(done):
        if retry:
            _fail([w], exc)
        else:
            w.result = None
            queue.appendleft((w, True))


class GroupRead(_Groups):
    """Reads, run in groups in one read transaction: each sees everything committed before
    it was asked for (the transaction begins after), and fails alone."""

    def _run(self, group: list[_Work[Any]]) -> list[sqlite3.Error]:
        failures: list[sqlite3.Error] = []
        conn: sqlite3.Connection | None = None
        for w in group:
            try:
                if conn is None:
                    conn = self._connection.conn()
                    conn.execute(QUERIES["begin_read"])
                w.result = w.fn(conn)
            except BaseException as exc:  # the caller's to see: raised there
                if isinstance(exc, sqlite3.Error):
                    failures.append(exc)
                    w.error = _as_store_error(exc)
                else:
                    w.error = exc
                if conn is not None and not _in_transaction(conn):
                    self._connection.undo(conn)
                    conn = None  # the next read begins anew
        if conn is not None:
            try:
                conn.execute(QUERIES["commit"])
            except sqlite3.Error as exc:  # what was read was read: only the end failed
                failures.append(exc)
                self._connection.undo(conn)
        return failures


def _in_transaction(conn: sqlite3.Connection) -> bool:
    try:
        return conn.in_transaction
    except sqlite3.Error:  # closed
        return False


def _roll_back_to_savepoint(conn: sqlite3.Connection) -> bool:
    """Undo the failed write's part; False when the transaction itself is gone."""
    try:
        if not conn.in_transaction:
            return False
        conn.execute(QUERIES["rollback_to_write"])
        conn.execute(QUERIES["release_write"])
    except sqlite3.Error:
        return False
    return True


def _fail(writes: list[_Work[Any]], exc: BaseException) -> None:
    """``writes`` failed with ``exc`` (an SQLite error as the ``StoreError`` callers see)."""
    for w in writes:
        w.error = _as_store_error(exc) if isinstance(exc, sqlite3.Error) else exc


def _rolled_back(exc: BaseException) -> StoreError:
    error = StoreError(f"sqlite: the transaction was rolled back: {exc}")
    error.__cause__ = exc
    return error


def _as_store_error(exc: sqlite3.Error) -> StoreError:
    error = StoreError(f"sqlite: {exc}")
    error.__cause__ = exc
    return error


def _sqlite_error(exc: BaseException) -> sqlite3.Error | None:
    if isinstance(exc, sqlite3.Error):
        return exc
    cause = exc.__cause__
    return cause if isinstance(cause, sqlite3.Error) else None


def _answer(group: list[_Work[Any]]) -> None:
    """Hand each outcome to its caller: one wake-up per event loop for the group."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Work[Any]]] = {}
    for w in group:
        by_loop.setdefault(w.loop, []).append(w)
    for loop, writes in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
            loop.call_soon_threadsafe(_settle, writes)


def _settle(writes: list[_Work[Any]]) -> None:
    for w in writes:
        if w.future.done():  # the caller gave up waiting (cancelled)
            continue
        if isinstance(w.error, StopIteration):  # a Future refuses it (TypeError)
            error = RuntimeError(f"a store function raised StopIteration: {w.error}")
            error.__cause__ = w.error
            w.future.set_exception(error)
        elif w.error is not None:
            w.future.set_exception(w.error)
        else:
            w.future.set_result(w.result)
