"""The PostgreSQL store's submissions: the intents written before a provider is asked to
create a task (mixed into ``PostgresStore``; see ``relay.submissions``).

Unlike SQLite, a starting instance cannot tell a live instance's pending submission from a
dead one's: a pending submission becomes uncertain when its holder's lease runs out
(``expire_submissions``, from housekeeping)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from relay.errors import SubmissionSettled
from relay.store import codec, submission_codec
from relay.store.codec import ts
from relay.store.named_sql import load_queries
from relay.store.postgres.outbox import fetch_all, fetch_one
from relay.store.postgres.runner import Conn, PgRunner
from relay.store.values import Page
from relay.submissions import Submission, SubmissionState

QUERIES = load_queries("relay.store.postgres")


class SubmissionsMixin:
    _db: PgRunner

    async def begin_submission(self, submission: Submission) -> bool:
        params = submission_codec.submission_params(submission)

        async def insert(c: Conn) -> bool:
            return (await c.execute(QUERIES["insert_submission"], params)).rowcount == 1

        return await self._db.run(insert, transaction=False)

    async def renew_submission(self, submission_id: str, lease_until: datetime) -> None:
        params = {"id": submission_id, "lease_until": ts(lease_until)}
        await self._db.run(
            lambda c: c.execute(QUERIES["renew_submission"], params), transaction=False
        )

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

        async def settle(c: Conn) -> bool:
            cur = await c.execute(QUERIES["settle_submission"], params)
            return cur.rowcount == 1

        return await self._db.run(settle, transaction=False)

    async def note_look(
        self, submission_id: str, now: datetime, detail: str, next_look_at: datetime | None
    ) -> None:
        params = {
            "id": submission_id,
            "now": ts(now),
            "detail": codec.storable(detail),
            "next_look_at": ts(next_look_at),
        }
        await self._db.run(lambda c: c.execute(QUERIES["note_look"], params), transaction=False)

    async def get_submission(self, account_id: str, submission_id: str) -> Submission | None:
        params = {"id": submission_id, "account_id": account_id}
        row = await self._db.run(
            lambda c: fetch_one(c, QUERIES["get_submission"], params), transaction=False
        )
        return None if row is None else submission_codec.submission_from_row(row)

    async def submission_for_key(self, account_id: str, key: str) -> Submission | None:
        params = {"account_id": account_id, "key": key}
        row = await self._db.run(
            lambda c: fetch_one(c, QUERIES["submission_for_key"], params), transaction=False
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
        rows = await self._db.run(lambda c: fetch_all(c, query, params), transaction=False)
        return codec.paged(rows, limit, submission_codec.submission_from_row)

    async def due_submissions(self, now: datetime, since: datetime, limit: int) -> list[Submission]:
        params = {"now": ts(now), "since": ts(since), "limit": limit}
        rows = await self._db.run(
            lambda c: fetch_all(c, QUERIES["due_submissions"], params), transaction=False
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
        rows = await self._db.run(
            lambda c: fetch_all(c, QUERIES["rival_submissions"], params), transaction=False
        )
        return [submission_codec.submission_from_row(r) for r in rows]

    async def expire_submissions(self, now: datetime, detail: str) -> int:
        async def expire(c: Conn) -> int:
            cur = await c.execute(QUERIES["expire_submissions"], {"now": ts(now), "detail": detail})
            return cur.rowcount

        return await self._db.run(expire, transaction=False)

    async def known_provider_task_ids(self, provider: str, ids: Sequence[str]) -> frozenset[str]:
        params = {"provider": provider, "ids": list(ids)}
        rows = await self._db.run(
            lambda c: fetch_all(c, QUERIES["known_provider_task_ids"], params),
            transaction=False,
        )
        return frozenset(r[0] for r in rows)


async def accept_submission(
    c: Conn, submission_id: str, provider_task_id: str | None, now: datetime
) -> None:
    """In ``create_task``'s transaction, which ``SubmissionSettled`` rolls back."""
    accepted = await fetch_one(
        c,
        QUERIES["accept_submission"],
        {"id": submission_id, "provider_task_id": provider_task_id, "now": ts(now)},
    )
    if accepted is None:
        raise SubmissionSettled(f"submission {submission_id} was settled meanwhile")
