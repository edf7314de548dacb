"""How an output copy (``relay.copies``) maps to its row, shared by every backend."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from relay.copies.values import CopyState, CopyTry, OutputCopy, OutputKind
from relay.models import utc
from relay.store.codec import dt, storable, ts

COPY_COLUMNS = (
    "id, account_id, task_id, kind, state, attempts, next_attempt_at, announce_by, "
    "object_key, size, sha256, content_type, stored_at, error, deleted_at, deleted_reason, "
    "tries, created_at, updated_at"
)
"""The columns of an output copy, in the order of ``copy_params`` and ``copy_from_row``; the
lease (``lease_owner``, ``lease_until``) is the store's, not the copy's."""


def copy_params(copy: OutputCopy) -> dict[str, Any]:
    """An output copy's row (``COPY_COLUMNS``); its tries are a JSON list of
    ``CopyTry.to_json``. Error texts may quote a remote answer: no NUL (``storable``)."""
    return {
        "id": copy.id,
        "account_id": copy.account_id,
        "task_id": copy.task_id,
        "kind": copy.kind.value,
        "state": copy.state.value,
        "attempts": copy.attempts,
        "next_attempt_at": ts(copy.next_attempt_at),
        "announce_by": ts(copy.announce_by),
        "object_key": copy.object_key,
        "size": copy.size,
        "sha256": copy.sha256,
        "content_type": copy.content_type,
        "stored_at": ts(copy.stored_at),
        "error": storable(copy.error),
        "deleted_at": ts(copy.deleted_at),
        "deleted_reason": storable(copy.deleted_reason),
        "tries": json.dumps([t.to_json() for t in copy.tries], separators=(",", ":")),
        "created_at": ts(copy.created_at),
        "updated_at": ts(copy.updated_at),
    }


def copy_from_row(row: Sequence[Any]) -> OutputCopy:
    """A row selected with ``COPY_COLUMNS``."""
    return OutputCopy(
        id=row[0],
        account_id=row[1],
        task_id=row[2],
        kind=OutputKind(row[3]),
        state=CopyState(row[4]),
        attempts=row[5],
        next_attempt_at=dt(row[6]),
        announce_by=dt(row[7]),
        object_key=row[8],
        size=row[9],
        sha256=row[10],
        content_type=row[11],
        stored_at=dt(row[12]),
        error=row[13],
        deleted_at=dt(row[14]),
        deleted_reason=row[15],
        tries=tuple(CopyTry.from_json(t) for t in json.loads(row[16])),
        created_at=utc(row[17]),
        updated_at=utc(row[18]),
    )


def copy_counts(rows: Iterable[Sequence[Any]]) -> tuple[dict[CopyState, int], int]:
    """Copies by state and the bytes the stored ones hold, from (state, count, bytes) rows
    (a state may come in several rows: they are summed)."""
    copies: dict[CopyState, int] = {}
    stored_bytes = 0
    for state, n, size in rows:
        copies[CopyState(state)] = copies.get(CopyState(state), 0) + int(n)
        if state == CopyState.STORED:
            stored_bytes += int(size)
    return copies, stored_bytes
