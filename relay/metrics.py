"""``/metrics`` in the Prometheus text format.

Events are counted where they happen (``DeliveryEngine`` when an attempt finishes,
``Tracker`` when a poll returns); state is read when Prometheus scrapes: attempts in flight
from the engine, provider back-off from the provider clients, tasks by status and the delivery
backlog from the database (``Store.metrics_snapshot``, cached for ``SNAPSHOT_TTL`` seconds so
that several scrapers do not each cost a database round trip).

Each app has its own ``CollectorRegistry``: several relays in one process (the tests) do not
share counters. Labels are bounded: outcomes, task statuses, configured provider names; never
a task, event or delivery id, never a URL.

Counters are per process; the database gauges are the same on every instance of a
multi-instance relay (aggregate them with ``max``, not ``sum``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from relay.copies.values import CopyState
from relay.models import TaskStatus
from relay.provider_answers import ProviderHealth
from relay.store.interface import StoreUpkeep
from relay.store.values import MetricsSnapshot

log = logging.getLogger("relay.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SNAPSHOT_TTL = 2.0
"""Seconds a database snapshot serves scrapes: however many scrapers there are, the database
is read at most this often (about 25 ms at 100k tasks on SQLite)."""
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
"""Seconds; the top buckets cover the attempt timeout (15 s by default)."""

ATTEMPT_OUTCOMES = ("delivered", "retry", "failed", "gone")
"""``Attempt.outcome`` values: sent (2xx); failed, will retry; failed, no retries left; the
receiver answered 410 and the delivery (or its subscription) stopped."""


COPY_OUTCOMES = ("stored", "failed")
COPY_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
"""Seconds; a copy of a large video over a slow link may take many minutes."""


@dataclass(frozen=True, slots=True)
class LiveState:
    """What the running relay knows without the database, read at each scrape."""

    in_flight: int
    providers: tuple[ProviderHealth, ...]


class RelayMetrics:
    """One app's registry and the instruments the engines update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._attempts = Counter(
            "relay_delivery_attempts",
            "Webhook delivery attempts, by outcome "
            "(delivered, retry, failed: no retries left, gone: 410).",
            ["outcome"],
            registry=self.registry,
        )
        # Present at 0 before the first attempt; kept, as labels() costs a lock each call.
        self._by_outcome = {o: self._attempts.labels(o) for o in ATTEMPT_OUTCOMES}
        self._latency = Histogram(
            "relay_delivery_latency_seconds",
            "Webhook delivery attempt latency, from sending "
            "the request to the end of the response (or the error).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._polls = Counter(
            "relay_provider_polls",
            "Task status queries to providers, by provider and "
            "outcome (answered, or why not: not_found, timeout, rate_limited, backed_off...).",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self._copies = Counter(
            "relay_output_copies",
            "Tries at copying a task's file into the output store, by outcome "
            "(stored, failed: the copy is retried or, after its last try, given up).",
            ["outcome"],
            registry=self.registry,
        )
        self._copied = {o: self._copies.labels(o) for o in COPY_OUTCOMES}
        self._copied_bytes = Counter(
            "relay_output_copied_bytes",
            "Bytes stored by copies into the output store.",
            registry=self.registry,
        )
        self._copy_seconds = Histogram(
            "relay_output_copy_seconds",
            "How long a stored copy took, from its claim to its last byte stored.",
            buckets=COPY_BUCKETS,
            registry=self.registry,
        )
        self._state = _StateCollector()
        self.registry.register(self._state)

    def copy_finished(self, outcome: str, stored_bytes: int, seconds: float | None) -> None:
        (self._copied.get(outcome) or self._copies.labels(outcome)).inc()
        if stored_bytes:
            self._copied_bytes.inc(stored_bytes)
        if seconds is not None:
            self._copy_seconds.observe(seconds)

    def attempt_finished(self, outcome: str, latency_seconds: float) -> None:
        counter = self._by_outcome.get(outcome)
        (counter or self._attempts.labels(outcome)).inc()
        self._latency.observe(latency_seconds)

    def poll_finished(self, provider: str, outcome: str) -> None:
        self._polls.labels(provider, outcome).inc()

    def attach(
        self, store: StoreUpkeep, live: Callable[[], LiveState], now: Callable[[], datetime]
    ) -> None:
        """Where the scrape-time gauges come from (the running relay's parts)."""
        self._state.source = _Source(store, live, now)

    def detach(self) -> None:
        self._state.source = None

    async def render(self) -> bytes:
        await self._state.refresh()
        return generate_latest(self.registry)


@dataclass(frozen=True, slots=True)
class _Source:
    store: StoreUpkeep
    live: Callable[[], LiveState]
    now: Callable[[], datetime]


class _StateCollector(Collector):
    """The gauges that are state, not events."""

    def __init__(self) -> None:
        self.source: _Source | None = None
        self._snapshot: MetricsSnapshot | None = None
        self._taken: datetime | None = None
        self._failed_at: datetime | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the database unless the last snapshot is fresh enough. A database that
        does not answer leaves those gauges out (the scrape itself still succeeds)."""
        source = self.source
        if source is None:
            return
        async with self._lock:  # concurrent scrapes share one read
            now = source.now()
            # A failed read is not tried again sooner than a good one is: scrapes during an
            # outage must not add to the database's trouble.
            last = self._taken or self._failed_at
            if last is not None and 0 <= (now - last).total_seconds() < SNAPSHOT_TTL:
                return
            try:
                self._snapshot = await source.store.metrics_snapshot(now)
                self._taken, self._failed_at = now, None
            except Exception as exc:
                log.warning("metrics: cannot read the database (%s)", type(exc).__name__)
                self._snapshot = self._taken = None
                self._failed_at = now

    def collect(self) -> Iterable[Metric]:
        source = self.source
        if source is None:
            return []
        return state_metrics(self._snapshot, self._taken, source.live(), source.now())


def state_metrics(
    snapshot: MetricsSnapshot | None, taken: datetime | None, live: LiveState, now: datetime
) -> list[Metric]:
    """The scrape-time gauges (pure): from the engine and providers, and from the database
    snapshot taken at ``taken`` when there is one."""
    in_flight = GaugeMetricFamily(
        "relay_delivery_attempts_in_flight",
        "Webhook delivery attempts being sent by this process.",
        value=live.in_flight,
    )
    backoff = GaugeMetricFamily(
        "relay_provider_backoff_seconds",
        "Seconds until the relay asks this provider again after faults (0: not backed off).",
        labels=["provider"],
    )
    faults = GaugeMetricFamily(
        "relay_provider_consecutive_faults",
        "Provider faults in a row (0: healthy).",
        labels=["provider"],
    )
    provider_in_flight = GaugeMetricFamily(
        "relay_provider_requests_in_flight",
        "Requests to this provider under way.",
        labels=["provider"],
    )
    for p in live.providers:
        until = p.backoff_until
        backoff.add_metric([p.name], max(0.0, (until - now).total_seconds()) if until else 0.0)
        faults.add_metric([p.name], p.consecutive_faults)
        provider_in_flight.add_metric([p.name], p.in_flight)
    metrics: list[Metric] = [in_flight, backoff, faults, provider_in_flight]
    if snapshot is None or taken is None:
        return metrics
    tasks = GaugeMetricFamily("relay_tasks", "Tasks in the database, by status.", labels=["status"])
    for status in TaskStatus:
        tasks.add_metric([status.value], snapshot.tasks.get(status, 0))
    backlog = GaugeMetricFamily(
        "relay_delivery_backlog",
        "Deliveries due and not being sent (all instances).",
        value=snapshot.due_deliveries,
    )
    oldest = snapshot.oldest_due_at
    age = GaugeMetricFamily(
        "relay_delivery_backlog_age_seconds",
        "How long the longest-waiting due delivery has waited (0: no backlog).",
        value=max(0.0, (taken - oldest).total_seconds()) if oldest is not None else 0.0,
    )
    uncertain = GaugeMetricFamily(
        "relay_submissions_uncertain",
        "Creates whose provider answer was lost and that are not settled yet: each may be a "
        "paid task the relay does not track (GET /v1/submissions?state=uncertain).",
        value=snapshot.uncertain_submissions,
    )
    copies = GaugeMetricFamily(
        "relay_output_copies_by_state",
        "Output copies in the database, by state (pending: not stored yet; failed: every try "
        "failed; deleted: removed by retention or on request).",
        labels=["state"],
    )
    for state in CopyState:
        copies.add_metric([state.value], snapshot.copies.get(state, 0))
    stored = GaugeMetricFamily(
        "relay_output_stored_bytes",
        "Bytes of the output copies stored now (what outputs.store holds for the relay).",
        value=snapshot.stored_bytes,
    )
    return [*metrics, tasks, backlog, age, uncertain, copies, stored]


def live_state(
    in_flight: Callable[[], int], providers: Mapping[str, Callable[[], ProviderHealth]]
) -> Callable[[], LiveState]:
    def read() -> LiveState:
        return LiveState(in_flight(), tuple(health() for health in providers.values()))

    return read
