"""How a submission (``relay.submissions``) maps to its row, shared by every backend."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from relay.models import utc
from relay.store.codec import dt, storable, ts
from relay.submissions import Submission, SubmissionState


def submission_params(s: Submission) -> dict[str, Any]:
    return {
        "id": s.id,
        "account_id": s.account_id,
        "task_id": s.task_id,
        "provider": s.provider,
        "state": s.state.value,
        "body_hash": s.body_hash,
        "registration": json.dumps(s.registration, separators=(",", ":")),
        "idempotency_key": s.idempotency_key,
        "provider_task_id": s.provider_task_id,
        "detail": storable(s.detail),
        "created_at": ts(s.created_at),
        "updated_at": ts(s.updated_at),
        "lease_until": ts(s.lease_until),
        "looks": s.looks,
        "next_look_at": ts(s.next_look_at),
    }


def submission_from_row(row: Sequence[Any]) -> Submission:
    """A row selected as the columns of ``submission_params``, in that order."""
    return Submission(
        id=row[0],
        account_id=row[1],
        task_id=row[2],
        provider=row[3],
        state=SubmissionState(row[4]),
        body_hash=row[5],
        registration=json.loads(row[6]),
        idempotency_key=row[7],
        provider_task_id=row[8],
        detail=row[9],
        created_at=utc(row[10]),
        updated_at=utc(row[11]),
        lease_until=utc(row[12]),
        looks=row[13],
        next_look_at=dt(row[14]),
    )
