"""What only the PostgreSQL store does, so only PostgreSQL runs it (``conftest.BACKENDS``'
"postgresql" entry: skipped without a server, failed under CI).

The contract suite is the same for both backends; these are the promises SQLite does not
make, because it serves one instance: wake-ups between instances (``listen``), migrations
raced by instances starting together, a starting instance leaving the others' leases alone,
and surviving a database that drops its connections or is not there at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio
from psycopg.conninfo import conninfo_to_dict

from relay.errors import StoreError
from relay.models import Account, DeliveryStatus, EventType, TaskStatus
from relay.store import open_store
from relay.store.interface import Store
from relay.store.postgres import runner as postgres_runner
from relay.store.postgres.store import PostgresStore
from relay.store.schema import packaged_migrations
from relay.store.values import ReplayQuery
from tests.store.conftest import BACKENDS
from tests.store.factories import (
    NOW,
    OWNER,
    advance,
    at,
    attempt,
    make_account,
    only_delivery,
    pending,
    register,
)
from tests.store.test_subscriptions import subscribed


@pytest_asyncio.fixture
async def pg_url(tmp_path: Path) -> AsyncIterator[str]:
    async with BACKENDS["postgresql"](tmp_path) as url:
        yield url


@pytest_asyncio.fixture
async def pg(pg_url: str) -> AsyncIterator[Store]:
    s = open_store(pg_url)
    await s.migrate()
    yield s
    await s.close()


@pytest_asyncio.fixture
async def peer(pg: Store, pg_url: str) -> AsyncIterator[Store]:
    """Another instance on the same database."""
    s = open_store(pg_url)
    yield s
    await s.close()


@pytest_asyncio.fixture
async def alice(pg: Store) -> Account:
    return await make_account(pg, "alice")


class Heard:
    def __init__(self) -> None:
        self.kinds: list[str] = []
        self._changed = asyncio.Event()

    def __call__(self, kind: str) -> None:
        self.kinds.append(kind)
        self._changed.set()

    async def wait_for(self, *kinds: str) -> None:
        async with asyncio.timeout(5):
            while not set(kinds) <= set(self.kinds):
                self._changed.clear()
                await self._changed.wait()


async def terminate(url: str, only_listener: bool = False) -> int:
    """Drop a store's server connections, as a database restart does; how many."""
    name = conninfo_to_dict(url)["application_name"]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid() "
            "AND (NOT %s OR query LIKE 'LISTEN%%')",
            (name, only_listener),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


# --- wake-ups --------------------------------------------------------------------------------


async def test_listen_hears_the_work_another_instance_writes(
    pg: Store, peer: Store, alice: Account
) -> None:
    heard = Heard()
    await peer.listen(heard)
    await pending(pg, alice)  # a delivery due now
    await heard.wait_for("deliveries")
    # A registration with no delivery, polled later: a poller arms its timer for it.
    await register(pg, alice, created_at=at(seconds=1), next_poll_at=at(minutes=5))
    await heard.wait_for("polls")


async def test_redeliveries_and_replays_wake_the_others(
    pg: Store, peer: Store, alice: Account
) -> None:
    sub = await subscribed(pg, alice, event_types=frozenset(EventType))
    reg = await register(pg, alice, callback_url=None, next_poll_at=None)
    heard = Heard()
    await peer.listen(heard)
    assert await pg.redeliver(alice.id, reg.event.id, sub.id, at(seconds=1))
    await heard.wait_for("deliveries")
    heard.kinds.clear()
    assert await pg.replay(
        alice.id, sub.id, ReplayQuery(), at(seconds=2), after=None, limit=10
    ) == (1, None)
    await heard.wait_for("deliveries")


async def test_the_listener_comes_back_after_losing_its_connection(
    pg: Store, peer: Store, pg_url: str, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    heard = Heard()
    await peer.listen(heard)
    assert await terminate(pg_url, only_listener=True) == 1
    # Back, it wakes for everything: what was written while it was deaf is due now.
    await heard.wait_for("deliveries", "polls")
    assert "wake-up listener lost its connection" in caplog.text
    heard.kinds.clear()
    await pending(pg, alice)
    await heard.wait_for("deliveries")


# --- instances starting together -------------------------------------------------------------


async def test_instances_migrating_at_once_apply_each_migration_once(pg_url: str) -> None:
    stores = [open_store(pg_url) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(s.migrate() for s in stores))
        every = [version for version, _, _ in packaged_migrations("relay.store.postgres")]
        assert every[:4] == [1, 2, 3, 4]
        assert sorted(applied, key=len) == [[], [], every]
    finally:
        for s in stores:
            await s.close()


async def test_a_starting_instance_leaves_a_live_instance_s_leases(
    pg: Store, peer: Store, alice: Account
) -> None:
    reg = await register(pg, alice, events={EventType.TASK_QUEUED})
    [due] = await pg.claim_due_deliveries(NOW, 10, 30, "w1")
    assert [t.id for t in await pg.claim_due_polls(NOW, {"sandbox": 10}, 30, OWNER)] == [
        reg.task.id
    ]
    await peer.release_leases(NOW)  # what the app does at startup
    assert await peer.claim_due_deliveries(NOW, 10, 30, "w2") == []
    assert await peer.claim_due_polls(NOW, {"sandbox": 10}, 30, OWNER) == []
    await pg.release_leases(NOW)  # its own, it may
    assert await peer.claim_due_deliveries(NOW, 10, 30, "w2") == [due]


async def test_a_poll_lease_names_its_owner_until_saved_or_released(
    pg: Store, pg_url: str, alice: Account
) -> None:
    """The claim records which instance took each poll (``poll_lease_owner``, beside the
    store object that ``release_leases`` frees); saving the task or releasing the leases
    clears it with the lease."""
    first = (await register(pg, alice)).task
    second = (await register(pg, alice)).task

    async def owners() -> dict[object, object]:
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as c:
            return {
                row[0]: row[1] for row in await fetch(c, "SELECT id, poll_lease_owner FROM tasks")
            }

    assert await owners() == {first.id: None, second.id: None}
    claimed = await pg.claim_due_polls(NOW, {"sandbox": 10}, 30, "instance-a")
    assert {t.id for t in claimed} == {first.id, second.id}
    assert await owners() == {first.id: "instance-a", second.id: "instance-a"}
    await advance(pg, first, TaskStatus.RUNNING, at(seconds=1))
    assert await owners() == {first.id: None, second.id: "instance-a"}
    await pg.release_leases(NOW)
    assert await owners() == {first.id: None, second.id: None}


# --- a database that goes away ---------------------------------------------------------------


async def _until_it_works(call: Callable[[], Awaitable[object]]) -> int:
    """Failures before ``call`` succeeds (it must within a few seconds)."""
    failures = 0
    async with asyncio.timeout(10):
        while True:
            try:
                await call()
                return failures
            except StoreError:
                failures += 1
                await asyncio.sleep(0.05)


async def test_the_pool_recovers_when_the_database_drops_its_connections(
    pg: Store, pg_url: str, alice: Account
) -> None:
    reg = await pending(pg, alice)
    await asyncio.gather(*(pg.ping() for _ in range(4)))  # several pooled connections
    assert await terminate(pg_url) >= 1
    # At most the call that finds a connection broken fails; its failure has the pool
    # check the others, so the next call gets a working one.
    assert await _until_it_works(pg.ping) <= 1
    assert [d.event_id for d in await pg.claim_due_deliveries(NOW, 10, 30, "w1")] == [reg.event.id]


async def test_connections_idle_during_a_restart_are_checked_before_use(
    pg: Store, pg_url: str, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_runner, "IDLE_CHECK", 0.2)
    await asyncio.gather(*(pg.ping() for _ in range(4)))
    assert await terminate(pg_url) >= 1
    await asyncio.sleep(0.3)  # longer than IDLE_CHECK: nobody used them meanwhile
    assert await _until_it_works(pg.ping) == 0


async def test_an_operation_the_server_aborts_for_a_deadlock_runs_again(pg_url: str) -> None:
    """Two transactions take the same two rows in opposite orders: the server aborts one
    (after its deadlock_timeout), the runner runs it again, and both take effect once."""
    runner = postgres_runner.PgRunner(pg_url)
    await runner.run(
        lambda c: c.execute(
            b"CREATE TABLE pair (id int PRIMARY KEY, n int NOT NULL); "
            b"INSERT INTO pair VALUES (1, 0), (2, 0)"
        ),
        transaction=False,
    )
    holding = [asyncio.Event(), asyncio.Event()]
    tries = [0, 0]

    def take(first: int, second: int, me: int) -> Callable[[postgres_runner.Conn], Awaitable[None]]:
        async def fn(c: postgres_runner.Conn) -> None:
            tries[me] += 1
            await c.execute("UPDATE pair SET n = n + 1 WHERE id = %s", (first,))
            holding[me].set()
            await holding[1 - me].wait()  # both hold one row: each now wants the other's
            await c.execute("UPDATE pair SET n = n + 1 WHERE id = %s", (second,))

        return fn

    try:
        await asyncio.gather(runner.run(take(1, 2, 0)), runner.run(take(2, 1, 1)))
        rows = await runner.run(lambda c: fetch(c, "SELECT id, n FROM pair ORDER BY id"))
        assert rows == [(1, 2), (2, 2)], "each transaction applied once"
        assert sorted(tries) == [1, 2], "the aborted one ran again, the other once"
    finally:
        await runner.close()


async def test_an_operation_aborted_again_and_again_fails_with_store_error(pg_url: str) -> None:
    runner = postgres_runner.PgRunner(pg_url)
    calls = 0

    async def always(c: postgres_runner.Conn) -> None:
        nonlocal calls
        calls += 1
        raise psycopg.errors.SerializationFailure("could not serialize access")

    try:
        with pytest.raises(StoreError, match="could not serialize access"):
            await runner.run(always)
        assert calls == postgres_runner.CONFLICT_RETRIES + 1
    finally:
        await runner.close()


async def fetch(c: postgres_runner.Conn, query: str) -> list[tuple[object, ...]]:
    cur = await c.execute(query)
    return await cur.fetchall()


async def test_an_unreachable_database_raises_store_error_promptly() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"no connection within 0\.5 s"):
        await store.ping()
    assert time.monotonic() - started < 3
    with pytest.raises(StoreError, match="cannot listen"):
        await store.listen(lambda kind: None)
    await store.close()


# --- text PostgreSQL cannot hold -------------------------------------------------------------


async def test_a_response_body_with_nul_characters_is_recorded(
    pg: Store, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    reg = await pending(pg, alice)
    [due] = await pg.claim_due_deliveries(NOW, 10, 30, "w1")
    await pg.record_attempts(
        [attempt(due, NOW, 200, status=DeliveryStatus.SUCCEEDED, snippet="\x00\x01binary")], "w1"
    )
    view = await only_delivery(pg, alice, reg.event.id)
    assert view.attempts[0].response_snippet == "\ufffd\x01binary"
    await advance(pg, reg.task, TaskStatus.SUCCEEDED, at(seconds=1))
