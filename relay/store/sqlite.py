"""The SQLite store: the embedded default, for one relay instance (WAL mode)."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from relay.errors import DuplicateTask, StoreError
from relay.ids import new_id
from relay.models import (
    Account,
    Delivery,
    DeliveryStatus,
    Destination,
    DueDelivery,
    Event,
    Task,
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
from relay.store.sqlite_metrics import MetricsMixin
from relay.store.sqlite_retention import RetentionMixin
from relay.store.sqlite_runner import SqliteRunner, migrate
from relay.store.sqlite_subscriptions import (
    ATTEMPT_BATCH,
    SubscriptionsMixin,
    note_destination_health,
    signing_secrets,
)
from relay.transitions import Change, fan_out

_DESTINATION_COLUMNS = "id, account_id, kind, url, key, event_types, task_id, secret"


def _destination(row: Sequence[Any]) -> Destination:
    return Destination(
        id=row[0],
        account_id=row[1],
        kind=row[2],
        url=row[3],
        key=row[4],
        event_types=codec.event_types_from(row[5]),
        task_id=row[6],
        secret=row[7],
    )


MIN_SQLITE = (3, 35, 0)
"""UPDATE … RETURNING and UPDATE … FROM, which the claims and the batched writes use."""


class SqliteStore(SubscriptionsMixin, RetentionMixin, MetricsMixin):
    def __init__(self, path: str) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} is too old: the relay needs "
                f"{'.'.join(map(str, MIN_SQLITE))} or newer"
            )
        try:
            self._db = SqliteRunner(path)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {path!r}: {exc}") from exc

    async def migrate(self) -> list[int]:
        return await self._db.write_untransacted(migrate)

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        await self._db.read(lambda c: c.execute("SELECT 1").fetchone())

    async def listen(self, on_work: Callable[[str], None]) -> None:
        """Nothing to hear: SQLite serves one instance, which wakes itself."""

    async def secret_key(self) -> str:
        def get(c: sqlite3.Connection) -> str:
            c.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('secret_key', ?)",
                (secrets.token_urlsafe(32),),
            )
            return str(c.execute("SELECT value FROM meta WHERE key = 'secret_key'").fetchone()[0])

        return await self._db.write(get)

    # accounts

    async def create_account(self, account: Account, key_hash: str, callback_secret: str) -> None:
        def insert(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO accounts (id, name, callback_secret, created_at) VALUES (?, ?, ?, ?)",
                (account.id, account.name, callback_secret, ts(account.created_at)),
            )
            c.execute(
                "INSERT INTO api_keys (key_hash, account_id, created_at) VALUES (?, ?, ?)",
                (key_hash, account.id, ts(account.created_at)),
            )

        await self._db.write(insert)

    async def account_by_key_hash(self, key_hash: str) -> Account | None:
        def get(c: sqlite3.Connection) -> Account | None:
            row = c.execute(
                f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = "
                "(SELECT account_id FROM api_keys WHERE key_hash = ?)",
                (key_hash,),
            ).fetchone()
            return codec.account_from_row(row) if row else None

        return await self._db.read(get)

    async def callback_secret(self, account_id: str) -> str | None:
        def get(c: sqlite3.Connection) -> str | None:
            row = c.execute(
                "SELECT callback_secret FROM accounts WHERE id = ?", (account_id,)
            ).fetchone()
            return str(row[0]) if row else None

        return await self._db.read(get)

    # tasks

    async def create_task(self, change: Change, callback: Destination | None) -> None:
        def insert(c: sqlite3.Connection) -> None:
            t = change.task
            existing = c.execute(
                "SELECT id, account_id FROM tasks WHERE provider = ? AND provider_task_id = ?",
                (t.provider, t.provider_task_id),
            ).fetchone()
            if existing:
                raise DuplicateTask(existing[0] if existing[1] == t.account_id else None)
            c.execute(
                f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES (:id, :account_id, :provider, "
                ":provider_task_id, :status, :reference, :version, :sequence, :data, "
                ":created_at, :updated_at, :next_poll_at)",
                codec.task_params(t),
            )
            if callback is not None:
                c.execute(
                    f"INSERT INTO destinations ({_DESTINATION_COLUMNS}, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            _write_events(c, change.events)

        await self._db.write(insert)

    async def save_task(self, change: Change, expected_version: int) -> bool:
        def update(c: sqlite3.Connection) -> bool:
            params = codec.task_params(change.task)
            params["expected"] = expected_version
            params["version"] = expected_version + 1
            cur = c.execute(
                "UPDATE tasks SET provider_task_id = :provider_task_id, status = :status, "
                "version = :version, sequence = :sequence, data = :data, "
                "updated_at = :updated_at, next_poll_at = :next_poll_at, "
                "poll_lease_until = NULL WHERE id = :id AND version = :expected",
                params,
            )
            if cur.rowcount != 1:
                return False
            _write_events(c, change.events)
            return True

        return await self._db.write(update)

    async def get_task(self, account_id: str, task_id: str) -> Task | None:
        def get(c: sqlite3.Connection) -> Task | None:
            row = c.execute(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ? AND account_id = ?",
                (task_id, account_id),
            ).fetchone()
            return codec.task_from_row(row) if row else None

        return await self._db.read(get)

    async def list_tasks(self, account_id: str, query: TaskQuery) -> Page[Task]:
        where, params = ["account_id = ?"], [account_id]
        for column, value in (
            ("status", query.status),
            ("provider", query.provider),
            ("reference", query.reference),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = await self._db.read(
            lambda c: _page(
                c,
                "tasks",
                f"pk, {TASK_COLUMNS}",
                where,
                params,
                query.after,
                query.limit,
                query.order,
            )
        )
        return _paged(rows, query.limit, codec.task_from_row)

    async def claim_due_polls(self, now: datetime, limit: int, lease_seconds: float) -> list[Task]:
        t = now.timestamp()

        def claim(c: sqlite3.Connection) -> list[Task]:
            rows = c.execute(
                f"UPDATE tasks SET poll_lease_until = ? WHERE pk IN (SELECT pk FROM tasks "
                "WHERE next_poll_at <= ? AND (poll_lease_until IS NULL OR poll_lease_until < ?) "
                f"ORDER BY next_poll_at LIMIT ?) RETURNING {TASK_COLUMNS}",
                (t + lease_seconds, t, t, limit),
            ).fetchall()
            return [codec.task_from_row(r) for r in rows]

        return await self._db.write(claim)

    async def next_poll_at(self, after: datetime) -> datetime | None:
        # An index seek, not a scan: this runs after every dispatch pass.
        def get(c: sqlite3.Connection) -> float | None:
            row = c.execute(
                "SELECT min(next_poll_at) FROM tasks WHERE next_poll_at > ?", (after.timestamp(),)
            ).fetchone()
            return row[0] if row else None

        return codec.dt(await self._db.read(get))

    # events

    async def get_event(self, account_id: str, event_id: str) -> Event | None:
        def get(c: sqlite3.Connection) -> Event | None:
            row = c.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ? AND account_id = ?",
                (event_id, account_id),
            ).fetchone()
            return codec.event_from_row(row) if row else None

        return await self._db.read(get)

    async def list_events(self, account_id: str, query: EventQuery) -> Page[Event]:
        where: list[str] = ["account_id = ?"]
        params: list[Any] = [account_id]
        if query.type is not None:
            where.append("type = ?")
            params.append(query.type.value)
        if query.task_id is not None:
            where.append("task_id = ?")
            params.append(query.task_id)
        if query.since is not None:
            where.append("created_at >= ?")
            params.append(query.since.timestamp())
        if query.until is not None:
            where.append("created_at < ?")
            params.append(query.until.timestamp())
        if query.delivery_status is not None:
            where.append(
                "pk IN (SELECT event_pk FROM deliveries WHERE account_id = ? AND status = ?)"
            )
            params += [account_id, query.delivery_status.value]
        rows = await self._db.read(
            lambda c: _page(
                c,
                "events",
                f"pk, {EVENT_COLUMNS}",
                where,
                params,
                query.after,
                query.limit,
                query.order,
            )
        )
        return _paged(rows, query.limit, codec.event_from_row)

    async def event_deliveries(self, account_id: str, event_id: str) -> list[DeliveryView]:
        def get(c: sqlite3.Connection) -> list[DeliveryView]:
            rows = c.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.pk = d.event_pk "
                "WHERE e.id = ? AND e.account_id = ? ORDER BY d.pk",
                (event_id, account_id),
            ).fetchall()
            views = []
            for row in rows:
                delivery = codec.delivery_from_row(row)
                attempts = c.execute(
                    f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_pk = ? ORDER BY pk",
                    (row[0],),
                ).fetchall()
                views.append(
                    DeliveryView(
                        delivery, [codec.attempt_from_row(delivery.id, a) for a in attempts]
                    )
                )
            return views

        return await self._db.read(get)

    async def redeliver(
        self, account_id: str, event_id: str, destination_id: str | None, now: datetime
    ) -> list[Delivery]:
        def insert(c: sqlite3.Connection) -> list[Delivery]:
            event = c.execute(
                "SELECT pk, task_id FROM events WHERE id = ? AND account_id = ?",
                (event_id, account_id),
            ).fetchone()
            if event is None:
                return []
            # Disabled and deleted subscriptions are not sent to (enable one to resume).
            rows = c.execute(
                f"SELECT {_DESTINATION_COLUMNS} FROM destinations WHERE id IN "
                "(SELECT destination_id FROM deliveries WHERE event_pk = ?) "
                "AND status = 'active' AND (? IS NULL OR id = ?) ORDER BY id",
                (event[0], destination_id, destination_id),
            ).fetchall()
            return [
                _insert_delivery(c, event[0], event_id, _destination(r), now, event[1])
                for r in rows
            ]

        return await self._db.write(insert)

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
        # queue does not hide the others' due work from this claim; SQLite ranks each
        # destination's candidates and keeps as many as its room allows.
        window = limit if per_destination is None else limit * 4

        def claim(c: sqlite3.Connection) -> list[DueDelivery]:
            picked = [
                row[0]
                for row in c.execute(
                    "SELECT pk FROM (SELECT pk, next_attempt_at, destination_key, row_number() "
                    "OVER (PARTITION BY destination_key ORDER BY next_attempt_at, pk) AS rank "
                    "FROM (SELECT pk, next_attempt_at, destination_key FROM deliveries AS d "
                    "WHERE next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?) "
                    "AND destination_key NOT IN (SELECT key FROM json_each(?) WHERE value <= 0) "
                    # A replayed event waits for the task's earlier ones to that destination.
                    "AND (ordered = 0 OR NOT EXISTS (SELECT 1 FROM deliveries AS e "
                    "WHERE e.destination_id = d.destination_id AND e.task_id = d.task_id "
                    "AND e.ordered = 1 AND e.status = 'pending' AND e.pk < d.pk)) "
                    "ORDER BY next_attempt_at LIMIT ?)) AS candidate "
                    "WHERE rank <= coalesce((SELECT value FROM json_each(?) "
                    "WHERE key = candidate.destination_key), ?) "
                    "ORDER BY next_attempt_at, pk LIMIT ?",
                    (t, t, json.dumps(room), window, json.dumps(room), cap, limit),
                )
            ]
            if not picked:
                return []
            c.execute(
                "UPDATE deliveries SET lease_owner = ?, lease_until = ? "
                "WHERE pk IN (SELECT value FROM json_each(?))",
                (owner, t + lease_seconds, json.dumps(picked)),
            )
            rows = c.execute(
                "SELECT d.pk, d.id, e.id, d.destination_key, d.url, e.body, "
                "coalesce(dst.secret, a.callback_secret), d.attempt_count, d.account_id, "
                "e.task_id, e.url_expires_at, "
                "CASE WHEN dst.secret IS NULL THEN a.previous_callback_secret "
                "ELSE dst.previous_secret END, "
                "CASE WHEN dst.secret IS NULL THEN a.previous_callback_secret_until "
                "ELSE dst.previous_secret_until END, dst.headers, dst.rate_limit "
                "FROM deliveries d JOIN events e ON e.pk = d.event_pk "
                "JOIN destinations dst ON dst.id = d.destination_id "
                "JOIN accounts a ON a.id = d.account_id "
                "WHERE d.pk IN (SELECT value FROM json_each(?)) ORDER BY d.next_attempt_at",
                (json.dumps(picked),),
            ).fetchall()
            return [
                DueDelivery(
                    pk=r[0],
                    id=r[1],
                    event_id=r[2],
                    destination_key=r[3],
                    url=r[4],
                    body=r[5],
                    secrets=signing_secrets(r[6], r[11], r[12], now),
                    attempt_count=r[7],
                    account_id=r[8],
                    task_id=r[9],
                    url_expires_at=codec.dt(r[10]),
                    headers=_headers(r[13]),
                    rate_limit=r[14],
                )
                for r in rows
            ]

        return await self._db.write(claim)

    async def record_attempts(self, records: Sequence[AttemptRecord], owner: str) -> None:
        # The whole batch travels as one JSON parameter and is written by two statements:
        # executemany would step SQLite once per row, handing the GIL back and forth with
        # the event loop each time, which under load cost ~100 us a row instead of ~10.
        batch = json.dumps(
            [
                [
                    r.delivery_pk,
                    r.attempt.number,
                    ts(r.attempt.started_at),
                    r.attempt.latency_ms,
                    r.attempt.outcome,
                    r.attempt.status_code,
                    r.attempt.error,
                    r.attempt.response_snippet,
                    r.status.value,
                    ts(r.next_attempt_at),
                ]
                for r in records
            ]
        )

        def write(c: sqlite3.Connection) -> None:
            # Only the lease holder's attempts count, and each attempt number once: a late
            # record from a lease that expired and was claimed again (by another instance,
            # or by this one) must not add a second "attempt 1" or clear the new lease.
            c.execute(
                f"WITH {ATTEMPT_BATCH} INSERT INTO attempts (delivery_pk, number, started_at, "
                "latency_ms, outcome, status_code, error, response_snippet) "
                "SELECT d.pk, r.number, r.started_at, r.latency_ms, r.outcome, r.status_code, "
                "r.error, r.snippet FROM r JOIN deliveries AS d ON d.pk = r.pk "
                "WHERE d.lease_owner = ? AND d.attempt_count = r.number - 1",
                (batch, owner),
            )
            c.execute(
                f"WITH {ATTEMPT_BATCH} UPDATE deliveries SET status = r.status, "
                "attempt_count = r.number, next_attempt_at = r.next_at, lease_owner = NULL, "
                "lease_until = NULL, last_status_code = r.status_code, last_error = r.error, "
                "updated_at = r.started_at FROM r "
                "WHERE deliveries.pk = r.pk AND deliveries.lease_owner = ? "
                "AND deliveries.attempt_count = r.number - 1 "
                # Stopped meanwhile (its subscription was disabled or deleted): it stays so.
                "AND deliveries.status = 'pending'",
                (batch, owner),
            )
            note_destination_health(c, batch)

        await self._db.write(write)

    async def next_delivery_at(self, after: datetime) -> datetime | None:
        def get(c: sqlite3.Connection) -> float | None:
            row = c.execute(
                "SELECT min(next_attempt_at) FROM deliveries WHERE next_attempt_at > ?",
                (after.timestamp(),),
            ).fetchone()
            return row[0] if row else None

        return codec.dt(await self._db.read(get))

    async def release_leases(self) -> None:
        def release(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL "
                "WHERE lease_until IS NOT NULL"
            )
            c.execute("UPDATE tasks SET poll_lease_until = NULL WHERE poll_lease_until IS NOT NULL")

        await self._db.write(release)


def _write_events(c: sqlite3.Connection, events: Sequence[Event]) -> None:
    """Insert events and fan them out to the destinations that want them."""
    if not events:
        return
    task_ids = {e.task_id for e in events}
    destinations = [
        _destination(r)
        for task_id in task_ids
        for r in c.execute(
            f"SELECT {_DESTINATION_COLUMNS} FROM destinations WHERE task_id = ?", (task_id,)
        )
    ]
    for account_id in {e.account_id for e in events}:
        destinations += [
            _destination(r)
            for r in c.execute(
                f"SELECT {_DESTINATION_COLUMNS} FROM destinations WHERE account_id = ? "
                "AND kind = 'subscription' AND status = 'active' ORDER BY rowid",
                (account_id,),
            )
        ]
    pks = {}
    for e in events:
        cur = c.execute(
            f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                e.id,
                e.account_id,
                e.task_id,
                e.type.value,
                e.sequence,
                ts(e.created_at),
                e.body,
                ts(e.url_expires_at),
            ),
        )
        pks[e.id] = cur.lastrowid
    for event, destination in fan_out(events, destinations):
        _insert_delivery(c, pks[event.id], event.id, destination, event.created_at, event.task_id)


def _insert_delivery(
    c: sqlite3.Connection,
    event_pk: int | None,
    event_id: str,
    d: Destination,
    now: datetime,
    task_id: str | None,
) -> Delivery:
    delivery = Delivery(
        id=new_id("dlv"),
        account_id=d.account_id,
        event_id=event_id,
        destination_id=d.id,
        url=d.url,
        status=DeliveryStatus.PENDING,
        attempt_count=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    c.execute(
        "INSERT INTO deliveries (id, account_id, event_pk, destination_id, destination_key, "
        "url, status, next_attempt_at, created_at, updated_at, task_id) "
        "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
        (
            delivery.id,
            d.account_id,
            event_pk,
            d.id,
            d.key,
            d.url,
            ts(now),
            ts(now),
            ts(now),
            task_id,
        ),
    )
    return delivery


def _headers(text: str | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(json.loads(text).items())) if text else ()


def _page(
    c: sqlite3.Connection,
    table: str,
    columns: str,
    where: list[str],
    params: list[Any],
    after: int | None,
    limit: int,
    order: str,
) -> list[Any]:
    # Filter columns and the table name are fixed strings of this module, never input.
    if after is not None:
        where = [*where, "pk < ?" if order == "desc" else "pk > ?"]
        params = [*params, after]
    direction = "DESC" if order == "desc" else "ASC"
    return c.execute(
        f"SELECT {columns} FROM {table} WHERE {' AND '.join(where)} "
        f"ORDER BY pk {direction} LIMIT ?",
        [*params, limit + 1],
    ).fetchall()


def _paged(rows: list[Any], limit: int, decode: Any) -> Page[Any]:
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        items=[decode(r[1:]) for r in rows], next_after=rows[-1][0] if more and rows else None
    )
