"""``relay.metrics``: the scrape-time gauges (pure), the counters, one registry per app, and
the database snapshot's cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from relay.copies.values import CopyState
from relay.errors import StoreError
from relay.metrics import SNAPSHOT_TTL, LiveState, RelayMetrics, state_metrics
from relay.models import TaskStatus
from relay.provider_answers import ProviderHealth
from relay.store import open_store
from relay.store.values import MetricsSnapshot
from tests.clock import FakeClock
from tests.store.factories import make_account, register

NOW = datetime(2026, 6, 6, 16, 0, tzinfo=UTC)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: bytes | str) -> Samples:
    body = text.decode() if isinstance(text, bytes) else text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def gauges(metrics: list[object]) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value for m in metrics for s in m.samples}  # type: ignore[attr-defined]


def health(
    name: str, faults: int = 0, backoff_until: datetime | None = None, in_flight: int = 0
) -> ProviderHealth:
    return ProviderHealth(
        name,
        "ark",
        faults,
        "unavailable: 503" if faults else None,
        NOW if faults else None,
        backoff_until,
        in_flight,
    )


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_state_gauges_from_the_engine_the_providers_and_a_snapshot() -> None:
    snapshot = MetricsSnapshot(
        tasks={TaskStatus.RUNNING: 3, TaskStatus.SUCCEEDED: 7},
        due_deliveries=4,
        oldest_due_at=NOW - timedelta(seconds=90),
        uncertain_submissions=2,
        copies={CopyState.STORED: 6, CopyState.FAILED: 1},
        stored_bytes=123_456_789,
    )
    live = LiveState(
        in_flight=5,
        providers=(
            health("ark", faults=2, backoff_until=NOW + timedelta(seconds=12.5), in_flight=1),
            health("naci"),
        ),
    )
    samples = gauges(list(state_metrics(snapshot, NOW - timedelta(seconds=1), live, NOW)))
    assert samples == {
        key("relay_delivery_attempts_in_flight"): 5,
        key("relay_provider_backoff_seconds", provider="ark"): 12.5,
        key("relay_provider_backoff_seconds", provider="naci"): 0,
        key("relay_provider_consecutive_faults", provider="ark"): 2,
        key("relay_provider_consecutive_faults", provider="naci"): 0,
        key("relay_provider_requests_in_flight", provider="ark"): 1,
        key("relay_provider_requests_in_flight", provider="naci"): 0,
        # Every status is present, at 0 when there are none.
        key("relay_tasks", status="queued"): 0,
        key("relay_tasks", status="running"): 3,
        key("relay_tasks", status="succeeded"): 7,
        key("relay_tasks", status="failed"): 0,
        key("relay_tasks", status="expired"): 0,
        key("relay_tasks", status="cancelled"): 0,
        key("relay_delivery_backlog"): 4,
        # As of the snapshot: 89 s then, whatever the scrape time.
        key("relay_delivery_backlog_age_seconds"): 89,
        key("relay_submissions_uncertain"): 2,
        key("relay_output_copies_by_state", state="pending"): 0,
        key("relay_output_copies_by_state", state="stored"): 6,
        key("relay_output_copies_by_state", state="failed"): 1,
        key("relay_output_copies_by_state", state="deleted"): 0,
        key("relay_output_stored_bytes"): 123_456_789,
    }


def test_a_past_backoff_is_zero_and_no_snapshot_leaves_the_database_gauges_out() -> None:
    live = LiveState(
        in_flight=0, providers=(health("ark", faults=1, backoff_until=NOW - timedelta(seconds=3)),)
    )
    samples = gauges(list(state_metrics(None, None, live, NOW)))
    assert samples[key("relay_provider_backoff_seconds", provider="ark")] == 0
    assert {name for name, _ in samples} == {
        "relay_delivery_attempts_in_flight",
        "relay_provider_backoff_seconds",
        "relay_provider_consecutive_faults",
        "relay_provider_requests_in_flight",
    }


def test_no_backlog_has_age_zero() -> None:
    snapshot = MetricsSnapshot(tasks={}, due_deliveries=0, oldest_due_at=None)
    samples = gauges(list(state_metrics(snapshot, NOW, LiveState(0, ()), NOW)))
    assert samples[key("relay_delivery_backlog_age_seconds")] == 0
    assert samples[key("relay_delivery_backlog")] == 0


async def test_counters_and_the_histogram_are_per_app() -> None:
    one, other = RelayMetrics(), RelayMetrics()
    one.attempt_finished("delivered", 0.02)
    one.attempt_finished("retry", 3.0)
    one.attempt_finished("retry", 0.2)
    one.poll_finished("ark", "answered")
    one.poll_finished("ark", "timeout")
    one.poll_finished("naci", "answered")
    samples = parse(await one.render())
    assert samples[key("relay_delivery_attempts_total", outcome="delivered")] == 1
    assert samples[key("relay_delivery_attempts_total", outcome="retry")] == 2
    assert samples[key("relay_delivery_attempts_total", outcome="failed")] == 0
    assert samples[key("relay_delivery_latency_seconds_count")] == 3
    assert samples[key("relay_delivery_latency_seconds_sum")] == 3.22
    assert samples[key("relay_delivery_latency_seconds_bucket", le="0.025")] == 1
    assert samples[key("relay_delivery_latency_seconds_bucket", le="0.25")] == 2
    assert samples[key("relay_delivery_latency_seconds_bucket", le="2.5")] == 2
    assert samples[key("relay_delivery_latency_seconds_bucket", le="5.0")] == 3
    assert samples[key("relay_provider_polls_total", provider="ark", outcome="answered")] == 1
    assert samples[key("relay_provider_polls_total", provider="ark", outcome="timeout")] == 1
    assert samples[key("relay_provider_polls_total", provider="naci", outcome="answered")] == 1
    # Not attached to a running relay: no state gauges, and the other app counted nothing.
    assert not any(name == "relay_delivery_backlog" for name, _ in samples)
    fresh = parse(await other.render())
    assert fresh[key("relay_delivery_attempts_total", outcome="retry")] == 0
    assert fresh[key("relay_delivery_latency_seconds_count")] == 0


async def test_the_snapshot_is_read_at_most_once_per_ttl(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'relay.db'}")
    await store.migrate()
    closed = False
    try:
        clock = FakeClock(NOW)
        metrics = RelayMetrics()
        metrics.attach(store, lambda: LiveState(2, ()), clock.now)
        account = await make_account(store, "alice")
        await register(store, account, next_poll_at=None, callback_url=None)
        samples = parse(await metrics.render())
        assert samples[key("relay_tasks", status="queued")] == 1
        assert samples[key("relay_delivery_attempts_in_flight")] == 2

        await register(store, account, next_poll_at=None, callback_url=None)
        clock.advance(SNAPSHOT_TTL / 2)
        assert parse(await metrics.render())[key("relay_tasks", status="queued")] == 1
        clock.advance(SNAPSHOT_TTL / 2)
        assert parse(await metrics.render())[key("relay_tasks", status="queued")] == 2

        # The database gone: the scrape still answers, without the database's gauges.
        await store.close()
        closed = True
        clock.advance(SNAPSHOT_TTL)
        samples = parse(await metrics.render())
        assert key("relay_tasks", status="queued") not in samples
        assert samples[key("relay_delivery_attempts_in_flight")] == 2
        # ... and scrapes in the next TTL do not ask the database again.
        asked = 0

        async def counting(now: datetime) -> MetricsSnapshot:
            nonlocal asked
            asked += 1
            raise StoreError("PostgreSQL: no connection within 5 s")

        store.metrics_snapshot = counting  # type: ignore[method-assign]
        await metrics.render()
        assert asked == 0
        clock.advance(SNAPSHOT_TTL)
        await metrics.render()
        assert asked == 1

        metrics.detach()
        assert key("relay_delivery_attempts_in_flight") not in parse(await metrics.render())
    finally:
        if not closed:
            await store.close()
