"""SQLite group commit (relay.store.sqlite.group_commit) at its edges: a group must behave as
the writes run one transaction each would have, even there."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from relay.errors import StoreError
from relay.store.sqlite.runner import SqliteRunner, migrate
from tests.store.test_sqlite_full_disk import cap_pages, put, upsert
from tests.store.test_sqlite_group_commit import HeldWriter, insert, rows, runner

__all__ = ["runner"]  # the fixture, shared with test_sqlite_group_commit


async def test_a_full_disk_is_reported_though_a_later_write_of_its_group_failed_otherwise(
    tmp_path: Path,
) -> None:
    """The runner's full-disk bookkeeping (the probe's 503, the checkpoint that frees the log)
    must see every write that failed for want of space, not only the group's last error."""
    r = SqliteRunner(str(tmp_path / "relay.db"), full_reported_for=30.0)
    try:
        await r.write_untransacted(migrate)
        await r.write(upsert("probe", "0"))
        await r.write(upsert("taken", "0"))
        await cap_pages(r, 0)

        def duplicate(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO meta (key, value) VALUES ('taken', 'again')")

        async with HeldWriter(r):
            big = asyncio.ensure_future(r.write(put(*(f"big-{i}" for i in range(10)))))
            dup = asyncio.ensure_future(r.write(duplicate))
            await asyncio.sleep(0.05)
        with pytest.raises(StoreError, match="database or disk is full"):
            await big
        with pytest.raises(StoreError, match="UNIQUE"):
            await dup
        # One write at a time (before group commit), the full one alone set this off.
        with pytest.raises(StoreError, match="the disk is full"):
            await r.probe(upsert("probe", "1"))
    finally:
        await r.close()


async def test_a_write_raising_stop_iteration_leaves_no_caller_of_its_group_hanging(
    runner: SqliteRunner,
) -> None:
    """``Future.set_exception(StopIteration())`` raises TypeError: in ``_settle`` that ends the
    loop over the group, and every caller after it waits for ever. (A ``next()`` on an empty
    iterator in a store function is enough.)"""

    def stops(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t (k, v) VALUES ('stops', 1)")
        next(iter(()))  # raises StopIteration

    async with HeldWriter(runner):
        first = asyncio.ensure_future(runner.write(stops))
        second = asyncio.ensure_future(runner.write(insert("after")))
        await asyncio.sleep(0.05)
    assert await asyncio.wait_for(second, 5) == "after"
    with pytest.raises(RuntimeError):  # as asyncio turns a coroutine's StopIteration
        await asyncio.wait_for(first, 5)
    assert await rows(runner) == {"after": 0}


async def test_writes_asked_before_close_leave_no_connection_open_after_it(
    tmp_path: Path,
) -> None:
    """A write queued behind a running group, when ``close`` is called: its group is queued on
    the writer thread only once the running one ends, after ``close``'s own job that closed
    the connection, so it opens the connection again, and ``close`` returns with it open
    (the log file left behind, the file still held after the instance lock is released).
    One transaction each, it ran before that job."""
    db = tmp_path / "relay.db"
    r = SqliteRunner(str(db))
    await r.write_untransacted(
        lambda c: c.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
    )
    go_on = threading.Event()

    def slow(c: sqlite3.Connection) -> str:
        c.execute("INSERT INTO t (k, v) VALUES ('slow', 0)")
        go_on.wait(5)
        return "slow"

    first = asyncio.ensure_future(r.write(slow))
    await asyncio.sleep(0.05)  # its group runs
    second = asyncio.ensure_future(r.write(insert("second")))
    await asyncio.sleep(0.05)  # queued behind it
    closing = asyncio.ensure_future(r.close())
    await asyncio.sleep(0.1)
    go_on.set()
    await closing
    outcomes = await asyncio.gather(first, second, return_exceptions=True)
    committed = {k for k in ("slow", "second") if k in outcomes}
    # Whatever it answered, the runner is closed: every connection it opened is.
    assert not (tmp_path / "relay.db-wal").exists(), "a connection was left open after close"
    with sqlite3.connect(db) as check:
        assert {k for (k,) in check.execute("SELECT k FROM t")} == committed
