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
from relay.store.submission_codec import submission_from_row
from relay.store.values import IdempotentReply, KeyAnswer, KeyReserved

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
        params = _reserve_params(account_id, key, request_hash, owner, now, lease_until)

        async def reserve(c: Conn) -> IdempotentReply | None:
            if await fetch_one(c, QUERIES["reserve_idempotency_key"], params) is not None:
                return None
            return await _reply(c, account_id, key)

        # Statements of their own (the reply must see a row a concurrent first request
        # committed while the insert waited for it): no BEGIN and COMMIT round trips.
        return await self._db.run(reserve, transaction=False)

    async def reserve_idempotency_key_to_submit(
        self,
        account_id: str,
        key: str,
        request_hash: str,
        owner: str,
        now: datetime,
        lease_until: datetime,
    ) -> IdempotentReply | KeyReserved:
        params = _reserve_params(account_id, key, request_hash, owner, now, lease_until)

        async def reserve(c: Conn) -> IdempotentReply | KeyReserved:
            row = await fetch_one(c, QUERIES["reserve_idempotency_key_to_submit"], params)
            if row is not None:
                return KeyReserved(None if row[0] is None else submission_from_row(row))
            return await _reply(c, account_id, key)

        return await self._db.run(reserve, transaction=False)

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


def _reserve_params(
    account_id: str,
    key: str,
    request_hash: str,
    owner: str,
    now: datetime,
    lease_until: datetime,
) -> dict[str, object]:
    return {
        "account_id": account_id,
        "key": key,
        "request_hash": request_hash,
        "owner": owner,
        "now": ts(now),
        "lease_until": ts(lease_until),
    }


async def _reply(c: Conn, account_id: str, key: str) -> IdempotentReply:
    row = await fetch_one(c, QUERIES["idempotent_reply"], {"account_id": account_id, "key": key})
    assert row is not None
    return IdempotentReply(row[0], row[1], row[2], utc(row[3]))


async def keep_answer(c: Conn, answer: KeyAnswer) -> None:
    """``finish_idempotency_key`` in the caller's transaction (``create_task``)."""
    await c.execute(
        QUERIES["finish_idempotency_key"],
        {
            "status_code": answer.status_code,
            "body": answer.body,
            "account_id": answer.account_id,
            "key": answer.key,
            "owner": answer.owner,
        },
    )
