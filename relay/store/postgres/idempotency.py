"""The PostgreSQL store's idempotency keys (mixed into ``PostgresStore``): the first request
with a key reserves it, a repeat reads the reply the first one stored."""

from __future__ import annotations

from datetime import datetime

from relay.store.codec import ts
from relay.store.interface import IdempotentReply
from relay.store.named_sql import load_queries
from relay.store.postgres.outbox import fetch_one
from relay.store.postgres.runner import Conn, PgRunner

QUERIES = load_queries("relay.store.postgres")


class IdempotencyMixin:
    _db: PgRunner

    async def reserve_idempotency_key(
        self, account_id: str, key: str, request_hash: str, now: datetime
    ) -> IdempotentReply | None:
        async def reserve(c: Conn) -> IdempotentReply | None:
            cur = await c.execute(
                QUERIES["reserve_idempotency_key"],
                {
                    "account_id": account_id,
                    "key": key,
                    "request_hash": request_hash,
                    "now": ts(now),
                },
            )
            if cur.rowcount:
                return None
            row = await fetch_one(
                c, QUERIES["idempotent_reply"], {"account_id": account_id, "key": key}
            )
            assert row is not None
            return IdempotentReply(row[0], row[1], row[2])

        return await self._db.run(reserve)

    async def finish_idempotency_key(
        self, account_id: str, key: str, status_code: int, body: str
    ) -> None:
        await self._db.run(
            lambda c: c.execute(
                QUERIES["finish_idempotency_key"],
                {"status_code": status_code, "body": body, "account_id": account_id, "key": key},
            ),
            transaction=False,
        )

    async def forget_idempotency_key(self, account_id: str, key: str) -> None:
        await self._db.run(
            lambda c: c.execute(
                QUERIES["forget_idempotency_key"], {"account_id": account_id, "key": key}
            ),
            transaction=False,
        )

    async def prune_idempotency_keys(self, before: datetime) -> int:
        async def prune(c: Conn) -> int:
            cur = await c.execute(QUERIES["prune_idempotency_keys"], {"before": ts(before)})
            return cur.rowcount

        return await self._db.run(prune, transaction=False)
