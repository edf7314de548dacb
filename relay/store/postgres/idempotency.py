"""The PostgreSQL store's idempotency keys (mixed into ``PostgresStore``): the first request
with a key reserves it under a lease it renews, a repeat reads the reply the first one
stored, and a repeat after the holder died takes the reservation over."""

from __future__ import annotations

from datetime import datetime

from relay.models import utc
from relay.store.codec import ts
from relay.store.named_sql import load_queries
from relay.store.postgres.outbox import fetch_one
from relay.store.postgres.runner import Conn, PgRunner
from relay.store.values import IdempotentReply

QUERIES = load_queries("relay.store.postgres")


class IdempotencyMixin:
    _db: PgRunner

    async def reserve_idempotency_key(
        self,
        account_id: str,
        key: str,
        request_hash: str,
        owner: str,
        now: datetime,
        lease_until: datetime,
    ) -> IdempotentReply | None:
        key_params = {"account_id": account_id, "key": key}

        async def reserve(c: Conn) -> IdempotentReply | None:
            taken = await fetch_one(
                c,
                QUERIES["reserve_idempotency_key"],
                {
                    **key_params,
                    "request_hash": request_hash,
                    "owner": owner,
                    "now": ts(now),
                    "lease_until": ts(lease_until),
                },
            )
            if taken is not None:
                return None
            row = await fetch_one(c, QUERIES["idempotent_reply"], key_params)
            assert row is not None
            return IdempotentReply(row[0], row[1], row[2], utc(row[3]))

        return await self._db.run(reserve)

    async def renew_idempotency_key(
        self, account_id: str, key: str, owner: str, lease_until: datetime
    ) -> bool:
        params = {
            "account_id": account_id,
            "key": key,
            "owner": owner,
            "lease_until": ts(lease_until),
        }

        async def renew(c: Conn) -> bool:
            cur = await c.execute(QUERIES["renew_idempotency_key"], params)
            return cur.rowcount == 1

        return await self._db.run(renew, transaction=False)

    async def finish_idempotency_key(
        self, account_id: str, key: str, owner: str, status_code: int, body: str
    ) -> None:
        params = {
            "status_code": status_code,
            "body": body,
            "account_id": account_id,
            "key": key,
            "owner": owner,
        }
        await self._db.run(
            lambda c: c.execute(QUERIES["finish_idempotency_key"], params), transaction=False
        )

    async def forget_idempotency_key(self, account_id: str, key: str, owner: str) -> None:
        params = {"account_id": account_id, "key": key, "owner": owner}
        await self._db.run(
            lambda c: c.execute(QUERIES["forget_idempotency_key"], params), transaction=False
        )

    async def prune_idempotency_keys(self, before: datetime) -> int:
        async def prune(c: Conn) -> int:
            await c.execute(QUERIES["prune_submissions"], {"before": ts(before)})
            cur = await c.execute(QUERIES["prune_idempotency_keys"], {"before": ts(before)})
            return cur.rowcount

        return await self._db.run(prune)
