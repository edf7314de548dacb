"""The operator commands ``relay events …`` and ``relay subscriptions …``, run through click's
``CliRunner`` (and once in a real terminal) against a real SQLite file prepared through the
Store API. The commands use the real clock, so the events here are dated an hour ago.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner, Result

from relay import operator_actions as operations
from relay.cli import main
from relay.errors import ReplayTargetDisabled
from relay.models import (
    Account,
    DeliveryStatus,
    EventType,
    Subscription,
    SubscriptionStatus,
    TaskStatus,
    iso,
)
from relay.store import open_store
from relay.store.interface import Store
from relay.store.values import ReplayQuery
from tests.store.factories import advance, attempt, current, make_account, new_id, register

T = TypeVar("T")
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
SUB_URL = "https://hooks.zapier.com/hooks/standard/1/abc"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def stamp(seconds: float) -> str:
    """``at(seconds)`` as the commands take it."""
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Db:
    path: Path
    config: Path

    def store(self, fn: Callable[[Store], Awaitable[T]]) -> T:
        """Run ``fn`` on a store opened on the file (and closed after)."""

        async def run() -> T:
            store = open_store(f"sqlite:///{self.path}")
            try:
                return await fn(store)
            finally:
                await store.close()

        return asyncio.run(run())

    def relay(self, *args: str) -> Result:
        return CliRunner().invoke(main, [*args, "--config", str(self.config)])

    def sql(self, query: str, *params: Any) -> list[Any]:
        with sqlite3.connect(self.path) as conn:
            rows = conn.execute(query, params).fetchall()
        conn.close()
        return rows


@pytest.fixture
def db(tmp_path: Path) -> Db:
    path = tmp_path / "relay.db"
    config = tmp_path / "relay.yaml"
    config.write_text(f"database_url: sqlite:///{path}\n", encoding="utf-8")
    d = Db(path, config)

    async def prepare(store: Store) -> None:
        await store.migrate()
        await make_account(store, "alice")
        await make_account(store, "bob")

    d.store(prepare)
    return d


async def subscribe(store: Store, account_id: str = "acc_alice", **fields: Any) -> Subscription:
    values: dict[str, Any] = {
        "id": new_id("sub"),
        "account_id": account_id,
        "url": SUB_URL,
        "event_types": frozenset(EventType),
        "status": SubscriptionStatus.ACTIVE,
        "created_at": T0,
        "updated_at": T0,
    }
    sub = Subscription(**{**values, **fields})
    await store.create_subscription(sub, f"whsec_{sub.id}")
    return sub


@dataclass(frozen=True)
class Seeded:
    events: list[str]
    """Alice's events in the order written: a0 (T0), b0 (T0+1), a1 (T0+2), c0 (T0+3)."""
    tasks: list[str]
    """Their tasks: a, b, a, c."""
    bobs: str
    sub: Subscription


async def seed(store: Store) -> Seeded:
    """Alice's four events (Bob's one in between), then a subscription to every type: it
    has none of them yet."""
    alice, bob = Account("acc_alice", "alice", T0), Account("acc_bob", "bob", T0)
    a = await register(store, alice, callback_url=None, created_at=at(0))
    b = await register(store, alice, callback_url=None, created_at=at(1))
    bobs = await register(store, bob, callback_url=None, created_at=at(1.5))
    a1 = await advance(store, await current(store, a.task), TaskStatus.SUCCEEDED, at(2))
    c = await register(store, alice, callback_url=None, created_at=at(3))
    sub = await subscribe(store)
    return Seeded(
        [a.event.id, b.event.id, a1.id, c.event.id],
        [a.task.id, b.task.id, a.task.id, c.task.id],
        bobs.event.id,
        sub,
    )


def deliveries_to(db: Db, sub_id: str, event_ids: list[str]) -> dict[str, list[DeliveryStatus]]:
    async def read(store: Store) -> dict[str, list[DeliveryStatus]]:
        return {
            e: [
                v.delivery.status
                for v in await store.event_deliveries("acc_alice", e)
                if v.delivery.destination_id == sub_id
            ]
            for e in event_ids
        }

    return db.store(read)


def replayed_in_order(db: Db, sub_id: str) -> list[str]:
    """The events of the ordered (replay) deliveries to ``sub_id``, in the order written."""
    return [
        r[0]
        for r in db.sql(
            "SELECT e.id FROM deliveries d JOIN events e ON e.pk = d.event_pk "
            "WHERE d.destination_id = ? AND d.ordered = 1 ORDER BY d.pk",
            sub_id,
        )
    ]


# --- subscriptions replay --------------------------------------------------------------------


def test_replay_counts_then_writes_ordered_deliveries_in_batches(db: Db) -> None:
    s = db.store(seed)
    result = db.relay("subscriptions", "replay", s.sub.id, "--account", "acc_alice", "--batch", "3")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"replayed 4 events to {s.sub.id} ({SUB_URL})\n"
    assert f"replaying to {s.sub.id}" in result.stderr  # the bar's label, off a terminal
    assert deliveries_to(db, s.sub.id, s.events) == {e: [DeliveryStatus.PENDING] for e in s.events}
    assert replayed_in_order(db, s.sub.id) == s.events  # event (pk) order, across batches
    assert db.sql("SELECT count(*) FROM deliveries WHERE destination_id = ?", s.sub.id) == [
        (4,)
    ]  # Bob's event is not Alice's to replay

    async def claim(store: Store) -> list[str]:
        due = await store.claim_due_deliveries(datetime.now(UTC), 10, 30, "w1")
        return [d.event_id for d in due]

    # Task a's second event waits for its first; b's and c's go alongside.
    assert db.store(claim) == [s.events[0], s.events[1], s.events[3]]


def test_replay_takes_only_the_time_range(db: Db) -> None:
    s = db.store(seed)
    result = db.relay(
        "subscriptions",
        "replay",
        s.sub.id,
        "--account",
        "acc_alice",
        "--since",
        stamp(1),
        "--until",
        stamp(3),
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"replayed 2 events to {s.sub.id} ")
    assert replayed_in_order(db, s.sub.id) == [s.events[1], s.events[2]]  # [T0+1, T0+3)


def test_replay_since_with_an_offset_and_until_defaulting_to_now(db: Db) -> None:
    s = db.store(seed)
    since = at(2).astimezone(UTC).replace(tzinfo=None).isoformat()  # naive: UTC
    result = db.relay("subscriptions", "replay", s.sub.id, "-a", "acc_alice", "--since", since)
    assert result.exit_code == 0, result.output
    assert replayed_in_order(db, s.sub.id) == s.events[2:]
    plus_two = at(3).astimezone(timezone(timedelta(hours=2))).isoformat()
    result = db.relay("subscriptions", "replay", s.sub.id, "-a", "acc_alice", "--since", plus_two)
    assert result.stdout.startswith("replayed 1 event to ")


def test_replay_only_failed_sends_what_never_arrived(db: Db) -> None:
    async def prepare(store: Store) -> tuple[Subscription, list[str]]:
        sub = await subscribe(store)  # before the events: each gets a delivery to it
        alice = Account("acc_alice", "alice", T0)
        ok = await register(store, alice, callback_url=None, created_at=at(0))
        bad = await register(store, alice, callback_url=None, created_at=at(1))
        later = await register(store, alice, callback_url=None, created_at=at(2))
        due = {d.event_id: d for d in await store.claim_due_deliveries(at(2), 10, 30, "w1")}
        await store.record_attempts(
            [
                attempt(due[ok.event.id], at(3), 200, status=DeliveryStatus.SUCCEEDED),
                attempt(due[bad.event.id], at(3), 500, status=DeliveryStatus.FAILED),
                attempt(
                    due[later.event.id],
                    at(3),
                    503,
                    status=DeliveryStatus.PENDING,
                    next_attempt_at=at(60),
                ),
            ],
            "w1",
        )
        return sub, [ok.event.id, bad.event.id, later.event.id]

    sub, (ok, bad, later) = db.store(prepare)
    result = db.relay("subscriptions", "replay", sub.id, "-a", "acc_alice", "--only-failed")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"replayed 1 event to {sub.id} ({SUB_URL})\n"
    assert deliveries_to(db, sub.id, [ok, bad, later]) == {
        ok: [DeliveryStatus.SUCCEEDED],
        bad: [DeliveryStatus.FAILED, DeliveryStatus.PENDING],
        later: [DeliveryStatus.PENDING],
    }


def test_a_dry_run_only_counts(db: Db) -> None:
    s = db.store(seed)
    result = db.relay("subscriptions", "replay", s.sub.id, "-a", "acc_alice", "--dry-run")
    assert (result.exit_code, result.stdout) == (
        0,
        f"would replay 4 events to {s.sub.id} ({SUB_URL})\n",
    )
    assert replayed_in_order(db, s.sub.id) == []


def test_replay_to_what_is_not_an_active_subscription_fails_clearly(db: Db) -> None:
    async def prepare(store: Store) -> tuple[Subscription, Subscription]:
        bobs = await subscribe(store, "acc_bob")
        off = await subscribe(store)
        await store.disable_subscription(
            "acc_alice", off.id, "the receiver answered 410 Gone", at(5)
        )
        return bobs, off

    bobs, off = db.store(prepare)
    for sub_id in ("sub_nope", bobs.id):
        result = db.relay("subscriptions", "replay", sub_id, "-a", "acc_alice")
        assert result.exit_code == 1
        assert result.stderr == f"error: no subscription {sub_id} in account acc_alice\n"
        assert result.stdout == ""
    result = db.relay("subscriptions", "replay", off.id, "-a", "acc_alice")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: subscription {off.id} is disabled (the receiver answered 410 Gone): enable it "
        f"first (POST /v1/subscriptions/{off.id}/enable, which also replays what it missed)\n"
    )


def test_an_empty_replay_says_so(db: Db) -> None:
    s = db.store(seed)
    result = db.relay(
        "subscriptions",
        "replay",
        s.sub.id,
        "-a",
        "acc_alice",
        "--since",
        stamp(-7200),
        "--until",
        stamp(-3600),
    )
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        f"replayed 0 events to {s.sub.id} ({SUB_URL})\n",
        "",
    )


def test_a_replay_cut_short_by_a_disable_says_so(db: Db) -> None:
    s = db.store(seed)

    async def replay(store: Store) -> None:
        plan = await operations.plan_replay(
            store, "acc_alice", s.sub.id, ReplayQuery(), datetime.now(UTC)
        )
        assert plan.count == 4
        await store.disable_subscription("acc_alice", s.sub.id, "by hand", datetime.now(UTC))
        await operations.run_replay(store, plan, datetime.now(UTC), 2)

    with pytest.raises(
        ReplayTargetDisabled,
        match=f"^the replay stopped after 0 of 4 events: "
        f"subscription {s.sub.id} is disabled \\(by hand\\)",
    ):
        db.store(replay)


def test_bad_times_are_refused_before_anything_runs(db: Db) -> None:
    s = db.store(seed)
    result = db.relay(
        "subscriptions", "replay", s.sub.id, "-a", "acc_alice", "--since", "yesterday"
    )
    assert result.exit_code == 2
    assert "Invalid value for '--since': 'yesterday' is not an ISO 8601 time" in result.stderr
    result = db.relay(
        "subscriptions",
        "replay",
        s.sub.id,
        "-a",
        "acc_alice",
        "--since",
        stamp(3),
        "--until",
        stamp(1),
    )
    assert result.exit_code == 1
    assert "must be earlier than until" in result.stderr
    assert replayed_in_order(db, s.sub.id) == []


def test_a_missing_database_is_not_created(tmp_path: Path) -> None:
    config = tmp_path / "relay.yaml"
    config.write_text(f"database_url: sqlite:///{tmp_path / 'nope.db'}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["events", "list", "-a", "acc_x", "-c", str(config)])
    assert result.exit_code == 1
    assert "no database at" in result.stderr
    assert not (tmp_path / "nope.db").exists()


def test_the_progress_bar_draws_in_a_terminal(db: Db) -> None:
    s = db.store(seed)
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "relay",
                "subscriptions",
                "replay",
                s.sub.id,
                "-a",
                "acc_alice",
                "--batch",
                "1",
                "-c",
                str(db.config),
            ],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=follower,
            env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
        )
        os.close(follower)
        stdout, _ = proc.communicate(timeout=30)
        terminal = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            terminal += chunk
    finally:
        os.close(leader)
    assert proc.returncode == 0, terminal
    assert stdout.decode() == f"replayed 4 events to {s.sub.id} ({SUB_URL})\n"
    drawn = terminal.decode()
    assert f"replaying to {s.sub.id}" in drawn
    assert "2/4" in drawn  # redrawn per batch
    assert "4/4" in drawn
    assert "100%" in drawn
    assert "━" * 36 in drawn  # rich's bar (relay.cli.progress)


# --- the 100,000-event replay ----------------------------------------------------------------

BIG = 100_000


def insert_events(db: Db, n: int) -> None:
    """``n`` task.succeeded events of Alice's, over 1,000 tasks, written straight into the
    file: the Store writes events only with their tasks' status changes, one at a time."""
    body = json.dumps(
        {
            "type": "task.succeeded",
            "data": {
                "status": "succeeded",
                "video_url": "https://cdn.example.com/" + "v" * 200 + ".mp4",
            },
        }
    )
    start = at(-3600).timestamp()
    with sqlite3.connect(db.path) as conn:
        conn.executemany(
            "INSERT INTO events (id, account_id, task_id, type, sequence, created_at, body) "
            "VALUES (?, 'acc_alice', ?, 'task.succeeded', ?, ?, ?)",
            (
                (
                    f"evt_big_{i:06d}",
                    f"task_big_{i % 1000:03d}",
                    i // 1000 + 1,
                    start + i * 0.01,
                    body,
                )
                for i in range(n)
            ),
        )
    conn.close()


@pytest.mark.slow  # 100k events: seconds of CPU, so a parallel run starts it first
def test_a_100k_event_replay_holds_one_batch_at_a_time(db: Db) -> None:
    sub = db.store(lambda store: subscribe(store, event_types=None))  # terminal types
    insert_events(db, BIG)
    tracemalloc.start()
    try:
        started = time.perf_counter()
        result = db.relay("subscriptions", "replay", sub.id, "-a", "acc_alice")
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    assert result.stdout == f"replayed 100000 events to {sub.id} ({SUB_URL})\n"
    print(f"100k replay: {elapsed:.1f} s, Python heap peak {peak / 2**20:.1f} MiB")
    # Reading the 100k events into Python (one list_events page) peaks near 90 MiB; the
    # replay, one batch of 1,000 ids at a time, stays under 1 MiB.
    assert peak < 20 * 2**20
    assert db.sql(
        "SELECT count(*), count(DISTINCT event_pk), min(ordered) FROM deliveries "
        "WHERE destination_id = ?",
        sub.id,
    ) == [(BIG, BIG, 1)]
    # The deliveries were written in event order: no delivery's event precedes the one before.
    assert db.sql(
        "SELECT count(*) FROM (SELECT event_pk, lag(event_pk) OVER (ORDER BY pk) "
        "AS previous FROM deliveries WHERE destination_id = ?) "
        "WHERE previous >= event_pk",
        sub.id,
    ) == [(0,)]


# --- events ----------------------------------------------------------------------------------


def event_lines(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [line.split()[0] for line in result.stdout.splitlines()]


def test_events_list_newest_first_with_filters(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    s = db.store(seed)
    a0, b0, a1, c0 = s.events
    result = db.relay("events", "list", "-a", "acc_alice")
    assert event_lines(result) == [c0, a1, b0, a0]
    assert result.stdout.splitlines()[1].split() == [a1, "task.succeeded", s.tasks[0], iso(at(2))]
    monkeypatch.setattr(operations, "PAGE_SIZE", 1)  # pages through the store's cursor
    assert event_lines(db.relay("events", "list", "-a", "acc_alice", "--limit", "3")) == [
        c0,
        a1,
        b0,
    ]
    assert event_lines(db.relay("events", "list", "-a", "acc_alice", "--type", "task.queued")) == [
        c0,
        b0,
        a0,
    ]
    assert event_lines(db.relay("events", "list", "-a", "acc_alice", "--task-id", s.tasks[0])) == [
        a1,
        a0,
    ]
    assert event_lines(
        db.relay("events", "list", "-a", "acc_alice", "--since", stamp(1), "--until", stamp(3))
    ) == [a1, b0]
    assert event_lines(db.relay("events", "list", "-a", "acc_bob")) == [s.bobs]
    none = db.relay("events", "list", "-a", "acc_alice", "--failed")
    assert (none.exit_code, none.stdout, none.stderr) == (0, "", "no events match\n")


def test_events_list_failed_finds_what_a_receiver_missed(db: Db) -> None:
    async def prepare(store: Store) -> str:
        await subscribe(store)
        alice = Account("acc_alice", "alice", T0)
        await register(store, alice, callback_url=None, created_at=at(0))
        bad = await register(store, alice, callback_url=None, created_at=at(1))
        [due] = [
            d
            for d in await store.claim_due_deliveries(at(1), 10, 30, "w1")
            if d.event_id == bad.event.id
        ]
        await store.record_attempts([attempt(due, at(2), 500, status=DeliveryStatus.FAILED)], "w1")
        return bad.event.id

    bad = db.store(prepare)
    assert event_lines(db.relay("events", "list", "-a", "acc_alice", "--failed")) == [bad]


def test_redeliver_sends_an_event_again(db: Db) -> None:
    async def prepare(store: Store) -> tuple[Subscription, Subscription, str]:
        one, two = await subscribe(store), await subscribe(store)
        reg = await register(
            store,
            Account("acc_alice", "alice", T0),
            created_at=at(0),
            events={EventType.TASK_QUEUED},
        )  # and its callback
        return one, two, reg.event.id

    one, two, event = db.store(prepare)
    result = db.relay("events", "redeliver", event, "-a", "acc_alice")
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.stdout.splitlines()]
    assert len(lines) == 3  # the callback and both subscriptions
    assert {line[1] for line in lines} >= {one.id, two.id}
    assert {line[2] for line in lines} == {"pending"}
    result = db.relay("events", "redeliver", event, "-a", "acc_alice", "--destination", two.id)
    assert [line.split()[1:] for line in result.stdout.splitlines()] == [
        [two.id, "pending", SUB_URL]
    ]
    assert deliveries_to(db, two.id, [event]) == {event: [DeliveryStatus.PENDING] * 3}

    missing = db.relay("events", "redeliver", "evt_nope", "-a", "acc_alice")
    assert (missing.exit_code, missing.stderr) == (
        1,
        "error: no event evt_nope in account acc_alice\n",
    )
    other = db.relay("events", "redeliver", event, "-a", "acc_bob")
    assert other.exit_code == 1
    nowhere = db.relay("events", "redeliver", event, "-a", "acc_alice", "--destination", "dst_nope")
    assert (nowhere.exit_code, nowhere.stderr) == (
        1,
        f"error: event {event} was never sent to an active destination dst_nope\n",
    )


# --- subscriptions list ----------------------------------------------------------------------


def test_subscriptions_list_shows_health(db: Db) -> None:
    async def prepare(store: Store) -> tuple[Subscription, Subscription, Subscription]:
        quiet = await subscribe(store, event_types=None)  # terminal types: not task.queued
        failing = await subscribe(
            store, event_types=frozenset({EventType.TASK_FAILED, EventType.TASK_QUEUED})
        )
        off = await subscribe(store, url="https://example.com/gone")
        await store.disable_subscription(
            "acc_alice", off.id, "the receiver answered 410 Gone", at(9)
        )
        await register(
            store, Account("acc_alice", "alice", T0), callback_url=None, created_at=at(0)
        )
        [due] = await store.claim_due_deliveries(at(0), 10, 30, "w1")
        await store.record_attempts(
            [attempt(due, at(1), 500, status=DeliveryStatus.PENDING, next_attempt_at=at(60))], "w1"
        )
        return quiet, failing, off

    quiet, failing, off = db.store(prepare)
    result = db.relay("subscriptions", "list", "-a", "acc_alice")
    assert result.exit_code == 0, result.output
    assert [re.split(r"\s{2,}", line) for line in result.stdout.splitlines()] == [
        [
            off.id,
            "disabled",
            "https://example.com/gone",
            ",".join(sorted(EventType)),
            f"disabled {iso(at(9))}: the receiver answered 410 Gone",
        ],
        [failing.id, "active", SUB_URL, "task.failed,task.queued", f"failing since {iso(at(1))}"],
        [quiet.id, "active", SUB_URL, "terminal (default)"],
    ]
    empty = db.relay("subscriptions", "list", "-a", "acc_bob")
    assert (empty.exit_code, empty.stdout, empty.stderr) == (0, "", "no subscriptions\n")


# --- time parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-06-01T12:00:00Z", datetime(2026, 6, 1, 12, tzinfo=UTC)),
        ("2026-06-01T14:00:00+02:00", datetime(2026, 6, 1, 12, tzinfo=UTC)),
        ("2026-06-01T12:00:00", datetime(2026, 6, 1, 12, tzinfo=UTC)),
        ("2026-06-01 12:00", datetime(2026, 6, 1, 12, tzinfo=UTC)),
        ("2026-06-01", datetime(2026, 6, 1, tzinfo=UTC)),
    ],
)
def test_times_are_iso_8601_and_utc_without_an_offset(text: str, expected: datetime) -> None:
    assert operations.parse_time(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01", "1717243200"])
def test_other_times_are_refused(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - fromisoformat's own message
        operations.parse_time(text)
