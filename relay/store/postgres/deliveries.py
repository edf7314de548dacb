"""The PostgreSQL store's delivery loop (mixed into ``PostgresStore``): the claim of due
attempts under leases, the batched record of finished attempts, and the next wake-up time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from relay.models import DueDelivery, utc
from relay.store import codec
from relay.store.codec import ts
from relay.store.interface import ClaimLimits
from relay.store.named_sql import load_queries
from relay.store.postgres.announce import disable_and_announce
from relay.store.postgres.outbox import Row, claimed_delivery, fetch_all, fetch_one
from relay.store.postgres.runner import Conn, PgRunner
from relay.store.values import AttemptRecord

QUERIES = load_queries("relay.store.postgres")


def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL, which a receiver's response body may contain."""
    return value.replace("\x00", "\ufffd") if value else value


class DeliveriesMixin:
    _db: PgRunner
    _holder: str
    _leased: bool

    async def claim_due_deliveries(
        self,
        now: datetime,
        limit: int,
        lease_seconds: float,
        owner: str,
        *,
        limits: ClaimLimits | None = None,
    ) -> list[DueDelivery]:
        params = self._claim_params(now, limit, lease_seconds, owner, limits)
        rows = await self._db.run(
            lambda c: fetch_all(c, QUERIES["claim_due_deliveries"], params), transaction=False
        )
        return [claimed_delivery(r, now) for r in rows]

    async def record_attempts(self, records: Sequence[AttemptRecord], owner: str) -> None:
        if not records:
            return
        params = _record_params(records, owner)

        async def write(c: Conn) -> None:
            await _record(c, params)

        # Pipelined: the statements go out together, one round trip until the commit.
        await self._db.run(write, pipeline=True)

    async def record_and_claim(
        self,
        records: Sequence[AttemptRecord],
        owner: str,
        now: datetime,
        limit: int,
        lease_seconds: float,
        *,
        limits: ClaimLimits | None = None,
    ) -> list[DueDelivery]:
        # One transaction for the delivery loop's cycle: the records first, so the claim
        # sees their leases released and their retries due.
        if not records:
            if limit <= 0:
                return []
            return await self.claim_due_deliveries(now, limit, lease_seconds, owner, limits=limits)
        if limit <= 0:
            await self.record_attempts(records, owner)
            return []
        record = _record_params(records, owner)
        claim = self._claim_params(now, limit, lease_seconds, owner, limits)

        async def cycle(c: Conn) -> list[Row]:
            await _record(c, record)
            return await fetch_all(c, QUERIES["claim_due_deliveries"], claim)

        # Pipelined: one round trip for the record's subscriptions, one for the claim.
        rows = await self._db.run(cycle, pipeline=True)
        return [claimed_delivery(r, now) for r in rows]

    def _claim_params(
        self,
        now: datetime,
        limit: int,
        lease_seconds: float,
        owner: str,
        limits: ClaimLimits | None,
    ) -> dict[str, Any]:
        t = now.timestamp()
        limits = limits or ClaimLimits()
        rooms = limits.destination_room
        accounts = limits.account_room
        totals = limits.account_total_room
        gates = limits.gates
        self._leased = True
        return {
            "now": t,
            "full": [k for k, n in rooms.items() if n <= 0],
            "full_accounts": [a for a, n in accounts.items() if n <= 0],
            "spent_accounts": [a for a, n in totals.items() if n <= 0],
            "uncounted": sorted(limits.uncounted),
            # Look a little past the limit, so one destination's or account's backlog at the
            # head of the queue does not hide the others' due work from this claim (as
            # SQLite does).
            "window": limit * limits.window,
            "keys": list(rooms),
            "rooms": list(rooms.values()),
            "cap": limit if limits.per_destination is None else limits.per_destination,
            # A quick destination with nothing in flight may take sends ahead too.
            "quick_cap": (
                limit if limits.per_destination is None else limits.per_destination + limits.ahead
            ),
            "ahead": limits.ahead,
            "rated_cap": limit if limits.per_destination is None else 1,
            "accounts": list(accounts),
            "account_rooms": list(accounts.values()),
            "account_cap": limit if limits.per_account is None else limits.per_account,
            "totals": list(totals),
            "total_rooms": list(totals.values()),
            "total_cap": limit if limits.per_account_total is None else limits.per_account_total,
            "gate_keys": list(gates),
            "gate_rates": [g.rate for g in gates.values()],
            "gate_rooms": [g.room for g in gates.values()],
            "limit": limit,
            "owner": owner,
            "until": t + lease_seconds,
            "holder": self._holder,
        }

    async def next_delivery_at(self, after: datetime) -> datetime | None:
        row = await self._db.run(
            lambda c: fetch_one(c, QUERIES["next_delivery_at"], {"after": after.timestamp()}),
            transaction=False,
        )
        return codec.dt(row[0] if row else None)

    async def release_deliveries(self, pks: Sequence[int], owner: str) -> None:
        params = {"pks": list(pks), "owner": owner}
        await self._db.run(lambda c: c.execute(QUERIES["release_deliveries"], params))


def _record_params(records: Sequence[AttemptRecord], owner: str) -> dict[str, Any]:
    return {
        "pk": [r.delivery_pk for r in records],
        "number": [r.attempt.number for r in records],
        "started": [ts(r.attempt.started_at) for r in records],
        "latency": [r.attempt.latency_ms for r in records],
        "outcome": [_text(r.attempt.outcome) for r in records],
        "code": [r.attempt.status_code for r in records],
        "error": [_text(r.attempt.error) for r in records],
        "snippet": [_text(r.attempt.response_snippet) for r in records],
        "status": [r.status.value for r in records],
        "next": [ts(r.next_attempt_at) for r in records],
        "owner": owner,
    }


async def _record(c: Conn, params: dict[str, Any]) -> None:
    """Apply a batch of attempt records in the caller's transaction."""
    # Bookkeeping: see no_sync_commit. The subscriptions first, then the record, fenced by
    # lease owner and attempt number: see lock_attempt_subscriptions and record_attempts in
    # queries.sql.
    await c.execute(QUERIES["no_sync_commit"])
    await c.execute(QUERIES["lock_attempt_subscriptions"], params)
    for sub_id, account_id, at in await fetch_all(c, QUERIES["record_attempts"], params):
        await disable_and_announce(
            c, sub_id, "the receiver answered 410 Gone", "gone", utc(at), account_id
        )
