"""The PostgreSQL store: several relay instances against one database.

Work is claimed with leases taken by one statement each (``FOR UPDATE SKIP LOCKED``), so two
instances never take the same poll or attempt while a lease holds, and a crashed instance's
leases simply expire. A write that creates due work tells the other instances at commit
(``NOTIFY relay_work``), and ``listen`` hears them. The semantics are SQLite's, statement for
statement (``relay.store.sqlite``); where PostgreSQL runs writers concurrently, row locks
stand in for SQLite's single writer (``relay.store.postgres_outbox`` says which and why).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from relay.errors import DuplicateTask
from relay.ids import new_id
from relay.models import (
    Account,
    Delivery,
    Destination,
    DueDelivery,
    Event,
    Task,
    utc,
)
from relay.store import codec
from relay.store.codec import (
    ACCOUNT_COLUMNS,
    ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS,
    EVENT_COLUMNS,
    TASK_COLUMNS,
    ts,
)
from relay.store.interface import (
    AttemptRecord,
    DeliveryView,
    EventQuery,
    Page,
    TaskQuery,
)
from relay.store.postgres_metrics import MetricsMixin
from relay.store.postgres_outbox import (
    CLAIM_DELIVERIES,
    DESTINATION_COLUMNS,
    LOCK_SUBSCRIPTIONS,
    NO_SYNC,
    RECORD_ATTEMPTS,
    NewDelivery,
    claimed_delivery,
    destination,
    disable_in,
    fetch_all,
    fetch_one,
    insert_deliveries,
    notify,
    read_destinations,
    write_events,
)
from relay.store.postgres_retention import RetentionMixin
from relay.store.postgres_runner import Conn, Listener, PgRunner
from relay.store.postgres_subscriptions import SubscriptionsMixin
from relay.transitions import Change

_INSERT_TASK = (
    f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES (%(id)s, %(account_id)s, %(provider)s, "
    "%(provider_task_id)s, %(status)s, %(reference)s, %(version)s, %(sequence)s, %(data)s, "
    "%(created_at)s, %(updated_at)s, %(next_poll_at)s) "
    "ON CONFLICT (provider, provider_task_id) DO NOTHING RETURNING pk"
)

_SAVE_TASK = (
    "UPDATE tasks SET provider_task_id = %(provider_task_id)s, status = %(status)s, "
    "version = %(version)s, sequence = %(sequence)s, data = %(data)s, "
    "updated_at = %(updated_at)s, next_poll_at = %(next_poll_at)s, poll_lease_until = NULL, "
    "poll_lease_holder = NULL WHERE id = %(id)s AND version = %(expected)s RETURNING pk"
)

_CLAIM_POLLS = (
    f"WITH {NO_SYNC}, due AS MATERIALIZED (SELECT pk FROM tasks, no_sync "
    "WHERE next_poll_at <= %(now)s "
    "AND (poll_lease_until IS NULL OR poll_lease_until < %(now)s) "
    "ORDER BY next_poll_at, pk LIMIT %(limit)s FOR UPDATE OF tasks SKIP LOCKED), "
    "claimed AS (UPDATE tasks SET poll_lease_until = %(until)s, poll_lease_holder = %(holder)s "
    f"WHERE pk = ANY(ARRAY(SELECT pk FROM due)) RETURNING pk, {TASK_COLUMNS}) "
    f"SELECT {TASK_COLUMNS} FROM claimed ORDER BY next_poll_at, pk"
)


def _polls_due(task: Task) -> bool:
    """Saved with its next poll due at once (a refresh asked for): another instance may take
    it. A poll scheduled later is the saving instance's own timer's, or the next tick's."""
    return task.next_poll_at is not None and task.next_poll_at <= task.updated_at


class PostgresStore(SubscriptionsMixin, RetentionMixin, MetricsMixin):
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
        await self._db.run(lambda c: c.execute("SELECT 1"), transaction=False)

    async def listen(self, on_work: Callable[[str], None]) -> None:
        listener = Listener(self._db.conninfo, on_work)
        await listener.start()
        self._listeners.append(listener)

    async def secret_key(self) -> str:
        async def get(c: Conn) -> str:
            # The update of a conflicting row returns the value kept, whoever wrote it.
            row = await fetch_one(
                c,
                "INSERT INTO meta (key, value) VALUES ('secret_key', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = meta.value "
                "RETURNING value",
                (secrets.token_urlsafe(32),),
            )
            assert row is not None
            return str(row[0])

        return await self._db.run(get, transaction=False)

    # accounts

    async def create_account(self, account: Account, key_hash: str, callback_secret: str) -> None:
        async def insert(c: Conn) -> None:
            await c.execute(
                "INSERT INTO accounts (id, name, callback_secret, created_at) "
                "VALUES (%s, %s, %s, %s)",
                (account.id, account.name, callback_secret, ts(account.created_at)),
            )
            await c.execute(
                "INSERT INTO api_keys (key_hash, account_id, created_at) VALUES (%s, %s, %s)",
                (key_hash, account.id, ts(account.created_at)),
            )

        await self._db.run(insert)

    async def account_by_key_hash(self, key_hash: str) -> Account | None:
        async def get(c: Conn) -> Account | None:
            row = await fetch_one(
                c,
                f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = "
                "(SELECT account_id FROM api_keys WHERE key_hash = %s)",
                (key_hash,),
            )
            return codec.account_from_row(row) if row else None

        return await self._db.run(get, transaction=False)

    async def callback_secret(self, account_id: str) -> str | None:
        async def get(c: Conn) -> str | None:
            row = await fetch_one(
                c, "SELECT callback_secret FROM accounts WHERE id = %s", (account_id,)
            )
            return str(row[0]) if row else None

        return await self._db.run(get, transaction=False)

    # tasks

    async def create_task(self, change: Change, callback: Destination | None) -> None:
        t = change.task

        async def insert(c: Conn) -> None:
            # Sent together: a duplicate rolls all of it back. ON CONFLICT waits for a
            # concurrent registration of the same provider task to commit, then yields to
            # it: exactly one gets in, and the other learns whose it is.
            inserted = await c.execute(_INSERT_TASK, codec.task_params(t))
            if callback is not None:
                await c.execute(
                    f"INSERT INTO destinations ({DESTINATION_COLUMNS}, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        callback.id,
                        callback.account_id,
                        callback.kind,
                        callback.url,
                        callback.key,
                        codec.event_types_json(callback.event_types),
                        callback.task_id,
                        callback.secret,
                        ts(t.created_at),
                    ),
                )
            destinations = await read_destinations(c, change.events)
            if await inserted.fetchone() is None:
                row = await fetch_one(
                    c,
                    "SELECT id, account_id FROM tasks WHERE provider = %s "
                    "AND provider_task_id = %s",
                    (t.provider, t.provider_task_id),
                )
                raise DuplicateTask(row[0] if row and row[1] == t.account_id else None)
            # A registration wakes the pollers even for a poll due later: one of them arms
            # its timer for it (an instance serving only the API polls nothing itself).
            await write_events(c, change.events, destinations, polls=t.next_poll_at is not None)

        await self._db.run(insert, pipeline=True)

    async def save_task(self, change: Change, expected_version: int) -> bool:
        params = codec.task_params(change.task)
        params["expected"] = expected_version
        params["version"] = expected_version + 1

        async def update(c: Conn) -> bool:
            updated = await c.execute(_SAVE_TASK, params)
            destinations = await read_destinations(c, change.events) if change.events else None
            if await updated.fetchone() is None:
                return False
            if destinations is not None:
                await write_events(c, change.events, destinations, polls=_polls_due(change.task))
            elif _polls_due(change.task):
                await notify(c, "polls")
            return True

        # A poll that changed nothing writes one row: one statement, no transaction.
        alone = not change.events and not _polls_due(change.task)
        return await self._db.run(update, transaction=not alone, pipeline=not alone)

    async def get_task(self, account_id: str, task_id: str) -> Task | None:
        async def get(c: Conn) -> Task | None:
            row = await fetch_one(
                c,
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = %s AND account_id = %s",
                (task_id, account_id),
            )
            return codec.task_from_row(row) if row else None

        return await self._db.run(get, transaction=False)

    async def list_tasks(self, account_id: str, query: TaskQuery) -> Page[Task]:
        where, params = ["account_id = %s"], [account_id]
        for column, value in (
            ("status", query.status),
            ("provider", query.provider),
            ("reference", query.reference),
        ):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        rows = await self._db.run(
            lambda c: _page(
                c,
                "tasks",
                f"pk, {TASK_COLUMNS}",
                where,
                params,
                query.after,
                query.limit,
                query.order,
            ),
            transaction=False,
        )
        return _paged(rows, query.limit, codec.task_from_row)

    async def claim_due_polls(self, now: datetime, limit: int, lease_seconds: float) -> list[Task]:
        t = now.timestamp()
        self._leased = True
        rows = await self._db.run(
            lambda c: fetch_all(
                c,
                _CLAIM_POLLS,
                {"now": t, "limit": limit, "until": t + lease_seconds, "holder": self._holder},
            ),
            transaction=False,
        )
        return [codec.task_from_row(r) for r in rows]

    async def next_poll_at(self, after: datetime) -> datetime | None:
        row = await self._db.run(
            lambda c: fetch_one(
                c,
                "SELECT min(next_poll_at) FROM tasks WHERE next_poll_at > %s",
                (after.timestamp(),),
            ),
            transaction=False,
        )
        return codec.dt(row[0] if row else None)

    # events

    async def get_event(self, account_id: str, event_id: str) -> Event | None:
        async def get(c: Conn) -> Event | None:
            row = await fetch_one(
                c,
                f"SELECT {EVENT_COLUMNS} FROM events WHERE id = %s AND account_id = %s",
                (event_id, account_id),
            )
            return codec.event_from_row(row) if row else None

        return await self._db.run(get, transaction=False)

    async def list_events(self, account_id: str, query: EventQuery) -> Page[Event]:
        where: list[str] = ["account_id = %s"]
        params: list[Any] = [account_id]
        if query.type is not None:
            where.append("type = %s")
            params.append(query.type.value)
        if query.task_id is not None:
            where.append("task_id = %s")
            params.append(query.task_id)
        if query.since is not None:
            where.append("created_at >= %s")
            params.append(query.since.timestamp())
        if query.until is not None:
            where.append("created_at < %s")
            params.append(query.until.timestamp())
        if query.delivery_status is not None:
            where.append(
                "pk IN (SELECT event_pk FROM deliveries WHERE account_id = %s AND status = %s)"
            )
            params += [account_id, query.delivery_status.value]
        rows = await self._db.run(
            lambda c: _page(
                c,
                "events",
                f"pk, {EVENT_COLUMNS}",
                where,
                params,
                query.after,
                query.limit,
                query.order,
            ),
            transaction=False,
        )
        return _paged(rows, query.limit, codec.event_from_row)

    async def event_deliveries(self, account_id: str, event_id: str) -> list[DeliveryView]:
        async def get(c: Conn) -> list[DeliveryView]:
            rows = await fetch_all(
                c,
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN events e "
                "ON e.pk = d.event_pk WHERE e.id = %s AND e.account_id = %s ORDER BY d.pk",
                (event_id, account_id),
            )
            deliveries = [(row[0], codec.delivery_from_row(row)) for row in rows]
            attempts = await fetch_all(
                c,
                f"SELECT delivery_pk, {ATTEMPT_COLUMNS} FROM attempts "
                "WHERE delivery_pk = ANY(%b::bigint[]) ORDER BY pk",
                ([pk for pk, _ in deliveries],),
            )
            return [
                DeliveryView(
                    d, [codec.attempt_from_row(d.id, a[1:]) for a in attempts if a[0] == pk]
                )
                for pk, d in deliveries
            ]

        # Two statements that must agree: one snapshot.
        return await self._db.run(get)

    async def redeliver(
        self, account_id: str, event_id: str, destination_id: str | None, now: datetime
    ) -> list[Delivery]:
        async def insert(c: Conn) -> list[Delivery]:
            event = await fetch_one(
                c,
                "SELECT pk, task_id FROM events WHERE id = %s AND account_id = %s",
                (event_id, account_id),
            )
            if event is None:
                return []
            # Disabled and deleted subscriptions are not sent to (enable one to resume).
            one = "" if destination_id is None else "AND id = %(one)s "
            rows = await fetch_all(
                c,
                f"SELECT {DESTINATION_COLUMNS} FROM destinations WHERE id IN "
                "(SELECT destination_id FROM deliveries WHERE event_pk = %(event)s) "
                f"AND status = 'active' {one}ORDER BY id FOR KEY SHARE",
                {"event": event[0], "one": destination_id},
            )
            return await insert_deliveries(
                c,
                [
                    NewDelivery(event[0], event_id, d.account_id, d.id, d.key, d.url, event[1])
                    for d in map(destination, rows)
                ],
                now,
            )

        return await self._db.run(insert)

    # deliveries

    async def claim_due_deliveries(
        self,
        now: datetime,
        limit: int,
        lease_seconds: float,
        owner: str,
        *,
        in_flight: Mapping[str, int] | None = None,
        per_destination: int | None = None,
    ) -> list[DueDelivery]:
        t = now.timestamp()
        cap = per_destination if per_destination is not None else limit
        room = {k: cap - n for k, n in (in_flight or {}).items()}
        # Look a little past the limit, so one destination's backlog at the head of the
        # queue does not hide the others' due work from this claim (as SQLite does).
        window = limit if per_destination is None else limit * 4
        self._leased = True
        rows = await self._db.run(
            lambda c: fetch_all(
                c,
                CLAIM_DELIVERIES,
                {
                    "now": t,
                    "full": [k for k, n in room.items() if n <= 0],
                    "window": window,
                    "keys": list(room),
                    "rooms": list(room.values()),
                    "cap": cap,
                    "limit": limit,
                    "owner": owner,
                    "until": t + lease_seconds,
                    "holder": self._holder,
                },
            ),
            transaction=False,
        )
        return [claimed_delivery(r, now) for r in rows]

    async def record_attempts(self, records: Sequence[AttemptRecord], owner: str) -> None:
        if not records:
            return
        params = {
            "pk": [r.delivery_pk for r in records],
            "number": [r.attempt.number for r in records],
            "started": [ts(r.attempt.started_at) for r in records],
            "latency": [r.attempt.latency_ms for r in records],
            "outcome": [_text(r.attempt.outcome) for r in records],
            "code": [r.attempt.status_code for r in records],
            "error": [_text(r.attempt.error) for r in records],
            "snippet": [_text(r.attempt.response_snippet) for r in records],
            "status": [r.status.value for r in records],
            "next": [ts(r.next_attempt_at) for r in records],
            "owner": owner,
        }

        async def write(c: Conn) -> None:
            # Bookkeeping: see NO_SYNC. The subscriptions first, then the record, fenced by
            # lease owner and attempt number: see LOCK_SUBSCRIPTIONS and RECORD_ATTEMPTS.
            await c.execute("SET LOCAL synchronous_commit = off")
            await c.execute(LOCK_SUBSCRIPTIONS, params)
            for sub_id, account_id, at in await fetch_all(c, RECORD_ATTEMPTS, params):
                await disable_in(c, sub_id, "the receiver answered 410 Gone", utc(at), account_id)

        # Pipelined: the statements go out together, one round trip until the commit.
        await self._db.run(write, pipeline=True)

    async def next_delivery_at(self, after: datetime) -> datetime | None:
        row = await self._db.run(
            lambda c: fetch_one(
                c,
                "SELECT min(next_attempt_at) FROM deliveries WHERE next_attempt_at > %s",
                (after.timestamp(),),
            ),
            transaction=False,
        )
        return codec.dt(row[0] if row else None)

    async def release_leases(self) -> None:
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
            await c.execute(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL, "
                "lease_holder = NULL WHERE lease_holder = %s",
                (self._holder,),
            )
            await c.execute(
                "UPDATE tasks SET poll_lease_until = NULL, poll_lease_holder = "
                "NULL WHERE poll_lease_holder = %s",
                (self._holder,),
            )

        await self._db.run(release)


def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL, which a receiver's response body may contain."""
    return value.replace("\x00", "\ufffd") if value else value


async def _page(
    c: Conn,
    table: str,
    columns: str,
    where: list[str],
    params: list[Any],
    after: int | None,
    limit: int,
    order: str,
) -> list[tuple[Any, ...]]:
    # Filter columns and the table name are fixed strings of this module, never input.
    if after is not None:
        where = [*where, "pk < %s" if order == "desc" else "pk > %s"]
        params = [*params, after]
    direction = "DESC" if order == "desc" else "ASC"
    return await fetch_all(
        c,
        f"SELECT {columns} FROM {table} WHERE {' AND '.join(where)} "
        f"ORDER BY pk {direction} LIMIT %s",
        [*params, limit + 1],
    )


def _paged(rows: list[Any], limit: int, decode: Any) -> Page[Any]:
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        items=[decode(r[1:]) for r in rows], next_after=rows[-1][0] if more and rows else None
    )
