"""Group commit on SQLite (relay.store.sqlite.group_commit): the writes queued while the
writer is busy share one transaction, yet each succeeds or fails whole and alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from relay.errors import StoreError
from relay.store.sqlite.runner import SqliteRunner


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[SqliteRunner]:
    r = SqliteRunner(str(tmp_path / "relay.db"))
    await r.write_untransacted(
        lambda c: c.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
    )
    yield r
    await r.close()


def insert(k: str, v: int = 0) -> Callable[[sqlite3.Connection], str]:
    def fn(c: sqlite3.Connection) -> str:
        c.execute("INSERT INTO t (k, v) VALUES (?, ?)", (k, v))
        return k

    return fn


async def rows(r: SqliteRunner) -> dict[str, int]:
    return dict(await r.read(lambda c: c.execute("SELECT k, v FROM t").fetchall()))


class HeldWriter:
    """Keeps the writer thread busy until released, so the writes queued meanwhile make one
    group; counts the COMMITs the writer's connection runs."""

    def __init__(self, r: SqliteRunner) -> None:
        self.r = r
        self.release = threading.Event()
        self.commits = 0

    async def __aenter__(self) -> HeldWriter:
        def trace(statement: str) -> None:
            if statement.strip().upper() == "COMMIT":
                self.commits += 1

        await self.r.write_untransacted(lambda c: c.set_trace_callback(trace))
        self.held = asyncio.ensure_future(
            self.r.write_untransacted(lambda c: self.release.wait(10))
        )
        await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await self.held


async def settle(
    r: SqliteRunner, writes: list[Callable[[sqlite3.Connection], object]]
) -> tuple[list[object], int]:
    """Run ``writes`` queued together: their outcomes (result or exception) and how many
    transactions committed them."""
    async with HeldWriter(r) as held:
        pending = [asyncio.ensure_future(r.write(fn)) for fn in writes]
        await asyncio.sleep(0.05)
        assert not any(p.done() for p in pending), "a write ran while the writer was held"
    outcomes = await asyncio.gather(*pending, return_exceptions=True)
    return outcomes, held.commits


async def test_writes_queued_together_commit_in_one_transaction(runner: SqliteRunner) -> None:
    outcomes, commits = await settle(runner, [insert(f"k{i}", i) for i in range(20)])
    assert outcomes == [f"k{i}" for i in range(20)]
    assert commits == 1
    assert await rows(runner) == {f"k{i}": i for i in range(20)}


async def test_a_group_holds_at_most_max_group_writes(runner: SqliteRunner) -> None:
    from relay.store.sqlite.group_commit import MAX_GROUP

    outcomes, commits = await settle(runner, [insert(f"k{i}") for i in range(MAX_GROUP + 1)])
    assert len(outcomes) == MAX_GROUP + 1
    assert commits == 2


async def test_a_failing_write_is_undone_alone_and_only_its_caller_sees_the_error(
    runner: SqliteRunner,
) -> None:
    def half_then_raise(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t (k, v) VALUES ('half', 1)")
        raise ValueError("refused halfway")

    outcomes, commits = await settle(
        runner,
        [insert("a"), half_then_raise, insert("a"), insert("b")],  # 'a' twice: a conflict
    )
    assert outcomes[0] == "a"
    assert isinstance(outcomes[1], ValueError)
    assert isinstance(outcomes[2], StoreError)
    assert "UNIQUE" in str(outcomes[2])
    assert outcomes[3] == "b"
    assert commits == 1
    assert await rows(runner) == {"a": 0, "b": 0}


async def test_a_write_that_loses_the_transaction_fails_alone_and_the_ones_before_it_retry(
    runner: SqliteRunner,
) -> None:
    def breaks(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t (k, v) VALUES ('broken', 1)")
        c.close()  # the whole transaction is gone, and the connection with it
        raise RuntimeError("lost the connection")

    outcomes, _ = await settle(runner, [insert("before"), breaks, insert("after")])
    assert outcomes[0] == "before"  # run again, alone: it lost nothing of its own
    assert isinstance(outcomes[1], RuntimeError)
    assert outcomes[2] == "after"
    assert await rows(runner) == {"before": 0, "after": 0}


async def test_a_failed_commit_runs_each_write_of_the_group_again_alone(
    runner: SqliteRunner,
) -> None:
    # A deferred foreign key is checked at COMMIT: the group's COMMIT fails, and then only
    # the write that broke it, on its own.
    await runner.write_untransacted(
        lambda c: c.executescript(
            "CREATE TABLE parent (id TEXT PRIMARY KEY);"
            "CREATE TABLE child (id TEXT PRIMARY KEY, parent TEXT"
            " REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);"
        )
    )

    def orphan(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO child (id, parent) VALUES ('c', 'nobody')")

    outcomes, _ = await settle(runner, [insert("a"), orphan, insert("b")])
    assert outcomes[0] == "a"
    assert isinstance(outcomes[1], StoreError)
    assert "FOREIGN KEY" in str(outcomes[1])
    assert outcomes[2] == "b"
    assert await rows(runner) == {"a": 0, "b": 0}
    assert await runner.write(insert("later")) == "later"  # the writer goes on


async def test_a_cancelled_caller_does_not_undo_its_write_or_stop_the_others(
    runner: SqliteRunner,
) -> None:
    async with HeldWriter(runner):
        first = asyncio.ensure_future(runner.write(insert("first")))
        second = asyncio.ensure_future(runner.write(insert("second")))
        await asyncio.sleep(0.05)
        first.cancel()
    assert await second == "second"
    assert await rows(runner) == {"first": 0, "second": 0}


async def test_a_write_after_close_fails_rather_than_waits(tmp_path: Path) -> None:
    r = SqliteRunner(str(tmp_path / "relay.db"))
    await r.close()
    with pytest.raises(StoreError, match="closed"):
        await asyncio.wait_for(r.write(lambda c: c.execute("SELECT 1")), 5)


async def test_reads_queued_together_share_one_read_transaction_and_fail_alone(
    runner: SqliteRunner,
) -> None:
    await runner.write(insert("a", 1))
    reader = runner._reader  # its thread is held while the reads queue up
    begins: list[str] = []
    await reader.run(lambda: reader.conn().set_trace_callback(begins.append))
    release = threading.Event()
    held = asyncio.get_running_loop().run_in_executor(reader.thread, release.wait, 10)

    def bad(c: sqlite3.Connection) -> None:
        c.execute("SELECT k FROM nowhere")

    def value(c: sqlite3.Connection) -> int:
        return int(c.execute("SELECT v FROM t WHERE k = 'a'").fetchone()[0])

    pending = [asyncio.ensure_future(runner.read(fn)) for fn in (value, bad, value)]
    await asyncio.sleep(0.05)
    release.set()
    await held
    outcomes = await asyncio.gather(*pending, return_exceptions=True)
    assert outcomes[0] == 1
    assert isinstance(outcomes[1], StoreError)
    assert "no such table" in str(outcomes[1])
    assert outcomes[2] == 1
    assert [s for s in begins if s.strip().upper().startswith("BEGIN")] == ["BEGIN"]


async def test_a_long_write_runs_alone_and_the_quick_ones_before_it_are_answered_first(
    runner: SqliteRunner,
) -> None:
    go_on = threading.Event()

    def long(c: sqlite3.Connection) -> str:
        c.execute("INSERT INTO t (k, v) VALUES ('long', 1)")
        go_on.wait(5)  # until the test saw the quick write before it answered
        return "long"

    async with HeldWriter(runner) as held:
        quick = asyncio.ensure_future(runner.write(insert("quick")))
        slow = asyncio.ensure_future(runner.write(long, alone=True))
        after = asyncio.ensure_future(runner.write(insert("after")))
        await asyncio.sleep(0.05)
    assert await asyncio.wait_for(quick, 2) == "quick"  # while the long one still runs
    assert not slow.done()
    go_on.set()
    assert await slow == "long"
    assert await after == "after"
    assert held.commits == 3
