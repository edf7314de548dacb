"""``SqliteStore``, the embedded default store for one relay instance (WAL mode): its
lifecycle and instance lock, tasks and the poll queue, events; the rest comes from the mixins
of this package (accounts and keys, deliveries, subscriptions, idempotency, submissions,
output copies, metrics, retention)."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from relay.errors import DuplicateTask, StoreError
from relay.models import Delivery, Destination, Event, Task
from relay.store.codec import (
    attempt_from_row,
    delivery_from_row,
    destination_from_row,
    dt,
    event_from_row,
    event_types_json,
    paged,
    task_from_row,
    task_params,
    ts,
)
from relay.store.named_sql import load_queries
from relay.store.sqlite.accounts import AccountsMixin
from relay.store.sqlite.announce import AnnounceMixin
from relay.store.sqlite.copies import CopiesMixin
from relay.store.sqlite.deliveries import DeliveriesMixin
from relay.store.sqlite.idempotency import IdempotencyMixin, keep_answer
from relay.store.sqlite.metrics import MetricsMixin
from relay.store.sqlite.outbox import insert_delivery, write_copies, write_events
from relay.store.sqlite.overview import OverviewMixin
from relay.store.sqlite.retention import RetentionMixin
from relay.store.sqlite.runner import InstanceLock, SqliteRunner, migrate
from relay.store.sqlite.streams import StreamsMixin
from relay.store.sqlite.submissions import (
    SubmissionsMixin,
    accept_submission,
    release_submissions,
)
from relay.store.sqlite.subscriptions import SubscriptionsMixin
from relay.store.sqlite.usage import UsageMixin
from relay.store.values import DeliveryView, EventQuery, KeyAnswer, Page, TaskQuery
from relay.transitions import Change

QUERIES = load_queries("relay.store.sqlite")

MIN_SQLITE = (3, 35, 0)
"""UPDATE … RETURNING and UPDATE … FROM, which the claims and the batched writes use."""


class SqliteStore(
    AnnounceMixin,
    AccountsMixin,
    DeliveriesMixin,
    SubscriptionsMixin,
    IdempotencyMixin,
    SubmissionsMixin,
    CopiesMixin,
    RetentionMixin,
    MetricsMixin,
    OverviewMixin,
    StreamsMixin,
    UsageMixin,
):
    """The ``relay.store.interface.Store`` on one SQLite file: one writer thread, one reader
    thread (``SqliteRunner``), each operation one transaction."""

    def __init__(self, path: str, *, exclusive: bool = False) -> None:
        """Open the database at ``path``. ``exclusive``: this process serves it, so it holds
        the instance lock until ``close`` (``StoreError`` while another process does)."""
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} is too old: the relay needs "
                f"{'.'.join(map(str, MIN_SQLITE))} or newer"
            )
        # Taken before the database is opened: a second server must not touch it at all.
        self._lock = InstanceLock(path) if exclusive else None
        try:
            self._db = SqliteRunner(path)
        except sqlite3.Error as exc:
            self._release_lock()
            raise StoreError(f"cannot open SQLite database {path!r}: {exc}") from exc
        except BaseException:
            self._release_lock()
            raise

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    async def migrate(self) -> list[int]:
        return await self._db.write_untransacted(migrate)

    async def close(self) -> None:
        try:
            await self._db.close()
        finally:
            self._release_lock()

    async def ping(self) -> None:
        await self._db.read(lambda c: c.execute(QUERIES["ping"]).fetchone())

    async def probe_write(self, now: datetime) -> None:
        # A nonce as well as the time: SQLite writes nothing for an update that changes
        # nothing, and a probe that writes nothing proves nothing.
        value = f"{now.isoformat()} {secrets.token_hex(4)}"
        await self._db.probe(lambda c: c.execute(QUERIES["probe_write"], {"value": value}))

    async def listen(self, on_work: Callable[[str], None]) -> None:
        """Nothing to hear: SQLite serves one instance, which wakes itself."""

    async def secret_key(self) -> str:
        def get(c: sqlite3.Connection) -> str:
            c.execute(QUERIES["insert_secret_key"], {"value": secrets.token_urlsafe(32)})
            return str(c.execute(QUERIES["get_secret_key"]).fetchone()[0])

        return await self._db.write(get)

    async def release_leases(self, now: datetime) -> None:
        def release(c: sqlite3.Connection) -> None:
            c.execute(QUERIES["release_delivery_leases"])
            c.execute(QUERIES["release_poll_leases"], {"now": now.timestamp()})
            c.execute(QUERIES["release_copy_leases"])
            release_submissions(c, now)

        await self._db.write(release)

    # accounts and keys: AccountsMixin (besides the callback secret)

    async def callback_secret(self, account_id: str) -> str | None:
        def get(c: sqlite3.Connection) -> str | None:
            row = c.execute(QUERIES["get_callback_secret"], {"account_id": account_id}).fetchone()
            return str(row[0]) if row else None

        return await self._db.read(get)

    # tasks

    async def create_task(
        self,
        change: Change,
        callback: Destination | None,
        submission: str | None = None,
        answer: KeyAnswer | None = None,
    ) -> None:
        def insert(c: sqlite3.Connection) -> None:
            t = change.task
            _refuse_duplicate(c, t)
            c.execute(QUERIES["insert_task"], task_params(t))
            if callback is not None:
                c.execute(
                    QUERIES["insert_callback_destination"],
                    {
                        "id": callback.id,
                        "account_id": callback.account_id,
                        "kind": callback.kind,
                        "url": callback.url,
                        "key": callback.key,
                        "event_types": event_types_json(callback.event_types),
                        "task_id": callback.task_id,
                        "secret": callback.secret,
                        "body_format": callback.body_format,
                        "created_at": ts(t.created_at),
                    },
                )
            if submission is not None:
                accept_submission(c, submission, t.provider_task_id, t.updated_at)
            if answer is not None:
                keep_answer(c, answer)
            write_events(c, change.events)
            write_copies(c, change.copies)

        await self._db.write(insert)

    async def save_task(self, change: Change, expected_version: int) -> bool:
        return await self._db.write(lambda c: _save(c, change, expected_version))

    async def save_tasks(self, saves: Sequence[tuple[Change, int]]) -> list[bool]:
        return await self._db.write(lambda c: [_save(c, change, v) for change, v in saves])

    async def move_task(self, change: Change, expected_version: int, submission: str) -> bool:
        def move(c: sqlite3.Connection) -> bool:
            t = change.task
            _refuse_duplicate(c, t)
            params = task_params(t)
            params["expected"] = expected_version
            params["version"] = expected_version + 1
            if c.execute(QUERIES["save_task"], params).rowcount != 1:
                return False
            accept_submission(c, submission, t.provider_task_id, t.updated_at)
            write_events(c, change.events)
            write_copies(c, change.copies)
            return True

        return await self._db.write(move)

    async def get_task(self, account_id: str, task_id: str) -> Task | None:
        def get(c: sqlite3.Connection) -> Task | None:
            row = c.execute(
                QUERIES["get_task"], {"task_id": task_id, "account_id": account_id}
            ).fetchone()
            return task_from_row(row) if row else None

        return await self._db.read(get)

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
        rows = await self._db.read(lambda c: c.execute(sql, params).fetchall())
        return paged(rows, query.limit, task_from_row)

    async def claim_due_polls(
        self, now: datetime, limits: Mapping[str, int], lease_seconds: float, owner: str
    ) -> list[Task]:
        t = now.timestamp()

        def claim(c: sqlite3.Connection) -> list[Task]:
            rows = []
            for provider, limit in limits.items():
                rows += c.execute(
                    QUERIES["claim_due_polls"], {"provider": provider, "now": t, "limit": limit}
                ).fetchall()
            if rows:
                c.execute(
                    QUERIES["lease_polls"],
                    {
                        "pks": json.dumps([r[0] for r in rows]),
                        "lease_until": t + lease_seconds,
                        "owner": owner,
                    },
                )
            return [task_from_row(r[1:]) for r in rows]

        return await self._db.write(claim)

    async def release_polls(self, task_ids: Sequence[str], owner: str, now: datetime) -> None:
        params = {"ids": json.dumps(list(task_ids)), "owner": owner, "now": now.timestamp()}
        await self._db.write(lambda c: c.execute(QUERIES["release_polls"], params))

    async def polled_providers(self) -> set[str]:
        rows = await self._db.read(lambda c: c.execute(QUERIES["polled_providers"]).fetchall())
        return {str(r[0]) for r in rows}

    async def next_poll_at(self, after: datetime) -> datetime | None:
        def get(c: sqlite3.Connection) -> float | None:
            row = c.execute(QUERIES["next_poll_at"], {"after": after.timestamp()}).fetchone()
            return row[0] if row else None

        return dt(await self._db.read(get))

    # events

    async def get_event(self, account_id: str, event_id: str) -> Event | None:
        def get(c: sqlite3.Connection) -> Event | None:
            row = c.execute(
                QUERIES["get_event"], {"event_id": event_id, "account_id": account_id}
            ).fetchone()
            return event_from_row(row) if row else None

        return await self._db.read(get)

    async def list_events(self, account_id: str, query: EventQuery) -> Page[Event]:
        params = {
            "account_id": account_id,
            "type": query.type.value if query.type is not None else None,
            "task_id": query.task_id,
            "since": ts(query.since),
            "until": ts(query.until),
            "delivery_status": (
                query.delivery_status.value if query.delivery_status is not None else None
            ),
            "after": query.after,
            "limit": query.limit + 1,
        }
        sql = QUERIES["list_events_desc"] if query.order == "desc" else QUERIES["list_events_asc"]
        rows = await self._db.read(lambda c: c.execute(sql, params).fetchall())
        return paged(rows, query.limit, event_from_row)

    async def event_deliveries(self, account_id: str, event_id: str) -> list[DeliveryView]:
        def get(c: sqlite3.Connection) -> list[DeliveryView]:
            rows = c.execute(
                QUERIES["event_deliveries"], {"event_id": event_id, "account_id": account_id}
            ).fetchall()
            views = []
            for row in rows:
                delivery = delivery_from_row(row)
                attempts = c.execute(
                    QUERIES["delivery_attempts"], {"delivery_pk": row[0]}
                ).fetchall()
                views.append(
                    DeliveryView(delivery, [attempt_from_row(delivery.id, a) for a in attempts])
                )
            return views

        return await self._db.read(get)

    async def redeliver(
        self, account_id: str, event_id: str, destination_id: str | None, now: datetime
    ) -> list[Delivery]:
        def insert(c: sqlite3.Connection) -> list[Delivery]:
            event = c.execute(
                QUERIES["find_event"], {"event_id": event_id, "account_id": account_id}
            ).fetchone()
            if event is None:
                return []
            rows = c.execute(
                QUERIES["redeliver_destinations"],
                {"event_pk": event[0], "destination_id": destination_id},
            ).fetchall()
            return [
                insert_delivery(c, event[0], event_id, destination_from_row(r), now, event[1])
                for r in rows
            ]

        return await self._db.write(insert)


def _save(c: sqlite3.Connection, change: Change, expected_version: int) -> bool:
    params = task_params(change.task)
    params["expected"] = expected_version
    params["version"] = expected_version + 1
    if c.execute(QUERIES["save_task"], params).rowcount != 1:
        return False
    write_events(c, change.events)
    write_copies(c, change.copies)
    return True


def _refuse_duplicate(c: sqlite3.Connection, task: Task) -> None:
    """``DuplicateTask`` when the provider task is tracked already (by whose account)."""
    existing = c.execute(
        QUERIES["find_provider_task"],
        {"provider": task.provider, "provider_task_id": task.provider_task_id},
    ).fetchone()
    if existing:
        raise DuplicateTask(existing[0] if existing[1] == task.account_id else None)
