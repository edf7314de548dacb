"""SQLite's write-ahead log checkpoints run in the background (relay/store/sqlite/checkpointer.py):
no commit runs one, and the log still stays bounded, with readers reading throughout and with a
reader that holds on."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from relay.store.sqlite.checkpointer import TRUNCATE_RETRY_PAUSE
from relay.store.sqlite.runner import SqliteRunner, migrate

ROW = "x" * 3000
"""Most of a page: each row written takes a page of its own."""

MIB = 2**20

POINT_READ = "SELECT value FROM meta WHERE key = 'k1'"


def put(key: str) -> Callable[[sqlite3.Connection], None]:
    def insert(c: sqlite3.Connection) -> None:
        c.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, ROW),
        )

    return insert


def wal_size(db: Path) -> int:
    wal = db.with_name(db.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def test_a_commit_never_checkpoints(tmp_path: Path) -> None:
    db = tmp_path / "relay.db"
    # The background checkpointer asked for nothing: what folds the log, if anything, is a
    # commit's own automatic checkpoint.
    r = SqliteRunner(str(db), checkpoint_every=10**9, passive_above=10**12)
    try:
        await r.write_untransacted(migrate)
        autocheckpoint = await r.write_untransacted(
            lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
        assert autocheckpoint == 0
        for i in range(1500):
            await r.write(put(f"k{i}"))
        # 1,500 pages and more: SQLite's automatic checkpoint (1,000 pages) would have
        # restarted the log, and its file would have stayed near 4 MiB.
        assert wal_size(db) > 5 * MIB
        assert r.checkpointer is not None
        assert r.checkpointer.rounds == 0
    finally:
        await r.close()


async def test_the_log_stays_bounded_under_many_writes_and_reads(tmp_path: Path) -> None:
    db = tmp_path / "relay.db"
    # Thresholds of a MiB: the same rounds as the defaults', in a test's number of writes.
    r = SqliteRunner(str(db), passive_above=MIB // 2, checkpoint_above=MIB)
    assert r.checkpointer is not None
    reading = True

    async def reader() -> int:
        reads = 0
        while reading:
            # Short reads back to back, as the API's (a reader that holds on: below).
            await r.read(lambda c: c.execute(POINT_READ).fetchone())
            reads += 1
        return reads

    try:
        await r.write_untransacted(migrate)
        readers = asyncio.gather(reader(), reader())
        largest = 0
        for i in range(4000):
            await r.write(put(f"k{i % 3000}"))
            largest = max(largest, wal_size(db))
        reading = False
        assert min(await readers) > 0
        # Some 60 MiB went through the log (a row, its index entry and the pages above
        # them, each write), as fast as this machine writes: it stays near its 1 MiB
        # threshold, and past its 4 MiB limit the writer truncates it itself (what a pass
        # stalled on a busy machine lets it reach in between is the slack here).
        assert largest < 24 * MIB, largest
        assert r.checkpointer.truncations >= 2
        await r.checkpointed()
        count = await r.read(lambda c: c.execute("SELECT count(*) FROM meta").fetchone()[0])
        assert count == 3000
    finally:
        await r.close()


async def test_a_reader_that_holds_on_does_not_hold_up_the_writes(tmp_path: Path) -> None:
    """A read transaction left open keeps the log from being copied past it. The checkpoint
    that would empty the log waits for it only briefly, and gives up: writes go on
    committing (in line, a ``TRUNCATE`` held them up for the readers' busy timeout of
    10 s each), and the log is emptied once the reader lets go."""
    db = tmp_path / "relay.db"
    r = SqliteRunner(str(db), checkpoint_every=50, passive_above=MIB, checkpoint_above=MIB)
    assert r.checkpointer is not None
    try:
        await r.write_untransacted(migrate)
        await r.write(put("first"))
        stuck = sqlite3.connect(db, isolation_level=None)
        stuck.execute("BEGIN")
        stuck.execute("SELECT count(*) FROM meta").fetchone()
        started = time.monotonic()
        for i in range(600):  # 2.4 MiB of log: past the TRUNCATE's threshold
            await r.write(put(f"k{i}"))
        await r.checkpointed()
        assert time.monotonic() - started < 5.0
        assert r.checkpointer.truncations >= 1
        assert wal_size(db) > MIB, "the log could not be emptied while the reader held on"
        grown = wal_size(db)
        stuck.execute("COMMIT")
        stuck.close()
        # With the reader gone, a round copies the whole log; the next write starts it again
        # from its beginning and cuts its file back to journal_size_limit (4 MiB).
        await asyncio.sleep(TRUNCATE_RETRY_PAUSE)
        r.checkpointer.nudge()
        await r.checkpointed()
        await r.write(put("after"))
        assert wal_size(db) <= min(grown, 4 * MIB)
        for i in range(60):
            await r.write(put(f"again-{i}"))
        assert wal_size(db) <= min(grown, 4 * MIB), "the log restarted: the file is reused"
    finally:
        await r.close()
