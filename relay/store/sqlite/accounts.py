"""The SQLite store's accounts, their API keys and the dashboard sessions opened with them
(mixed into ``relay.store.sqlite.store.SqliteStore``). One writer at a time, so a count of
active keys taken inside a write holds until it commits."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from relay.errors import LastActiveKey, TooManyKeys, UnknownAccount
from relay.keys import ApiKey, KeyHolder, key_id
from relay.models import Account
from relay.store.codec import account_from_row, api_key_from_row, ts
from relay.store.named_sql import load_queries
from relay.store.sqlite.runner import SqliteRunner
from relay.store.values import AccountSummary

QUERIES = load_queries("relay.store.sqlite")


class AccountsMixin:
    _db: SqliteRunner

    async def create_account(
        self,
        account: Account,
        key_hash: str,
        callback_secret: str,
        key_prefix: str | None = None,
    ) -> None:
        def insert(c: sqlite3.Connection) -> None:
            c.execute(
                QUERIES["insert_account"],
                {
                    "id": account.id,
                    "name": account.name,
                    "callback_secret": callback_secret,
                    "created_at": ts(account.created_at),
                },
            )
            key = ApiKey(key_id(key_hash), account.id, key_prefix, account.created_at, None)
            _insert_key(c, key, key_hash)

        await self._db.write(insert)

    async def list_accounts(self, now: datetime) -> list[AccountSummary]:
        def get(c: sqlite3.Connection) -> list[AccountSummary]:
            rows = c.execute(QUERIES["list_accounts"], {"now": ts(now)})
            return [AccountSummary(account_from_row(row), row[3]) for row in rows]

        return await self._db.read(get)

    async def account_by_key_hash(self, key_hash: str, now: datetime) -> Account | None:
        def get(c: sqlite3.Connection) -> Account | None:
            row = c.execute(
                QUERIES["account_by_key_hash"], {"key_hash": key_hash, "now": ts(now)}
            ).fetchone()
            return account_from_row(row) if row else None

        return await self._db.read(get)

    async def key_holder_by_hash(self, key_hash: str, now: datetime) -> KeyHolder | None:
        def get(c: sqlite3.Connection) -> KeyHolder | None:
            row = c.execute(
                QUERIES["key_holder_by_hash"], {"key_hash": key_hash, "now": ts(now)}
            ).fetchone()
            return KeyHolder(account_from_row(row), api_key_from_row(row[3:])) if row else None

        return await self._db.read(get)

    async def add_api_key(
        self,
        key: ApiKey,
        key_hash: str,
        *,
        others_until: datetime | None = None,
        max_active: int | None = None,
    ) -> None:
        def add(c: sqlite3.Connection) -> None:
            account = {"account_id": key.account_id}
            if c.execute(QUERIES["account_exists"], account).fetchone() is None:
                raise UnknownAccount(f"no account {key.account_id}")
            if max_active is not None:
                active = c.execute(
                    QUERIES["count_active_keys"], {**account, "now": ts(key.created_at)}
                ).fetchone()[0]
                if active >= max_active:
                    raise TooManyKeys(
                        f"the account has {active} active API keys, the most it may have; "
                        "revoke one first"
                    )
            _insert_key(c, key, key_hash)
            if others_until is not None:
                c.execute(
                    QUERIES["retire_other_keys"],
                    {**account, "key_id": key.id, "until": ts(others_until)},
                )

        await self._db.write(add)

    async def list_api_keys(self, account_id: str) -> list[ApiKey]:
        def get(c: sqlite3.Connection) -> list[ApiKey]:
            rows = c.execute(QUERIES["list_api_keys"], {"account_id": account_id})
            return [api_key_from_row(row) for row in rows]

        return await self._db.read(get)

    async def find_api_keys(self, ref: str) -> list[ApiKey]:
        def get(c: sqlite3.Connection) -> list[ApiKey]:
            return [
                api_key_from_row(row) for row in c.execute(QUERIES["find_api_keys"], {"ref": ref})
            ]

        return await self._db.read(get)

    async def revoke_api_key(
        self, account_id: str, key_id: str, now: datetime, *, keep_last: bool = False
    ) -> ApiKey | None:
        def revoke(c: sqlite3.Connection) -> ApiKey | None:
            params = {"account_id": account_id, "key_id": key_id, "now": ts(now)}
            row = c.execute(QUERIES["get_api_key"], params).fetchone()
            if row is None:
                return None
            key = api_key_from_row(row)
            if key.active(now) and keep_last:
                active = c.execute(QUERIES["count_active_keys"], params).fetchone()[0]
                if active <= 1:
                    raise LastActiveKey(
                        f"{key_id} is the account's last active API key: create another "
                        "key first, or ask the operator to rotate it"
                    )
            c.execute(QUERIES["revoke_api_key"], params)
            return api_key_from_row(c.execute(QUERIES["get_api_key"], params).fetchone())

        return await self._db.write(revoke)

    async def open_dashboard_session(
        self, session_id: str, key_id: str, now: datetime, expires_at: datetime
    ) -> None:
        def insert(c: sqlite3.Connection) -> None:
            c.execute(QUERIES["prune_dashboard_sessions"], {"now": ts(now)})
            c.execute(
                QUERIES["insert_dashboard_session"],
                {
                    "id": session_id,
                    "key_id": key_id,
                    "created_at": ts(now),
                    "expires_at": ts(expires_at),
                },
            )

        await self._db.write(insert)

    async def dashboard_session_account(self, session_id: str, now: datetime) -> str | None:
        def get(c: sqlite3.Connection) -> str | None:
            row = c.execute(
                QUERIES["dashboard_session_account"], {"id": session_id, "now": ts(now)}
            ).fetchone()
            return str(row[0]) if row else None

        return await self._db.read(get)

    async def end_dashboard_session(self, session_id: str) -> None:
        await self._db.write(
            lambda c: c.execute(QUERIES["delete_dashboard_session"], {"id": session_id})
        )


def _insert_key(c: sqlite3.Connection, key: ApiKey, key_hash: str) -> None:
    c.execute(
        QUERIES["insert_api_key"],
        {
            "key_hash": key_hash,
            "id": key.id,
            "account_id": key.account_id,
            "prefix": key.prefix,
            "created_at": ts(key.created_at),
        },
    )
