"""The PostgreSQL store's output copies: the copier's queue of files to copy into the output
store (mixed into ``PostgresStore``; see ``relay.copies``). Copies are written with their
task (``relay.store.postgres.outbox.write_copies``); this module claims, leases and reads
them. As with polls and deliveries, a claim locks what it takes (``SKIP LOCKED``), so two
instances never hold the same copy at once, and a crashed instance's leases expire."""

from __future__ import annotations

from datetime import datetime

from relay.copies.values import OutputCopy
from relay.store import codec, copy_codec
from relay.store.codec import ts
from relay.store.named_sql import load_queries
from relay.store.postgres.outbox import fetch_all, fetch_one
from relay.store.postgres.runner import Conn, PgRunner

QUERIES = load_queries("relay.store.postgres")


class CopiesMixin:
    _db: PgRunner
    _holder: str
    _leased: bool

    async def claim_due_copies(
        self, now: datetime, limit: int, lease_seconds: float, owner: str
    ) -> list[OutputCopy]:
        t = now.timestamp()
        params = {
            "now": t,
            "limit": limit,
            "until": t + lease_seconds,
            "owner": owner,
            "holder": self._holder,
        }
        self._leased = True
        rows = await self._db.run(
            lambda c: fetch_all(c, QUERIES["claim_due_copies"], params), transaction=False
        )
        return [copy_codec.copy_from_row(r) for r in rows]

    async def renew_copy(self, copy_id: str, owner: str, lease_until: datetime) -> bool:
        params = {"id": copy_id, "owner": owner, "lease_until": ts(lease_until)}

        async def renew(c: Conn) -> bool:
            cur = await c.execute(QUERIES["renew_copy"], params)
            return cur.rowcount == 1

        return await self._db.run(renew, transaction=False)

    async def release_copy(self, copy_id: str, owner: str) -> None:
        params = {"id": copy_id, "owner": owner}
        await self._db.run(lambda c: c.execute(QUERIES["release_copy"], params), transaction=False)

    async def get_copy(self, copy_id: str) -> OutputCopy | None:
        row = await self._db.run(
            lambda c: fetch_one(c, QUERIES["get_copy"], {"id": copy_id}), transaction=False
        )
        return None if row is None else copy_codec.copy_from_row(row)

    async def task_copies(self, task_id: str) -> list[OutputCopy]:
        rows = await self._db.run(
            lambda c: fetch_all(c, QUERIES["task_copies"], {"task_id": task_id}),
            transaction=False,
        )
        return [copy_codec.copy_from_row(r) for r in rows]

    async def due_announcements(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        params = {"now": now.timestamp(), "limit": limit}
        rows = await self._db.run(
            lambda c: fetch_all(c, QUERIES["due_announcements"], params), transaction=False
        )
        return [(str(account_id), str(task_id)) for account_id, task_id in rows]

    async def stored_copies_before(self, before: datetime, limit: int) -> list[OutputCopy]:
        params = {"before": before.timestamp(), "limit": limit}
        rows = await self._db.run(
            lambda c: fetch_all(c, QUERIES["stored_copies_before"], params), transaction=False
        )
        return [copy_codec.copy_from_row(r) for r in rows]

    async def next_copy_at(self, after: datetime) -> datetime | None:
        row = await self._db.run(
            lambda c: fetch_one(c, QUERIES["next_copy_at"], {"after": after.timestamp()}),
            transaction=False,
        )
        return codec.dt(row[0] if row else None)
