"""What the dashboard's pages show, computed from domain values: pure, no I/O, the clock passed
in. The routes read the store; these functions decide what a row or a timeline says."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from relay.copies.values import CopyState, OutputCopy, OutputKind, TaskOutput
from relay.models import (
    Attempt,
    Event,
    EventType,
    Look,
    Subscription,
    SubscriptionStatus,
    Task,
    TaskStatus,
    iso,
)
from relay.store.values import DeliveryView
from relay.submissions import Submission, SubmissionState

SNIPPET_CHARS = 300
"""Response snippets are cut to this on the page (the store keeps what the config allows)."""


def age(now: datetime, then: datetime | None) -> str:
    """How long ago, coarsely: ``42s``, ``5m 3s``, ``2h 10m``, ``3d 4h``; ``-`` for never."""
    if then is None:
        return "-"
    seconds = int((now - then).total_seconds())
    if seconds < 0:
        return f"in {_span(-seconds)}"
    return _span(seconds)


def _span(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {s}s"
    hours, m = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {m}m"
    days, h = divmod(hours, 24)
    return f"{days}d {h}h"


def when(value: datetime | None) -> str:
    """A time as the API writes it (UTC, ISO 8601), or ``-``."""
    return iso(value) or "-"


def pretty_json(text: str) -> str:
    """JSON indented for reading (keys in their order, non-ASCII as written); anything that
    is not JSON unchanged."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def snippet(text: str | None) -> str:
    if not text:
        return ""
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "…"


def back_target(value: str | None, default: str) -> str:
    """Where a form sends the browser after it: only a dashboard path, never another site."""
    if (
        value
        and value.startswith("/dashboard")
        and not value.startswith("//")
        and "\\" not in value
        and "\n" not in value
        and "\r" not in value
    ):
        return value
    return default


@dataclass(frozen=True, slots=True)
class Step:
    """One line of a task's timeline."""

    at: datetime
    kind: str
    """``task``, ``event``, ``delivery``, ``attempt``, ``copy`` (of an output file) or a
    look's ``via``: what the line is about."""
    title: str
    detail: str = ""
    ok: bool | None = None
    """True/False colours a line that succeeded or failed; None leaves it plain."""


def event_data(event: Event) -> Mapping[str, Any]:
    """The ``data`` object of the event's envelope (what its webhook carries)."""
    try:
        body = json.loads(event.body)
    except ValueError:
        return {}
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else {}


def event_line(event: Event) -> str:
    data = event_data(event)
    parts = [f"status {data['status']}"] if data.get("status") else []
    if data.get("progress") is not None:
        parts.append(f"progress {data['progress']}%")
    return ", ".join(parts)


def attempt_line(a: Attempt) -> str:
    answer = f"HTTP {a.status_code}" if a.status_code is not None else (a.error or a.outcome)
    return f"attempt {a.number}: {answer} in {a.latency_ms:.0f} ms ({a.outcome})"


def timeline(
    task: Task,
    events: Sequence[Event],
    deliveries: Mapping[str, Sequence[DeliveryView]],
    copies: Sequence[OutputCopy] = (),
) -> list[Step]:
    """The task's history as the store keeps it: registration, its latest queries to the
    provider (scheduled polls, the confirmations of provider pushes, refreshes: the last
    ``LOOKS_KEPT``, with what each found), each event the relay wrote (one per status change
    or progress step), each delivery of it and every attempt, the finish, and each try at
    copying its files into the output store (the latest ``TRIES_KEPT`` of each) and their
    deletion."""
    steps = [
        Step(
            task.created_at,
            "task",
            "registered",
            f"provider {task.provider}"
            + (f", provider task {task.provider_task_id}" if task.provider_task_id else ""),
        )
    ]
    steps.extend(
        Step(
            look.at,
            look.via,
            look_title(look),
            look_line(look),
            ok=None if look.outcome == "answered" else False,
        )
        for look in task.looks
    )
    # Before the events: a try that stored the files releases the held ``task.succeeded``
    # (or ``task.output_stored``) in its own transaction, at the same instant.
    steps.extend(step for copy in copies for step in copy_steps(copy))
    finished = (
        None
        if task.completed_at is None
        else Step(
            task.completed_at,
            "task",
            f"finished: {task.status.value}",
            task.error.message if task.error else "",
            ok=task.status is TaskStatus.SUCCEEDED,
        )
    )
    for event in events:
        steps.append(Step(event.created_at, "event", str(event.type.value), event_line(event)))
        if finished is not None and event.type is EventType.for_status(task.status):
            steps.append(finished)  # next to the event that says so, before its deliveries
            finished = None
        for view in deliveries.get(event.id, ()):
            d = view.delivery
            steps.append(
                Step(
                    d.created_at,
                    "delivery",
                    f"delivery to {d.url}",
                    f"{d.status.value}, {d.attempt_count} attempt(s)",
                    ok=_delivery_ok(d.status.value),
                )
            )
            steps.extend(
                Step(
                    a.started_at,
                    "attempt",
                    attempt_line(a),
                    snippet(a.response_snippet),
                    ok=a.outcome == "delivered",
                )
                for a in view.attempts
            )
    if finished is not None:
        steps.append(finished)
    # Stable: what happened at the same instant keeps its causal order.
    return sorted(steps, key=lambda s: s.at)


KIND_LABELS = {OutputKind.VIDEO: "video", OutputKind.LAST_FRAME: "last frame"}


def copy_steps(copy: OutputCopy) -> list[Step]:
    """One line per kept try at copying ``copy`` (``video copied (N bytes)``, ``video copy
    failed: why``), and one for its deletion."""
    label = KIND_LABELS.get(copy.kind, copy.kind.value)
    first = copy.attempts - len(copy.tries) + 1  # older tries are counted, not kept
    steps = []
    for number, attempt in enumerate(copy.tries, start=max(first, 1)):
        if attempt.error is None:
            size = f" ({copy.size} bytes)" if copy.size is not None else ""
            detail = ", ".join(
                x for x in (bytes_label(copy.size), copy.content_type) if x and x != "-"
            )
            steps.append(
                Step(attempt.at, "copy", f"{label} copied{size}", f"try {number}: {detail}", True)
            )
            continue
        last = copy.state is CopyState.FAILED and number == copy.attempts
        steps.append(
            Step(
                attempt.at,
                "copy",
                f"{label} copy failed: {attempt.error}",
                f"try {number}" + (": the last, the copy gave up" if last else ""),
                False,
            )
        )
    if copy.deleted_at is not None:
        steps.append(
            Step(copy.deleted_at, "copy", f"stored {label} deleted", copy.deleted_reason or "")
        )
    return steps


_UNITS = ("KiB", "MiB", "GiB", "TiB")


def bytes_label(size: int | None) -> str:
    """A size for people: ``512 bytes``, ``293.0 KiB``, ``1.50 GiB``; ``-`` when unknown."""
    if size is None:
        return "-"
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.2f} {unit}" if value < 10 else f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def output_state_line(output: TaskOutput) -> str:
    """What the task's stored copy is, in a sentence."""
    if output.status is CopyState.STORED:
        return "Stored: video_url is the relay's own link to this copy, which does not expire."
    if output.status is CopyState.PENDING:
        why = f" (the last try failed: {output.error})" if output.error else ""
        return f"Not stored yet: the relay is copying it{why}. video_url is the provider's link."
    if output.status is CopyState.FAILED:
        return (
            f"Not stored: every try failed ({output.error or 'no reason recorded'}). "
            "video_url is the provider's link."
        )
    return (
        f"Deleted at {when(output.deleted_at)} ({output.deleted_reason or 'no reason recorded'})."
        " video_url is the provider's link again."
    )


_HOST = re.compile(r"^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$")


def origin(url: str | None) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, for a Content-Security-Policy source;
    None for anything else (nothing that could end the directive gets through)."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.netloc.rsplit("@", 1)[-1]
    if port is not None:
        host = host[: host.rfind(":")]
    if parts.scheme not in ("http", "https") or not _HOST.match(host):
        return None
    return f"{parts.scheme}://{host.lower()}" + (f":{port}" if port is not None else "")


def media_origins(urls: Iterable[str | None]) -> tuple[str, ...]:
    """The distinct origins of ``urls`` (the stored files' links, the bucket's presigned
    URLs) that a page's ``<video>`` and ``<img>`` load from, in order."""
    found = (origin(u) for u in urls)
    return tuple(dict.fromkeys(o for o in found if o is not None))


def look_title(look: Look) -> str:
    why = {
        "poll": "poll",
        "push": "push confirmed by a query",
        "refresh": "refresh",
        "cancel": "look before cancelling",
    }.get(look.via, look.via)
    return f"{why}: {look.outcome.replace('_', ' ')}"


def look_line(look: Look) -> str:
    if look.outcome != "answered":
        return (
            "no answer about the task"
            if look.outcome != "not_found"
            else "the provider does not know the task"
        )
    parts = [f"provider says {look.status or 'nothing definite'}"]
    if look.progress is not None:
        parts.append(f"{look.progress}%")
    return ", ".join(parts)


def _delivery_ok(status: str) -> bool | None:
    if status == "succeeded":
        return True
    if status in ("failed", "stopped"):
        return False
    return None


@dataclass(frozen=True, slots=True)
class Health:
    """A subscription's health in one word and a sentence."""

    state: str
    """``healthy``, ``failing``, ``disabled`` or ``new`` (nothing delivered yet)."""
    detail: str


def subscription_health(sub: Subscription, now: datetime) -> Health:
    if sub.status is SubscriptionStatus.DISABLED:
        return Health("disabled", sub.disabled_reason or "disabled")
    if sub.failing_since is not None:
        return Health("failing", f"failing for {age(now, sub.failing_since)}")
    if sub.last_success_at is not None:
        return Health("healthy", f"last success {age(now, sub.last_success_at)} ago")
    return Health("new", "nothing delivered yet")


def settleable(sub: Submission, now: datetime) -> bool:
    """Whether a person may settle ``sub`` now (what ``Submitter.resolve`` accepts): its
    answer was lost, or the instance that asked the provider let its lease run out."""
    return sub.state is SubmissionState.UNCERTAIN or (
        sub.state is SubmissionState.PENDING and sub.lease_until <= now
    )


def count_label(shown: int, more: bool) -> str:
    """A count read with a bound: ``3``, or ``50+`` when there were more than the bound."""
    return f"{shown}+" if more else str(shown)
