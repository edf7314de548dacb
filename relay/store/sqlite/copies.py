"""The SQLite store's output copies: the copier's queue of files to copy into the output store
(mixed into ``relay.store.sqlite.store.SqliteStore``; see ``relay.copies``). Copies are
written with their task (``relay.store.sqlite.outbox.write_copies``); this module claims,
leases and reads them."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from relay.copies.values import OutputCopy
from relay.store.codec import dt, ts
from relay.store.copy_codec import copy_from_row
from relay.store.named_sql import load_queries
from relay.store.sqlite.runner import SqliteRunner

QUERIES = load_queries("relay.store.sqlite")


def _due_order(copy: OutputCopy) -> tuple[float, str]:
    assert copy.next_attempt_at is not None  # a claimed copy is pending, so it is due
    return copy.next_attempt_at.timestamp(), copy.id


class CopiesMixin:
    _db: SqliteRunner

    async def claim_due_copies(
        self, now: datetime, limit: int, lease_seconds: float, owner: str
    ) -> list[OutputCopy]:
        t = now.timestamp()
        params = {"now": t, "lease_until": t + lease_seconds, "owner": owner, "limit": limit}

        def claim(c: sqlite3.Connection) -> list[OutputCopy]:
            rows = c.execute(QUERIES["claim_due_copies"], params).fetchall()
            # RETURNING gives no order: the claim's is the longest due first.
            return sorted((copy_from_row(r) for r in rows), key=_due_order)

        return await self._db.write(claim)

    async def renew_copy(self, copy_id: str, owner: str, lease_until: datetime) -> bool:
        params = {"id": copy_id, "owner": owner, "lease_until": ts(lease_until)}
        return await self._db.write(
            lambda c: c.execute(QUERIES["renew_copy"], params).rowcount == 1
        )

    async def release_copy(self, copy_id: str, owner: str) -> None:
        params = {"id": copy_id, "owner": owner}
        await self._db.write(lambda c: c.execute(QUERIES["release_copy"], params))

    async def get_copy(self, copy_id: str) -> OutputCopy | None:
        def get(c: sqlite3.Connection) -> OutputCopy | None:
            row = c.execute(QUERIES["get_copy"], {"id": copy_id}).fetchone()
            return copy_from_row(row) if row else None

        return await self._db.read(get)

    async def task_copies(self, task_id: str) -> list[OutputCopy]:
        rows = await self._db.read(
            lambda c: c.execute(QUERIES["task_copies"], {"task_id": task_id}).fetchall()
        )
        return [copy_from_row(r) for r in rows]

    async def due_announcements(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        params = {"now": now.timestamp(), "limit": limit}
        rows = await self._db.read(
            lambda c: c.execute(QUERIES["due_announcements"], params).fetchall()
        )
        return [(str(account_id), str(task_id)) for account_id, task_id in rows]

    async def stored_copies_before(self, before: datetime, limit: int) -> list[OutputCopy]:
        params = {"before": before.timestamp(), "limit": limit}
        rows = await self._db.read(
            lambda c: c.execute(QUERIES["stored_copies_before"], params).fetchall()
        )
        return [copy_from_row(r) for r in rows]

    async def next_copy_at(self, after: datetime) -> datetime | None:
        def get(c: sqlite3.Connection) -> float | None:
            row = c.execute(QUERIES["next_copy_at"], {"after": after.timestamp()}).fetchone()
            return row[0] if row else None

        return dt(await self._db.read(get))
