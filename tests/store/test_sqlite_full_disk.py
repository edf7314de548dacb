"""SQLite on a full disk: every failure is a ``StoreError`` (the API's 503), nothing half-done
is committed, nothing committed is lost, the next write commits as soon as there is room, and
the write-ahead log stays small enough not to fill the disk itself.

The faults are real. ``PRAGMA max_page_count`` caps the database, so SQLite itself answers
``SQLITE_FULL`` ("database or disk is full") and rolls the transaction back, exactly as on a
full disk, without mounting anything. What only a full *disk* does (an update in place that
cannot append to the log; a log that filled the disk by itself) runs on a small tmpfs,
mounted here when the test may (root), skipped with the reason otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relay.errors import StoreError
from relay.store import open_store
from relay.store.interface import Store
from relay.store.sqlite.runner import SqliteRunner, migrate
from tests.store.factories import make_account

NOW = datetime(2026, 6, 6, 16, 0, tzinfo=UTC)
ROW = "x" * 3000
"""Most of a page: each row inserted takes a page of its own."""


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (made here) for the test; skips the test
    where mounting is not allowed."""
    path.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        reason = getattr(exc, "stderr", "") or exc
        pytest.skip(f"a small disk cannot be mounted here (needs root): {reason}")
    try:
        yield path
    finally:
        # Lazy: a process the test left holding a file must not fail the unmount.
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(path: Path, leave: int = 0) -> Path:
    """A file that takes the space left on ``path``'s filesystem, all of it or all but
    about ``leave`` bytes."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        if leave:
            disk = os.statvfs(path)
            size = max(0, disk.f_bavail * disk.f_frsize - leave)
            os.write(fd, b"\0" * size)
        else:
            for chunk in (1 << 16, 1 << 12, 1 << 9):
                with contextlib.suppress(OSError):
                    while os.write(fd, b"\0" * chunk):
                        pass
    finally:
        os.close(fd)
    return filler


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[SqliteRunner]:
    r = SqliteRunner(str(tmp_path / "relay.db"))
    await r.write_untransacted(migrate)
    yield r
    await r.close()


Write = Callable[[sqlite3.Connection], None]


def put(*keys: str) -> Write:
    def insert(c: sqlite3.Connection) -> None:
        for key in keys:
            c.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, ROW))

    return insert


async def keys(r: SqliteRunner) -> set[str]:
    rows = await r.read(lambda c: c.execute("SELECT key FROM meta").fetchall())
    return {row[0] for row in rows}


async def cap_pages(r: SqliteRunner, extra: int | None) -> None:
    """Let the database grow by ``extra`` pages from now (None: no cap)."""

    def cap(c: sqlite3.Connection) -> None:
        pages = c.execute("PRAGMA page_count").fetchone()[0]
        c.execute(
            f"PRAGMA max_page_count={pages + extra if extra is not None else 2**31}"
        ).fetchall()

    await r.write_untransacted(cap)


def wal_size(db: Path) -> int:
    wal = db.with_name(db.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


# --- the runner ------------------------------------------------------------------------------


async def test_a_full_database_is_a_store_error_and_commits_nothing_of_the_write(
    runner: SqliteRunner,
) -> None:
    await runner.write(put("before"))
    await cap_pages(runner, 3)
    # The first rows fit, a later one does not: SQLite rolls the whole transaction back
    # itself, and the runner's own ROLLBACK used to fail with an unwrapped
    # "cannot rollback - no transaction is active".
    with pytest.raises(StoreError, match="database or disk is full"):
        await runner.write(put(*(f"full-{i}" for i in range(10))))
    assert await keys(runner) == {"before"}, "nothing half-done, nothing committed lost"
    with pytest.raises(StoreError, match="database or disk is full"):
        await runner.write(put(*(f"again-{i}" for i in range(10))))

    await cap_pages(runner, None)  # room again
    await runner.write(put("after"))
    assert await keys(runner) == {"before", "after"}


async def test_a_connection_left_broken_by_a_failed_write_is_opened_afresh(
    runner: SqliteRunner,
) -> None:
    def breaks(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO meta (key, value) VALUES ('broken', 'x')")
        c.close()  # the rollback (and every later statement) now fails on it
        raise RuntimeError("lost the connection")

    with pytest.raises(RuntimeError, match="lost the connection"):
        await runner.write(breaks)
    await runner.write(put("after"))
    assert await keys(runner) == {"after"}


async def test_a_failed_read_leaves_the_reader_usable(runner: SqliteRunner) -> None:
    with pytest.raises(StoreError, match="no such table"):
        await runner.read(lambda c: c.execute("SELECT * FROM nowhere").fetchall())
    assert await keys(runner) == set()


async def test_the_log_is_folded_in_every_so_many_writes(tmp_path: Path) -> None:
    db = tmp_path / "relay.db"
    r = SqliteRunner(str(db), checkpoint_every=10)
    assert r.checkpointer is not None
    try:
        await r.write_untransacted(migrate)
        for i in range(9):
            await r.write(put(f"k{i}"))
        await r.checkpointed()
        assert r.checkpointer.rounds == 0
        assert wal_size(db) > 0
        await r.write(put("k9"))  # the tenth: a checkpoint, in the background
        await r.checkpointed()
        assert r.checkpointer.rounds == 1
        # The whole log was copied into the database: the next write starts it again from
        # its beginning, over the frames already copied, so its file does not grow.
        folded = wal_size(db)
        await r.write(put("k10"))
        assert wal_size(db) == folded
        assert len(await keys(r)) == 11
    finally:
        await r.close()


async def test_the_log_is_cut_back_to_4_mib_and_never_left_over_8_mib(tmp_path: Path) -> None:
    db = tmp_path / "relay.db"
    r = SqliteRunner(str(db))
    try:
        await r.write_untransacted(migrate)
        # 1,200 pages: over the automatic checkpoint's 1,000, under the 8 MiB limit.
        await r.write(put(*(f"mid-{i}" for i in range(1200))))
        assert 4 * 2**20 < wal_size(db) < 8 * 2**20
        # It was checkpointed after its commit (in the background); the next write restarts
        # the log and cuts its file back (journal_size_limit): without that it kept its
        # largest size.
        await r.checkpointed()
        await r.write(put("small"))
        assert wal_size(db) <= 4 * 2**20
        # A transaction that leaves more than 8 MiB is copied into the database at once (in
        # the background), and the next write starts the log again and cuts it back.
        await r.write(put(*(f"big-{i}" for i in range(3000))))
        assert wal_size(db) > 8 * 2**20
        await r.checkpointed()
        await r.write(put("small-again"))
        assert wal_size(db) <= 4 * 2**20
        assert len(await keys(r)) == 4202
    finally:
        await r.close()


# --- on a full disk ----------------------------------------------------------------------------


async def test_a_log_that_filled_the_disk_is_folded_and_the_next_write_commits(
    tmp_path: Path,
) -> None:
    """The issue's run: the relay's own log filled the disk, and nothing committed again, as
    the checkpoint that would free it only runs after a commit. Now a write refused for want
    of space checkpoints the log into the database at once and truncates it."""
    with small_disk(tmp_path / "disk", "4m") as disk:
        db = disk / "relay.db"
        r = SqliteRunner(str(db), checkpoint_every=10**9)  # no periodic truncation here
        try:
            await r.write_untransacted(migrate)
            for key in ("k0", "k1", "k2", "k3"):
                await r.write(upsert(key, ROW))
            await r.write_untransacted(
                lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            )
            # Overwriting the same rows only grows the log (the database has their pages),
            # and on a 4 MiB disk the log never reaches the automatic checkpoint's 4 MiB.
            committed = dict.fromkeys(("k0", "k1", "k2", "k3"), ROW)
            failed: StoreError | None = None
            for i in range(5000):
                key, value = f"k{i % 4}", f"{i}{ROW}"
                try:
                    await r.write(upsert(key, value))
                except StoreError as exc:
                    failed = exc
                    break
                committed[key] = value
            assert failed is not None, "the disk never filled"
            assert "database or disk is full" in str(failed)
            assert wal_size(db) == 0, "the failure folded the log into the database"
            await r.write(upsert("k0", "after"))
            committed["k0"] = "after"
            rows = await r.read(lambda c: c.execute("SELECT key, value FROM meta").fetchall())
            assert dict(rows) == committed, "every commit kept, nothing of the failed one"
        finally:
            await r.close()


def upsert(key: str, value: str) -> Write:
    def write(c: sqlite3.Connection) -> None:
        c.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    return write


async def test_the_probe_fails_for_a_while_after_any_write_failed_for_want_of_space(
    tmp_path: Path,
) -> None:
    """A probe is small: it can fit where the relay's own writes no longer do."""
    r = SqliteRunner(str(tmp_path / "relay.db"), full_reported_for=2.0)
    try:
        await r.write_untransacted(migrate)
        await r.probe(upsert("probe", "1"))
        await cap_pages(r, 0)
        with pytest.raises(StoreError, match="database or disk is full"):
            await r.write(put(*(f"big-{i}" for i in range(10))))
        with pytest.raises(StoreError, match="the disk is full"):
            await r.probe(upsert("probe", "2"))  # it fits, yet the disk is reported full
        await cap_pages(r, None)
        await asyncio.sleep(2.0)
        await r.probe(upsert("probe", "3"))
    finally:
        await r.close()


async def test_the_write_probe_fails_on_a_full_disk_that_still_answers_reads(
    tmp_path: Path,
) -> None:
    with small_disk(tmp_path / "disk", "4m") as disk:
        store = open_store(f"sqlite:///{disk / 'relay.db'}")
        try:
            await store.migrate()
            await store.probe_write(NOW)
            filler = fill(disk)
            with pytest.raises(StoreError, match="database or disk is full"):
                await store.probe_write(NOW)
            await store.ping()
            assert await store.get_task("acc_nobody", "task_nothing") is None
            os.remove(filler)
            await make_account(store, "after")  # writes commit again at once
        finally:
            await store.close()


# --- both backends ----------------------------------------------------------------------------


async def test_the_write_probe_commits_on_every_backend(store: Store) -> None:
    await store.probe_write(NOW)
    await store.probe_write(NOW)
