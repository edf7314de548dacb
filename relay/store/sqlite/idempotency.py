"""The SQLite store's Idempotency-Key reservations and the answers they replay (mixed into
``relay.store.sqlite.store.SqliteStore``)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from relay.models import utc
from relay.store.codec import ts
from relay.store.named_sql import load_queries
from relay.store.sqlite.runner import SqliteRunner
from relay.store.submission_codec import submission_from_row
from relay.store.values import IdempotentReply, KeyAnswer, KeyReserved

QUERIES = load_queries("relay.store.sqlite")


class IdempotencyMixin:
    _db: SqliteRunner

    async def reserve_idempotency_key(
        self,
        account_id: str,
        key: str,
        request_hash: str,
        owner: str,
        now: datetime,
        lease_until: datetime,
    ) -> IdempotentReply | None:
        def reserve(c: sqlite3.Connection) -> IdempotentReply | None:
            return _reserve(c, account_id, key, request_hash, owner, now, lease_until)

        return await self._db.write(reserve)

    async def reserve_idempotency_key_to_submit(
        self,
        account_id: str,
        key: str,
        request_hash: str,
        owner: str,
        now: datetime,
        lease_until: datetime,
    ) -> IdempotentReply | KeyReserved:
        def reserve(c: sqlite3.Connection) -> IdempotentReply | KeyReserved:
            earlier = _reserve(c, account_id, key, request_hash, owner, now, lease_until)
            if earlier is not None:
                return earlier
            params = {"account_id": account_id, "key": key}
            row = c.execute(QUERIES["submission_for_key"], params).fetchone()
            return KeyReserved(None if row is None else submission_from_row(row))

        return await self._db.write(reserve)

    async def renew_idempotency_key(
        self, account_id: str, key: str, owner: str, lease_until: datetime
    ) -> bool:
        params = {
            "account_id": account_id,
            "key": key,
            "owner": owner,
            "lease_until": ts(lease_until),
        }
        return await self._db.write(
            lambda c: c.execute(QUERIES["renew_idempotency_key"], params).rowcount == 1
        )

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
        await self._db.write(lambda c: c.execute(QUERIES["finish_idempotency_key"], params))

    async def forget_idempotency_key(self, account_id: str, key: str, owner: str) -> None:
        params = {"account_id": account_id, "key": key, "owner": owner}
        await self._db.write(lambda c: c.execute(QUERIES["forget_idempotency_key"], params))

    async def prune_idempotency_keys(self, before: datetime) -> int:
        def prune(c: sqlite3.Connection) -> int:
            c.execute(QUERIES["prune_submissions"], {"before": ts(before)})
            return int(
                c.execute(QUERIES["prune_idempotency_keys"], {"before": ts(before)}).rowcount
            )

        return await self._db.write(prune, alone=True)  # housekeeping: may delete many


def _reserve(
    c: sqlite3.Connection,
    account_id: str,
    key: str,
    request_hash: str,
    owner: str,
    now: datetime,
    lease_until: datetime,
) -> IdempotentReply | None:
    key_params = {"account_id": account_id, "key": key}
    taken = c.execute(
        QUERIES["reserve_idempotency_key"],
        {
            **key_params,
            "request_hash": request_hash,
            "owner": owner,
            "now": ts(now),
            "lease_until": ts(lease_until),
        },
    ).rowcount
    if taken:
        return None
    row = c.execute(QUERIES["idempotent_reply"], key_params).fetchone()
    return IdempotentReply(row[0], row[1], row[2], utc(row[3]))


def keep_answer(c: sqlite3.Connection, answer: KeyAnswer) -> None:
    """``finish_idempotency_key`` in the caller's transaction (``create_task``)."""
    c.execute(
        QUERIES["finish_idempotency_key"],
        {
            "status_code": answer.status_code,
            "body": answer.body,
            "account_id": answer.account_id,
            "key": answer.key,
            "owner": answer.owner,
        },
    )
