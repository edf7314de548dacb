"""How a replay walks its window in bounded steps, for both backends.

A replay (and its count) reads the account's events created in ``[since, until)`` in
``(created_at, pk)`` order, ``REPLAY_SCAN`` at a time, each step its own short transaction: a
window holding nothing costs one index probe, a long one many short steps the other requests
interleave with, never one statement over the whole history. The cursor is the
``(created_at, pk)`` of the last event a step read."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from relay.store.codec import ts
from relay.store.values import ReplayQuery

ReplayCursor = tuple[float, int]
"""Where a replay continues: past the event with this (created_at, pk)."""

REPLAY_SCAN = 500
"""Events a replay step reads (its transaction's bound, whatever the window)."""

FAR_FUTURE = 1e15
"""The window's end when the query leaves it open: a bound nothing passes."""


def window_params(
    account_id: str,
    destination_id: str,
    types: object,
    query: ReplayQuery,
    cursor: ReplayCursor | None,
    scan: int,
) -> dict[str, Any]:
    """The parameters of one step's ``replay_window`` (both engines; ``types`` in the
    engine's own form)."""
    since = ts(query.since) or 0.0
    after_at, after_pk = cursor if cursor is not None else (since, 0)
    return {
        "account_id": account_id,
        "destination_id": destination_id,
        "types": types,
        "since": since,
        "until": ts(query.until) or FAR_FUTURE,
        "only_failed": query.only_failed,
        "after_at": after_at,
        "after_pk": after_pk,
        "scan": scan,
    }


# Columns of a window row (the queries' replay_window): pk, id, task_id, created_at, wanted.
PK, EVENT_ID, TASK_ID, CREATED_AT, WANTED = range(5)


def pick(rows: Sequence[Sequence[Any]], want: int) -> tuple[list[Sequence[Any]], int]:
    """The rows a step sends (those ``wanted``, at most ``want``) and how many rows it read
    to find them: a step that found enough stops at the last one it sends."""
    picked: list[Sequence[Any]] = []
    for seen, row in enumerate(rows, start=1):
        if row[WANTED]:
            picked.append(row)
            if len(picked) >= want:
                return picked, seen
    return picked, len(rows)


def step_end(
    rows: Sequence[Sequence[Any]], seen: int, scan: int, cursor: ReplayCursor | None
) -> tuple[ReplayCursor | None, bool]:
    """(the cursor past the last row read, whether the window is done)."""
    done = seen == len(rows) and len(rows) < scan
    if not seen:
        return cursor, done
    last = rows[seen - 1]
    return (float(last[CREATED_AT]), int(last[PK])), done


def count_end(rows: Sequence[Sequence[Any]], scan: int) -> tuple[int, ReplayCursor | None]:
    """A count step's (how many it sends, the cursor past them or None: the window is done)."""
    counted = sum(1 for row in rows if row[WANTED])
    if len(rows) < scan:
        return counted, None
    last = rows[-1]
    return counted, (float(last[CREATED_AT]), int(last[PK]))


ReplayStep = tuple[int, ReplayCursor | None, bool]
"""What one replay step did: (deliveries written, the cursor past what it read, whether the
window is done); None from a step: no such active subscription."""


async def replay_in_steps(
    step: Callable[[ReplayCursor | None, int], Awaitable[ReplayStep | None]],
    after: ReplayCursor | None,
    limit: int,
) -> tuple[int, ReplayCursor | None]:
    """Up to ``limit`` events, one ``step(cursor, wanted)`` (a short transaction) at a time,
    with the event loop free in between: (how many, the cursor to go on from, or None when
    the window is done)."""
    total, cursor = 0, after
    while True:
        done_step = await step(cursor, limit - total)
        if done_step is None:  # no such active subscription (any more)
            return total, None
        written, cursor, done = done_step
        total += written
        if total >= limit:
            return total, cursor
        if done:
            return total, None
        await asyncio.sleep(0)


async def count_in_steps(
    step: Callable[[ReplayCursor | None], Awaitable[tuple[int, ReplayCursor | None] | None]],
) -> int:
    """How many events a replay would send, one ``step(cursor)`` (a short read) at a time."""
    total: int = 0
    cursor: ReplayCursor | None = None
    while True:
        counted = await step(cursor)
        if counted is None:
            return 0
        n, cursor = counted
        total += n
        if cursor is None:
            return total
        await asyncio.sleep(0)
