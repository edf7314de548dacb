"""``PostgresStore``: several relay instances against one database. This module holds its
lifecycle, tasks and polls; its mixins hold the rest (``accounts`` and keys, ``events``,
``deliveries``, ``subscriptions``, ``idempotency``, ``submissions``, output ``copies``,
``metrics``, ``retention``).

Work is claimed with leases taken by one statement each (``FOR UPDATE SKIP LOCKED``), so two
instances never take the same poll or attempt while a lease holds, and a crashed instance's
leases simply expire. A write that creates due work tells the other instances at commit
(``NOTIFY relay_work``), and ``listen`` hears them. The semantics are SQLite's, statement for
statement; where PostgreSQL runs writers concurrently, row locks stand in for SQLite's single
writer (``relay.store.postgres.outbox`` says which and why).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from relay.errors import DuplicateTask
from relay.ids import new_id
from relay.models import Destination, Task
from relay.store import codec
from relay.store.codec import ts
from relay.store.named_sql import load_queries
from relay.store.postgres.accounts import AccountsMixin
from relay.store.postgres.announce import AnnounceMixin
from relay.store.postgres.copies import CopiesMixin
from relay.store.postgres.deliveries import DeliveriesMixin
from relay.store.postgres.events import EventsMixin
from relay.store.postgres.idempotency import IdempotencyMixin, keep_answer
from relay.store.postgres.metrics import MetricsMixin
from relay.store.postgres.outbox import (
    fetch_all,
    fetch_one,
    read_destinations,
    wake_pollers,
    write_copies,
    write_events,
)
from relay.store.postgres.overview import OverviewMixin
from relay.store.postgres.retention import RetentionMixin
from relay.store.postgres.runner import Conn, Listener, PgRunner
from relay.store.postgres.streams import StreamsMixin
from relay.store.postgres.submissions import SubmissionsMixin, accept_submission
from relay.store.postgres.subscriptions import SubscriptionsMixin
from relay.store.postgres.usage import UsageMixin
from relay.store.values import KeyAnswer, Page, TaskQuery
from relay.transitions import Change

QUERIES = load_queries("relay.store.postgres")


async def _save(c: Conn, change: Change, expected_version: int) -> bool:
    params = codec.task_params(change.task)
    params["expected"] = expected_version
    params["version"] = expected_version + 1
    updated = await c.execute(QUERIES["save_task"], params)
    destinations = await read_destinations(c, change.events) if change.events else None
    if await updated.fetchone() is None:
        return False
    if destinations is not None:
        await write_events(c, change.events, destinations, polls=_polls_due(change.task))
    elif _polls_due(change.task):
        await wake_pollers(c)
    await write_copies(c, change.copies)
    return True


def _polls_due(task: Task) -> bool:
    """Saved with its next poll due at once (a refresh asked for): another instance may take
    it. A poll scheduled later is the saving instance's own timer's, or the next tick's."""
    return task.next_poll_at is not None and task.next_poll_at <= task.updated_at


class PostgresStore(
    AnnounceMixin,
    AccountsMixin,
    SubscriptionsMixin,
    EventsMixin,
    DeliveriesMixin,
    IdempotencyMixin,
    SubmissionsMixin,
    CopiesMixin,
    RetentionMixin,
    MetricsMixin,
    OverviewMixin,
    StreamsMixin,
    UsageMixin,
):
    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        """``url``: ``postgresql://user:password@host:port/database?param=value`` (libpq's
        parameters; ``options=-csearch_path%3Dschema`` picks a schema). ``timeout``: how
        long a call waits for a connection before raising ``StoreError``."""
        self._db = PgRunner(url, timeout=timeout)
        self._holder = new_id("store")
        """Names the leases this store object took (``release_leases``)."""
        self._leased = False
        self._listeners: list[Listener] = []

    async def migrate(self) -> list[int]:
        return await self._db.migrate()

    async def close(self) -> None:
        for listener in self._listeners:
            await listener.close()
        self._listeners.clear()
        await self._db.close()

    async def ping(self) -> None:
        await self._db.run(lambda c: c.execute(QUERIES["ping"]), transaction=False)

    async def probe_write(self, now: datetime) -> None:
        await self._db.run(
            lambda c: c.execute(QUERIES["probe_write"], {"value": now.isoformat()}),
            transaction=False,
        )

    async def listen(self, on_work: Callable[[str], None]) -> None:
        listener = Listener(self._db.conninfo, on_work)
        await listener.start()
        self._listeners.append(listener)

    async def secret_key(self) -> str:
        async def get(c: Conn) -> str:
            row = await fetch_one(c, QUERIES["secret_key"], {"value": secrets.token_urlsafe(32)})
            assert row is not None
            return str(row[0])

        return await self._db.run(get, transaction=False)

    # accounts and keys: AccountsMixin (besides the callback secret)

    async def callback_secret(self, account_id: str) -> str | None:
        async def get(c: Conn) -> str | None:
            row = await fetch_one(c, QUERIES["callback_secret"], {"account_id": account_id})
            return str(row[0]) if row else None

        return await self._db.run(get, transaction=False)

    # tasks

    async def create_task(
        self,
        change: Change,
        callback: Destination | None,
        submission: str | None = None,
        answer: KeyAnswer | None = None,
    ) -> None:
        t = change.task

        async def insert(c: Conn) -> None:
            # Sent together: a duplicate rolls all of it back (see insert_task).
            inserted = await c.execute(QUERIES["insert_task"], codec.task_params(t))
            if callback is not None:
                await c.execute(
                    QUERIES["insert_callback"],
                    {
                        "id": callback.id,
                        "account_id": callback.account_id,
                        "kind": callback.kind,
                        "url": callback.url,
                        "key": callback.key,
                        "event_types": codec.event_types_json(callback.event_types),
                        "task_id": callback.task_id,
                        "secret": callback.secret,
                        "body_format": callback.body_format,
                        "created_at": ts(t.created_at),
                    },
                )
            destinations = await read_destinations(c, change.events)
            if await inserted.fetchone() is None:
                row = await fetch_one(
                    c,
                    QUERIES["task_by_provider_id"],
                    {"provider": t.provider, "provider_task_id": t.provider_task_id},
                )
                raise DuplicateTask(row[0] if row and row[1] == t.account_id else None)
            if submission is not None:
                await accept_submission(c, submission, t.provider_task_id, t.updated_at)
            if answer is not None:
                await keep_answer(c, answer)
            # A registration wakes the pollers even for a poll due later: one of them arms
            # its timer for it (an instance serving only the API polls nothing itself).
            await write_events(c, change.events, destinations, polls=t.next_poll_at is not None)
            await write_copies(c, change.copies)

        await self._db.run(insert, pipeline=True)

    async def save_task(self, change: Change, expected_version: int) -> bool:
        # A poll that changed nothing writes one row: one statement, no transaction.
        alone = not change.events and not change.copies and not _polls_due(change.task)
        return await self._db.run(
            lambda c: _save(c, change, expected_version),
            transaction=not alone,
            pipeline=not alone,
        )

    async def save_tasks(self, saves: Sequence[tuple[Change, int]]) -> list[bool]:
        # In one order (task ids) in every transaction: two batches that share tasks (a
        # refresh's save beside a poll's) wait for each other instead of deadlocking.
        order = sorted(range(len(saves)), key=lambda i: saves[i][0].task.id)

        async def update(c: Conn) -> list[bool]:
            saved = [False] * len(saves)
            for i in order:
                saved[i] = await _save(c, *saves[i])
            return saved

        return await self._db.run(update, pipeline=True)

    async def move_task(self, change: Change, expected_version: int, submission: str) -> bool:
        t = change.task
        params = codec.task_params(t)
        params["expected"] = expected_version
        params["version"] = expected_version + 1

        async def move(c: Conn) -> bool:
            row = await fetch_one(
                c,
                QUERIES["task_by_provider_id"],
                {"provider": t.provider, "provider_task_id": t.provider_task_id},
            )
            if row is not None:
                raise DuplicateTask(row[0] if row[1] == t.account_id else None)
            if await fetch_one(c, QUERIES["save_task"], params) is None:
                return False
            await accept_submission(c, submission, t.provider_task_id, t.updated_at)
            destinations = await read_destinations(c, change.events)
            await write_events(c, change.events, destinations, polls=t.next_poll_at is not None)
            await write_copies(c, change.copies)
            return True

        return await self._db.run(move)

    async def get_task(self, account_id: str, task_id: str) -> Task | None:
        async def get(c: Conn) -> Task | None:
            row = await fetch_one(
                c, QUERIES["get_task"], {"task_id": task_id, "account_id": account_id}
            )
            return codec.task_from_row(row) if row else None

        return await self._db.run(get, transaction=False)

    async def list_tasks(self, account_id: str, query: TaskQuery) -> Page[Task]:
        params = {
            "account_id": account_id,
            "status": query.status,
            "provider": query.provider,
            "reference": query.reference,
            "after": query.after,
            "limit": query.limit + 1,
        }
        sql = QUERIES["list_tasks_desc"] if query.order == "desc" else QUERIES["list_tasks_asc"]
        # Unprepared: planned with the filters given (see the top of queries.sql).
        rows = await self._db.run(
            lambda c: fetch_all(c, sql, params, prepare=False), transaction=False
        )
        return codec.paged(rows, query.limit, codec.task_from_row)

    async def claim_due_polls(
        self, now: datetime, limits: Mapping[str, int], lease_seconds: float, owner: str
    ) -> list[Task]:
        t = now.timestamp()
        self._leased = True

        async def claim(c: Conn) -> list[Task]:
            tasks = []
            for provider, limit in limits.items():
                rows = await fetch_all(
                    c,
                    QUERIES["claim_due_polls"],
                    {
                        "provider": provider,
                        "now": t,
                        "limit": limit,
                        "until": t + lease_seconds,
                        "owner": owner,
                        "holder": self._holder,
                    },
                )
                tasks += [codec.task_from_row(r) for r in rows]
            return tasks

        # One transaction: a claim that fails part way (or is run again after a deadlock)
        # leaves no provider's rows leased and never polled.
        return await self._db.run(claim)

    async def release_polls(self, task_ids: Sequence[str], owner: str, now: datetime) -> None:
        params = {"ids": list(task_ids), "owner": owner, "now": now.timestamp()}

        async def release(c: Conn) -> None:
            await c.execute(QUERIES["release_polls"], params)
            await wake_pollers(c)  # the other instances take them now, not at their tick

        await self._db.run(release)

    async def polled_providers(self) -> set[str]:
        rows = await self._db.run(
            lambda c: fetch_all(c, QUERIES["polled_providers"], {}), transaction=False
        )
        return {str(r[0]) for r in rows}

    async def next_poll_at(self, after: datetime) -> datetime | None:
        row = await self._db.run(
            lambda c: fetch_one(c, QUERIES["next_poll_at"], {"after": after.timestamp()}),
            transaction=False,
        )
        return codec.dt(row[0] if row else None)

    async def release_leases(self, now: datetime) -> None:
        """Forget the leases this store object took, and no others.

        SQLite serves one instance, so every lease there is its own (or a killed
        predecessor's) and it forgets them all. Here several instances share the database:
        a starting instance must not take work another live instance is doing, and it
        cannot tell a live instance's lease from a crashed one's, so it leaves them to
        expire (the app's lease outlasts any attempt). A fresh store has taken no lease,
        which makes this a no-op at startup, where the app calls it."""
        if not self._leased:
            return

        async def release(c: Conn) -> None:
            await c.execute(QUERIES["release_delivery_leases"], {"holder": self._holder})
            await c.execute(
                QUERIES["release_poll_leases"], {"holder": self._holder, "now": now.timestamp()}
            )
            await c.execute(QUERIES["release_copy_leases"], {"holder": self._holder})

        await self._db.run(release)
