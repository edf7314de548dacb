"""The overview's pure arithmetic: percentiles, durations, and the stacked charts' buckets
(which hour or day a task falls in, by outcome) and geometry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from relay.dashboard.overview_views import (
    BOTTOM,
    CHART_HEIGHT,
    TOP,
    count_text,
    deliveries,
    duration_text,
    percentile,
    task_chart,
)
from relay.models import DeliveryStatus, TaskStatus
from relay.store.overview_roles import DeliverySample, TaskSample

END = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def sample(status: TaskStatus, hours_ago: float) -> TaskSample:
    return TaskSample(status, "sandbox", END - timedelta(hours=hours_ago), None)


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.99) == 3.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(list(reversed(values)), 0.99) == 99.0


def test_durations_and_counts_read_at_a_glance() -> None:
    assert duration_text(None) == "-"
    assert duration_text(0.25) == "250 ms"
    assert duration_text(12.34) == "12.3 s"
    assert duration_text(250) == "4m 10s"
    assert duration_text(7500) == "2h 5m"
    assert count_text(9_999) == "9,999"
    assert count_text(10_000) == "10,000+"


def test_tasks_fall_in_their_hour_stacked_by_outcome() -> None:
    tasks = [
        sample(TaskStatus.SUCCEEDED, 0.5),  # the last hour
        sample(TaskStatus.FAILED, 0.2),
        sample(TaskStatus.RUNNING, 0.1),
        sample(TaskStatus.SUCCEEDED, 23.5),  # the first hour
        sample(TaskStatus.SUCCEEDED, 24.5),  # before the chart
        sample(TaskStatus.EXPIRED, -0.1),  # after its end
    ]
    chart = task_chart(
        tasks, END, buckets=24, step=timedelta(hours=1), title="t", label_format="%H", every=6
    )
    assert len(chart.slots) == 24
    assert [s.total for s in chart.slots] == [1] + [0] * 22 + [3]
    last = chart.slots[-1]
    assert [(g.series, g.count) for g in last.segments] == [
        ("succeeded", 1),
        ("failed", 1),
        ("in progress", 1),
    ]
    # The busiest slot fills the plot; its segments stack without gaps from the baseline.
    assert chart.highest == 3
    plot = CHART_HEIGHT - BOTTOM - TOP
    assert sum(g.height for g in last.segments) == plot
    assert last.segments[0].y + last.segments[0].height == CHART_HEIGHT - BOTTOM
    assert last.segments[1].y + last.segments[1].height == last.segments[0].y
    assert chart.slots[0].segments[0].height == round(plot / 3, 2)
    assert [label for _, label, _ in chart.ticks] == ["11", "05", "23", "17"]
    assert chart.ticks[0][2] == "end"  # the newest label stays inside the chart


def test_an_empty_chart_has_no_bars() -> None:
    chart = task_chart(
        [], END, buckets=7, step=timedelta(days=1), title="t", label_format="%a", every=1
    )
    assert chart.highest == 0
    assert all(not s.segments for s in chart.slots)


def test_delivery_rates_count_each_delivery_once() -> None:
    def d(pk: int, status: DeliveryStatus, latency: float | None) -> DeliverySample:
        return DeliverySample(pk, status, END, latency, None if latency is None else "HTTP")

    found = deliveries(
        [
            d(1, DeliveryStatus.SUCCEEDED, 10.0),
            d(2, DeliveryStatus.SUCCEEDED, 500.0),  # two attempts of one delivery
            d(2, DeliveryStatus.SUCCEEDED, 30.0),
            d(3, DeliveryStatus.FAILED, 20.0),
            d(4, DeliveryStatus.PENDING, None),
        ]
    )
    assert (found.succeeded, found.failed, found.pending, found.attempts) == (2, 1, 1, 4)
    assert found.success_rate == "66.7%"
    assert (found.p50_ms, found.p99_ms) == (20.0, 500.0)
    assert deliveries([]).success_rate == "-"
