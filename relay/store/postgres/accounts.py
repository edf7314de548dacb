"""The PostgreSQL store's accounts, their API keys and the dashboard sessions opened with them
(mixed into ``PostgresStore``). Adding or revoking a key locks the account's row first, so
the count of active keys that decides it holds until the transaction commits, whatever the
other instances do meanwhile."""

from __future__ import annotations

from datetime import datetime

from relay.errors import LastActiveKey, TooManyKeys, UnknownAccount
from relay.keys import ApiKey, KeyHolder, key_id
from relay.models import Account
from relay.store.codec import account_from_row, api_key_from_row, ts
from relay.store.named_sql import load_queries
from relay.store.postgres.outbox import fetch_all, fetch_one
from relay.store.postgres.runner import Conn, PgRunner
from relay.store.values import AccountSummary

QUERIES = load_queries("relay.store.postgres")


class AccountsMixin:
    _db: PgRunner

    async def create_account(
        self,
        account: Account,
        key_hash: str,
        callback_secret: str,
        key_prefix: str | None = None,
    ) -> None:
        async def insert(c: Conn) -> None:
            await c.execute(
                QUERIES["insert_account"],
                {
                    "id": account.id,
                    "name": account.name,
                    "callback_secret": callback_secret,
                    "created_at": ts(account.created_at),
                },
            )
            key = ApiKey(key_id(key_hash), account.id, key_prefix, account.created_at, None)
            await _insert_key(c, key, key_hash)

        await self._db.run(insert)

    async def account_by_key_hash(self, key_hash: str, now: datetime) -> Account | None:
        async def get(c: Conn) -> Account | None:
            row = await fetch_one(
                c, QUERIES["account_by_key_hash"], {"key_hash": key_hash, "now": ts(now)}
            )
            return account_from_row(row) if row else None

        return await self._db.run(get, transaction=False)

    async def key_holder_by_hash(self, key_hash: str, now: datetime) -> KeyHolder | None:
        async def get(c: Conn) -> KeyHolder | None:
            row = await fetch_one(
                c, QUERIES["key_holder_by_hash"], {"key_hash": key_hash, "now": ts(now)}
            )
            return KeyHolder(account_from_row(row), api_key_from_row(row[3:])) if row else None

        return await self._db.run(get, transaction=False)

    async def add_api_key(
        self,
        key: ApiKey,
        key_hash: str,
        *,
        others_until: datetime | None = None,
        max_active: int | None = None,
    ) -> None:
        async def add(c: Conn) -> None:
            account = {"account_id": key.account_id}
            if await fetch_one(c, QUERIES["lock_account"], account) is None:
                raise UnknownAccount(f"no account {key.account_id}")
            if max_active is not None:
                row = await fetch_one(
                    c, QUERIES["count_active_keys"], {**account, "now": ts(key.created_at)}
                )
                active = row[0] if row else 0
                if active >= max_active:
                    raise TooManyKeys(
                        f"the account has {active} active API keys, the most it may have; "
                        "revoke one first"
                    )
            await _insert_key(c, key, key_hash)
            if others_until is not None:
                await c.execute(
                    QUERIES["retire_other_keys"],
                    {**account, "key_id": key.id, "until": ts(others_until)},
                )

        await self._db.run(add)

    async def list_accounts(self, now: datetime) -> list[AccountSummary]:
        async def get(c: Conn) -> list[AccountSummary]:
            rows = await fetch_all(c, QUERIES["list_accounts"], {"now": ts(now)})
            return [AccountSummary(account_from_row(row), row[3]) for row in rows]

        return await self._db.run(get, transaction=False)

    async def list_api_keys(self, account_id: str) -> list[ApiKey]:
        async def get(c: Conn) -> list[ApiKey]:
            rows = await fetch_all(c, QUERIES["list_api_keys"], {"account_id": account_id})
            return [api_key_from_row(row) for row in rows]

        return await self._db.run(get, transaction=False)

    async def find_api_keys(self, ref: str) -> list[ApiKey]:
        async def get(c: Conn) -> list[ApiKey]:
            rows = await fetch_all(c, QUERIES["find_api_keys"], {"ref": ref})
            return [api_key_from_row(row) for row in rows]

        return await self._db.run(get, transaction=False)

    async def revoke_api_key(
        self, account_id: str, key_id: str, now: datetime, *, keep_last: bool = False
    ) -> ApiKey | None:
        async def revoke(c: Conn) -> ApiKey | None:
            params = {"account_id": account_id, "key_id": key_id, "now": ts(now)}
            await c.execute(QUERIES["lock_account"], params)
            row = await fetch_one(c, QUERIES["get_api_key"], params)
            if row is None:
                return None
            key = api_key_from_row(row)
            if key.active(now) and keep_last:
                counted = await fetch_one(c, QUERIES["count_active_keys"], params)
                if counted is None or counted[0] <= 1:
                    raise LastActiveKey(
                        f"{key_id} is the account's last active API key: create another "
                        "key first, or ask the operator to rotate it"
                    )
            await c.execute(QUERIES["revoke_api_key"], params)
            revoked = await fetch_one(c, QUERIES["get_api_key"], params)
            assert revoked is not None
            return api_key_from_row(revoked)

        return await self._db.run(revoke)

    async def open_dashboard_session(
        self, session_id: str, key_id: str, now: datetime, expires_at: datetime
    ) -> None:
        async def insert(c: Conn) -> None:
            await c.execute(QUERIES["prune_dashboard_sessions"], {"now": ts(now)})
            await c.execute(
                QUERIES["insert_dashboard_session"],
                {
                    "id": session_id,
                    "key_id": key_id,
                    "created_at": ts(now),
                    "expires_at": ts(expires_at),
                },
            )

        await self._db.run(insert)

    async def dashboard_session_account(self, session_id: str, now: datetime) -> str | None:
        async def get(c: Conn) -> str | None:
            row = await fetch_one(
                c, QUERIES["dashboard_session_account"], {"id": session_id, "now": ts(now)}
            )
            return str(row[0]) if row else None

        return await self._db.run(get, transaction=False)

    async def end_dashboard_session(self, session_id: str) -> None:
        await self._db.run(
            lambda c: c.execute(QUERIES["delete_dashboard_session"], {"id": session_id}),
            transaction=False,
        )


async def _insert_key(c: Conn, key: ApiKey, key_hash: str) -> None:
    await c.execute(
        QUERIES["insert_api_key"],
        {
            "key_hash": key_hash,
            "id": key.id,
            "account_id": key.account_id,
            "prefix": key.prefix,
            "created_at": ts(key.created_at),
        },
    )
