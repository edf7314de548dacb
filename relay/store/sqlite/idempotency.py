"""The SQLite store's Idempotency-Key reservations and the answers they replay (mixed into
``relay.store.sqlite.store.SqliteStore``)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from relay.store.codec import ts
from relay.store.interface import IdempotentReply
from relay.store.named_sql import load_queries
from relay.store.sqlite.runner import SqliteRunner

QUERIES = load_queries("relay.store.sqlite")


class IdempotencyMixin:
    _db: SqliteRunner

    async def reserve_idempotency_key(
        self, account_id: str, key: str, request_hash: str, now: datetime
    ) -> IdempotentReply | None:
        def reserve(c: sqlite3.Connection) -> IdempotentReply | None:
            key_params = {"account_id": account_id, "key": key}
            inserted = c.execute(
                QUERIES["reserve_idempotency_key"],
                {**key_params, "request_hash": request_hash, "now": ts(now)},
            ).rowcount
            if inserted:
                return None
            row = c.execute(QUERIES["idempotent_reply"], key_params).fetchone()
            return IdempotentReply(row[0], row[1], row[2])

        return await self._db.write(reserve)

    async def finish_idempotency_key(
        self, account_id: str, key: str, status_code: int, body: str
    ) -> None:
        await self._db.write(
            lambda c: c.execute(
                QUERIES["finish_idempotency_key"],
                {"status_code": status_code, "body": body, "account_id": account_id, "key": key},
            )
        )

    async def forget_idempotency_key(self, account_id: str, key: str) -> None:
        await self._db.write(
            lambda c: c.execute(
                QUERIES["forget_idempotency_key"], {"account_id": account_id, "key": key}
            )
        )

    async def prune_idempotency_keys(self, before: datetime) -> int:
        return await self._db.write(
            lambda c: c.execute(QUERIES["prune_idempotency_keys"], {"before": ts(before)}).rowcount
        )
