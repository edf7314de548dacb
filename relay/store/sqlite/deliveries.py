"""The SQLite store's delivery queue: claiming due deliveries under a lease, recording their
attempts, and the subscription health those attempts tell (mixed into
``relay.store.sqlite.store.SqliteStore``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime

from relay.models import DeliveryStatus, DueDelivery, utc
from relay.store.codec import dt, headers_from_json, signing_secrets, ts
from relay.store.interface import ClaimLimits
from relay.store.named_sql import load_queries
from relay.store.sqlite.announce import disable_and_announce
from relay.store.sqlite.runner import SqliteRunner
from relay.store.values import AttemptRecord

QUERIES = load_queries("relay.store.sqlite")


class DeliveriesMixin:
    _db: SqliteRunner

    async def claim_due_deliveries(
        self,
        now: datetime,
        limit: int,
        lease_seconds: float,
        owner: str,
        *,
        limits: ClaimLimits | None = None,
    ) -> list[DueDelivery]:
        return await self._db.write(_claimer(now, limit, lease_seconds, owner, limits))

    async def record_attempts(self, records: Sequence[AttemptRecord], owner: str) -> None:
        if records:
            await self._db.write(_recorder(records, owner))

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
        # One trip to the writer thread and one transaction for the delivery loop's cycle:
        # the records first, so the claim sees their leases released and their retries due.
        record = _recorder(records, owner) if records else None
        claim = _claimer(now, limit, lease_seconds, owner, limits) if limit > 0 else None
        if record is None and claim is None:
            return []

        def cycle(c: sqlite3.Connection) -> list[DueDelivery]:
            if record is not None:
                record(c)
            return claim(c) if claim is not None else []

        return await self._db.write(cycle)

    async def next_delivery_at(self, after: datetime) -> datetime | None:
        def get(c: sqlite3.Connection) -> float | None:
            row = c.execute(QUERIES["next_delivery_at"], {"after": after.timestamp()}).fetchone()
            return row[0] if row else None

        return dt(await self._db.read(get))

    async def release_deliveries(self, pks: Sequence[int], owner: str) -> None:
        params = {"pks": json.dumps(list(pks)), "owner": owner}
        await self._db.write(lambda c: c.execute(QUERIES["release_deliveries"], params))


def _claimer(
    now: datetime, limit: int, lease_seconds: float, owner: str, limits: ClaimLimits | None
) -> Callable[[sqlite3.Connection], list[DueDelivery]]:
    """The claim of ``claim_due_deliveries``, to run on the writer's connection."""
    t = now.timestamp()
    limits = limits or ClaimLimits()
    cap = limit if limits.per_destination is None else limits.per_destination
    params = {
        "now": t,
        "room": json.dumps(dict(limits.destination_room)),
        "gates": json.dumps({k: [g.rate, g.room] for k, g in limits.gates.items()}),
        "cap": cap,
        # A quick destination with nothing in flight may take sends ahead too.
        "quick_cap": limit if limits.per_destination is None else cap + limits.ahead,
        "ahead": limits.ahead,
        "rated_cap": limit if limits.per_destination is None else 1,
        "accounts": json.dumps(dict(limits.account_room)),
        "account_cap": limit if limits.per_account is None else limits.per_account,
        "uncounted": json.dumps(sorted(limits.uncounted)),
        "totals": json.dumps(dict(limits.account_total_room)),
        "total_cap": limit if limits.per_account_total is None else limits.per_account_total,
        # Look a little past the limit, so one destination's or account's backlog at the
        # head of the queue does not hide the others' due work from this claim; SQLite
        # ranks the candidates and keeps as many as each one's room allows.
        "window": limit * limits.window,
        "limit": limit,
    }

    def claim(c: sqlite3.Connection) -> list[DueDelivery]:
        # The pks come as one JSON array, which the next two statements take as it is.
        [(picked,)] = c.execute(QUERIES["pick_due_deliveries"], params).fetchall()
        if picked == "[]":
            return []
        c.execute(
            QUERIES["lease_deliveries"],
            {"owner": owner, "lease_until": t + lease_seconds, "picked": picked},
        )
        rows = c.execute(QUERIES["leased_deliveries"], {"picked": picked}).fetchall()
        return [
            DueDelivery(
                pk=r[0],
                id=r[1],
                event_id=r[2],
                destination_key=r[3],
                url=r[4],
                body=r[5],
                secrets=signing_secrets(r[6], r[11], r[12], now),
                attempt_count=r[7],
                account_id=r[8],
                task_id=r[9],
                url_expires_at=dt(r[10]),
                headers=headers_from_json(r[13]),
                rate_limit=r[14],
                body_format=r[15],
            )
            for r in rows
        ]

    return claim


def _recorder(records: Sequence[AttemptRecord], owner: str) -> Callable[[sqlite3.Connection], None]:
    """The write of ``record_attempts``, to run on the writer's connection."""
    # The whole batch travels as one JSON parameter and is written by two statements:
    # executemany would step SQLite once per row, handing the GIL back and forth with
    # the event loop each time, which under load cost ~100 us a row instead of ~10.
    # Each record is an array in the order the queries' CTE r unpacks it.
    batch = json.dumps(
        [
            [
                r.delivery_pk,
                r.attempt.number,
                ts(r.attempt.started_at),
                r.attempt.latency_ms,
                r.attempt.outcome,
                r.attempt.status_code,
                r.attempt.error,
                r.attempt.response_snippet,
                r.status.value,
                ts(r.next_attempt_at),
            ]
            for r in records
        ]
    )

    # Each statement reads the whole batch: the ones that would find nothing in it are left
    # out (a batch of successes, the usual one, needs neither failures nor a 410).
    failed = any(r.status is not DeliveryStatus.SUCCEEDED for r in records)
    gone = any(r.status is DeliveryStatus.STOPPED and r.attempt.status_code == 410 for r in records)

    def write(c: sqlite3.Connection) -> None:
        # Fenced by owner and attempt number (see the queries): a late record from an
        # expired lease changes nothing.
        c.execute(QUERIES["insert_attempts"], {"batch": batch, "owner": owner})
        c.execute(QUERIES["apply_attempts"], {"batch": batch, "owner": owner})
        note_destination_health(c, batch, failed=failed, gone=gone)

    return write


def note_destination_health(
    c: sqlite3.Connection, batch: str, *, failed: bool = True, gone: bool = True
) -> None:
    """A subscription's health from its attempts: the last success, since when it fails,
    and a 410 Gone (Zapier's "this Zap is off") disables it at once. ``failed``: whether
    the batch holds an attempt that did not succeed; ``gone``: one stopped by a 410."""
    c.execute(QUERIES["note_successes"], {"batch": batch})
    if failed:
        c.execute(QUERIES["note_failures"], {"batch": batch})
    if not gone:
        return
    for sub_id, account_id, at in c.execute(
        QUERIES["gone_subscriptions"], {"batch": batch}
    ).fetchall():
        disable_and_announce(
            c, sub_id, "the receiver answered 410 Gone", "gone", utc(at), account_id
        )
