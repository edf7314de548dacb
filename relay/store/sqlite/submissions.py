"""The SQLite store's submissions: the intents written before a provider is asked to create
a task (mixed into ``relay.store.sqlite.store.SqliteStore``; see ``relay.submissions``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from relay.errors import SubmissionSettled
from relay.store import codec, submission_codec
from relay.store.codec import ts
from relay.store.named_sql import load_queries
from relay.store.sqlite.runner import SqliteRunner
from relay.store.values import Page
from relay.submissions import Submission, SubmissionState

QUERIES = load_queries("relay.store.sqlite")

DEAD_HOLDER = "the relay stopped before the provider's answer to the create was known"


class SubmissionsMixin:
    _db: SqliteRunner

    async def begin_submission(self, submission: Submission) -> bool:
        params = submission_codec.submission_params(submission)
        return bool(
            await self._db.write(lambda c: c.execute(QUERIES["insert_submission"], params).rowcount)
        )

    async def renew_submission(self, submission_id: str, lease_until: datetime) -> None:
        params = {"id": submission_id, "lease_until": ts(lease_until)}
        await self._db.write(lambda c: c.execute(QUERIES["renew_submission"], params))

    async def settle_submission(
        self,
        submission_id: str,
        state: SubmissionState,
        now: datetime,
        detail: str | None = None,
        provider_task_id: str | None = None,
        next_look_at: datetime | None = None,
    ) -> bool:
        params = {
            "id": submission_id,
            "state": state.value,
            "now": ts(now),
            "detail": codec.storable(detail),
            "provider_task_id": provider_task_id,
            "next_look_at": ts(next_look_at),
        }
        return await self._db.write(
            lambda c: c.execute(QUERIES["settle_submission"], params).rowcount == 1
        )

    async def note_look(
        self, submission_id: str, now: datetime, detail: str, next_look_at: datetime | None
    ) -> None:
        params = {
            "id": submission_id,
            "now": ts(now),
            "detail": codec.storable(detail),
            "next_look_at": ts(next_look_at),
        }
        await self._db.write(lambda c: c.execute(QUERIES["note_look"], params))

    async def get_submission(self, account_id: str, submission_id: str) -> Submission | None:
        params = {"id": submission_id, "account_id": account_id}
        row = await self._db.read(lambda c: c.execute(QUERIES["get_submission"], params).fetchone())
        return None if row is None else submission_codec.submission_from_row(row)

    async def submission_for_key(self, account_id: str, key: str) -> Submission | None:
        params = {"account_id": account_id, "key": key}
        row = await self._db.read(
            lambda c: c.execute(QUERIES["submission_for_key"], params).fetchone()
        )
        return None if row is None else submission_codec.submission_from_row(row)

    async def list_submissions(
        self, account_id: str, state: SubmissionState | None, after: int | None, limit: int
    ) -> Page[Submission]:
        params = {
            "account_id": account_id,
            "state": None if state is None else state.value,
            "after": after,
            "limit": limit + 1,
        }
        query = (
            QUERIES["list_submissions"] if state is None else QUERIES["list_submissions_in_state"]
        )
        rows = await self._db.read(lambda c: c.execute(query, params).fetchall())
        return codec.paged(rows, limit, submission_codec.submission_from_row)

    async def due_submissions(self, now: datetime, since: datetime, limit: int) -> list[Submission]:
        params = {"now": ts(now), "since": ts(since), "limit": limit}
        rows = await self._db.read(
            lambda c: c.execute(QUERIES["due_submissions"], params).fetchall()
        )
        return [submission_codec.submission_from_row(r) for r in rows]

    async def rival_submissions(
        self, submission: Submission, start: datetime, end: datetime
    ) -> list[Submission]:
        params = {
            "provider": submission.provider,
            "id": submission.id,
            "start": ts(start),
            "end": ts(end),
        }
        rows = await self._db.read(
            lambda c: c.execute(QUERIES["rival_submissions"], params).fetchall()
        )
        return [submission_codec.submission_from_row(r) for r in rows]

    async def expire_submissions(self, now: datetime, detail: str) -> int:
        params = {"now": ts(now), "detail": detail}
        return await self._db.write(
            lambda c: c.execute(QUERIES["expire_submissions"], params).rowcount, alone=True
        )

    async def known_provider_task_ids(self, provider: str, ids: Sequence[str]) -> frozenset[str]:
        params = {"provider": provider, "ids": json.dumps(list(ids))}
        rows = await self._db.read(
            lambda c: c.execute(QUERIES["known_provider_task_ids"], params).fetchall()
        )
        return frozenset(r[0] for r in rows)


def release_submissions(c: sqlite3.Connection, now: datetime) -> Any:
    """At start-up (one instance): every pending submission and unanswered Idempotency-Key
    reservation is a dead process's (``release_leases``)."""
    c.execute(QUERIES["release_submissions"], {"now": ts(now), "detail": DEAD_HOLDER})
    c.execute(QUERIES["release_idempotency_keys"])


def accept_submission(
    c: sqlite3.Connection, submission_id: str, provider_task_id: str | None, now: datetime
) -> None:
    """In ``create_task``'s transaction, which ``SubmissionSettled`` rolls back."""
    accepted = c.execute(
        QUERIES["accept_submission"],
        {"id": submission_id, "provider_task_id": provider_task_id, "now": ts(now)},
    ).fetchone()
    if accepted is None:
        raise SubmissionSettled(f"submission {submission_id} was settled meanwhile")
