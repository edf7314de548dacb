"""How a replay walks its window in bounded steps, for both backends.

A replay (and its count) reads the account's events created in ``[since, until)`` in
``(created_at, pk)`` order, ``REPLAY_SCAN`` at a time, each step its own short transaction: a
window holding nothing costs one index probe, a long one many short steps the other requests
interleave with, never one statement over the whole history. The cursor is the
``(created_at, pk)`` of the last event a step read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ReplayCursor = tuple[float, int]
"""Where a replay continues: past the event with this (created_at, pk)."""

REPLAY_SCAN = 500
"""Events a replay step reads (its transaction's bound, whatever the window)."""

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
