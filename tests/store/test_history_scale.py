"""No scan of the history on a shared thread: retention takes finished tasks with their
history, replays walk their window in bounded steps with the same answers, and the event
feed's queries read indexes (SQLite's EXPLAIN QUERY PLAN).

The contract tests run once per backend; the plan test is SQLite's (its one reader and one
writer thread are what a scan stalls).
"""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import psycopg
import pytest

from relay.models import (
    TERMINAL_EVENT_TYPES,
    Account,
    DeliveryStatus,
    EventType,
    TaskStatus,
)
from relay.store import open_store
from relay.store.interface import Store
from relay.store.named_sql import load_queries
from relay.store.values import ReplayQuery
from tests.store.factories import advance, at, attempt, current, register
from tests.store.test_contract_queries import (
    SUB,
    SUB_T,
    TASK_TYPES,
    WINDOWS,
    chunks,
    replayable,
    seed_world,
)
from tests.store.test_subscriptions import subscribed


async def count_rows(database_url: str, table: str, where: str, value: str) -> int:
    """Rows of ``table`` whose ``where`` column is ``value``, read beside the store."""
    query = f"SELECT count(*) FROM {table} WHERE {where} = "
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as c:
            return int(c.execute(query + "?", (value,)).fetchone()[0])
    async with await psycopg.AsyncConnection.connect(database_url) as c:
        cur = await c.execute(query.encode() + b"%s", (value,))
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def drain(store: Store, before_days: float, limit: int) -> list[int]:
    """Run retention until it finds nothing; each batch's count."""
    batches = []
    while n := await store.prune_history(at(days=before_days), limit):
        batches.append(n)
        assert len(batches) < 50
    return batches


# --- retention --------------------------------------------------------------------------------


async def test_a_finished_task_goes_with_its_callback_and_history_past_retention(
    store: Store, alice: Account, database_url: str
) -> None:
    every = {EventType.TASK_QUEUED, EventType.TASK_SUCCEEDED, EventType.TASK_FAILED}
    # Finished long ago, its callback delivered (with an attempt) and done.
    old = await register(store, alice, events=every, next_poll_at=None)
    done = await advance(store, await current(store, old.task), TaskStatus.SUCCEEDED, at(hours=1))
    due = await store.claim_due_deliveries(at(hours=2), 10, 30, "w1")
    assert {d.event_id for d in due} == {old.event.id, done.id}
    await store.record_attempts(
        [attempt(d, at(hours=2), 200, status=DeliveryStatus.SUCCEEDED) for d in due], "w1"
    )
    assert old.destination is not None
    # Open for as long: its old events go, the task stays (it may still finish).
    still_open = await register(store, alice, callback_url=None, created_at=at(minutes=1))
    # Finished long ago but its last event is recent: within retention, it stays whole.
    late = await register(store, alice, events=every, created_at=at(minutes=2), next_poll_at=None)
    recent = await advance(store, await current(store, late.task), TaskStatus.FAILED, at(days=30))
    # A subscription is never pruned, even one whose deliveries all went.
    sub = await subscribed(store, alice, event_types=frozenset(EventType))

    assert await count_rows(database_url, "destinations", "task_id", old.task.id) == 1
    assert await count_rows(database_url, "attempts", "delivery_pk", str(due[0].pk)) == 1
    # Events first, two a batch (old's two and still_open's one; late's first waits for its
    # delivery), then the finished task they left with nothing.
    assert await drain(store, 10, 2) == [2, 1 + 1]
    assert await store.get_task(alice.id, old.task.id) is None
    assert await count_rows(database_url, "destinations", "task_id", old.task.id) == 0
    for gone in (old.event.id, done.id):
        assert await store.get_event(alice.id, gone) is None
        assert (
            await count_rows(database_url, "deliveries", "destination_id", old.destination.id) == 0
        )
    assert await count_rows(database_url, "attempts", "delivery_pk", str(due[0].pk)) == 0
    # The open task stays, without its events; the recently finished one stays whole.
    assert await store.get_task(alice.id, still_open.task.id) is not None
    assert await store.get_event(alice.id, still_open.event.id) is None
    assert await store.get_task(alice.id, late.task.id) is not None
    assert await store.get_event(alice.id, recent.id) is not None
    assert late.destination is not None
    assert await count_rows(database_url, "destinations", "task_id", late.task.id) == 1
    assert await store.get_subscription(alice.id, sub.id) is not None
    # Delivered and past its retention too, the late task goes with its history.
    late_due = await store.claim_due_deliveries(at(days=31), 10, 30, "w1")
    assert {d.event_id for d in late_due} == {late.event.id, recent.id}
    await store.record_attempts(
        [attempt(d, at(days=31), 200, status=DeliveryStatus.SUCCEEDED) for d in late_due], "w1"
    )
    assert await drain(store, 40, 100) == [2 + 1]
    assert await store.get_task(alice.id, late.task.id) is None
    assert await count_rows(database_url, "destinations", "task_id", late.task.id) == 0
    assert await store.get_task(alice.id, still_open.task.id) is not None
    assert await store.get_subscription(alice.id, sub.id) is not None


async def test_a_finished_task_with_a_pending_delivery_is_kept(
    store: Store, alice: Account, database_url: str
) -> None:
    reg = await register(store, alice, events={EventType.TASK_SUCCEEDED}, next_poll_at=None)
    finished = await advance(
        store, await current(store, reg.task), TaskStatus.SUCCEEDED, at(seconds=1)
    )
    # Its registration event (no delivery) goes; its success, still to deliver, stays.
    assert await drain(store, 10, 10) == [1]
    assert await store.get_event(alice.id, finished.id) is not None
    assert await store.get_task(alice.id, reg.task.id) is not None
    assert await count_rows(database_url, "destinations", "task_id", reg.task.id) == 1
    # Delivered: then it all goes.
    [due] = await store.claim_due_deliveries(at(days=11), 10, 30, "w1")
    await store.record_attempts(
        [attempt(due, at(days=11), 200, status=DeliveryStatus.SUCCEEDED)], "w1"
    )
    assert await drain(store, 10, 10) == [2]
    assert await store.get_task(alice.id, reg.task.id) is None
    assert await count_rows(database_url, "destinations", "task_id", reg.task.id) == 0


# --- replay in bounded steps ------------------------------------------------------------------


@pytest.mark.parametrize("scan", [1, 2, 5])
@pytest.mark.parametrize("only_failed", [False, True], ids=["all", "only-failed"])
async def test_replay_in_small_steps_sends_and_counts_what_it_did_in_one(
    store: Store, alice: Account, bob: Account, only_failed: bool, scan: int
) -> None:
    """Steps of ``scan`` events (each its own transaction) cut across the batches: every
    batch still holds ``limit`` events, in order, and the count is the same."""
    store.replay_scan = scan  # type: ignore[attr-defined]
    world = await seed_world(store, alice, bob)
    for target, wanted in ((SUB, TASK_TYPES), (SUB_T, TERMINAL_EVENT_TYPES)):
        sub = world.subs[target]
        for run, ((since, until), limit) in enumerate(
            itertools.product(WINDOWS, [1, 3, 100]), start=1
        ):
            query = ReplayQuery(since=since, until=until, only_failed=only_failed)
            expected = replayable(world, target, query, wanted)
            assert await store.count_replay(alice.id, sub.id, query) == len(expected), query
            batches: list[list[str]] = []
            after = None
            while not batches or after is not None:
                assert len(batches) < 60
                when = at(days=run, seconds=len(batches))
                count, after = await store.replay(
                    alice.id, sub.id, query, when, after=after, limit=limit
                )
                batches.append([])
                for e in world.events:
                    for v in await store.event_deliveries(alice.id, e.id):
                        if v.delivery.destination_id == sub.id and v.delivery.created_at == when:
                            batches[-1].append(e.label)
                assert len(batches[-1]) == count
            if batches[-1] == [] and len(batches) > 1:
                batches.pop()  # a last full batch cannot know it was the last
            assert batches == chunks(expected, limit), (target, query, limit)


async def test_an_empty_window_replays_and_counts_nothing(store: Store, alice: Account) -> None:
    sub = await subscribed(store, alice, event_types=frozenset(EventType))
    for i in range(5):
        await register(store, alice, callback_url=None, created_at=at(seconds=i))
    store.replay_scan = 2  # type: ignore[attr-defined]
    empty = ReplayQuery(since=at(days=1), until=at(days=2))
    assert await store.count_replay(alice.id, sub.id, empty) == 0
    assert await store.replay(alice.id, sub.id, empty, at(days=3), after=None, limit=10) == (
        0,
        None,
    )
    everything = ReplayQuery(until=at(days=1))
    assert await store.count_replay(alice.id, sub.id, everything) == 5
    assert (await store.replay(alice.id, sub.id, everything, at(days=3), after=None, limit=10))[
        0
    ] == 5


# --- the plans: indexes, not scans ------------------------------------------------------------

HISTORY_TABLES = ("events", "deliveries", "attempts", "tasks", "destinations")


def plan(c: sqlite3.Connection, sql: str, params: dict[str, object]) -> list[str]:
    return [row[3] for row in c.execute("EXPLAIN QUERY PLAN " + sql, params)]


def scans(lines: list[str]) -> list[str]:
    """The plan's full scans of a history table (with or without an index: both read it all)."""
    return [
        line
        for line in lines
        if any(line.startswith((f"SCAN {t}", f"SCAN {t[0]} ")) for t in HISTORY_TABLES)
    ]


@pytest.fixture
def migrated_sqlite(tmp_path: Path) -> sqlite3.Connection:
    async def migrate() -> None:
        s = open_store(f"sqlite:///{tmp_path / 'relay.db'}")
        await s.migrate()
        await s.close()

    import asyncio

    asyncio.run(migrate())
    return sqlite3.connect(tmp_path / "relay.db")


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_the_feed_reads_indexes_for_every_filter(
    migrated_sqlite: sqlite3.Connection, order: str
) -> None:
    queries = load_queries("relay.store.sqlite")
    options: dict[str, list[object]] = {
        "task_id": [None, "task_1"],
        "type": [None, "task.succeeded"],
        "since": [None, 1.0],
        "until": [None, 2.0],
        "delivery_status": [None, "failed", "succeeded"],
        "after": [None, 42],
    }
    for values in itertools.product(*options.values()):
        params = dict(zip(options, values, strict=True), account_id="acc_1", limit=51)
        lines = plan(migrated_sqlite, queries[f"list_events_{order}"], params)
        assert not scans(lines), (params, lines)
        # No arm sorts more than a page: only the delivery-status arm's page is sorted.
        assert lines.count("USE TEMP B-TREE FOR ORDER BY") <= 1, (params, lines)


def test_replay_retention_and_their_counts_read_indexes(
    migrated_sqlite: sqlite3.Connection,
) -> None:
    queries = load_queries("relay.store.sqlite")
    c = migrated_sqlite
    c.execute(queries["create_doomed"])
    c.execute(queries["create_doomed_tasks"])
    for only_failed in (0, 1):
        lines = plan(
            c,
            queries["replay_window"],
            {
                "account_id": "acc_1",
                "destination_id": "sub_1",
                "types": '["task.succeeded"]',
                "since": 0.0,
                "until": 1e15,
                "only_failed": only_failed,
                "after_at": 0.0,
                "after_pk": 0,
                "scan": 500,
            },
        )
        assert not scans(lines), lines
        assert any("events_account_time" in line for line in lines), lines
        assert "USE TEMP B-TREE FOR ORDER BY" not in lines, lines
    # An only_failed replay whose subscription failed a few times reads those events alone.
    lines = plan(c, queries["failed_event_pks"], {"destination_id": "sub_1", "cap": 501})
    assert not scans(lines), lines
    assert any("deliveries_destination" in line for line in lines), lines
    lines = plan(
        c,
        queries["replay_failed_window"],
        {
            "account_id": "acc_1",
            "destination_id": "sub_1",
            "types": '["task.succeeded"]',
            "failed": "[1, 2]",
            "since": 0.0,
            "until": 1e15,
            "after_at": 0.0,
            "after_pk": 0,
            "scan": 500,
        },
    )
    assert not scans(lines), lines
    assert any("SEARCH events USING INTEGER PRIMARY KEY" in line for line in lines), lines
    for name in (
        "pick_doomed",
        "delete_doomed_attempts",
        "delete_doomed_deliveries",
        "delete_doomed_events",
        "pick_doomed_tasks",
        "delete_doomed_task_copies",
        "delete_doomed_callbacks",
        "delete_doomed_tasks",
    ):
        lines = plan(c, queries[name], {"before": 1.0, "limit": 100})
        assert not scans(lines), (name, lines)
    assert any(
        "events_time" in line
        for line in plan(c, queries["pick_doomed"], {"before": 1.0, "limit": 1})
    )
    assert any(
        "tasks_finished" in line
        for line in plan(c, queries["pick_doomed_tasks"], {"before": 1.0, "limit": 1})
    )


def test_a_replay_step_reads_as_much_at_the_end_of_a_long_window_as_at_its_start(
    migrated_sqlite: sqlite3.Connection,
) -> None:
    """The cursor bounds the step's index range: a step deep into the window does not read
    the window again from its start (counted in SQLite virtual machine steps, not time)."""
    c = migrated_sqlite
    c.executemany(
        "INSERT INTO events (id, account_id, task_id, type, sequence, created_at, body)"
        " VALUES (?, 'acc_1', 'task_1', 'task.succeeded', 1, ?, '{}')",
        [(f"evt_{i}", float(i // 2)) for i in range(20_000)],  # ties on created_at too
    )
    query = load_queries("relay.store.sqlite")["replay_window"]

    def steps(after_at: float, after_pk: int) -> tuple[int, list[int]]:
        counted = [0]

        def tick() -> int:
            counted[0] += 1
            return 0

        c.set_progress_handler(tick, 100)
        rows = c.execute(
            query,
            {
                "account_id": "acc_1",
                "destination_id": "sub_1",
                "types": '["task.succeeded"]',
                "since": 0.0,
                "until": 1e15,
                "only_failed": 0,
                "after_at": after_at,
                "after_pk": after_pk,
                "scan": 100,
            },
        ).fetchall()
        c.set_progress_handler(None, 0)
        return counted[0], [row[0] for row in rows]

    first, first_pks = steps(0.0, 0)
    deep, deep_pks = steps(9_000.0, 18_001)  # past pk 18,001 (created at 9,000)
    assert first_pks == list(range(1, 101))
    assert deep_pks == list(range(18_002, 18_102))
    assert deep <= 2 * first, (first, deep)
