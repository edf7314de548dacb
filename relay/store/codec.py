"""How domain values map to database rows, shared by every backend.

A task's filterable fields are columns; its descriptive fields travel as one JSON document,
so adding a reported field never needs a migration. The rows of the newer work queues are
in ``relay.store.submission_codec`` and ``relay.store.copy_codec``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from relay.copies.values import TaskOutput
from relay.keys import ApiKey
from relay.models import (
    Account,
    Attempt,
    Delivery,
    DeliveryStatus,
    Destination,
    Event,
    EventType,
    Look,
    Subscription,
    SubscriptionStatus,
    Task,
    TaskError,
    TaskStatus,
    utc,
)
from relay.pricing import Cost
from relay.routing import SubmissionStep
from relay.store.values import SUBSCRIPTION_FIELDS, Page

T = TypeVar("T")


def ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def dt(value: float | None) -> datetime | None:
    return None if value is None else utc(value)


def storable(text: str | None) -> str | None:
    """Text a provider wrote (a fault message), without the NUL PostgreSQL cannot store."""
    return None if text is None else text.replace("\x00", "")


def event_types_json(types: frozenset[EventType] | None) -> str | None:
    return None if types is None else json.dumps(sorted(t.value for t in types))


def event_types_from(text: str | None) -> frozenset[EventType] | None:
    return None if text is None else frozenset(EventType(t) for t in json.loads(text))


TASK_COLUMNS = (
    "id, account_id, provider, provider_task_id, status, reference, version, sequence, data, "
    "created_at, updated_at, next_poll_at"
)


def task_params(task: Task) -> dict[str, Any]:
    data = {
        "model": task.model,
        "progress": task.progress,
        "video_url": task.video_url,
        "video_url_expires_at": ts(task.video_url_expires_at),
        "last_frame_url": task.last_frame_url,
        "provider_video_url": task.provider_video_url,
        "provider_video_url_expires_at": ts(task.provider_video_url_expires_at),
        "provider_last_frame_url": task.provider_last_frame_url,
        "output": task.output.to_data() if task.output else None,
        "cost": task.cost.to_json() if task.cost else None,
        "route": task.route,
        "submissions": [step.to_data() for step in task.submissions],
        # The input is kept only while a resubmission may still need it.
        "kept_input": None if task.status.terminal else task.kept_input,
        "resubmit_lease": ts(task.resubmit_lease),
        "estimate": task.estimate.to_json() if task.estimate else None,
        "error": task.error.to_json() if task.error else None,
        "usage": task.usage,
        "resolution": task.resolution,
        "ratio": task.ratio,
        "duration": task.duration,
        "fps": task.fps,
        "seed": task.seed,
        "metadata": task.metadata,
        "callback_url": task.callback_url,
        "callback_events": (
            None if task.callback_events is None else sorted(t.value for t in task.callback_events)
        ),
        "completed_at": ts(task.completed_at),
        "poll_count": task.poll_count,
        "not_found_count": task.not_found_count,
        "looks": [look.to_json() for look in task.looks],
    }
    return {
        "id": task.id,
        "account_id": task.account_id,
        "provider": task.provider,
        "provider_task_id": task.provider_task_id,
        "status": task.status.value,
        "reference": task.reference,
        "version": task.version,
        "sequence": task.sequence,
        "data": json.dumps(data, separators=(",", ":"), ensure_ascii=False),
        "created_at": ts(task.created_at),
        "updated_at": ts(task.updated_at),
        "next_poll_at": ts(task.next_poll_at),
        "completed_at": ts(task.completed_at),
        "cost_amount": str(task.cost.amount) if task.cost else None,
        "cost_currency": task.cost.currency if task.cost else None,
    }


def task_from_row(row: Sequence[Any]) -> Task:
    """A row selected with ``TASK_COLUMNS``."""
    (
        id_,
        account_id,
        provider,
        provider_task_id,
        status,
        reference,
        version,
        sequence,
        data,
        created_at,
        updated_at,
        next_poll_at,
    ) = row
    d = json.loads(data)
    events = d["callback_events"]
    return Task(
        id=id_,
        account_id=account_id,
        provider=provider,
        provider_task_id=provider_task_id,
        status=TaskStatus(status),
        reference=reference,
        version=version,
        sequence=sequence,
        created_at=utc(created_at),
        updated_at=utc(updated_at),
        next_poll_at=dt(next_poll_at),
        model=d["model"],
        progress=d["progress"],
        video_url=d["video_url"],
        video_url_expires_at=dt(d["video_url_expires_at"]),
        last_frame_url=d["last_frame_url"],
        # Rows written before outputs were copied: the provider's link is the task's.
        provider_video_url=d.get("provider_video_url", d["video_url"]),
        provider_video_url_expires_at=dt(
            d.get("provider_video_url_expires_at", d["video_url_expires_at"])
        ),
        provider_last_frame_url=d.get("provider_last_frame_url", d["last_frame_url"]),
        output=TaskOutput.from_data(d["output"]) if d.get("output") else None,
        cost=Cost.from_json(d["cost"]) if d.get("cost") else None,
        route=d.get("route"),
        submissions=tuple(SubmissionStep.from_data(x) for x in d.get("submissions", ())),
        kept_input=d.get("kept_input"),
        resubmit_lease=dt(d.get("resubmit_lease")),
        estimate=Cost.from_json(d["estimate"]) if d.get("estimate") else None,
        error=TaskError.from_json(d["error"]) if d["error"] else None,
        usage=d["usage"],
        resolution=d["resolution"],
        ratio=d["ratio"],
        duration=d["duration"],
        fps=d["fps"],
        seed=d["seed"],
        metadata=d["metadata"],
        callback_url=d["callback_url"],
        callback_events=None if events is None else frozenset(EventType(e) for e in events),
        completed_at=dt(d["completed_at"]),
        poll_count=d["poll_count"],
        not_found_count=d["not_found_count"],
        # Rows written before looks were kept have none.
        looks=tuple(Look.from_json(look) for look in d.get("looks", ())),
    )


EVENT_COLUMNS = "id, account_id, task_id, type, sequence, created_at, body, url_expires_at"


def event_from_row(row: Sequence[Any]) -> Event:
    id_, account_id, task_id, type_, sequence, created_at, body, url_expires_at = row
    return Event(
        id=id_,
        account_id=account_id,
        task_id=task_id,
        type=EventType(type_),
        sequence=sequence,
        created_at=utc(created_at),
        body=body,
        url_expires_at=dt(url_expires_at),
    )


ACCOUNT_COLUMNS = "id, name, created_at"


def account_from_row(row: Sequence[Any]) -> Account:
    return Account(id=row[0], name=row[1], created_at=utc(row[2]))


def api_key_from_row(row: Sequence[Any]) -> ApiKey:
    """id, account_id, prefix, created_at, revoked_at"""
    return ApiKey(row[0], row[1], row[2], utc(row[3]), dt(row[4]))


DELIVERY_COLUMNS = (
    "d.pk, d.id, d.account_id, e.id, d.destination_id, d.url, d.status, d.attempt_count, "
    "d.next_attempt_at, d.created_at, d.updated_at"
)


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    """A row selected with ``DELIVERY_COLUMNS`` (its leading pk is skipped)."""
    (
        _pk,
        id_,
        account_id,
        event_id,
        destination_id,
        url,
        status,
        attempt_count,
        next_attempt_at,
        created_at,
        updated_at,
    ) = row
    return Delivery(
        id=id_,
        account_id=account_id,
        event_id=event_id,
        destination_id=destination_id,
        url=url,
        status=DeliveryStatus(status),
        attempt_count=attempt_count,
        next_attempt_at=dt(next_attempt_at),
        created_at=utc(created_at),
        updated_at=utc(updated_at),
    )


ATTEMPT_COLUMNS = "number, started_at, latency_ms, outcome, status_code, error, response_snippet"


def attempt_from_row(delivery_id: str, row: Sequence[Any]) -> Attempt:
    number, started_at, latency_ms, outcome, status_code, error, snippet = row
    return Attempt(
        delivery_id=delivery_id,
        number=number,
        started_at=utc(started_at),
        latency_ms=latency_ms,
        outcome=outcome,
        status_code=status_code,
        error=error,
        response_snippet=snippet,
    )


DESTINATION_COLUMNS = "id, account_id, kind, url, key, event_types, task_id, secret, body_format"


def destination_from_row(row: Sequence[Any]) -> Destination:
    return Destination(
        id=row[0],
        account_id=row[1],
        kind=row[2],
        url=row[3],
        key=row[4],
        event_types=event_types_from(row[5]),
        task_id=row[6],
        secret=row[7],
        # Read by the queries that fan events out; a row without it is a subscription's
        # (always the standard envelope).
        body_format=row[8] if len(row) > 8 and row[8] else "standard",
    )


SUBSCRIPTION_COLUMNS = (
    "id, account_id, url, event_types, status, created_at, updated_at, description, headers, "
    "rate_limit, disabled_reason, disabled_at, failing_since, last_success_at, "
    "previous_secret_until"
)


def subscription_from_row(row: Sequence[Any]) -> Subscription:
    return Subscription(
        id=row[0],
        account_id=row[1],
        url=row[2],
        event_types=event_types_from(row[3]),
        status=SubscriptionStatus(row[4]),
        created_at=utc(row[5]),
        updated_at=utc(row[6]),
        description=row[7],
        headers=headers_from_json(row[8]),
        rate_limit=row[9],
        disabled_reason=row[10],
        disabled_at=dt(row[11]),
        failing_since=dt(row[12]),
        last_success_at=dt(row[13]),
        previous_secret_until=dt(row[14]),
    )


def headers_json(headers: Sequence[tuple[str, str]] | Mapping[str, str]) -> str | None:
    pairs = dict(headers)
    return json.dumps(pairs, sort_keys=True) if pairs else None


def headers_from_json(text: str | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(json.loads(text).items())) if text else ()


def signing_secrets(
    secret: str, previous: str | None, previous_until: float | None, now: datetime
) -> tuple[str, ...]:
    """Every secret a delivery is signed with now: during a rotation's grace, both."""
    if previous and previous_until is not None and previous_until > now.timestamp():
        return (secret, previous)
    return (secret,)


def subscription_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of a backend's static ``update_subscription`` query: each of
    ``SUBSCRIPTION_FIELDS`` as a column value, with a ``set_<field>`` flag saying whether the
    change names it (a field not named keeps its value). Other names are a ``ValueError``."""
    unknown = set(changes) - SUBSCRIPTION_FIELDS
    if unknown:
        raise ValueError(f"not subscription fields: {sorted(unknown)}")
    values = dict(changes)
    if "event_types" in values:
        values["event_types"] = event_types_json(values["event_types"])
    if "headers" in values:
        values["headers"] = headers_json(values["headers"] or {})
    params: dict[str, Any] = {}
    for name in sorted(SUBSCRIPTION_FIELDS):
        params[f"set_{name}"] = name in values
        params[name] = values.get(name)
    return params


def paged(
    rows: Sequence[Sequence[Any]], limit: int, decode: Callable[[Sequence[Any]], T]
) -> Page[T]:
    """A page of rows selected as (pk, *columns), ``limit + 1`` of them: the extra row only
    says that another page follows, from the last pk of this one."""
    more = len(rows) > limit
    kept = rows[:limit]
    return Page(
        items=[decode(r[1:]) for r in kept], next_after=kept[-1][0] if more and kept else None
    )
