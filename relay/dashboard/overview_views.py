"""What the dashboard's overview shows, computed from bounded samples the store reads (the
account's latest tasks and the deliveries of its latest events) and capped counts: pure, no
I/O, the clock passed in. The charts are bar geometry for server-rendered inline SVG, like
the Usage page's (``relay.dashboard.usage_views``): no chart library, no script needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from relay.models import DeliveryStatus, TaskStatus
from relay.provider_answers import ProviderHealth
from relay.store.overview_roles import Backlog, DeliverySample, TaskSample

COUNT_CAP = 10_000
"""Tasks counted per status; past it the page says ``10,000+``."""
TASK_SAMPLE = 5_000
"""The latest tasks read for the charts and the durations."""
EVENT_SAMPLE = 1_000
"""The latest events whose deliveries give the success rate and the latencies."""
BACKLOG_CAP = 10_000
CHART_WIDTH = 540
CHART_HEIGHT = 170
TOP = 18.0
BOTTOM = 20.0
GAP = 0.12

SERIES = (
    ("succeeded", "#2f9e55", (TaskStatus.SUCCEEDED,)),
    ("failed", "#d64545", (TaskStatus.FAILED, TaskStatus.EXPIRED, TaskStatus.CANCELLED)),
    ("in progress", "#e0b020", (TaskStatus.QUEUED, TaskStatus.RUNNING)),
)
"""The stacked parts of a bar, bottom up: a name, its colour and the statuses it counts."""


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def count_text(n: int, cap: int = COUNT_CAP) -> str:
    return f"{cap:,}+" if n >= cap else f"{n:,}"


def duration_text(seconds: float | None) -> str:
    """``850 ms``, ``12.3 s``, ``4m 10s``, ``2h 5m``; ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {s}s"
    hours, m = divmod(minutes, 60)
    return f"{hours}h {m}m"


@dataclass(frozen=True, slots=True)
class Segment:
    series: str
    colour: str
    count: int
    y: float
    height: float


@dataclass(frozen=True, slots=True)
class Slot:
    """One bucket of a chart: its label, total and stacked segments (SVG units, y down)."""

    label: str
    total: int
    x: float
    width: float
    segments: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    width: int
    height: int
    top: float
    baseline: float
    highest: int
    slots: tuple[Slot, ...]
    ticks: tuple[tuple[float, str, str], ...]
    """(x, label, text-anchor) under the chart."""


def task_chart(
    samples: Iterable[TaskSample],
    now: datetime,
    *,
    buckets: int,
    step: timedelta,
    title: str,
    label_format: str,
    every: int,
) -> Chart:
    """Tasks created in the last ``buckets`` steps (the last one ends at ``now``), one
    stacked bar per step by outcome (``SERIES``); a tick every ``every`` slots."""
    start = now - step * buckets
    counts = [dict.fromkeys((name for name, _, _ in SERIES), 0) for _ in range(buckets)]
    which = {status: name for name, _, statuses in SERIES for status in statuses}
    for s in samples:
        if start <= s.created_at < now:
            index = int((s.created_at - start) / step)
            counts[min(index, buckets - 1)][which[s.status]] += 1
    baseline = CHART_HEIGHT - BOTTOM
    plot = baseline - TOP
    highest = max((sum(c.values()) for c in counts), default=0)
    slot_width = CHART_WIDTH / buckets
    slots = []
    for i, c in enumerate(counts):
        y = baseline
        segments = []
        for name, colour, _ in SERIES:
            tall = plot * c[name] / highest if highest else 0.0
            y -= tall
            if c[name]:
                segments.append(Segment(name, colour, c[name], _px(y), _px(tall)))
        begins = (start + step * i).astimezone(UTC)
        slots.append(
            Slot(
                label=begins.strftime(label_format),
                total=sum(c.values()),
                x=_px(i * slot_width + slot_width * GAP),
                width=_px(slot_width * (1 - 2 * GAP)),
                segments=tuple(segments),
            )
        )
    # Counted back from the newest slot, which is always labelled; the end labels are
    # anchored inside the chart so that they are never cut at its edge.
    ticks = tuple(
        (_px(i * slot_width + slot_width / 2), slots[i].label, _anchor(i, buckets, slot_width))
        for i in range(buckets - 1, -1, -every)
    )
    return Chart(title, CHART_WIDTH, CHART_HEIGHT, TOP, baseline, highest, tuple(slots), ticks)


def _anchor(index: int, count: int, slot_width: float) -> str:
    """SVG ``text-anchor`` of a tick: a label wider than half a slot at either end of the
    chart would be cut, so it is anchored towards the inside."""
    if slot_width >= 80:
        return "middle"
    if index == count - 1:
        return "end"
    return "start" if index == 0 else "middle"


def _px(value: float) -> float:
    return round(value, 2)


@dataclass(frozen=True, slots=True)
class Deliveries:
    """The deliveries of the latest events: how many succeeded of those that ended, and the
    latencies of their attempts."""

    succeeded: int
    failed: int
    pending: int
    attempts: int
    p50_ms: float | None
    p99_ms: float | None

    @property
    def success_rate(self) -> str:
        ended = self.succeeded + self.failed
        return f"{100 * self.succeeded / ended:.1f}%" if ended else "-"


def deliveries(samples: Sequence[DeliverySample]) -> Deliveries:
    status: dict[int, DeliveryStatus] = {}
    latencies = []
    for s in samples:
        status[s.delivery] = s.status
        if s.latency_ms is not None:
            latencies.append(s.latency_ms)
    states = list(status.values())
    return Deliveries(
        succeeded=states.count(DeliveryStatus.SUCCEEDED),
        failed=states.count(DeliveryStatus.FAILED),
        pending=states.count(DeliveryStatus.PENDING),
        attempts=len(latencies),
        p50_ms=percentile(latencies, 0.5),
        p99_ms=percentile(latencies, 0.99),
    )


@dataclass(frozen=True, slots=True)
class Overview:
    counts: tuple[tuple[str, str], ...]
    """(status, count text) for every status, in the order of ``TaskStatus``."""
    active: int
    sampled: int
    sampled_since: datetime | None
    """The oldest task of the sample; None when the sample is every task there is."""
    success_rate: str
    """Of the sampled tasks that ended."""
    duration_p50: str
    duration_p99: str
    deliveries: Deliveries
    backlog: Backlog
    backlog_age: str
    providers: tuple[ProviderHealth, ...]
    day: Chart
    week: Chart


def overview(
    now: datetime,
    counts: Mapping[TaskStatus, int],
    tasks: Sequence[TaskSample],
    delivered: Sequence[DeliverySample],
    backlog: Backlog,
    providers: Iterable[ProviderHealth],
) -> Overview:
    ended = [t for t in tasks if t.status.terminal]
    succeeded = sum(1 for t in ended if t.status is TaskStatus.SUCCEEDED)
    durations = [
        (t.completed_at - t.created_at).total_seconds()
        for t in ended
        if t.completed_at is not None and t.status is TaskStatus.SUCCEEDED
    ]
    full = len(tasks) >= TASK_SAMPLE
    age = None if backlog.oldest_due_at is None else (now - backlog.oldest_due_at).total_seconds()
    return Overview(
        counts=tuple((s.value, count_text(counts.get(s, 0))) for s in TaskStatus),
        active=counts.get(TaskStatus.QUEUED, 0) + counts.get(TaskStatus.RUNNING, 0),
        sampled=len(tasks),
        sampled_since=tasks[-1].created_at if full and tasks else None,
        success_rate=f"{100 * succeeded / len(ended):.1f}%" if ended else "-",
        duration_p50=duration_text(percentile(durations, 0.5)),
        duration_p99=duration_text(percentile(durations, 0.99)),
        deliveries=deliveries(delivered),
        backlog=backlog,
        backlog_age=duration_text(max(age, 0.0)) if age is not None else "-",
        providers=tuple(sorted(providers, key=lambda h: h.name)),
        day=task_chart(
            tasks,
            _next_hour(now),
            buckets=24,
            step=timedelta(hours=1),
            title="Tasks created per hour, last 24 h (UTC)",
            label_format="%H:00",
            every=4,
        ),
        week=task_chart(
            tasks,
            _next_day(now),
            buckets=7,
            step=timedelta(days=1),
            title="Tasks created per day, last 7 days (UTC)",
            label_format="%a %d",
            every=1,
        ),
    )


def _next_hour(now: datetime) -> datetime:
    """The end of the current hour: the chart's last bar is the hour under way."""
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def _next_day(now: datetime) -> datetime:
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start + timedelta(days=1)
